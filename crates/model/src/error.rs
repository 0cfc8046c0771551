//! Errors that name the file, the field and the fix.

use std::path::PathBuf;

/// Bad input in a file: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {field}: {problem}; fix: {fix}", file.display())]
pub struct FormatError {
    pub file: PathBuf,
    /// Path of the offending field, e.g. `task[2].period_ms`.
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl FormatError {
    pub fn new(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self { file: file.into(), field: field.into(), problem: problem.into(), fix: fix.into() }
    }
}

/// Inconsistencies between in-memory objects (an allocation that does not fit its task set, ...).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Format(#[from] FormatError),
    #[error("{what}; fix: {fix}")]
    Mismatch { what: String, fix: String },
}

impl ModelError {
    pub fn mismatch(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::Mismatch { what: what.into(), fix: fix.into() }
    }
}

/// Reads a file, turning I/O failure into a [`FormatError`].
pub(crate) fn read_file(path: &std::path::Path) -> Result<String, FormatError> {
    std::fs::read_to_string(path)
        .map_err(|e| FormatError::new(path, "(file)", format!("cannot read: {e}"), "check the path and permissions"))
}

/// Maps a TOML syntax/shape error to a [`FormatError`], keeping the parser's location text.
pub(crate) fn toml_error(path: &std::path::Path, err: toml::de::Error) -> FormatError {
    let field = err.span().map(|s| format!("(bytes {}..{})", s.start, s.end)).unwrap_or_else(|| "(document)".into());
    FormatError::new(path, field, err.message().trim().to_string(), "correct the TOML; see docs/formats.md")
}

/// Maps a JSON syntax/shape error to a [`FormatError`].
pub(crate) fn json_error(path: &std::path::Path, err: serde_json::Error) -> FormatError {
    FormatError::new(
        path,
        format!("(line {}, column {})", err.line(), err.column()),
        err.to_string(),
        "correct the JSON; see docs/formats.md",
    )
}
