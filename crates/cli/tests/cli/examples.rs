//! Every file under examples/ is analyzed, so the documentation's files never rot.

use crate::{examples_dir, lalarand, stdout_json};
use std::collections::BTreeSet;

/// (platform, task set, allocation) for every example combination; each allocation is proven
/// schedulable, as the docs promise.
const CASES: &[(&str, &str, &str)] = &[
    ("platform.toml", "taskset.toml", "allocation.toml"),
    ("platform.toml", "taskset-light.toml", "allocation-light.toml"),
    ("platform-two-cpu.toml", "taskset-light.toml", "allocation-two-cpu.toml"),
    // docs/evaluation.md, "Accuracy": what `lalarand allocate` chose under each budget.
    ("mnist/platform.toml", "mnist/taskset.toml", "mnist/allocation-budget-0.1.toml"),
    ("mnist/platform.toml", "mnist/taskset.toml", "mnist/allocation-budget-0.5.toml"),
    ("mnist/platform.toml", "mnist/taskset.toml", "mnist/allocation-budget-1.toml"),
    // docs/evaluation.md, "Runtime": the set `lalarand run` measured end to end.
    ("e2e/platform.toml", "e2e/taskset.toml", "e2e/allocation.toml"),
    // examples/multiprocess: two client processes against one `lalarand serve`.
    ("e2e/platform.toml", "multiprocess/taskset.toml", "multiprocess/allocation.toml"),
];

#[test]
fn every_example_file_is_analyzed() {
    let dir = examples_dir();
    let mut covered = BTreeSet::new();
    for &(platform, tasks, allocation) in CASES {
        let out = lalarand()
            .current_dir(&dir)
            .args(["analyze", "--json", "--platform", platform, "--tasks", tasks, "--allocation", allocation])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{allocation}: {}", String::from_utf8_lossy(&out.stderr));
        let report = stdout_json(&out);
        assert_eq!(report["schedulable"], true, "{allocation}: {report}");
        covered.extend([platform.to_string(), tasks.to_string(), allocation.to_string()]);
        // Each task set names its profiles; the analysis loaded them.
        let text = std::fs::read_to_string(dir.join(tasks)).unwrap();
        let folder = std::path::Path::new(tasks).parent().unwrap();
        for line in text.lines().filter_map(|l| l.strip_prefix("profile = ")) {
            covered.insert(folder.join(line.trim_matches('"')).to_str().unwrap().to_string());
        }
    }
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_dir() {
            // examples/python is an application, run by crates/python/tests/test_example.py.
            if name == "python" {
                continue;
            }
            for inner in std::fs::read_dir(entry.path()).unwrap() {
                let file = inner.unwrap().file_name().into_string().unwrap();
                // ONNX models are regenerated there (`lalarand zoo`), not kept in git;
                // examples/multiprocess is an application (crates/server/tests/python runs
                // it) whose system files are analyzed like the others.
                let application = name == "multiprocess" && !file.ends_with(".toml");
                if !file.ends_with(".onnx") && !application {
                    on_disk.insert(format!("{name}/{file}"));
                }
            }
        } else {
            on_disk.insert(name);
        }
    }
    let uncovered: Vec<_> = on_disk.difference(&covered).collect();
    assert!(uncovered.is_empty(), "add these examples/ files to CASES so they are analyzed: {uncovered:?}");
}
