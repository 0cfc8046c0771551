//! Writing a sweep's results: `schedulability.{csv,svg,json}` and `summary.txt`.

use crate::error::ExperimentError;
use crate::result::{Row, SweepResult};
use crate::summary::Summary;
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    result: &'a SweepResult,
    rows: Vec<Row>,
    summary: Summary,
}

impl SweepResult {
    pub fn write_csv(&self, path: &Path) -> Result<(), ExperimentError> {
        write_text(path, &self.to_csv())
    }

    /// Settings, points, rows and summary as pretty JSON.
    pub fn to_json(&self) -> String {
        let report = JsonReport { result: self, rows: self.rows(), summary: self.summary() };
        serde_json::to_string_pretty(&report).expect("results hold only plain data")
    }

    pub fn write_json(&self, path: &Path) -> Result<(), ExperimentError> {
        write_text(path, &self.to_json())
    }

    /// Writes `schedulability.{csv,svg,json}` and `summary.txt` into `dir` (created if
    /// missing); returns the paths written.
    pub fn write_all(&self, dir: &Path) -> Result<Vec<std::path::PathBuf>, ExperimentError> {
        let paths: Vec<_> = ["schedulability.csv", "schedulability.svg", "schedulability.json", "summary.txt"]
            .iter()
            .map(|f| dir.join(f))
            .collect();
        self.write_csv(&paths[0])?;
        self.write_svg(&paths[1])?;
        self.write_json(&paths[2])?;
        write_text(&paths[3], &self.summary().to_string())?;
        Ok(paths)
    }
}

/// Writes `text` to `path`, creating its directory.
pub(crate) fn write_text(path: &Path, text: &str) -> Result<(), ExperimentError> {
    create_parent(path)?;
    std::fs::write(path, text).map_err(|e| ExperimentError::write(path, e))
}

pub(crate) fn create_parent(path: &Path) -> Result<(), ExperimentError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|e| ExperimentError::write(dir, e))
        }
        _ => Ok(()),
    }
}
