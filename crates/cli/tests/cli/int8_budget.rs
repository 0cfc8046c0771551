//! `lalarand allocate` and int8 costs: an unknown cost is not offered int8 unless assumed, and
//! with `--calibration` the allocation's measured end-to-end cost stands next to the budget.

use crate::{lalarand, stdout_json};
use lalarand_model::{DnnProfile, Mode};
use std::path::{Path, PathBuf};

/// Two layers, int8 the only mode fast enough for a 5 ms period, int8 cost unknown (`null`).
const UNKNOWN_COSTS: &str = r#"{"format":"lalarand-profile/1","model":"m","layers":[
  {"name":"a","modes":{"gpu":{"wcet_us":9000},"cpu-fp32":{"wcet_us":9000},"cpu-int8":{"wcet_us":1000}},"int8_accuracy_cost":null},
  {"name":"b","modes":{"gpu":{"wcet_us":9000},"cpu-fp32":{"wcet_us":9000},"cpu-int8":{"wcet_us":1000}},"int8_accuracy_cost":null}]}"#;

fn allocate(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = lalarand()
        .current_dir(dir)
        .args(["allocate", "--tasks", "tasks.toml", "--policy", "lalarand", "--out", "a.toml", "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
    stdout_json(&out)
}

#[test]
fn layers_of_unknown_int8_cost_get_int8_only_at_an_assumed_cost() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.json"), UNKNOWN_COSTS).unwrap();
    std::fs::write(dir.path().join("tasks.toml"), "[[task]]\nname = \"t\"\nprofile = \"m.json\"\nperiod_ms = 5.0\n")
        .unwrap();
    let refused = allocate(dir.path(), &[]);
    assert_eq!(refused["report"]["int8_layers"], 0, "{refused}");
    assert_eq!(refused["report"]["schedulable"], false);
    let assumed = allocate(dir.path(), &["--assume-int8-cost", "0.25"]);
    assert_eq!(assumed["report"]["int8_layers"], 2, "{assumed}");
    assert_eq!(assumed["report"]["accuracy_cost_pp"], 0.5, "budgeted at the assumed cost");
    assert_eq!(assumed["options"]["assume_int8_cost"], 0.25);
    let text = lalarand()
        .current_dir(dir.path())
        .args(["allocate", "--tasks", "tasks.toml", "--policy", "lalarand", "--out", "a.toml"])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("2 layers have no measured int8 accuracy cost") && text.contains("--assume-int8-cost"),
        "{text}"
    );
    lalarand()
        .current_dir(dir.path())
        .args([
            "allocate",
            "--tasks",
            "tasks.toml",
            "--policy",
            "lalarand",
            "--out",
            "a.toml",
            "--assume-int8-cost",
            "-1",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--assume-int8-cost"));
}

fn testdata(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/testdata").join(f)
}

/// The MNIST classifier profiled with `--calibration` (label-free costs), its fp32 modes taken
/// out of the profile so that the allocation runs every stage int8; `allocate --calibration`
/// then reports the chain's measured cost next to the budget.
#[test]
fn allocate_with_calibration_inputs_reports_the_measured_end_to_end_cost() {
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<u8> = lalarand_engine::profile::seeded_inputs(16, 28 * 28, 7)
        .into_iter()
        .flatten()
        .flat_map(f32::to_le_bytes)
        .collect();
    std::fs::write(dir.path().join("in.f32"), inputs).unwrap();
    std::fs::copy(testdata("mnist_resnet.onnx"), dir.path().join("mnist_resnet.onnx")).unwrap();
    let run = lalarand()
        .current_dir(dir.path())
        .args(["profile", "mnist_resnet.onnx", "--runs", "1", "--warmup", "0", "--modes", "cpu-fp32,cpu-int8"])
        .args(["--calibration", "in.f32", "--out", "full.json"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let mut p = DnnProfile::load(&dir.path().join("full.json")).unwrap();
    let int8_stages = p.layers.iter().filter(|l| l.mode(Mode::CpuInt8).is_some()).count();
    assert!(int8_stages > 0);
    for l in &mut p.layers {
        if l.mode(Mode::CpuInt8).is_some() {
            l.modes[Mode::CpuFp32.index()] = None;
        }
    }
    std::fs::write(dir.path().join("mnist_resnet.json"), p.to_json()).unwrap();
    std::fs::write(
        dir.path().join("tasks.toml"),
        "[[task]]\nname = \"digits\"\nprofile = \"mnist_resnet.json\"\nperiod_ms = 1000.0\n",
    )
    .unwrap();
    let j = allocate(dir.path(), &["--budget", "100", "--calibration", "digits=in.f32"]);
    let e2e = &j["end_to_end"];
    assert_eq!(e2e["budget_pp"], 100.0, "{j}");
    assert_eq!(e2e["within_budget"], true);
    assert_eq!(e2e["tasks"][0]["int8_layers"], int8_stages as u64);
    assert_eq!(e2e["tasks"][0]["inputs"], 16);
    assert_eq!(e2e["tasks"][0]["kind"], "top1-disagreement");
    assert!(e2e["measured_pp"].as_f64().unwrap() >= 0.0);

    // `serve --calibration`: the same allocation, measured as distortion (never exactly 0 in
    // int8), against a budget of 0: refused before serving, naming the fix.
    p.int8_cost_kind = lalarand_model::Int8CostKind::Distortion;
    std::fs::write(dir.path().join("mnist_resnet.json"), p.to_json()).unwrap();
    std::fs::write(
        dir.path().join("platform.toml"),
        "[[resource]]\nname = \"gpu\"\nkind = \"gpu\"\n\n[[resource]]\nname = \"cpu\"\nkind = \"cpu\"\ncores = [0]\n",
    )
    .unwrap();
    let serve = |budget: &str| {
        lalarand()
            .current_dir(dir.path())
            .args(["serve", "--platform", "platform.toml", "--tasks", "tasks.toml", "--allocation", "a.toml"])
            .args(["--calibration", "digits=in.f32", "--budget", budget, "--seconds", "0.5", "--no-realtime", "--json"])
            .output()
            .unwrap()
    };
    let refused = serve("0");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("measured end to end, over the budget of 0 pp") && err.contains("lalarand allocate"), "{err}");
    let served = serve("100");
    let err = String::from_utf8_lossy(&served.stderr);
    assert!(matches!(served.status.code(), Some(0 | 1)), "{err}");
    assert!(err.contains("end to end: measured") && err.contains("(within;"), "{err}");
    // `allocate` over the same budget: its int8 layers have no fp32 mode to move back to, so
    // the check reports it over the budget (exit 1) instead of repairing.
    let over = allocate(dir.path(), &["--budget", "0", "--calibration", "digits=in.f32"]);
    assert_eq!(over["end_to_end"]["within_budget"], false, "{over}");
    assert_eq!(over["end_to_end"]["repairs"], serde_json::json!([]), "{over}");

    let bad = lalarand()
        .current_dir(dir.path())
        .args(["allocate", "--tasks", "tasks.toml", "--policy", "lalarand", "--out", "a.toml"])
        .args(["--calibration", "nosuch=in.f32"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--calibration nosuch") && err.contains("fix:"), "{err}");
}
