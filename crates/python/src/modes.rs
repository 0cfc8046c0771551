//! `Server.load` and `Server.unload`: tasks join and leave a running server (the runtime's
//! `ModeServer`; the new mode's executor is the engine's, `lalarand_engine::mode_change`). The
//! arguments are read here and every refusal is said with the argument it is about; the
//! decision and the change are the library's.

use crate::errors::{AdmissionError, FormatError, ServerError, StoppedError};
use crate::serving::AnyServer;
use crate::system::Profile;
use lalarand_alloc::admission::{AdmissionError as Refused, LoadPriority, LoadRequest};
use lalarand_engine::checked_modes::CheckedModes;
use lalarand_engine::end_to_end::TaskCheck;
use lalarand_engine::mode_change::{self, Rebuilt};
use lalarand_engine::serving::{open_model, ModelProblem};
use lalarand_model::{ms_to_time, DnnProfile, ExecutionPlan, Task};
use lalarand_runtime::serve::modes::{ModeChange, ModeChangeError};
use lalarand_runtime::{BusyTime, BusyWait};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// `Server.load`'s arguments.
pub(crate) struct LoadArgs<'a, 'py> {
    pub name: &'a str,
    pub profile: &'a Bound<'py, PyAny>,
    pub period_ms: f64,
    pub model: Option<PathBuf>,
    pub deadline_ms: Option<f64>,
    pub priority: Option<&'a Bound<'py, PyAny>>,
    /// The loaded task's inputs, for a server that checks int8 end to end.
    pub calibration: Option<PathBuf>,
}

fn positive_ms(arg: &str, v: f64) -> PyResult<u64> {
    if v.is_finite() && v > 0.0 {
        Ok(ms_to_time(v))
    } else {
        Err(PyValueError::new_err(format!("Server.load({arg}={v}): not a positive number of milliseconds")))
    }
}

fn priority(p: Option<&Bound<'_, PyAny>>) -> PyResult<LoadPriority> {
    let Some(p) = p else { return Ok(LoadPriority::RateMonotonic) };
    if let Ok(rank) = p.extract::<u32>() {
        return Ok(LoadPriority::Rank(rank));
    }
    match p.extract::<String>().as_deref() {
        Ok("rate-monotonic") => Ok(LoadPriority::RateMonotonic),
        Ok("deadline-monotonic") => Ok(LoadPriority::DeadlineMonotonic),
        _ => Err(PyValueError::new_err(format!(
            "Server.load(priority={}): use \"rate-monotonic\", \"deadline-monotonic\" or a rank (0 the highest)",
            p.repr()?
        ))),
    }
}

/// The profile (a `Profile`, or its JSON file) and the file it came from.
fn profile(p: &Bound<'_, PyAny>) -> PyResult<(Arc<DnnProfile>, Option<PathBuf>)> {
    if let Ok(profile) = p.cast::<Profile>() {
        let profile = profile.get();
        return Ok((profile.inner.clone(), profile.path.clone()));
    }
    let path: PathBuf = p.extract().map_err(|_| {
        PyValueError::new_err("Server.load(profile=...): give a lalarand.Profile or the path of a profile JSON file")
    })?;
    let dnn = DnnProfile::load(&path).map_err(|e| FormatError::new_err(format!("Server.load(profile=...): {e}")))?;
    Ok((Arc::new(dnn), std::path::absolute(&path).ok()))
}

/// A model that cannot serve the task with its profile, said with the arguments.
fn model_refused(problem: ModelProblem) -> PyErr {
    let message = match &problem {
        ModelProblem::Missing { .. } => {
            format!("Server.load(model=...): {problem}; fix: give the path of the task's ONNX model")
        }
        ModelProblem::Digest { .. } | ModelProblem::Stages { .. } => format!(
            "Server.load(profile=...) does not match Server.load(model=...): {problem}; fix: pass the profile lalarand.profile measured on this model, or the model this profile measured"
        ),
        ModelProblem::Unreadable(e) => format!("Server.load(model=...): {e}"),
    };
    PyValueError::new_err(message)
}

/// A refused or failed change as a Python exception naming the call.
fn change_refused(call: &str, e: ModeChangeError) -> PyErr {
    match e {
        ModeChangeError::Admission(Refused::InvalidRequest { field, problem, fix }) => {
            let arg = match field {
                "period" => "period_ms",
                "deadline" => "deadline_ms",
                other => other,
            };
            PyValueError::new_err(format!("{call}({arg}=...): {problem}; fix: {fix}"))
        }
        e @ (ModeChangeError::Admission(_) | ModeChangeError::Refused { .. }) => {
            AdmissionError::new_err(format!("{call}: {e}"))
        }
        e @ (ModeChangeError::Stopped | ModeChangeError::Switch(_)) => StoppedError::new_err(format!("{call}: {e}")),
        e => ServerError::new_err(format!("{call}: {e}")),
    }
}

/// The change's report: what moved, and when (ns on the server's clock; durations `*_ns`).
fn report(change: &ModeChange, rebuilt: Option<Rebuilt>) -> Value {
    let bounds: Map<String, Value> = change.new_bounds.iter().map(|(n, b)| (n.clone(), Value::from(*b))).collect();
    let mut r = json!({
        "kind": change.kind,
        "task": change.task,
        "moved_layers": change.moved_layers,
        "moves": change.moves,
        "drain_bound_ns": change.drain_bound,
        "requested_ns": change.requested,
        "decided_ns": change.decided,
        "switched_ns": change.switched,
        "resumed_ns": change.resumed,
        "decision_ns": change.decision_ns(),
        "drain_ns": change.switched.saturating_sub(change.decided),
        "to_first_release_ns": change.to_first_release_ns(),
        "bounds_ns": bounds,
    });
    if let (Some(rebuilt), Value::Object(map)) = (rebuilt, &mut r) {
        map.insert("pipelines".into(), rebuilt.to_json());
    }
    r
}

fn busy(system: &lalarand_model::System, alloc: &lalarand_model::Allocation, _: &BusyWait) -> Result<BusyWait, String> {
    let plan = ExecutionPlan::new(system, alloc).map_err(|e| e.to_string())?;
    Ok(BusyWait::from_plan(&plan, &system.platform, BusyTime::Wcet))
}

fn fixed(call: &str) -> PyErr {
    ServerError::new_err(format!(
        "{call}: this server's task set cannot change: it serves periodic tasks, or an allocation the analysis does not prove (force=True); fix: serve every task sporadic (no periodic=...) on a proven allocation"
    ))
}

/// Without `serve(calibration=...)` there is no check for `Server.load(calibration=...)` to
/// join: refused rather than ignored.
fn unchecked_calibration() -> PyErr {
    PyValueError::new_err(
        "Server.load(calibration=...): this server does not check int8 end to end; fix: start it with serve(..., calibration={task: inputs}) to check every mode, or leave calibration out",
    )
}

pub(crate) fn load(
    py: Python<'_>,
    server: &AnyServer,
    checked: Option<&CheckedModes>,
    args: LoadArgs<'_, '_>,
) -> PyResult<Value> {
    let call = "Server.load";
    let (dnn, profile_path) = profile(args.profile)?;
    let period = positive_ms("period_ms", args.period_ms)?;
    let busy_server = matches!(server, AnyServer::BusyModes(_));
    let dnn = if busy_server { dnn } else { Arc::new(mode_change::servable(&dnn)) };
    let mut task = Task::new(args.name, period, dnn);
    if let Some(d) = args.deadline_ms {
        task.deadline = positive_ms("deadline_ms", d)?;
    }
    let request = LoadRequest { task, priority: priority(args.priority)? };
    match server {
        AnyServer::EngineModes(modes) => {
            let model = match (args.model, &profile_path) {
                (Some(m), _) => m,
                (None, Some(p)) => p.parent().unwrap_or(p).join(format!("{}.onnx", request.task.dnn.model)),
                (None, None) => {
                    return Err(PyValueError::new_err(
                        "Server.load(model=...): missing, and the profile was not read from a file to look for the model beside it; fix: pass model=\"path/to/model.onnx\"",
                    ))
                }
            };
            let task = &request.task;
            let staged = py.detach(|| open_model(task, &model)).map_err(model_refused)?;
            let check = match (checked, &args.calibration) {
                (Some(_), Some(inputs)) => {
                    Some(py.detach(|| TaskCheck::open_file(task, &model, inputs)).map_err(|e| {
                        PyValueError::new_err(format!(
                            "Server.load(calibration={:?}): {e}",
                            inputs.display().to_string()
                        ))
                    })?)
                }
                (None, Some(_)) => return Err(unchecked_calibration()),
                (Some(checked), None) => match checked.missing_inputs(task) {
                    Some(why) => return Err(PyValueError::new_err(format!("Server.load(calibration=...): {why}"))),
                    None => None,
                },
                (None, None) => None,
            };
            let (change, rebuilt) = py
                .detach(|| match checked {
                    Some(checked) => checked.load(modes, request, staged, check),
                    None => mode_change::load(modes, request, staged),
                })
                .map_err(|e| change_refused(call, e))?;
            Ok(report(&change, Some(rebuilt)))
        }
        AnyServer::BusyModes(modes) => {
            if args.calibration.is_some() {
                return Err(unchecked_calibration());
            }
            if args.model.is_some() {
                return Err(PyValueError::new_err(
                    "Server.load(model=...): this server busy-waits its stages (busy=True) and runs no model; fix: leave model out",
                ));
            }
            let change = py.detach(|| modes.load_task(request, busy)).map_err(|e| change_refused(call, e))?;
            Ok(report(&change, None))
        }
        AnyServer::Engine(_) | AnyServer::Busy(_) => Err(fixed(call)),
    }
}

pub(crate) fn unload(
    py: Python<'_>,
    server: &AnyServer,
    checked: Option<&CheckedModes>,
    name: &str,
) -> PyResult<Value> {
    let call = "Server.unload";
    match server {
        AnyServer::EngineModes(modes) => {
            let (change, rebuilt) = py
                .detach(|| match checked {
                    Some(checked) => checked.unload(modes, name),
                    None => mode_change::unload(modes, name),
                })
                .map_err(|e| change_refused(call, e))?;
            Ok(report(&change, Some(rebuilt)))
        }
        AnyServer::BusyModes(modes) => {
            let change = py.detach(|| modes.unload_task(name, busy)).map_err(|e| change_refused(call, e))?;
            Ok(report(&change, None))
        }
        AnyServer::Engine(_) | AnyServer::Busy(_) => Err(fixed(call)),
    }
}
