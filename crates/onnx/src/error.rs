//! Errors of ONNX graph work. Each names the file, tensor or node at fault and how to fix it.
//!
//! As `lalarand_model::FormatError`, the `Display` of an error is the whole message (an I/O
//! error's text included) and `source()` is `None`, so anyhow's chain (`{:#}`) prints the cause
//! once. `Display` and `Error` are written out: thiserror would take the fields named `source`
//! for the error's source and the cause would be printed twice.

use std::path::PathBuf;

#[derive(Debug)]
pub enum OnnxError {
    Read { path: PathBuf, source: std::io::Error },
    Write { path: PathBuf, source: std::io::Error },
    NotAModel { path: PathBuf, reason: String },
    Tensor { tensor: String, reason: String },
    Graph { graph: String, reason: String },
    Quantize { reason: String },
}

impl std::fmt::Display for OnnxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OnnxError::Read { path, source } => {
                write!(f, "cannot read ONNX file {}: {source}; fix: check the path and its permissions", path.display())
            }
            OnnxError::Write { path, source } => write!(
                f,
                "cannot write ONNX file {}: {source}; fix: check that the folder exists and is writable",
                path.display()
            ),
            OnnxError::NotAModel { path, reason } => {
                write!(f, "{} is not an ONNX model: {reason}; fix: {NOT_ONNX_FIX}", path.display())
            }
            OnnxError::Tensor { tensor, reason } => write!(f, "tensor `{tensor}`: {reason}"),
            OnnxError::Graph { graph, reason } => write!(f, "graph `{graph}`: {reason}"),
            OnnxError::Quantize { reason } => write!(f, "quantization: {reason}"),
        }
    }
}

/// What to do about a file that is not an ONNX model (the engine's error says it too).
pub const NOT_ONNX_FIX: &str =
    "pass a complete .onnx file written by an ONNX exporter (export or copy it again if it was cut short)";

/// No `source()`: the message above already holds the cause.
impl std::error::Error for OnnxError {}

/// Shorthands for the variants that carry a name and a reason.
impl OnnxError {
    pub fn tensor(tensor: &str, reason: impl Into<String>) -> Self {
        OnnxError::Tensor { tensor: tensor.to_string(), reason: reason.into() }
    }
    pub fn graph(graph: &str, reason: impl Into<String>) -> Self {
        OnnxError::Graph { graph: graph.to_string(), reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    /// The OS error's text appears once in the message and there is no source to repeat it.
    #[test]
    fn io_errors_name_their_cause_once() {
        let e = OnnxError::Write {
            path: "/no/such/dir/m.onnx".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)"),
        };
        let text = e.to_string();
        assert_eq!(text.matches("No such file or directory").count(), 1, "{text}");
        assert!(text.contains("/no/such/dir/m.onnx") && text.contains("fix:"), "{text}");
        assert!(e.source().is_none());
    }
}
