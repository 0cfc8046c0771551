//! Systems for the runtime's tests: chains of stages with explicit times on cpu resources.
#![allow(dead_code)]

use lalarand_model::examples::chain_profile;
use lalarand_model::{
    Allocation, LayerProfile, Mode, Placement, Platform, PriorityPolicy, Resource, ResourceKind, System, Task, TaskSet,
    Time,
};
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

/// Test settings: no SCHED_FIFO (as root it would be granted, and a spinning FIFO stage
/// starves every other thread on its core, other tests' workers included).
pub fn config(horizon: lalarand_runtime::RunHorizon) -> lalarand_runtime::RunConfig {
    lalarand_runtime::RunConfig { horizon, realtime: false, ..lalarand_runtime::RunConfig::default() }
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs of one test binary take turns: their workers pin to the same cores.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
