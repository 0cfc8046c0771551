//! Gantt charts of the demo system.

use lalarand_model::{examples, Allocation, ExecutionPlan, Mode};
use lalarand_sim::{simulate, write_gantt, GanttLabels, Horizon, SimConfig, SimError};

fn demo() -> (lalarand_model::System, ExecutionPlan) {
    let system = examples::demo_system();
    let alloc = Allocation::uniform(&system, Mode::Gpu).unwrap();
    let plan = ExecutionPlan::new(&system, &alloc).unwrap();
    (system, plan)
}

#[test]
fn draws_every_resource_task_and_miss() {
    let (system, plan) = demo();
    let run = simulate(&plan, &SimConfig::default()).unwrap();
    // All on the GPU the demo is overloaded: the chart must show misses.
    assert!(run.misses() > 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.svg");
    write_gantt(&run, &GanttLabels::from_system(&system), &path, None).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"));
    for name in system.tasks.iter().map(|t| t.name.as_str()).chain(["gpu", "cpu", "deadline miss"]) {
        assert!(svg.contains(name), "{name} missing");
    }
    // Misses are drawn in red.
    assert!(svg.contains("#DC0000"));
}

#[test]
fn reports_bad_requests_as_errors() {
    let (system, plan) = demo();
    let labels = GanttLabels::from_system(&system);
    let run = simulate(&plan, &SimConfig { horizon: Horizon::Until(5_000_000), ..SimConfig::default() }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let unwritable = dir.path().join("no such dir").join("x.svg");
    let e = write_gantt(&run, &labels, &unwritable, None).unwrap_err();
    assert!(matches!(e, SimError::Write { .. }), "{e}");
    assert!(e.to_string().contains("no such dir"));
    assert!(std::error::Error::source(&e).is_none(), "the I/O error is printed once, in the message");
    let e = write_gantt(&run, &GanttLabels::numbered(&plan), &dir.path().join("a.svg"), Some((5, 5))).unwrap_err();
    assert!(matches!(e, SimError::Gantt(_)));
    let untraced = simulate(&plan, &SimConfig { record_trace: false, ..SimConfig::default() }).unwrap();
    assert!(write_gantt(&untraced, &labels, &dir.path().join("b.svg"), None).is_err());
}
