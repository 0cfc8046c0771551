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
