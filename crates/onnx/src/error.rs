//! Errors of ONNX graph work. Each names the file, tensor or node at fault and how to fix it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("cannot read ONNX file {path}: {source}; fix: check the path and its permissions")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write ONNX file {path}: {source}; fix: check that the folder exists and is writable")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is not an ONNX model: {reason}; fix: pass a .onnx file written by an ONNX exporter")]
    NotAModel { path: PathBuf, reason: String },
    #[error("tensor `{tensor}`: {reason}")]
    Tensor { tensor: String, reason: String },
    #[error("graph `{graph}`: {reason}")]
    Graph { graph: String, reason: String },
    #[error("quantization: {reason}")]
    Quantize { reason: String },
}

/// Shorthands for the variants that carry a name and a reason.
impl OnnxError {
    pub fn tensor(tensor: &str, reason: impl Into<String>) -> Self {
        OnnxError::Tensor { tensor: tensor.to_string(), reason: reason.into() }
    }
    pub fn graph(graph: &str, reason: impl Into<String>) -> Self {
        OnnxError::Graph { graph: graph.to_string(), reason: reason.into() }
    }
}
