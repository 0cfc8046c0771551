//! Systems for the runtime's tests: chains of stages with explicit times on cpu resources.
#![allow(dead_code)]

use lalarand_model::examples::chain_profile;
use lalarand_model::{
    Allocation, LayerProfile, Mode, Placement, Platform, PriorityPolicy, Resource, ResourceKind, System, Task, TaskSet,
    Time,
};
pub mod soak;

use lalarand_runtime::os;
use std::sync::Arc;

pub const MS: Time = 1_000_000;

/// A task: (name, period, offset, stages as (resource, time)).
pub struct Spec<'a> {
    pub name: &'a str,
    pub period: Time,
    pub offset: Time,
    pub stages: &'a [(usize, Time)],
}

/// Cpu resources `r0..` pinned one core each (round robin over the cores this process may
/// use), each charging `overhead` per stage; rate-monotonic priorities.
pub fn system(resources: usize, overhead: Time, tasks: &[Spec]) -> (System, Allocation) {
    let cores = os::available_cores();
    let platform = Platform {
        resources: (0..resources)
            .map(|r| Resource {
                cores: vec![cores[r % cores.len()]],
                dispatch_overhead: overhead,
                ..Resource::new(format!("r{r}"), ResourceKind::Cpu)
            })
            .collect(),
    };
    let tasks_v = tasks
        .iter()
        .map(|s| {
            let layers: Vec<LayerProfile> =
                s.stages.iter().enumerate().map(|(j, &(_, t))| LayerProfile::gpu_cpu(format!("l{j}"), t, t)).collect();
            Task { offset: s.offset, ..Task::new(s.name, s.period, Arc::new(chain_profile(s.name, &layers))) }
        })
        .collect();
    let alloc = Allocation {
        tasks: tasks
            .iter()
            .map(|s| s.stages.iter().map(|&(r, _)| Placement { mode: Mode::CpuFp32, resource: r }).collect())
            .collect(),
    };
    (System::new(platform, TaskSet::new(tasks_v, PriorityPolicy::RateMonotonic)), alloc)
}

/// Settings for tests that check timing: SCHED_FIFO is asked for, since under the normal
/// scheduler a loaded 2-core machine deschedules a worker for tens of milliseconds, past any
/// margin a quick test can afford (where it is refused the run goes on with a warning).
pub fn timed(horizon: lalarand_runtime::RunHorizon) -> lalarand_runtime::RunConfig {
    lalarand_runtime::RunConfig { horizon, ..lalarand_runtime::RunConfig::default() }
}

/// Settings for tests that check no timing: no SCHED_FIFO, whose bandwidth (95% of each
/// second by default) an overloaded run would use up and so throttle the next timed test.
pub fn untimed(horizon: lalarand_runtime::RunHorizon) -> lalarand_runtime::RunConfig {
    lalarand_runtime::RunConfig { horizon, realtime: false, ..lalarand_runtime::RunConfig::default() }
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs take turns, across test threads and test processes (nextest): their workers pin to
/// the same cores, and a spinning SCHED_FIFO stage starves anything else on its core.
pub struct Turn {
    _file: std::fs::File,
    _guard: std::sync::MutexGuard<'static, ()>,
}

pub fn serial() -> Turn {
    use std::os::fd::AsRawFd;
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = std::env::temp_dir().join("lalarand-runtime-tests.lock");
    let file = std::fs::File::options().create(true).truncate(false).write(true).open(&path).expect("lock file");
    // SAFETY: flock on an open descriptor; released when the file is closed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", path.display());
    Turn { _file: file, _guard: guard }
}
