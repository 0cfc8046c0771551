//! Every failure the engine reports: what went wrong, where, and (where there is one) the fix.

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

    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// The model file is not a readable ONNX model.
    #[error("{}: not an ONNX model: {reason}", path.display())]
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
    #[error("{context}: {source}")]
    Ort { context: String, source: ort::Error },

    /// Partitioning or quantizing the graph failed.
    #[error("{context}: {message}")]
    Graph { context: String, message: String },

    /// The run stopped before it finished; what was measured so far was kept.
    #[error("interrupted: {0}")]
    Interrupted(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
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
        self.map_err(|e| EngineError::Ort { context: context(), source: e.into() })
    }
}
