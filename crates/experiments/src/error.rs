//! Errors of the experiments: each names the field or file at fault and how to fix it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A sweep or generator setting that cannot be run.
    #[error("{field}: {problem}; fix: {fix}")]
    Config { field: String, problem: String, fix: String },
    /// The I/O error is in the message, not a `source()`, so an error chain prints it once.
    #[error("cannot write {}: {error}; fix: pick a writable --out directory (it is created if missing)", path.display())]
    Write { path: PathBuf, error: std::io::Error },
    #[error("cannot draw {}: {message}; fix: pick a writable --out directory", path.display())]
    Plot { path: PathBuf, message: String },
}

impl ExperimentError {
    pub(crate) fn config(field: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::Config { field: field.into(), problem: problem.into(), fix: fix.into() }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Self::Write { path: path.into(), error }
    }
}
