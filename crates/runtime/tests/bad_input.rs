//! Input the runtime refuses: each a clear error naming what and where, before any thread
//! starts.

mod common;
use common::{system, untimed, Spec, MS};
use lalarand_model::{Allocation, Mode, Placement};
use lalarand_runtime::{os, RunConfig, RunHorizon, Runtime, RuntimeError};

fn two_tasks() -> (lalarand_model::System, Allocation) {
    system(
        2,
        0,
        &[
            Spec { name: "cam", period: 10 * MS, offset: 0, stages: &[(0, MS), (1, MS)] },
            Spec { name: "lidar", period: 20 * MS, offset: 0, stages: &[(1, 2 * MS)] },
        ],
    )
}

fn refuse(sys: &lalarand_model::System, alloc: &Allocation, config: RunConfig) -> RuntimeError {
    Runtime::new(sys, alloc, config).expect_err("must be refused")
}

#[test]
fn a_valid_system_is_accepted() {
    let (sys, alloc) = two_tasks();
    Runtime::new(&sys, &alloc, RunConfig::default()).unwrap();
}

#[test]
fn allocations_that_do_not_fit_are_named() {
    let (sys, mut alloc) = two_tasks();
    alloc.tasks.pop();
    let e = refuse(&sys, &alloc, RunConfig::default());
    assert!(matches!(e, RuntimeError::Allocation(_)) && e.to_string().contains("1 tasks, the task set 2"), "{e}");

    let (sys, mut alloc) = two_tasks();
    alloc.tasks[0][1] = Placement { mode: Mode::CpuFp32, resource: 7 };
    let e = refuse(&sys, &alloc, RunConfig::default());
    assert!(e.to_string().contains("\"cam\"") && e.to_string().contains("#7 does not exist"), "{e}");

    let (sys, mut alloc) = two_tasks();
    alloc.tasks[1][0].mode = Mode::Gpu;
    let e = refuse(&sys, &alloc, RunConfig::default());
    assert!(e.to_string().contains("\"lidar\""), "{e}");
}

#[test]
fn resources_need_existing_cores() {
    let (mut sys, alloc) = two_tasks();
    sys.platform.resources[1].cores.clear();
    let e = refuse(&sys, &alloc, RunConfig::default());
    assert!(matches!(e, RuntimeError::Resource { index: 1, .. }), "{e}");
    assert!(e.to_string().contains("resource[1] \"r1\"") && e.to_string().contains("no cores"), "{e}");

    let (mut sys, alloc) = two_tasks();
    let missing = os::available_cores().last().unwrap() + 1;
    sys.platform.resources[0].cores.push(missing);
    let e = refuse(&sys, &alloc, RunConfig::default());
    assert!(matches!(e, RuntimeError::Resource { index: 0, .. }), "{e}");
    assert!(e.to_string().contains(&format!("core {missing} does not exist")), "{e}");
    // Checked against the given cores, not only the machine's.
    let (sys, alloc) = two_tasks();
    let e = Runtime::with_cores(&sys, &alloc, RunConfig::default(), &[]).unwrap_err();
    assert!(e.to_string().contains("allowed: []"), "{e}");
}

#[test]
fn periods_below_what_the_runtime_can_time_are_refused() {
    let (mut sys, alloc) = two_tasks();
    sys.tasks[1].period = 50_000;
    sys.tasks[1].deadline = 50_000;
    let e = refuse(&sys, &alloc, RunConfig { force: true, ..RunConfig::default() });
    assert!(matches!(e, RuntimeError::Task { index: 1, .. }), "{e}");
    assert!(e.to_string().contains("\"lidar\"") && e.to_string().contains("50 us"), "{e}");
}

#[test]
fn unschedulable_allocations_are_refused_unless_forced() {
    let (mut sys, alloc) = two_tasks();
    sys.tasks[0].period = 2 * MS;
    sys.tasks[0].deadline = 2 * MS;
    let e = refuse(&sys, &alloc, RunConfig::default());
    assert!(matches!(e, RuntimeError::Unschedulable { .. }), "{e}");
    assert!(e.to_string().contains("force"), "{e}");
    let rt = Runtime::new(&sys, &alloc, RunConfig { force: true, ..RunConfig::default() }).unwrap();
    assert!(!rt.analysis().schedulable());
}

#[test]
fn settings_out_of_range_are_refused() {
    let (sys, alloc) = two_tasks();
    for bad in [
        untimed(RunHorizon::Jobs(0)),
        untimed(RunHorizon::Duration(0)),
        RunConfig { max_backlog: 0, ..RunConfig::default() },
    ] {
        assert!(matches!(refuse(&sys, &alloc, bad), RuntimeError::Config { .. }));
    }
}
