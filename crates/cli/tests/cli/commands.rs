//! Each command's happy path, output and exit code.

use crate::{examples_dir, lalarand, stdout_json};
use predicates::prelude::*;

#[test]
fn version_and_help_with_examples() {
    lalarand().arg("--version").assert().success().stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
    for cmd in [
        "analyze",
        "allocate",
        "simulate",
        "experiment",
        "demo",
        "init",
        "completions",
        "zoo",
        "profile",
        "accuracy",
        "verify",
    ] {
        lalarand().args([cmd, "--help"]).assert().success().stdout(predicate::str::contains("Example:"));
    }
    // "Example:" or "Examples:".
    for sub in ["schedulability", "soundness", "mode-changes"] {
        lalarand()
            .args(["experiment", sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::is_match("Examples?:").unwrap());
    }
}

#[test]
fn analyze_prints_a_table_and_exits_0_when_schedulable() {
    lalarand()
        .current_dir(examples_dir())
        .args(["analyze", "--tasks", "taskset-light.toml", "--allocation", "allocation-light.toml"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("| classifier |"))
        .stdout(predicate::str::contains("SCHEDULABLE: 4/4 tasks"));
}

#[test]
fn analyze_json_has_consistent_bounds() {
    let out = lalarand()
        .current_dir(examples_dir())
        .args(["analyze", "--json", "--platform", "platform-two-cpu.toml", "--tasks", "taskset-light.toml"])
        .args(["--allocation", "allocation-two-cpu.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report = stdout_json(&out);
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 4);
    for t in tasks {
        let bound = t["bound_ns"].as_u64().unwrap();
        let deadline = t["deadline_ns"].as_u64().unwrap();
        assert!(bound <= deadline, "{t}");
        assert_eq!(t["slack_ns"].as_u64().unwrap(), deadline - bound);
        let levels: Vec<u64> = ["job_level_ns", "segment_level_ns"].iter().filter_map(|k| t[k].as_u64()).collect();
        assert_eq!(levels.iter().min().copied(), Some(bound), "bound is the smaller of the two: {t}");
    }
    assert_eq!(report["resources"].as_array().unwrap().len(), 3);
}

#[test]
fn allocate_writes_an_allocation_that_analyze_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.toml");
    let tasks = examples_dir().join("taskset-light.toml");
    let run = lalarand()
        .args(["allocate", "--json", "--policy", "lalarand", "--budget", "0.5", "--node-limit", "5000", "--tasks"])
        .arg(&tasks)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let json = stdout_json(&run);
    assert_eq!(json["policy"], "lalarand");
    assert_eq!(json["options"]["accuracy_budget"], 0.5);
    assert_eq!(json["options"]["node_limit"], 5000);
    assert!(json["report"]["accuracy_cost_pp"].as_f64().unwrap() <= 0.5);
    let code = run.status.code().unwrap();
    assert_eq!(code == 0, json["report"]["schedulable"].as_bool().unwrap());
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("policy = \"lalarand\""));
    lalarand().args(["analyze", "--tasks"]).arg(&tasks).arg("--allocation").arg(&out).assert().code(code);
}

#[test]
fn allocate_exits_1_for_an_unschedulable_result_but_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gpu.toml");
    // taskset-light.toml documents that the GPU alone cannot meet every deadline.
    lalarand()
        .args(["allocate", "--policy", "gpu-only", "--tasks"])
        .arg(examples_dir().join("taskset-light.toml"))
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1)
        // README.md quotes this count.
        .stdout(predicate::str::contains("NOT SCHEDULABLE: 3/4 tasks"));
    assert!(out.exists());
}

#[test]
fn allocate_on_bad_input_leaves_the_old_output_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.toml");
    std::fs::write(&out, "keep me").unwrap();
    lalarand()
        .args(["allocate", "--policy", "lalarand", "--tasks"])
        .arg(dir.path().join("missing.toml"))
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
    // Only the output file is there: no temporary left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn allocate_rejects_bad_policy_and_budget() {
    let tasks = examples_dir().join("taskset-light.toml");
    for (flag, value, message) in [
        ("--policy", "fastest", "possible values"),
        ("--budget", "-1", "not a finite accuracy budget"),
        ("--budget", "NaN", "not a finite accuracy budget"),
    ] {
        let mut cmd = lalarand();
        cmd.args(["allocate", "--out", "/nonexistent/never-written.toml", "--tasks"]).arg(&tasks);
        if flag != "--policy" {
            cmd.args(["--policy", "gpu-only"]);
        }
        cmd.args([flag, value]).assert().code(2).stderr(predicate::str::contains(message));
    }
}

#[test]
fn demo_compares_policies_and_writes_loadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = lalarand().args(["demo", "--quick", "--json", "--out"]).arg(dir.path()).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let json = stdout_json(&run);
    let policies: Vec<&str> =
        json["policies"].as_array().unwrap().iter().map(|p| p["policy"].as_str().unwrap()).collect();
    assert_eq!(
        policies,
        [
            "gpu-only",
            "cpu-only",
            "preferable",
            "task-level",
            "dart-util",
            "dart",
            "lalarand-fp32",
            "lalarand-own",
            "lalarand",
            "optimal"
        ]
    );
    assert_eq!(json["lalarand"]["tasks"].as_array().unwrap().len(), 4);
    for f in ["platform.toml", "taskset.toml", "allocation.toml", "profiles/resnet18.json", "gantt.svg"] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let expected = if json["lalarand"]["schedulable"].as_bool().unwrap() { 0 } else { 1 };
    lalarand()
        .current_dir(dir.path())
        .args(["analyze", "--platform", "platform.toml", "--tasks", "taskset.toml", "--allocation", "allocation.toml"])
        .assert()
        .code(expected);
}

#[test]
fn demo_flags_belong_to_their_flavour() {
    // --json is the quick demo's, --seconds the full one's.
    lalarand().args(["demo", "--json"]).assert().code(2).stderr(predicate::str::contains("--quick"));
    lalarand()
        .args(["demo", "--quick", "--seconds", "5"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--seconds"));
    lalarand().args(["demo", "--seconds", "0"]).assert().code(2).stderr(predicate::str::contains("1 to 3600 seconds"));
    lalarand()
        .args(["demo", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--quick"))
        .stdout(predicate::str::contains("--full").not());
}

#[test]
fn init_writes_the_example_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mine");
    lalarand().args(["init", "--out"]).arg(&out).assert().success().stdout(predicate::str::contains("taskset.toml"));
    // allocation.toml is left out: it follows the allocator, which may change.
    let profiles = ["extraction", "lenet", "resnet18", "yolov3-tiny"].map(|m| format!("profiles/{m}.json"));
    for f in ["platform.toml", "taskset.toml"].into_iter().chain(profiles.iter().map(String::as_str)) {
        assert_eq!(
            std::fs::read_to_string(out.join(f)).unwrap(),
            std::fs::read_to_string(examples_dir().join(f)).unwrap().replace("\r\n", "\n"),
            "{f} differs from examples/{f}: regenerate with `cargo run -p lalarand-cli -- init --out examples --force`"
        );
    }
    lalarand()
        .args(["init", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists").and(predicate::str::contains("--force")));
    lalarand().args(["init", "--force", "--json", "--out"]).arg(&out).assert().success();
}

/// `init --cpu-only` writes a platform without a gpu whose written allocation is proven.
#[test]
fn init_for_a_machine_without_a_gpu_writes_a_proven_cpu_only_system() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cpu");
    lalarand().args(["init", "--cpu-only", "--out"]).arg(&out).assert().success();
    let platform = std::fs::read_to_string(out.join("platform.toml")).unwrap();
    assert!(!platform.contains("\"gpu\"") && platform.contains("accelerator = true"), "{platform}");
    lalarand()
        .args(["analyze", "--platform"])
        .arg(out.join("platform.toml"))
        .arg("--tasks")
        .arg(out.join("taskset.toml"))
        .arg("--allocation")
        .arg(out.join("allocation.toml"))
        .assert()
        .success();
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        lalarand()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("lalarand").and(predicate::str::contains("allocate")));
    }
    lalarand().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn simulate_stays_within_the_bounds_of_a_schedulable_example() {
    let dir = tempfile::tempdir().unwrap();
    let gantt = dir.path().join("run.svg");
    for exec in ["wcet", "uniform:0.5", "two-point:0.3:0.5"] {
        let run = lalarand()
            .current_dir(examples_dir())
            .args(["simulate", "--json", "--tasks", "taskset-light.toml", "--allocation", "allocation-light.toml"])
            .args(["--horizon-ms", "500", "--seed", "7", "--exec", exec, "--gantt"])
            .arg(&gantt)
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(0), "{exec}: {}", String::from_utf8_lossy(&run.stderr));
        let json = stdout_json(&run);
        assert_eq!(json["misses"], 0);
        assert_eq!(json["end_ns"], 500_000_000u64);
        for t in json["tasks"].as_array().unwrap() {
            assert!(t["jobs"].as_u64().unwrap() >= 41, "500 ms / 12 ms period: {t}");
            assert!(t["max_response_ns"].as_u64().unwrap() <= t["bound_ns"].as_u64().unwrap(), "{exec}: {t}");
        }
        let svg = std::fs::read_to_string(&gantt).unwrap();
        // Release markers are triangles: present only if the run kept its jobs for the chart.
        assert!(svg.contains("<svg") && svg.contains("<polygon"), "{exec}: chart without job markers");
    }
}

#[test]
fn simulate_exit_code_follows_misses() {
    let run = lalarand()
        .current_dir(examples_dir())
        .args(["simulate", "--json", "--tasks", "taskset.toml", "--allocation", "allocation.toml"])
        .output()
        .unwrap();
    let json = stdout_json(&run);
    let bad = json["misses"].as_u64().unwrap() > 0
        || json["tasks"].as_array().unwrap().iter().any(|t| t["exceeds_bound"].as_bool().unwrap());
    assert_eq!(run.status.code(), Some(if bad { 1 } else { 0 }));
}

#[test]
fn simulate_rejects_bad_settings() {
    for (flag, value) in [("--exec", "uniform:1.5"), ("--exec", "fast"), ("--horizon-ms", "0"), ("--horizon-ms", "nan")]
    {
        lalarand()
            .current_dir(examples_dir())
            .args(["simulate", "--tasks", "taskset-light.toml", "--allocation", "allocation-light.toml", flag, value])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag));
    }
}

#[test]
fn experiment_schedulability_writes_its_reports() {
    let dir = tempfile::tempdir().unwrap();
    let run = lalarand()
        .args(["experiment", "schedulability", "--json", "--sets", "2", "--utilizations", "0.5,1.0"])
        .args(["--policies", "gpu-only,lalarand", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let json = stdout_json(&run);
    assert_eq!(json["rows"].as_array().unwrap().len(), 4);
    for f in ["schedulability.csv", "schedulability.svg", "schedulability.json", "summary.txt"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    lalarand()
        .args(["experiment", "schedulability", "--utilizations", "0.5:0.1:0.1", "--out"])
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("utilizations"));
}

#[test]
fn experiment_soundness_exit_code_follows_violations() {
    let run = lalarand().args(["experiment", "soundness", "--json", "--sets", "50", "--seed", "3"]).output().unwrap();
    let json = stdout_json(&run);
    assert_eq!(json["sets"], 50);
    let violations = json["violation_count"].as_u64().unwrap();
    assert_eq!(run.status.code(), Some(if violations == 0 { 0 } else { 1 }));
}

#[test]
fn experiment_mode_changes_reports_its_changes_as_json() {
    let run =
        lalarand().args(["experiment", "mode-changes", "--json", "--sets", "40", "--seed", "3"]).output().unwrap();
    let json = stdout_json(&run);
    assert_eq!(json["sets"], 40);
    assert!(json["changes"].as_u64().unwrap() > 0);
    assert_eq!(json["violation_count"], 0);
    assert_eq!(run.status.code(), Some(0));
}

#[test]
fn verbose_logs_go_to_stderr_and_keep_json_clean() {
    let run = lalarand()
        .current_dir(examples_dir())
        .args(["-v", "analyze", "--json", "--tasks", "taskset-light.toml", "--allocation", "allocation-light.toml"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&run.stderr).contains("loaded taskset-light.toml"));
    assert_eq!(stdout_json(&run)["schedulable"], true);
    // Without -v, warnings only: nothing on stderr.
    lalarand()
        .current_dir(examples_dir())
        .args(["analyze", "--tasks", "taskset-light.toml", "--allocation", "allocation-light.toml"])
        .assert()
        .stderr(predicate::str::is_empty());
}
