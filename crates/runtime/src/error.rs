//! Why a run cannot start. Every message names what is wrong, where, and the fix.

use lalarand_model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The allocation does not fit the task set or the platform.
    #[error("allocation does not fit the system: {0}")]
    Allocation(#[from] ModelError),
    /// A resource the runtime cannot place a worker on.
    #[error("resource[{index}] {name:?}: {problem}; fix: {fix}")]
    Resource { index: usize, name: String, problem: String, fix: String },
    /// A task the runtime cannot time.
    #[error("task[{index}] {name:?}: {problem}; fix: {fix}")]
    Task { index: usize, name: String, problem: String, fix: String },
    /// The analysis finds no bound for these tasks; refused unless `force`.
    #[error(
        "the analysis finds the allocation unschedulable (no bound for {}); fix: choose another allocation (lalarand allocate), or force the run to observe the misses",
        tasks.join(", ")
    )]
    Unschedulable { tasks: Vec<String> },
    /// Run settings out of range.
    #[error("invalid run settings: {field}: {problem}")]
    Config { field: String, problem: String },
    /// The OS refused a thread or a clock.
    #[error("cannot start the runtime: {0}")]
    Os(String),
    /// The I/O error is in the message, not a `source()`, so an error chain prints it once.
    #[error("cannot write {}: {error}", path.display())]
    Write { path: std::path::PathBuf, error: std::io::Error },
}
