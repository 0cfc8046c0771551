//! Every file under examples/ is analyzed, so the documentation's files never rot.

use crate::{examples_dir, lalarand, stdout_json};
use std::collections::BTreeSet;

/// (platform, task set, allocation, schedulable?) for every example combination; `None` for
/// the platform means the default one. `None` for the verdict: exit 0 or 1 are both fine
/// (the demo's own set is as hard as the demo makes it, and the allocators still evolve).
const CASES: &[(&str, &str, &str, Option<bool>)] = &[
    ("platform.toml", "taskset.toml", "allocation.toml", None),
    ("platform.toml", "taskset-light.toml", "allocation-light.toml", Some(true)),
    ("platform-two-cpu.toml", "taskset-light.toml", "allocation-two-cpu.toml", Some(true)),
];

#[test]
fn every_example_file_is_analyzed() {
    let dir = examples_dir();
    let mut covered = BTreeSet::new();
    for &(platform, tasks, allocation, schedulable) in CASES {
        let out = lalarand()
            .current_dir(&dir)
            .args(["analyze", "--json", "--platform", platform, "--tasks", tasks, "--allocation", allocation])
            .output()
            .unwrap();
        let code = out.status.code().unwrap();
        assert!(code == 0 || code == 1, "{allocation}: exit {code}: {}", String::from_utf8_lossy(&out.stderr));
        let report = stdout_json(&out);
        assert_eq!(report["schedulable"].as_bool().unwrap(), code == 0);
        if let Some(expected) = schedulable {
            assert_eq!(code == 0, expected, "{allocation}: {report}");
        }
        covered.extend([platform.to_string(), tasks.to_string(), allocation.to_string()]);
        // Each task set names its profiles; the analysis loaded them.
        let text = std::fs::read_to_string(dir.join(tasks)).unwrap();
        for line in text.lines().filter_map(|l| l.strip_prefix("profile = ")) {
            covered.insert(line.trim_matches('"').to_string());
        }
    }
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_dir() {
            for inner in std::fs::read_dir(entry.path()).unwrap() {
                on_disk.insert(format!("{name}/{}", inner.unwrap().file_name().into_string().unwrap()));
            }
        } else {
            on_disk.insert(name);
        }
    }
    let uncovered: Vec<_> = on_disk.difference(&covered).collect();
    assert!(uncovered.is_empty(), "add these examples/ files to CASES so they are analyzed: {uncovered:?}");
}
