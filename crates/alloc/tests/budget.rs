//! The accuracy budget never makes `lalarand` miss a schedulable allocation that fits it.

use lalarand_alloc::{AllocOptions, Policy};
use lalarand_model::{Platform, System, TaskSet};
use std::path::Path;

/// PP-OCRv4's recognizer (106 stages, label-free int8 costs measured here; docs/evaluation.md
/// §15, run 1) as one task on two cpus: with a budget of 1 pp the search proves an allocation
/// costing 0.159 pp, and with 0.4 pp its budgeted path used to end unproven (21 int8 layers,
/// 0.032 pp). Every budget that admits an allocation must find one.
#[test]
fn a_tighter_budget_still_finds_the_allocation_that_fits_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let platform = Platform::load(&root.join("examples/mnist/platform.toml")).unwrap();
    let set = TaskSet::load(&root.join("docs/results/pretrained-ocr/run1/taskset.toml")).unwrap();
    let system = System::new(platform, set);
    let loose =
        Policy::Lalarand.allocate(&system, &AllocOptions { accuracy_budget: 1.0, ..Default::default() }).unwrap();
    assert!(loose.schedulable());
    let needed = loose.allocation.accuracy_cost(&system);
    for budget in [0.4, needed + 1e-9] {
        for policy in [Policy::Lalarand, Policy::LalarandOwn] {
            let o = policy.allocate(&system, &AllocOptions { accuracy_budget: budget, ..Default::default() }).unwrap();
            assert!(o.schedulable(), "{policy} at budget {budget}: {:?}", o.analysis);
            assert!(o.allocation.accuracy_cost(&system) <= budget + 1e-12);
        }
    }
}
