//! `run_stages`: a profiled model's chained stages, each in the mode asked for, on numpy
//! inputs, outside any server (no timing, no priorities): what an accuracy measurement of an
//! allocation needs when its metric is not the command line's top-1 (a text recognizer's
//! decoded strings, a detector's boxes).
//!
//! It binds, it does not decide: the engine partitions the model as the profile did
//! (`StagedModel::load_for_profile`), rebuilds the int8 stages from the profile's saved
//! calibration (`profiled_int8_stages`, refused where there is none) and chains the stages
//! (`Pipeline`), as a server of that profile would.

use crate::system::Profile;
use lalarand_engine::calibration::profiled_int8_stages;
use lalarand_engine::{ExecConfig, Int8Stages, Pipeline, StagedModel};
use lalarand_model::Mode;
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;

/// One sample's model output: its shape and its values.
type Output = (Vec<usize>, Vec<f32>);

/// Runs the stages of `model`, as `profile` cut them (its input shapes and granularity), with
/// stage `i` in `modes[i]` (`"cpu-fp32"`, `"cpu-int8"` or `"gpu"`; one per profile layer, as
/// an allocation's `layers[task]` gives them, `"mode@resource"` accepted), on every sample of
/// `inputs` (numpy float32 samples of batch 1: a list, or an array whose first axis indexes
/// them), and returns the model's output for each, as float32 arrays. int8 stages are rebuilt
/// from the calibration the profile saved, so they are the stages it measured. `threads`:
/// intra-op threads of every CPU session.
#[pyfunction]
#[pyo3(signature = (model, profile, inputs, modes, *, threads=1))]
pub fn run_stages<'py>(
    py: Python<'py>,
    model: PathBuf,
    profile: &Profile,
    inputs: &Bound<'py, PyAny>,
    modes: Vec<String>,
    threads: usize,
) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
    crate::logs::forward_to_python();
    let arg = |name: &str, problem: String| PyValueError::new_err(format!("run_stages({name}=...): {problem}"));
    let layers = profile.inner.layers.len();
    if modes.len() != layers {
        return Err(arg(
            "modes",
            format!(
                "{} modes for the {layers} layers of profile {:?}: give one per layer",
                modes.len(),
                profile.inner.model
            ),
        ));
    }
    let modes: Vec<Mode> = modes
        .iter()
        .map(|m| m.split('@').next().unwrap_or(m).parse::<Mode>().map_err(|e| arg("modes", e)))
        .collect::<PyResult<_>>()?;
    if threads == 0 {
        return Err(arg("threads", "must be at least 1".into()));
    }
    if !model.is_file() {
        return Err(arg("model", format!("{}: no such file", model.display())));
    }
    let samples = crate::tools::samples(inputs).map_err(|e| arg("inputs", e))?;
    let dnn = profile.inner.clone();
    let outputs = py.detach(|| -> Result<Vec<Output>, String> {
        let engine = |e: lalarand_engine::EngineError| e.to_string();
        let staged = StagedModel::load_for_profile(&model, &dnn).map_err(engine)?;
        let int8 = if modes.contains(&Mode::CpuInt8) {
            profiled_int8_stages(&staged, &dnn, &dnn.model).map_err(engine)?
        } else {
            Int8Stages::default()
        };
        let cfg = ExecConfig { threads, ..ExecConfig::default() };
        let pipeline = Pipeline::new(&staged, &modes, Some(&int8), &cfg).map_err(engine)?;
        let dims = staged.input_shape(1);
        let size: usize = dims.iter().product();
        samples
            .into_iter()
            .enumerate()
            .map(|(i, x)| {
                if x.len() != size {
                    return Err(format!(
                        "input {:?}: sample {i} has {} values; the shape {dims:?} the profile fixed takes {size}",
                        staged.input_name,
                        x.len()
                    ));
                }
                pipeline.run(&dims, x).map_err(engine)
            })
            .collect()
    });
    let outputs =
        outputs.map_err(|e| crate::errors::LalarandError::new_err(format!("run_stages({}): {e}", model.display())))?;
    outputs
        .into_iter()
        .map(|(shape, values)| {
            values.into_pyarray(py).reshape(shape).map_err(|e| arg("inputs", format!("output shape: {e}")))
        })
        .collect()
}
