//! The model repository of a server that runs ONNX models (`lalarand serve --listen ...
//! --allow-load`): a load brings its model (`parameters.model_path`) and its profile, and the
//! new mode's executor is the engine's ([`EngineExecutor::for_mode`]: the running tasks keep
//! their pipelines where their modes did not change). It binds the engine to the network front
//! end, so it lives here, where both are linked: `lalarand-server` never depends on the engine.
//!
//! A load is checked before anything changes, in this order: its parameters, the model file
//! against its profile ([`open_model`]: sha256, stages), then the runtime's admission control
//! (name, accuracy budget, schedulability), the admitted mode's int8 end to end where the
//! server checks it ([`CheckedModes`], `lalarand serve --calibration`), and the executor of the
//! new mode. Every refusal names the request field and the fix, and changes nothing.

use lalarand_alloc::admission::LoadRequest;
use lalarand_engine::checked_modes::{CheckWords, CheckedModes};
use lalarand_engine::end_to_end::TaskCheck;
use lalarand_engine::mode_change::{self, Rebuilt};
use lalarand_engine::serving::{open_model, EngineExecutor, ModelProblem};
use lalarand_runtime::serve::modes::ModeServer;
use lalarand_server::{change_error, change_report, Catalog, Changed, LoadParameters, ProtocolError, Repository};
use serde_json::Value;
use std::sync::Arc;

/// How this server's refusals name the loaded task's inputs and the budget.
pub const CHECK_WORDS: CheckWords = CheckWords { inputs: "parameters.calibration_path", budget: "--budget" };

/// Loads and unloads ONNX models on a running [`ModeServer`].
pub struct EngineRepository {
    pub server: Arc<ModeServer<EngineExecutor>>,
    /// `None`: loads are not checked end to end (the server was started without
    /// `--calibration`).
    pub int8_check: Option<CheckedModes>,
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
            (Some(checked), None) => match checked.missing_inputs(&task) {
                Some(why) => {
                    return Err(ProtocolError::invalid(format!("model {name:?}: parameters.calibration_path: {why}")))
                }
                None => None,
            },
            (None, Some(_)) => {
                return Err(ProtocolError::invalid(format!(
                    "model {name:?}: parameters.calibration_path: this server does not check int8 end to end (it was started without --calibration); fix: leave calibration_path out, or start the server with --calibration"
                )))
            }
            (None, None) => None,
        };
        let request = LoadRequest { task, priority: parameters.priority };
        let (change, rebuilt) = match &self.int8_check {
            None => mode_change::load(&self.server, request, staged),
            Some(checked) => checked.load(&self.server, request, staged, new_check),
        }
        .map_err(|e| change_error(name, e))?;
        Ok(self.changed(change_report(&change), rebuilt))
    }

    fn unload(&self, name: &str) -> Result<Changed, ProtocolError> {
        let (change, rebuilt) = match &self.int8_check {
            None => mode_change::unload(&self.server, name),
            Some(checked) => checked.unload(&self.server, name),
        }
        .map_err(|e| change_error(name, e))?;
        Ok(self.changed(change_report(&change), rebuilt))
    }
}
