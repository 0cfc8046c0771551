//! Writing output files: atomically, and the example file set the demo and `init` produce.

use anyhow::{Context, Result};
use lalarand_model::{Allocation, PriorityPolicy, System, TaskSet};
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` through a temporary file in the same directory and a rename, so
/// a failure never leaves a truncated or half-written file where a good one was.
pub fn write_atomic(path: &Path, contents: &str) -> Result<()> {
    write_atomic_bytes(path, contents.as_bytes())
}

/// [`write_atomic`] for binary contents (ONNX models).
pub fn write_atomic_bytes(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| std::fs::write(tmp, contents))
}

/// [`write_atomic`] where `write` fills the temporary file, given its path (the runtime's
/// trace and Gantt chart writers).
pub fn write_atomic_with<E>(path: &Path, write: impl FnOnce(&Path) -> std::result::Result<(), E>) -> Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("{}: cannot write here (does the directory exist?)", path.display()))?;
    write(tmp.path()).with_context(|| format!("{}: write failed", path.display()))?;
    tmp.as_file().sync_all().with_context(|| format!("{}: write failed", path.display()))?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("{}: cannot replace", path.display()))?;
    tracing::debug!("wrote {}", path.display());
    Ok(())
}

/// The files that describe `system` with `alloc`, by path relative to the folder they go in:
/// `platform.toml`, `taskset.toml`, `profiles/<model>.json` and `allocation.toml`.
pub fn example_files(system: &System, alloc: &Allocation, policy: &str) -> Vec<(PathBuf, String)> {
    let set = TaskSet { tasks: system.tasks.clone(), policy: PriorityPolicy::RateMonotonic };
    let mut files = vec![
        (PathBuf::from("platform.toml"), system.platform.to_toml()),
        (PathBuf::from("taskset.toml"), set.to_toml()),
    ];
    let mut models: Vec<_> = system.tasks.iter().map(|t| t.dnn.clone()).collect();
    models.sort_by(|a, b| a.model.cmp(&b.model));
    models.dedup_by(|a, b| a.model == b.model);
    for dnn in models {
        let mut json = dnn.to_json();
        json.push('\n');
        files.push((PathBuf::from(format!("profiles/{}.json", dnn.model)), json));
    }
    files.push((PathBuf::from("allocation.toml"), alloc.to_toml(system, Some(policy))));
    files
}

/// Writes `files` under `dir`, creating folders; returns the paths written.
pub fn write_all(dir: &Path, files: &[(PathBuf, String)]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::with_capacity(files.len());
    for (rel, contents) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create folder", parent.display()))?;
        }
        write_atomic(&path, contents)?;
        written.push(path);
    }
    Ok(written)
}

/// Draws the run's Gantt chart into a temporary file next to `path`, then renames it.
pub fn write_gantt_atomic(
    result: &lalarand_sim::SimResult,
    labels: &lalarand_sim::GanttLabels,
    path: &Path,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .suffix(".svg")
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot write here (does the directory exist?)", path.display()))?;
    lalarand_sim::write_gantt(result, labels, tmp.path(), None)?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("{}: cannot replace", path.display()))?;
    Ok(())
}
