//! The Python exceptions, and the library's errors mapped onto them with their message intact.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;

create_exception!(
    lalarand,
    LalarandError,
    PyException,
    "Base class of every error lalarand raises; the message is the library's (what, where, fix)."
);
create_exception!(
    lalarand,
    FormatError,
    LalarandError,
    "A file or a value built in code is malformed or does not fit the system (names file, field and fix)."
);
create_exception!(lalarand, AllocationError, LalarandError, "An allocation policy cannot run on this system.");
create_exception!(lalarand, SimulationError, LalarandError, "The simulator refused its settings or the plan.");

/// Maps the model's errors (files, allocations that do not fit) to [`FormatError`].
pub fn format_error(err: impl std::fmt::Display) -> PyErr {
    FormatError::new_err(err.to_string())
}

create_exception!(
    lalarand,
    ServerError,
    LalarandError,
    "The server refused to start, or a call does not fit how a task is served."
);
create_exception!(
    lalarand,
    InputError,
    ServerError,
    "A bad input: unknown task, wrong shape or dtype (the message names the task and what it expects)."
);
create_exception!(lalarand, StoppedError, ServerError, "The server is stopped, or stopping cancelled the job.");
create_exception!(
    lalarand,
    RejectedError,
    ServerError,
    "A submission rejected: too early for its task, or its backlog full."
);
create_exception!(
    lalarand,
    JobError,
    ServerError,
    "A job failed: a stage, its input source (with the Python traceback), or aborted past its deadline."
);
create_exception!(lalarand, AlreadyTakenError, ServerError, "A handle's result was already taken by an earlier wait.");
create_exception!(
    lalarand,
    AdmissionError,
    ServerError,
    "A load or unload refused by admission control (a name taken, an unknown task, a task that would miss and by how much, the accuracy budget); nothing changed."
);

/// Maps the server's errors onto the exception classes, the library's message intact.
pub fn serve_error(err: lalarand_runtime::serve::ServeError) -> PyErr {
    use lalarand_runtime::serve::ServeError as E;
    let message = err.to_string();
    match err {
        E::Start(_) | E::Config { .. } | E::WrongKind { .. } | E::Os(_) => ServerError::new_err(message),
        E::UnknownTask { .. } | E::Input { .. } => InputError::new_err(message),
        E::Stopped { .. } | E::Cancelled { .. } => StoppedError::new_err(message),
        E::TooEarly { .. } | E::Backlog { .. } => RejectedError::new_err(message),
        E::Failed { .. } | E::Source { .. } | E::Aborted { .. } => JobError::new_err(message),
        E::AlreadyTaken { .. } => AlreadyTakenError::new_err(message),
        E::Timeout { .. } => pyo3::exceptions::PyTimeoutError::new_err(message),
        #[allow(unreachable_patterns)]
        _ => ServerError::new_err(message),
    }
}

/// The library's message for a value built in code (not read from a file): `call` (e.g.
/// `Resource("x", "tpu")`) instead of a file name, the field as the keyword argument it came
/// from, and a fix in Python terms where the library's fix is about editing the file.
pub fn code_message(call: &str, err: &lalarand_model::FormatError) -> String {
    // "resource[0].kind" -> "kind"; a TOML parser's byte span names nothing a caller wrote.
    let field = err.field.split_once("].").map_or(err.field.as_str(), |(_, f)| f);
    let at = if field.starts_with('(') { String::new() } else { format!("{field}: ") };
    let name = call.split('(').next().unwrap_or(call);
    let fix = if err.fix.starts_with("correct the TOML") || err.fix.starts_with("correct the JSON") {
        format!("pass valid arguments; help(lalarand.{name}) lists them")
    } else {
        err.fix.clone()
    };
    format!("{call}: {at}{}; fix: {fix}", err.problem)
}

/// A constructor's argument the library refused: `ValueError`, as Python constructors raise.
pub fn argument_error(call: &str, err: &lalarand_model::FormatError) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(code_message(call, err))
}

/// A value built in code that does not fit the rest of the system: [`FormatError`], with the
/// message said for code (see [`code_message`]).
pub fn code_format_error(call: &str, err: &lalarand_model::FormatError) -> PyErr {
    FormatError::new_err(code_message(call, err))
}
