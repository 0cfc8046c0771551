//! `System.allocate(calibration=...)`: each task's model and inputs for the engine's end-to-end
//! int8 check (`lalarand_engine::end_to_end`), named with the keyword arguments.

use lalarand_engine::end_to_end::TaskCheck;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
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
