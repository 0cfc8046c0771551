//! The demo's models, written and profiled here: three zoo models (random weights) and the
//! trained MNIST digit classifier with its labeled data, built into the binary.

use super::platform::Here;
use crate::files::write_atomic_bytes;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use lalarand_engine::dataset::Dataset;
use lalarand_engine::profile::{profile_to_file, synthetic_inputs, ProfileOptions};
use lalarand_engine::{ExecConfig, StagedModel};
use lalarand_model::{time_to_ms, DnnProfile, Mode};
use lalarand_onnx::zoo::{self, Architecture};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where a task's model comes from.
#[derive(Clone, Copy)]
pub(super) enum Source {
    /// A zoo model: torchvision's structure, seeded random weights, so its int8 accuracy costs
    /// cannot be measured.
    Zoo(Architecture),
    /// The trained MNIST classifier built into the binary, with its labeled dataset.
    Digits,
}

/// The tasks, shortest period first; `ratio` scales the period (rate-monotonic priorities follow).
pub(super) const TASKS: [(&str, Source, f64); 4] = [
    ("digits", Source::Digits, 0.5),
    ("classifier", Source::Zoo(Architecture::SqueezeNet1_1), 1.0),
    ("features", Source::Zoo(Architecture::MobileNetV2), 1.5),
    ("detector", Source::Zoo(Architecture::YoloV3Tiny), 2.0),
];
/// crates/engine/testdata's trained digit classifier and its labeled data (5000 MNIST rows),
/// built in so that an installed binary needs no source tree.
const DIGITS_MODEL: &[u8] = include_bytes!("../../../../engine/testdata/mnist_resnet.onnx");
const DIGITS_DATA: &[u8] = include_bytes!("../../../../engine/testdata/mnist_5k.csv.gz");
/// The first rows of every class train (int8 calibrates on some of them); the rest test, and
/// measure each stage's int8 accuracy cost (as `lalarand profile --train-per-class 400`).
const TRAIN_PER_CLASS: usize = 400;
const CALIBRATION_PER_CLASS: usize = 20;
/// Timed and untimed runs per stage and mode while profiling, how many of the timed ones start
/// cold at least (docs/engine.md, "How many timed runs"), and the WCET margin (small runs on a
/// shared machine: a generous margin).
const RUNS: usize = 20;
const MIN_COLD_RUNS: usize = 10;
const WARMUP: usize = 2;
const MARGIN: f64 = 1.5;

/// The models written and their profiles, in [`TASKS`] order.
pub(super) struct Profiled {
    pub models: Vec<PathBuf>,
    pub profiles: Vec<Arc<DnnProfile>>,
    /// The inputs each model was calibrated on, which the allocation's end-to-end int8 check
    /// runs on.
    pub inputs: Vec<Vec<Vec<f32>>>,
}

/// Writes every model of [`TASKS`] into `models_dir`, profiles it on `here`'s cpu core (next to
/// the model, `<name>.json`) and prints one line per profile.
pub(super) fn write_and_profile(models_dir: &Path, here: &Here) -> Result<Profiled> {
    let (cores, modes) = (&here.cores, &here.modes);
    let mut models = Vec::new();
    let mut profiles = Vec::new();
    let mut calibration = Vec::new();
    let mut test_rows = 0;
    for (k, &(_, source, _)) in TASKS.iter().enumerate() {
        let bar = ProgressBar::new(1)
            .with_style(ProgressStyle::with_template("{spinner} model {prefix} [{bar:20}] {pos}/{len} stages {msg}")?);
        bar.set_prefix(format!("{}/{}", k + 1, TASKS.len()));
        bar.enable_steady_tick(Duration::from_millis(100));
        let (path, inputs, accuracy, stages) = match source {
            Source::Zoo(arch) => {
                bar.set_message(format!("writing zoo {}", arch.name()));
                let path = models_dir.join(format!("{}.onnx", arch.name()));
                write_atomic_bytes(&path, &lalarand_onnx::encode_model(&zoo::build(arch, 1)))?;
                let staged = StagedModel::load(&path)?;
                (path, synthetic_inputs(&staged, 4), None, staged.stage_count())
            }
            Source::Digits => {
                bar.set_message("writing the digit classifier and its dataset");
                let path = models_dir.join("mnist_resnet.onnx");
                write_atomic_bytes(&path, DIGITS_MODEL)?;
                let csv = models_dir.join("mnist_5k.csv.gz");
                write_atomic_bytes(&csv, DIGITS_DATA)?;
                let data = Dataset::load_csv(&csv)?;
                let (train, test) = data.split_per_class(TRAIN_PER_CLASS);
                test_rows = test.len();
                let staged = StagedModel::load(&path)?;
                let dims = staged.input_shape(1);
                let (_, all) = data.batch(&data.take_per_class(&train, CALIBRATION_PER_CLASS), &dims[1..])?;
                let inputs = all.chunks(dims.iter().product()).map(<[f32]>::to_vec).collect();
                (path, inputs, Some((data, TRAIN_PER_CLASS)), staged.stage_count())
            }
        };
        let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        bar.set_length(stages as u64);
        bar.set_message(match &accuracy {
            Some(_) => format!(
                "{name}: calibrating int8, each stage's int8 accuracy cost on {test_rows} test rows, then timing"
            ),
            None => format!("{name}: calibrating int8, then timing"),
        });
        let (stage_bar, timing) = (bar.clone(), format!("{name}: timing {}", names(modes)));
        let opts = ProfileOptions {
            runs: RUNS,
            min_cold_runs: MIN_COLD_RUNS,
            warmup: WARMUP,
            margin: MARGIN,
            cfg: ExecConfig { threads: 1, cores: vec![cores[0]], ..ExecConfig::default() },
            modes: modes.clone(),
            progress: false,
            // Asked between the set-up steps and before every measurement: the stage progress.
            stop: Some(Arc::new(move |done: usize| {
                if done > 0 {
                    stage_bar.set_position(done as u64);
                    stage_bar.set_message(timing.clone());
                }
                false
            })),
            accuracy,
            label_free_accuracy: false,
            cold_cache: true,
            granularity: lalarand_onnx::granularity::Granularity::Layer,
        };
        let json = models_dir.join(format!("{name}.json"));
        let outcome =
            profile_to_file(&path, &inputs, &opts, &json).with_context(|| format!("profiling {}", path.display()))?;
        bar.finish_and_clear();
        profiles.push(Arc::new(outcome.profile));
        models.push(path);
        calibration.push(inputs);
    }
    for ((p, path), &(_, source, _)) in profiles.iter().zip(&models).zip(&TASKS) {
        // The profile says which costs are known; the source says why.
        let unknown = p.int8_accuracy_unknown.iter().filter(|&&j| j < p.layers.len()).count();
        let cost = match (unknown, source) {
            (0, _) => format!(
                "int8 cost per stage measured on {test_rows} test rows: max {:.2} pp",
                p.layers.iter().map(|l| l.int8_accuracy_cost).fold(0.0, f64::max)
            ),
            (n, Source::Zoo(_)) => format!("int8 cost of {n} stages not measured (random weights)"),
            (n, Source::Digits) => format!("int8 cost of {n} stages not measured"),
        };
        outln!(
            "  {:<14} {:>3} stages, total WCET {}; {cost}  ({})",
            p.model,
            p.layers.len(),
            modes
                .iter()
                .map(|&m| format!("{} {:.1} ms", m.name(), time_to_ms(p.total_wcet(m))))
                .collect::<Vec<_>>()
                .join(", "),
            path.display()
        )?;
    }
    Ok(Profiled { models, profiles, inputs: calibration })
}

fn names(modes: &[Mode]) -> String {
    modes.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}
