//! The model repository of a server that runs ONNX models (`lalarand serve --listen ...
//! --allow-load`): a load brings its model (`parameters.model_path`) and its profile, and the
//! new mode's executor is the engine's ([`EngineExecutor::for_mode`]: the running tasks keep
//! their pipelines where their modes did not change). It binds the engine to the network front
//! end, so it lives here, where both are linked: `lalarand-server` never depends on the engine.
//!
//! A load is checked before anything changes, in this order: its parameters, the model file
//! against its profile ([`open_model`]: sha256, stages), then the runtime's admission control
//! (name, accuracy budget, schedulability), the admitted mode's int8 end to end where the
//! server checks it ([`Int8Check`], `lalarand serve --calibration`), and the executor of the
//! new mode. Every refusal names the request field and the fix, and changes nothing.

use lalarand_alloc::admission::LoadRequest;
use lalarand_engine::end_to_end::{check_allocation, TaskCheck};
use lalarand_engine::mode_change::{self, Rebuilt};
use lalarand_engine::serving::{open_model, EngineExecutor, ModelProblem};
use lalarand_engine::ExecConfig;
use lalarand_model::{Allocation, System};
use lalarand_runtime::serve::modes::ModeServer;
use lalarand_server::{change_error, change_report, Catalog, Changed, LoadParameters, ProtocolError, Repository};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

/// Loads and unloads ONNX models on a running [`ModeServer`].
pub struct EngineRepository {
    pub server: Arc<ModeServer<EngineExecutor>>,
    /// `None`: loads are not checked end to end (the server was started without
    /// `--calibration`).
    pub int8_check: Option<Int8Check>,
}

/// What a server that checks int8 end to end measures every admitted mode with: each running
/// task's model and inputs (by task name), against the budget.
pub struct Int8Check {
    pub budget: f64,
    pub tasks: Mutex<HashMap<String, TaskCheck>>,
}

impl Int8Check {
    /// The admitted mode's measured int8 cost against the budget, with `new` the loaded task's
    /// check (from `parameters.calibration_path`): `Err` in words when over it or not
    /// measurable.
    fn admit(&self, system: &System, alloc: &Allocation, new: Option<&TaskCheck>, name: &str) -> Result<(), String> {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let checks: Vec<Option<&TaskCheck>> =
            system.tasks.iter().map(|t| if t.name == name { new } else { tasks.get(&t.name) }).collect();
        let check = check_allocation(system, alloc, self.budget, &checks, &ExecConfig::default()).map_err(|e| {
            format!("{e} (this server checks int8 end to end: give parameters.calibration_path, inputs of the model on the server's machine)")
        })?;
        if check.within_budget {
            return Ok(());
        }
        Err(format!(
            "the admitted mode's int8 layers cost {:.3} pp measured end to end (the per-stage sum estimated {:.3}), over the budget of {} pp; fix: give the task fp32 modes its budget can afford, or start the server with a larger --budget",
            check.measured_pp, check.estimated_pp, check.budget_pp
        ))
    }
}

impl EngineRepository {
    /// The models served now, with the outputs each returns.
    pub fn catalog(server: &ModeServer<EngineExecutor>) -> Catalog {
        let current = server.current();
        let outputs = (0..current.task_names().len()).map(|i| current.executor().output_specs(i)).collect();
        Catalog::of_server(&current, outputs)
    }

    fn changed(&self, report: Value, rebuilt: Rebuilt) -> Changed {
        let mut report = report;
        if let Value::Object(map) = &mut report {
            map.insert("pipelines".into(), rebuilt.to_json());
        }
        Changed { catalog: Self::catalog(&self.server), report }
    }
}

/// A model that cannot serve the task with its profile, said with the request's fields.
fn model_refused(name: &str, problem: ModelProblem) -> ProtocolError {
    let message = match &problem {
        ModelProblem::Missing { .. } => format!(
            "parameters.model_path: {problem} on the server's machine; fix: give the path of the ONNX model there"
        ),
        ModelProblem::Digest { .. } | ModelProblem::Stages { .. } => format!(
            "parameters.profile does not match parameters.model_path: {problem}; fix: send the profile `lalarand profile` measured on this model, or the model this profile measured"
        ),
        ModelProblem::Unreadable(e) => format!("parameters.model_path: {e}"),
    };
    ProtocolError::invalid(format!("model {name:?}: {message}"))
}

impl Repository for EngineRepository {
    fn load(&self, name: &str, parameters: &LoadParameters) -> Result<Changed, ProtocolError> {
        let path = parameters.model_path.as_ref().ok_or_else(|| {
            ProtocolError::invalid(format!(
                "model {name:?}: parameters.model_path: missing; fix: give the ONNX model's path on the server's machine"
            ))
        })?;
        let mut task = parameters.task(name)?;
        task.dnn = std::sync::Arc::new(mode_change::servable(&task.dnn));
        // The model is read and checked before the change takes its turn: a bad file delays no
        // other change.
        let staged = open_model(&task, path).map_err(|p| model_refused(name, p))?;
        let new_check = match (&self.int8_check, &parameters.calibration_path) {
            (Some(_), Some(inputs)) => Some(
                TaskCheck::open_file(&task, path, inputs)
                    .map_err(|e| ProtocolError::invalid(format!("model {name:?}: parameters.calibration_path: {e}")))?,
            ),
            _ => None,
        };
        let request = LoadRequest { task, priority: parameters.priority };
        let (change, rebuilt) = match &self.int8_check {
            None => mode_change::load(&self.server, request, staged),
            Some(int8) => mode_change::load_checked(&self.server, request, staged, |system, alloc| {
                int8.admit(system, alloc, new_check.as_ref(), name)
            }),
        }
        .map_err(|e| change_error(name, e))?;
        if let (Some(int8), Some(check)) = (&self.int8_check, new_check) {
            int8.tasks.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), check);
        }
        Ok(self.changed(change_report(&change), rebuilt))
    }

    fn unload(&self, name: &str) -> Result<Changed, ProtocolError> {
        let (change, rebuilt) = mode_change::unload(&self.server, name).map_err(|e| change_error(name, e))?;
        if let Some(int8) = &self.int8_check {
            int8.tasks.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        }
        Ok(self.changed(change_report(&change), rebuilt))
    }
}
