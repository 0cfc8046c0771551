//! The model repository extension (KServe v2 / Triton): models load into and unload from a
//! running server. It binds, it does not decide: a load is the runtime's
//! [`ModeServer::load_task`] (admission control, then drain-then-switch, docs/runtime.md "Mode
//! changes"); a refusal changes nothing and its message names the task that would miss.

use crate::backend::Backend;
use crate::catalog::Catalog;
use crate::error::{Code, ProtocolError};
use lalarand_alloc::admission::{AdmissionError, LoadPriority, LoadRequest};
use lalarand_model::{ms_to_time, Allocation, DnnProfile, ExecutionPlan, System, Task, Time};
use lalarand_runtime::serve::modes::{ModeChangeError, ModeServer};
use lalarand_runtime::serve::{Input, JobHandle, ServeError, ServeStats};
use lalarand_runtime::{BusyTime, BusyWait, StageExecutor};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a load's profile comes from (request parameter `profile`: the profile's JSON text, or
/// `profile_path`: a file on the server's machine).
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileSource {
    Inline(String),
    Path(PathBuf),
}

/// What a load request's `parameters` carry.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadParameters {
    pub profile: ProfileSource,
    /// `model_path`: the ONNX model on the server's machine (a server running models needs it;
    /// a busy-wait one refuses it).
    pub model_path: Option<PathBuf>,
    /// `calibration_path`: inputs of the model on the server's machine (raw fp32 samples or a
    /// CSV dataset), which a server checking int8 end to end (`lalarand serve --calibration`)
    /// measures the admitted mode's int8 on; a busy-wait one refuses it.
    pub calibration_path: Option<PathBuf>,
    /// `period_ms` (the minimum inter-arrival time).
    pub period: Time,
    /// `deadline_ms` (default: the period).
    pub deadline: Option<Time>,
    /// `priority`: `rate-monotonic` (default), `deadline-monotonic`, or a rank (0 the highest).
    pub priority: LoadPriority,
}

fn field_str<'a>(p: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ProtocolError> {
    match p.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(ProtocolError::invalid(format!("parameters.{key}: {v} is not a string"))),
    }
}

fn field_ms(p: &Map<String, Value>, key: &str) -> Result<Option<Time>, ProtocolError> {
    match p.get(key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(ms) if ms > 0.0 && ms.is_finite() => Ok(Some(ms_to_time(ms))),
            _ => Err(ProtocolError::invalid(format!("parameters.{key}: {v} is not a positive number of ms"))),
        },
    }
}

/// A load parameter `file:PATH` (tritonclient's `load_model(..., files=...)`: a model directory
/// uploaded with the request) is refused: models are not uploaded, the server reads
/// `model_path` on its own machine (and checks it against the profile).
pub(crate) fn file_parameter(key: &str) -> Option<ProtocolError> {
    key.starts_with("file:").then(|| {
        ProtocolError::invalid(format!(
            "parameters.{key}: model files are not uploaded to this server; fix: give parameters.model_path, the model's path on the server's machine"
        ))
    })
}

impl LoadParameters {
    /// Reads a load request's `parameters` (values as JSON, as the HTTP body and the gRPC
    /// `ModelRepositoryParameter`s give them). A `config` parameter (what tritonclient's
    /// `load_model(name, config=...)` sends) is a JSON object text holding them instead.
    pub fn from_json(p: &Map<String, Value>) -> Result<Self, ProtocolError> {
        if let Some(e) = p.keys().find_map(|k| file_parameter(k)) {
            return Err(e);
        }
        if let Some(config) = field_str(p, "config")? {
            let inner: Map<String, Value> = serde_json::from_str(config).map_err(|e| {
                ProtocolError::invalid(format!("parameters.config: not a JSON object with the load's parameters: {e}"))
            })?;
            if inner.contains_key("config") {
                return Err(ProtocolError::invalid("parameters.config: holds another config"));
            }
            return Self::from_json(&inner);
        }
        let profile = match (field_str(p, "profile")?, field_str(p, "profile_path")?) {
            (Some(text), None) => ProfileSource::Inline(text.to_string()),
            (None, Some(path)) => ProfileSource::Path(path.into()),
            _ => {
                return Err(ProtocolError::invalid(
                    "parameters: give exactly one of profile (the profile's JSON text) and profile_path (a file on the server)",
                ))
            }
        };
        let period = field_ms(p, "period_ms")?
            .ok_or_else(|| ProtocolError::invalid("parameters.period_ms: missing (the task's period, ms)"))?;
        let priority = match p.get("priority") {
            None => LoadPriority::RateMonotonic,
            Some(Value::String(s)) if s == "rate-monotonic" => LoadPriority::RateMonotonic,
            Some(Value::String(s)) if s == "deadline-monotonic" => LoadPriority::DeadlineMonotonic,
            Some(v) => match v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
                Some(rank) => LoadPriority::Rank(u32::try_from(rank).unwrap_or(u32::MAX)),
                None => {
                    return Err(ProtocolError::invalid(format!(
                        "parameters.priority: {v}: use rate-monotonic, deadline-monotonic or a rank (0 the highest)"
                    )))
                }
            },
        };
        Ok(Self {
            profile,
            model_path: field_str(p, "model_path")?.map(PathBuf::from),
            calibration_path: field_str(p, "calibration_path")?.map(PathBuf::from),
            period,
            deadline: field_ms(p, "deadline_ms")?,
            priority,
        })
    }

    /// The task to load, named `name`.
    pub fn task(&self, name: &str) -> Result<Task, ProtocolError> {
        let dnn = match &self.profile {
            ProfileSource::Inline(text) => DnnProfile::parse(text, Path::new("parameters.profile")),
            ProfileSource::Path(path) => DnnProfile::load(path),
        }
        .map_err(|e| ProtocolError::invalid(format!("model {name:?}: {e}")))?;
        let mut task = Task::new(name, self.period, Arc::new(dnn));
        if let Some(d) = self.deadline {
            task.deadline = d;
        }
        Ok(task)
    }
}

/// What a change leaves: the models now served, and the change's report (JSON).
#[derive(Debug, Clone)]
pub struct Changed {
    pub catalog: Catalog,
    pub report: Value,
}

/// A server whose models can be loaded and unloaded (blocking: a change drains the old mode).
pub trait Repository: Send + Sync + 'static {
    fn load(&self, name: &str, parameters: &LoadParameters) -> Result<Changed, ProtocolError>;
    fn unload(&self, name: &str) -> Result<Changed, ProtocolError>;
}

impl<E: StageExecutor> Backend for ModeServer<E> {
    fn submit(&self, task: &str, input: Input) -> Result<JobHandle, ServeError> {
        ModeServer::submit(self, task, input)
    }

    fn stats(&self) -> ServeStats {
        self.current().stats()
    }

    fn is_stopped(&self) -> bool {
        self.current().is_stopped()
    }
}

/// A refused or failed change as the protocol says it: a name taken 409 / ALREADY_EXISTS, an
/// unknown model 404 / NOT_FOUND, a task that would miss or the accuracy budget 429 /
/// RESOURCE_EXHAUSTED, a stopped server 503 / UNAVAILABLE, anything else 400 / INVALID_ARGUMENT.
pub fn change_error(name: &str, e: ModeChangeError) -> ProtocolError {
    let code = match &e {
        ModeChangeError::Admission(AdmissionError::NameTaken { .. }) => Code::AlreadyExists,
        ModeChangeError::Admission(AdmissionError::UnknownTask { .. }) => Code::NotFound,
        ModeChangeError::Admission(AdmissionError::Rejected(_) | AdmissionError::AccuracyBudget { .. })
        | ModeChangeError::Refused { .. } => Code::ResourceExhausted,
        ModeChangeError::Stopped | ModeChangeError::Switch(_) => Code::Unavailable,
        _ => Code::InvalidArgument,
    };
    ProtocolError::new(code, format!("model {name:?}: {e}"))
}

/// The repository of a busy-wait server: a loaded task's stages spin its profile's times. (The
/// repository of a server running ONNX models binds the engine, so it lives where the engine
/// and this crate meet: the CLI's `EngineRepository`.)
pub struct BusyRepository {
    pub server: Arc<ModeServer<BusyWait>>,
}

fn busy(system: &System, alloc: &Allocation, _old: &BusyWait) -> Result<BusyWait, String> {
    let plan = ExecutionPlan::new(system, alloc).map_err(|e| e.to_string())?;
    Ok(BusyWait::from_plan(&plan, &system.platform, BusyTime::Wcet))
}

impl BusyRepository {
    fn catalog(&self) -> Catalog {
        let server = self.server.current();
        let outputs = server.task_names().iter().map(|_| Catalog::busy_outputs()).collect();
        Catalog::of_server(&server, outputs)
    }
}

impl Repository for BusyRepository {
    fn load(&self, name: &str, parameters: &LoadParameters) -> Result<Changed, ProtocolError> {
        for (field, given) in [
            ("model_path", parameters.model_path.is_some()),
            ("calibration_path", parameters.calibration_path.is_some()),
        ] {
            if given {
                return Err(ProtocolError::invalid(format!(
                    "model {name:?}: parameters.{field}: this server busy-waits its stages (no models run); leave it out"
                )));
            }
        }
        let request = LoadRequest { task: parameters.task(name)?, priority: parameters.priority };
        let change = self.server.load_task(request, busy).map_err(|e| change_error(name, e))?;
        Ok(Changed { catalog: self.catalog(), report: change_report(&change) })
    }

    fn unload(&self, name: &str) -> Result<Changed, ProtocolError> {
        let change = self.server.unload_task(name, busy).map_err(|e| change_error(name, e))?;
        Ok(Changed { catalog: self.catalog(), report: change_report(&change) })
    }
}

/// A change's report (the answer to a load or unload) without the old mode's statistics.
pub fn change_report(change: &lalarand_runtime::serve::modes::ModeChange) -> Value {
    serde_json::json!({
        "moved_layers": change.moved_layers,
        "drain_bound_ns": change.drain_bound,
        "decision_ns": change.decision_ns(),
        "requested_ns": change.requested,
        "switched_ns": change.switched,
        "resumed_ns": change.resumed,
        "to_first_release_ns": change.to_first_release_ns(),
        "bounds_ns": change.new_bounds.iter().map(|(n, b)| (n.clone(), Value::from(*b))).collect::<Map<_, _>>(),
    })
}
