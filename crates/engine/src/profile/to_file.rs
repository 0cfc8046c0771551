//! Profiling a model into a profile file: the entry points, and the partial file that an
//! interrupted or failed run leaves.

use super::digest::sha256_file;
use super::options::ProfileOptions;
use super::profiler::Profiler;
use crate::error::{EngineError, Result};
use crate::stage::pin_current_thread;
use crate::staged::StagedModel;
use lalarand_model::{DnnProfile, Mode};
use lalarand_onnx::fold::InputShape;
use lalarand_onnx::granularity::Granularity;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Loads the GPU runtime when gpu mode is asked for; why it cannot run, if it cannot.
fn gpu_runtime(opts: &ProfileOptions) -> Option<String> {
    if !opts.modes.contains(&Mode::Gpu) {
        return None;
    }
    crate::onnxruntime::load_gpu_first().err()
}

/// What a profile run produced.
#[derive(Debug, Clone)]
pub struct ProfileOutcome {
    pub profile: DnnProfile,
    pub path: PathBuf,
    /// Modes left out, as "stage: mode: why".
    pub skipped: Vec<String>,
    /// The stages `--granularity` chose (`None` at `layer`).
    pub granularity: Option<crate::granularity::Choice>,
}

/// Where a partial profile goes: `p.json` -> `p.partial.json`.
pub fn partial_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "profile".into());
    out.with_file_name(format!("{stem}.partial.json"))
}

/// Profiles the model at `model_path` with `inputs` (samples of batch 1; the first is timed,
/// all calibrate int8) and writes the profile to `out`.
pub fn profile_to_file(
    model_path: &Path,
    inputs: &[Vec<f32>],
    opts: &ProfileOptions,
    out: &Path,
) -> Result<ProfileOutcome> {
    profile_shaped_to_file(model_path, &[], inputs, opts, out)
}

/// [`profile_to_file`] with the model's inputs fixed at `shapes` (`--input-shape`; see
/// [`StagedModel::load_with`]); the profile records them (`input_shapes`).
pub fn profile_shaped_to_file(
    model_path: &Path,
    shapes: &[InputShape],
    inputs: &[Vec<f32>],
    opts: &ProfileOptions,
    out: &Path,
) -> Result<ProfileOutcome> {
    let before = |what: &str| match &opts.stop {
        Some(f) if f(0) => Err(EngineError::Interrupted(format!(
            "stop requested before {what}; no stage was measured, nothing written"
        ))),
        _ => Ok(()),
    };
    before("loading the model")?;
    // The GPU runtime (which also runs the CPU modes) must be the first one this process loads.
    let gpu_problem = gpu_runtime(opts);
    let loading = Instant::now();
    let staged = StagedModel::load_with(model_path, shapes)?;
    let sha = sha256_file(model_path)?;
    tracing::info!("{}: loaded and partitioned in {:.1} s", model_path.display(), loading.elapsed().as_secs_f64());
    let choosing = Instant::now();
    let (staged, choice) = match inputs.first() {
        Some(x)
            if opts.granularity != Granularity::Layer && x.len() == staged.input_shape(1).iter().product::<usize>() =>
        {
            before("choosing the stages")?;
            pin_current_thread(&opts.cfg.cores)?;
            let stop = || opts.stop.as_ref().is_some_and(|f| f(0));
            let (regrouped, choice) = crate::granularity::apply(&staged, opts.granularity, &opts.cfg, x, &stop)?;
            tracing::info!("{} (in {:.1} s)", choice.summary(), choosing.elapsed().as_secs_f64());
            (regrouped, Some(choice))
        }
        _ => (staged, None),
    };
    let mut p = Profiler::new(&staged, opts, sha);
    p.grouping = choice
        .as_ref()
        .map(|c| lalarand_model::StageGrouping { granularity: c.granularity.to_string(), groups: c.groups.clone() });
    if let Some(why) = gpu_problem {
        tracing::warn!("gpu mode left out of the profile: {why}");
        p.skipped.push(format!("all stages: gpu: {why}"));
        p.no_gpu = true;
    }
    match p.run(inputs) {
        Ok(()) => {
            let profile = p.profile(None);
            write(out, &profile)?;
            Ok(ProfileOutcome { profile, path: out.to_path_buf(), skipped: p.skipped, granularity: choice })
        }
        Err(e) if p.layers.is_empty() => Err(e),
        Err(e) => {
            let partial = partial_path(out);
            let profile = p.profile(Some(&e.to_string()));
            write(&partial, &profile)?;
            let kept = format!(
                "the {} stages measured so far (of {}) are in {}",
                profile.layers.len(),
                staged.stage_count(),
                partial.display()
            );
            Err(match e {
                EngineError::Interrupted(why) => EngineError::Interrupted(format!("{why}; {kept}")),
                // A failure is not an interruption: its own message, then what was kept.
                other => EngineError::graph(format!("profiling {}", model_path.display()), format!("{other}; {kept}")),
            })
        }
    }
}

/// Writes next to `path` and renames into place, so an existing profile is never left half
/// overwritten by a run that fails while writing.
fn write(path: &Path, p: &DnnProfile) -> Result<()> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(".tmp");
    let staging = std::path::PathBuf::from(staging);
    std::fs::write(&staging, p.to_json() + "\n").map_err(|e| EngineError::io(&staging, e))?;
    std::fs::rename(&staging, path).map_err(|e| EngineError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_profiles_go_beside_the_output() {
        assert_eq!(partial_path(Path::new("/x/p.json")), Path::new("/x/p.partial.json"));
    }
}
