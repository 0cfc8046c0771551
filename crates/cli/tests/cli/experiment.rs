//! `lalarand experiment schedulability --profiles`: task sets drawn from profile files.

use crate::{lalarand, stdout_json};
use predicates::prelude::predicate;
use std::path::{Path, PathBuf};

/// Two cpus, `accel` standing in for the accelerator, as in docs/results/measured-2cpu.
const STAND_IN: &str = "[[resource]]\nname = \"cpu\"\nkind = \"cpu\"\ndispatch_overhead_us = 120.0\n\n\
[[resource]]\nname = \"accel\"\nkind = \"cpu\"\naccelerator = true\ndispatch_overhead_us = 120.0\n";

/// A cpu-only profile (cpu-fp32 and cpu-int8, as `lalarand profile` writes without a GPU).
fn profile(model: &str, layers: &[(f64, f64)]) -> String {
    let layers: Vec<String> = layers
        .iter()
        .enumerate()
        .map(|(i, (fp32, int8))| {
            format!(
                r#"{{"name":"l{i}","modes":{{"cpu-fp32":{{"wcet_us":{fp32}}},"cpu-int8":{{"wcet_us":{int8}}}}},"int8_accuracy_cost":0.01}}"#
            )
        })
        .collect();
    format!(r#"{{"format":"lalarand-profile/1","model":"{model}","layers":[{}]}}"#, layers.join(","))
}

/// A scratch folder with `profiles/{a,b}.json` and `platform.toml`.
fn scratch() -> (tempfile::TempDir, Vec<PathBuf>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    let a = profiles.join("a.json");
    let b = profiles.join("b.json");
    std::fs::write(&a, profile("net-a", &[(2000.0, 800.0), (3000.0, 1000.0), (1000.0, 500.0)])).unwrap();
    std::fs::write(&b, profile("net-b", &[(5000.0, 2000.0), (4000.0, 1500.0)])).unwrap();
    let platform = dir.path().join("platform.toml");
    std::fs::write(&platform, STAND_IN).unwrap();
    (dir, vec![a, b], platform)
}

fn sweep(out: &Path) -> assert_cmd::Command {
    let mut cmd = lalarand();
    cmd.args(["experiment", "schedulability", "--tasks", "2", "--sets", "3", "--utilizations", "0.5,1.2", "--out"])
        .arg(out);
    cmd
}

#[test]
fn measured_profiles_on_a_stand_in_platform_run_every_policy() {
    let (dir, files, platform) = scratch();
    let out = dir.path().join("out");
    let run =
        sweep(&out).arg("--json").arg("--platform").arg(&platform).arg("--profiles").args(&files).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let json = stdout_json(&run);
    let settings = &json["settings"];
    let name = settings["library"]["name"].as_str().unwrap();
    assert!(name.contains("profiles") && name.contains("(2 profiles)"), "{name}");
    assert_eq!(settings["library"]["models"], serde_json::json!(["net-a", "net-b"]));
    let stated = serde_json::json!([
        "cpu (cpu, unpinned, 1 threads, dispatch 120 us, wake-up 0 us)",
        "accel (cpu, accelerator, unpinned, 1 threads, dispatch 120 us, wake-up 0 us)"
    ]);
    assert_eq!(settings["platform"], stated, "every policy's platform, stated");
    assert!(settings["utilization_axis"].as_str().unwrap().contains("all-accel cpu-fp32"), "{settings}");
    // Nine default policies, two points; gpu-only and dart run on `accel` instead of failing.
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 18);
    assert!(rows.iter().all(|r| r["errors"] == 0), "{rows:?}");
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(
        summary.starts_with(&format!(
            "Profiles: {name}\nPlatform, the same for every policy: cpu (cpu, unpinned, 1 threads, dispatch 120 us, \
             wake-up 0 us); accel (cpu, accelerator, unpinned"
        )),
        "{summary}"
    );
    let svg = std::fs::read_to_string(out.join("schedulability.svg")).unwrap();
    assert!(svg.contains("all-accel cpu-fp32 cost"), "the x axis names the stand-in");

    // A folder stands for its *.json files: the same sets, the same counts.
    let again = sweep(&out)
        .arg("--json")
        .arg("--platform")
        .arg(&platform)
        .arg("--profiles")
        .arg(files[0].parent().unwrap())
        .output()
        .unwrap();
    let counts = |json: &serde_json::Value| -> Vec<(String, u64)> {
        let rows = json["rows"].as_array().unwrap();
        rows.iter().map(|r| (r["policy"].as_str().unwrap().to_string(), r["schedulable"].as_u64().unwrap())).collect()
    };
    assert_eq!(counts(&stdout_json(&again)), counts(&json));
}

#[test]
fn profiles_without_the_accelerators_mode_name_the_file_and_the_platform_flag() {
    let (dir, files, _) = scratch();
    // No --platform: the default one gpu + one cpu, and these profiles have no gpu mode.
    sweep(&dir.path().join("out"))
        .arg("--profiles")
        .args(&files)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(files[0].display().to_string()))
        .stderr(predicate::str::contains("--platform"))
        .stderr(predicate::str::contains("no gpu mode"))
        .stderr(predicate::str::contains("accelerator = true"));
}

#[test]
fn bad_profile_files_are_named() {
    let (dir, files, platform) = scratch();
    let out = dir.path().join("out");
    let missing = dir.path().join("nope.json");
    sweep(&out)
        .arg("--platform")
        .arg(&platform)
        .arg("--profiles")
        .arg(&files[0])
        .arg(&missing)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(missing.display().to_string()))
        .stderr(predicate::str::contains("cannot read"));

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"format\": \"lalarand-profile/1\", \"model\": ").unwrap();
    sweep(&out)
        .arg("--platform")
        .arg(&platform)
        .arg("--profiles")
        .arg(&broken)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(broken.display().to_string()))
        .stderr(predicate::str::contains("line 1"));

    // The same model twice would be drawn twice as often.
    let twin = dir.path().join("twin.json");
    std::fs::copy(&files[0], &twin).unwrap();
    sweep(&out)
        .arg("--platform")
        .arg(&platform)
        .arg("--profiles")
        .arg(&files[0])
        .arg(&twin)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(twin.display().to_string()))
        .stderr(predicate::str::contains("\"net-a\""));

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    sweep(&out)
        .arg("--platform")
        .arg(&platform)
        .arg("--profiles")
        .arg(&empty)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(empty.display().to_string()))
        .stderr(predicate::str::contains("no *.json"));

    // No file at all after the flag.
    sweep(&out).arg("--profiles").assert().code(2).stderr(predicate::str::contains("--profiles"));
    assert!(!out.exists(), "nothing is written when the input is bad");
}

#[test]
fn a_platform_without_an_accelerator_is_refused() {
    let (dir, files, platform) = scratch();
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, std::fs::read_to_string(&platform).unwrap().replace("accelerator = true\n", "")).unwrap();
    sweep(&dir.path().join("out"))
        .arg("--platform")
        .arg(&plain)
        .arg("--profiles")
        .args(&files)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("platform"))
        .stderr(predicate::str::contains("accelerator = true"));
}
