//! The documentation stays true: the README's command-line tour runs as written, and the
//! sample output in docs/formats.md is what the command it names prints.

use crate::{copy_dir, examples_dir, lalarand, stdout_json};

/// The `lalarand ...` commands of README.md's "The command line" block, continuation lines
/// joined; redirections (`>`) are left out since they write outside the scratch folder.
fn readme_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(examples_dir().join("../README.md")).unwrap();
    let section = readme.split("## The command line").nth(1).expect("README has the section");
    let block = section.split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("lalarand ") && !l.contains('>'))
        .map(|l| l.split_whitespace().skip(1).map(String::from).collect())
        .collect()
}

#[test]
fn readme_tour_runs() {
    let commands = readme_commands();
    assert!(commands.len() >= 6, "README tour not found: {commands:?}");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&examples_dir(), &dir.path().join("examples"));
    for mut args in commands {
        // Experiments at the README's sizes take seconds in a debug build; the flags are what
        // is checked here.
        if args[0] == "experiment" {
            if let Some(i) = args.iter().position(|a| a == "--sets") {
                args[i + 1] = "3".into();
            }
        }
        let out = lalarand().current_dir(dir.path()).args(&args).output().unwrap();
        let code = out.status.code();
        // `experiment soundness` exits 1 when it finds a violation: that is the analysis', not
        // the README's, problem (its own tests cover it).
        let allowed: &[i32] = if args[..2] == ["experiment", "soundness"] { &[0, 1] } else { &[0] };
        assert!(
            code.is_some_and(|c| allowed.contains(&c)),
            "`lalarand {}` exited {code:?}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn formats_md_analyze_sample_matches_the_real_output() {
    let doc = std::fs::read_to_string(examples_dir().join("../docs/formats.md")).unwrap();
    let section = doc.split("### `lalarand analyze --json`").nth(1).unwrap();
    let sample: serde_json::Value =
        serde_json::from_str(section.split("```json\n").nth(1).unwrap().split("```").next().unwrap()).unwrap();
    let out = lalarand()
        .current_dir(examples_dir())
        .args(["analyze", "--json", "--tasks", "taskset-light.toml", "--allocation", "allocation-light.toml"])
        .output()
        .unwrap();
    let real = stdout_json(&out);
    // The sample is abridged: every value it shows must be the real one.
    for key in ["schedulable", "accuracy_cost_pp", "int8_layers"] {
        assert_eq!(sample[key], real[key], "{key}");
    }
    assert_eq!(sample["resources"][0], real["resources"][0]);
    for task in sample["tasks"].as_array().unwrap() {
        let found = real["tasks"].as_array().unwrap().iter().find(|t| t["name"] == task["name"]).unwrap();
        assert_eq!(task, found, "docs/formats.md's sample for {} is stale", task["name"]);
    }
}

/// README.md's "From an ONNX model to a proof" block runs as written (fewer timed runs), in a
/// scratch folder holding copies of examples/ and the engine's test data.
#[test]
fn readme_onnx_tour_runs() {
    let readme = std::fs::read_to_string(examples_dir().join("../README.md")).unwrap();
    let section = readme.split("### From an ONNX model to a proof").nth(1).expect("README has the section");
    let block = section.split("```sh\n").nth(1).unwrap().split("```").next().unwrap();
    let commands: Vec<Vec<String>> = block
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("lalarand "))
        .map(|l| l.split_whitespace().skip(1).map(String::from).collect())
        .collect();
    let names: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(names, ["zoo", "profile", "profile", "allocate", "analyze", "accuracy"], "README tour changed");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&examples_dir(), &dir.path().join("examples"));
    copy_dir(&examples_dir().join("../crates/engine/testdata"), &dir.path().join("crates/engine/testdata"));
    for mut args in commands {
        // The timing is not what is checked here.
        for (flag, value) in [("--runs", "2"), ("--warmup", "0")] {
            if let Some(i) = args.iter().position(|a| a == flag) {
                args[i + 1] = value.into();
            }
        }
        let out = lalarand().current_dir(dir.path()).args(&args).output().unwrap();
        let code = out.status.code();
        // Profiles measured during a test on a busy machine may not prove the deadlines: exit
        // 1 is the analysis' verdict, not a broken command.
        let allowed: &[i32] = if ["allocate", "analyze"].contains(&args[0].as_str()) { &[0, 1] } else { &[0] };
        assert!(
            code.is_some_and(|c| allowed.contains(&c)),
            "`lalarand {}` exited {code:?}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        if args[0] == "zoo" {
            assert!(String::from_utf8_lossy(&out.stdout).contains("1,235,496 parameters"), "as the README says");
        }
    }
}
