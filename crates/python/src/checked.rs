//! `System.allocate(calibration=...)`: each task's model and inputs for the engine's end-to-end
//! int8 check (`lalarand_engine::end_to_end`), named with the keyword arguments; and
//! `accuracy=`, the user's metric that check measures its cost with.

use lalarand_engine::end_to_end::{Compared, CostMeasure, TaskCheck};
use lalarand_engine::EngineError;
use numpy::{IntoPyArray, PyArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One check per task: those keyed in `calibration` (by task name), with their models (`models`
/// by task or profile model name, else beside the profile); `None` for the others.
pub(crate) fn task_checks(
    py: Python<'_>,
    system: &lalarand_model::System,
    tasks_file: Option<&Path>,
    calibration: &HashMap<String, PathBuf>,
    models: Option<HashMap<String, PathBuf>>,
) -> PyResult<Vec<Option<TaskCheck>>> {
    let names: Vec<&str> = system.tasks.iter().map(|t| t.name.as_str()).collect();
    if let Some(bad) = calibration.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(PyValueError::new_err(format!(
            "allocate(calibration=...): {bad:?} is no task; fix: key the inputs files by a task name ({})",
            names.join(", ")
        )));
    }
    let models = models.unwrap_or_default();
    let paths = lalarand_engine::serving::model_paths(system, tasks_file.unwrap_or(Path::new("")), &models)
        .map_err(|e| PyValueError::new_err(format!("allocate(models=...): {e}")))?;
    py.detach(|| {
        system
            .tasks
            .iter()
            .zip(&paths)
            .map(|(task, model)| {
                let Some(inputs) = calibration.get(&task.name) else { return Ok(None) };
                TaskCheck::open_file(task, model, inputs).map(Some).map_err(|e| {
                    PyValueError::new_err(format!(
                        "allocate(calibration={{{:?}: {:?}}}): {e}",
                        task.name,
                        inputs.display().to_string()
                    ))
                })
            })
            .collect()
    })
}

/// `allocate(accuracy=fn)`: the end-to-end check's cost is the task's accuracy drop, in
/// percentage points, as the user's `fn(task_name, outputs) -> percent` scores the outputs of
/// the fp32 chain and of the allocation's chain on the task's (labeled) inputs.
pub(crate) struct AccuracyDrop {
    score: Py<PyAny>,
    /// Per task index: its fp32 chain's accuracy, scored once.
    fp32: HashMap<usize, f64>,
    /// What `score` raised (or why its answer is no accuracy), raised again once the engine
    /// has stopped.
    pub(crate) raised: Option<PyErr>,
}

impl AccuracyDrop {
    pub(crate) fn new(score: Py<PyAny>) -> Self {
        Self { score, fp32: HashMap::new(), raised: None }
    }

    /// `score(name, outputs)`: one numpy array per input (a tuple of them where the model has
    /// several outputs), in the order of the inputs.
    fn score(
        &self,
        py: Python<'_>,
        c: &Compared<'_>,
        samples: &[(Vec<usize>, Vec<f32>)],
        chain: &str,
    ) -> PyResult<f64> {
        let note = |e: PyErr| {
            let note = format!("allocate(accuracy=...): raised scoring task {:?}'s {chain} chain", c.name);
            if e.value(py).hasattr("add_note").unwrap_or(false) {
                let _ = e.value(py).call_method1("add_note", (note,));
            }
            e
        };
        let mut outputs = Vec::with_capacity(samples.len() / c.outputs_per_input.max(1));
        for sample in samples.chunks(c.outputs_per_input.max(1)) {
            let arrays = sample
                .iter()
                .map(|(shape, values)| Ok(values.clone().into_pyarray(py).reshape(shape.clone())?.into_any()))
                .collect::<PyResult<Vec<_>>>()?;
            outputs.push(if arrays.len() == 1 {
                arrays.into_iter().next().expect("one")
            } else {
                PyTuple::new(py, arrays)?.into_any()
            });
        }
        let answer = self.score.bind(py).call1((c.name, outputs)).map_err(note)?;
        let percent: f64 = answer.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "allocate(accuracy=...): returned {} for task {:?}'s {chain} chain; fix: return the accuracy in percent as a float",
                answer.repr().map(|r| r.to_string()).unwrap_or_default(),
                c.name
            ))
        })?;
        if !percent.is_finite() {
            return Err(PyValueError::new_err(format!(
                "allocate(accuracy=...): returned {percent} for task {:?}'s {chain} chain; fix: return a finite accuracy in percent",
                c.name
            )));
        }
        Ok(percent)
    }
}

impl CostMeasure for AccuracyDrop {
    fn name(&self) -> &str {
        "accuracy drop"
    }

    fn cost(&mut self, c: &Compared<'_>) -> lalarand_engine::Result<f64> {
        let drop = Python::attach(|py| -> PyResult<f64> {
            let fp32 = match self.fp32.get(&c.task) {
                Some(&a) => a,
                None => {
                    let a = self.score(py, c, c.reference, "fp32")?;
                    self.fp32.insert(c.task, a);
                    a
                }
            };
            Ok(fp32 - self.score(py, c, c.got, "allocation's")?)
        });
        drop.map_err(|e| {
            self.raised = Some(e);
            EngineError::Serving {
                task: c.name.to_string(),
                problem: "allocate(accuracy=...) raised".into(),
                fix: "see the exception raised".into(),
            }
        })
    }
}
