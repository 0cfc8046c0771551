//! Bad input exits 2 with the library's message naming the file and the field; never a panic.

use crate::{edit, lalarand, scratch_examples};
use predicates::prelude::*;
use std::path::Path;

/// Runs `analyze` on the (edited) light example in `dir` and checks exit 2 and that stderr
/// names `file` and `field`.
fn rejects(dir: &Path, file: &str, field: &str) {
    lalarand()
        .current_dir(dir)
        .args(["analyze", "--tasks", "taskset-light.toml", "--allocation", "allocation-light.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(file))
        .stderr(predicate::str::contains(field))
        .stderr(predicate::str::contains("fix:"))
        .stderr(predicate::str::contains("panicked").not());
}

fn task_set_rejects(from: &str, to: &str, field: &str) {
    let dir = scratch_examples();
    edit(&dir.path().join("taskset-light.toml"), from, to);
    rejects(dir.path(), "taskset-light.toml", field);
}

#[test]
fn zero_negative_and_nan_periods() {
    for bad in ["0.0", "-5.0", "nan", "inf"] {
        task_set_rejects("period_ms = 5.0", &format!("period_ms = {bad}"), "task[0].period_ms");
    }
}

#[test]
fn deadline_beyond_period() {
    task_set_rejects("period_ms = 5.0", "period_ms = 5.0\ndeadline_ms = 6.0", "task[0].deadline_ms");
}

#[test]
fn duplicate_task_names() {
    task_set_rejects("name = \"classifier\"", "name = \"detector\"", "task[1].name");
}

#[test]
fn unknown_field_and_malformed_toml() {
    task_set_rejects("period_ms = 5.0", "period_ms = 5.0\nperiod = 3", "period");
    task_set_rejects("[[task]]", "[[task]", "(bytes");
}

#[test]
fn missing_profile_and_malformed_profile() {
    task_set_rejects("profiles/lenet.json", "profiles/nope.json", "task[3].profile");
    let dir = scratch_examples();
    edit(&dir.path().join("profiles/lenet.json"), "\"layers\": [", "\"layers\": [,");
    rejects(dir.path(), "lenet.json", "(line");
    let dir = scratch_examples();
    edit(&dir.path().join("profiles/lenet.json"), "\"wcet_us\": 807.0", "\"wcet_us\": -807.0");
    rejects(dir.path(), "lenet.json", "layers[0].modes.cpu-fp32.wcet_us");
}

#[test]
fn allocation_layer_count_mismatch() {
    let dir = scratch_examples();
    let path = dir.path().join("allocation-light.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Drop the first layer of the first task.
    let first = text.find("    \"").unwrap();
    let end = first + text[first..].find('\n').unwrap() + 1;
    std::fs::write(&path, format!("{}{}", &text[..first], &text[end..])).unwrap();
    rejects(dir.path(), "allocation-light.toml", "task[0].layers");
}

#[test]
fn allocation_unknown_resource_and_task() {
    let dir = scratch_examples();
    edit(&dir.path().join("allocation-light.toml"), "@gpu\"", "@npu\"");
    rejects(dir.path(), "allocation-light.toml", "unknown resource \"npu\"");
    let dir = scratch_examples();
    edit(&dir.path().join("allocation-light.toml"), "name = \"detector\"", "name = \"ghost\"");
    rejects(dir.path(), "allocation-light.toml", "no task \"ghost\"");
}

#[test]
fn platform_problems() {
    let dir = scratch_examples();
    let platform = dir.path().join("platform-two-cpu.toml");
    edit(&platform, "name = \"little\"", "name = \"big\"");
    lalarand()
        .current_dir(dir.path())
        .args(["analyze", "--platform", "platform-two-cpu.toml", "--tasks", "taskset-light.toml"])
        .args(["--allocation", "allocation-two-cpu.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("platform-two-cpu.toml").and(predicate::str::contains("resource[2].name")));
    // The light allocation names `cpu`, which the two-cpu platform lacks.
    let dir = scratch_examples();
    lalarand()
        .current_dir(dir.path())
        .args(["analyze", "--platform", "platform-two-cpu.toml", "--tasks", "taskset-light.toml"])
        .args(["--allocation", "allocation-light.toml"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("allocation-light.toml").and(predicate::str::contains("unknown resource \"cpu\"")),
        );
}

#[test]
fn missing_files_are_named() {
    let dir = scratch_examples();
    for args in [
        ["--platform", "nope.toml", "--tasks", "taskset-light.toml", "--allocation", "allocation-light.toml"],
        ["--platform", "platform.toml", "--tasks", "nope.toml", "--allocation", "allocation-light.toml"],
        ["--platform", "platform.toml", "--tasks", "taskset-light.toml", "--allocation", "nope.toml"],
    ] {
        lalarand()
            .current_dir(dir.path())
            .arg("analyze")
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("nope.toml").and(predicate::str::contains("cannot read")));
    }
}

#[test]
fn allocate_and_analyze_json_report_errors_on_stderr_only() {
    let dir = scratch_examples();
    edit(&dir.path().join("taskset-light.toml"), "period_ms = 5.0", "period_ms = 0.0");
    lalarand()
        .current_dir(dir.path())
        .args(["allocate", "--json", "--policy", "lalarand", "--tasks", "taskset-light.toml", "--out", "a.toml"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("taskset-light.toml: task[0].period_ms"));
    assert!(!dir.path().join("a.toml").exists());
}
