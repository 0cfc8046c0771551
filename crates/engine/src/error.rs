//! Every failure the engine reports: what went wrong, where, and (where there is one) the fix.
//!
//! As `lalarand_model::FormatError`, the `Display` of an error is the whole message, the cause's
//! text included, and `source()` is `None`: the CLI prints anyhow's chain (`{:#}`), and a cause
//! that were both interpolated and a source would be printed twice. So the wrapped `io::Error`
//! and `ort::Error` are in fields named `error`, which thiserror does not take for a source.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The ONNX Runtime shared library could not be found or fetched.
    #[error("ONNX Runtime library unavailable: {what}; fix: {fix}")]
    RuntimeUnavailable { what: String, fix: String },

    /// The library exists but the dynamic loader or ort refused it.
    #[error("cannot load ONNX Runtime from {}: {reason}; fix: set ORT_DYLIB_PATH to a libonnxruntime.so of version >= 1.31", path.display())]
    RuntimeLoad { path: PathBuf, reason: String },

    /// GPU mode asked for where it cannot run.
    #[error("gpu mode unavailable: {reason}; fix: {fix}")]
    NoGpu { reason: String, fix: String },

    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },

    /// The model file is not a readable ONNX model.
    #[error("{}: not an ONNX model: {reason}; fix: {}", path.display(), lalarand_onnx::error::NOT_ONNX_FIX)]
    NotOnnx { path: PathBuf, reason: String },

    /// The model or one of its stages uses something this engine or ONNX Runtime cannot run.
    #[error("stage {stage:?} (mode {mode}): {problem}")]
    Unsupported { stage: String, mode: String, problem: String },

    /// A tensor handed to a stage or model has the wrong shape or is missing.
    #[error("{context}: tensor {tensor:?}: {problem}")]
    Tensor { context: String, tensor: String, problem: String },

    /// A dataset file with a bad row or column.
    #[error("{}: row {row}, column {column}: {problem}", file.display())]
    Dataset { file: PathBuf, row: usize, column: usize, problem: String },

    /// An ONNX Runtime call failed.
    #[error("{context}: {error}")]
    Ort { context: String, error: ort::Error },

    /// Partitioning or quantizing the graph failed.
    #[error("{context}: {message}")]
    Graph { context: String, message: String },

    /// The run stopped before it finished; what was measured so far was kept.
    #[error("interrupted: {0}")]
    Interrupted(String),

    /// A task cannot be served or run with its model (changed since profiling, other stages,
    /// int8 stages that are not the profiled ones, ...).
    #[error("task {task:?}: {problem}; fix: {fix}")]
    Serving { task: String, problem: String, fix: String },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Self::Io { path: path.into(), error }
    }

    pub(crate) fn unavailable(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::RuntimeUnavailable { what: what.into(), fix: fix.into() }
    }

    pub(crate) fn tensor(context: impl Into<String>, tensor: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Tensor { context: context.into(), tensor: tensor.into(), problem: problem.into() }
    }

    pub(crate) fn graph(context: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Graph { context: context.into(), message: message.to_string() }
    }
}

/// Attaches a context string to ort results.
pub(crate) trait OrtContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, R> OrtContext<T> for std::result::Result<T, ort::Error<R>>
where
    ort::Error: From<ort::Error<R>>,
{
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| EngineError::Ort { context: context(), error: e.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the CLI prints: anyhow's chain with context, `{:#}`.
    fn rendered(e: EngineError) -> String {
        format!("{:#}", anyhow::Error::from(e).context("profiling m.onnx"))
    }

    #[test]
    fn the_cause_is_printed_once() {
        let os = std::fs::read("/nonexistent/lalarand/m.onnx").unwrap_err();
        let os_text = os.to_string();
        let text = rendered(EngineError::io("/nonexistent/lalarand/m.onnx", os));
        assert_eq!(text.matches(&os_text).count(), 1, "{text}");
        assert!(text.contains("/nonexistent/lalarand/m.onnx"), "{text}");
        // `Ort` is built the same way (its `ort::Error` needs the runtime library to exist).
    }
}
