//! Runs the `lalarand` binary: every command, its exit codes, and bad input.

mod bad_input;
mod commands;
mod docs;
mod engine;
mod examples;
mod experiment;
mod int8_budget;
mod run;
mod serve;
mod serve_load;
mod verify;

use assert_cmd::Command;
use std::path::{Path, PathBuf};

pub fn lalarand() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lalarand"));
    // Logs would mix into the stderr the tests match on.
    cmd.env_remove("RUST_LOG");
    cmd
}

/// The repository's examples/ folder.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A scratch copy of examples/, for tests that edit a file.
pub fn scratch_examples() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&examples_dir(), dir.path());
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Replaces the first `from` with `to` in `path`, failing if `from` is absent.
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

pub fn stdout_json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}
