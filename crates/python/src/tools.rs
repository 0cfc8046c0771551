//! The command line's model tools from Python: `profile` (returns a `Profile`), `zoo`, and the
//! `lalarand` command itself (the console script pip installs runs the same code as the
//! cargo-built binary).
//!
//! As everywhere in this crate, the binding decides nothing: the engine profiles and picks the
//! calibration inputs (`lalarand_engine::profile`), the onnx crate builds the zoo's models, and
//! `lalarand_cli::main_with_args` is the command line.

use crate::system::Profile;
use lalarand_engine::dataset::Dataset;
use lalarand_engine::profile::{calibration_inputs, profile_shaped_to_file, ProfileOptions};
use lalarand_engine::{ExecConfig, StagedModel};
use lalarand_model::Mode;
use lalarand_onnx::fold::InputShape;
use lalarand_onnx::granularity::Granularity;
use lalarand_onnx::zoo::Architecture;
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Runs the `lalarand` command line with `argv` (the program name first) in this process and
/// returns its exit status; what the `lalarand` console script calls.
#[pyfunction]
pub fn _cli_main(py: Python<'_>, argv: Vec<OsString>) -> u8 {
    py.detach(|| {
        let status = lalarand_cli::main_with_args(argv);
        // Everything written reaches the file descriptor before the caller reads or moves it.
        let _ = std::io::Write::flush(&mut std::io::stdout());
        status
    })
}

/// Writes a standard architecture with seeded random weights as ONNX at `out` (as `lalarand
/// zoo`) and returns `out`. `architecture`: one of `zoo_architectures()`.
#[pyfunction]
#[pyo3(signature = (architecture, out, *, seed=0))]
pub fn zoo(py: Python<'_>, architecture: &str, out: PathBuf, seed: u64) -> PyResult<PathBuf> {
    let arch: Architecture = architecture.parse().map_err(|e| PyValueError::new_err(format!("zoo: {e}")))?;
    let bytes = py.detach(|| lalarand_onnx::encode_model(&lalarand_onnx::zoo::build(arch, seed)));
    std::fs::write(&out, bytes)
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("zoo: {}: cannot write: {e}", out.display())))?;
    Ok(out)
}

/// The architectures `zoo` builds.
#[pyfunction]
pub fn zoo_architectures() -> Vec<&'static str> {
    Architecture::ALL.iter().map(|a| a.name()).collect()
}

/// Profiles the ONNX model `model` stage by stage in every mode of `modes` (as `lalarand
/// profile`), writes the profile JSON to `out` (default: beside the model, `<model>.json`,
/// where a server looks for the model) and returns it as a `Profile`.
///
/// `input_shapes`: `{input name: [d1, d2, ...]}` for models with symbolic dimensions.
/// `calibration`: the inputs int8 is calibrated (and the first one timed) with: a file (a `.npy`
/// array, a folder of images, raw fp32 or a labeled CSV, label ignored), or numpy float32 samples of batch 1 (a list, or an
/// array whose first axis indexes them); unlabeled inputs also measure each stage's int8 cost
/// without labels. `dataset`: a labeled CSV whose test rows measure each stage's int8 accuracy
/// cost (its first `train_per_class` rows of each class are training rows). With neither, the
/// engine calibrates on synthetic inputs (timing only). `runs`, `min_cold_runs`, `warmup`,
/// `cores`, `threads`, `margin` (WCET = max x margin), `warm_cache` and `granularity`
/// ("layer", "block" or "auto") are the command line's options of the same names. Ctrl-C
/// stops it between stages (KeyboardInterrupt).
#[pyfunction]
#[pyo3(signature = (model, out=None, *, input_shapes=None, modes=None, calibration=None, dataset=None, train_per_class=400, runs=100, min_cold_runs=10, warmup=10, cores=Vec::new(), threads=1, margin=1.2, warm_cache=false, granularity="layer"))]
#[pyo3(
    text_signature = "(model, out=None, *, input_shapes=None, modes=('gpu', 'cpu-fp32', 'cpu-int8'), calibration=None, dataset=None, train_per_class=400, runs=100, min_cold_runs=10, warmup=10, cores=(), threads=1, margin=1.2, warm_cache=False, granularity='layer')"
)]
#[allow(clippy::too_many_arguments)]
pub fn profile(
    py: Python<'_>,
    model: PathBuf,
    out: Option<PathBuf>,
    input_shapes: Option<BTreeMap<String, Vec<i64>>>,
    modes: Option<Vec<String>>,
    calibration: Option<&Bound<'_, PyAny>>,
    dataset: Option<PathBuf>,
    train_per_class: usize,
    runs: usize,
    min_cold_runs: usize,
    warmup: usize,
    cores: Vec<usize>,
    threads: usize,
    margin: f64,
    warm_cache: bool,
    granularity: &str,
) -> PyResult<Profile> {
    crate::logs::forward_to_python();
    let arg = |name: &str, problem: String| PyValueError::new_err(format!("profile({name}=...): {problem}"));
    let modes: Vec<Mode> = match modes {
        None => Mode::ALL.to_vec(),
        Some(names) => names.iter().map(|m| m.parse::<Mode>().map_err(|e| arg("modes", e))).collect::<PyResult<_>>()?,
    };
    if modes.is_empty() {
        return Err(arg("modes", "give at least one of \"gpu\", \"cpu-fp32\", \"cpu-int8\"".into()));
    }
    if !(margin.is_finite() && margin >= 1.0) {
        return Err(arg("margin", format!("{margin} is not a WCET margin >= 1 (WCET = observed max x margin)")));
    }
    if runs == 0 || min_cold_runs == 0 || threads == 0 {
        return Err(arg("runs/min_cold_runs/threads", "each must be at least 1".into()));
    }
    let granularity = granularity.parse::<Granularity>().map_err(|e| arg("granularity", e.to_string()))?;
    let shapes: Vec<InputShape> =
        input_shapes.unwrap_or_default().into_iter().map(|(name, dims)| InputShape { name, dims }).collect();
    for (name, path) in [("model", Some(&model)), ("dataset", dataset.as_ref())] {
        if let Some(p) = path.filter(|p| !p.is_file()) {
            return Err(arg(name, format!("{}: no such file", p.display())));
        }
    }
    let out = out.unwrap_or_else(|| model.with_extension("json"));
    // Samples given as arrays (copied now, with the GIL), or a file the engine reads.
    let (calibration_file, mut given): (Option<PathBuf>, Option<Vec<Vec<f32>>>) = match calibration {
        None => (None, None),
        Some(obj) => match obj.extract::<PathBuf>() {
            Ok(path) => (Some(path), None),
            Err(_) => (None, Some(samples(obj).map_err(|e| arg("calibration", e))?)),
        },
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let opts = ProfileOptions {
        runs,
        min_cold_runs,
        warmup,
        margin,
        cfg: ExecConfig { threads, cores, ..ExecConfig::default() },
        modes: modes.clone(),
        progress: false,
        // Between stages: a Ctrl-C Python has seen stops the run (a KeyboardInterrupt below).
        stop: Some(Arc::new(move |_| {
            let caught = Python::attach(|py| py.check_signals().is_err());
            flag.fetch_or(caught, Ordering::Relaxed) || caught
        })),
        label_free_accuracy: dataset.is_none() && (calibration_file.is_some() || given.is_some()),
        accuracy: None,
        cold_cache: !warm_cache,
        granularity,
    };
    let written = py.detach(|| -> Result<PathBuf, lalarand_engine::error::EngineError> {
        let data = dataset.as_deref().map(Dataset::load_csv).transpose()?;
        let staged = StagedModel::load_with(&model, &shapes)?;
        let inputs = match given.take() {
            Some(inputs) => inputs,
            None => calibration_inputs(&staged, calibration_file.as_deref(), data.as_ref(), train_per_class, &modes)?,
        };
        drop(staged);
        let opts = ProfileOptions { accuracy: data.map(|d| (d, train_per_class)), ..opts };
        Ok(profile_shaped_to_file(&model, &shapes, &inputs, &opts, &out)?.path)
    });
    if interrupted.load(Ordering::Relaxed) {
        return Err(PyKeyboardInterrupt::new_err(format!(
            "profile({}) interrupted: the stages measured so far are in {}",
            model.display(),
            lalarand_engine::profile::partial_path(&out).display()
        )));
    }
    let path =
        written.map_err(|e| crate::errors::LalarandError::new_err(format!("profile({}): {e}", model.display())))?;
    Profile::load(path)
}

/// Calibration samples given in Python: a list of float32 arrays, or one array whose first
/// axis indexes the samples; each flattened (the engine checks the size against the model).
pub(crate) fn samples(obj: &Bound<'_, PyAny>) -> Result<Vec<Vec<f32>>, String> {
    let flat = |a: &Bound<'_, PyArrayDyn<f32>>| -> Result<Vec<f32>, String> {
        let ro = a.try_readonly().map_err(|e| e.to_string())?;
        Ok(ro.as_array().iter().copied().collect())
    };
    if let Ok(array) = obj.cast::<PyArrayDyn<f32>>() {
        let n = array.shape().first().copied().unwrap_or(0);
        let all = flat(array)?;
        if n == 0 {
            return Err("an empty array".into());
        }
        return Ok(all.chunks(all.len() / n).map(<[f32]>::to_vec).collect());
    }
    let items: Vec<Bound<'_, PyAny>> =
        obj.extract().map_err(|_| "a path, a float32 numpy array or a list of them".to_string())?;
    items
        .iter()
        .map(|item| {
            item.cast::<PyArrayDyn<f32>>()
                .map_err(|_| "every sample must be a float32 numpy array".to_string())
                .and_then(&flat)
        })
        .collect()
}
