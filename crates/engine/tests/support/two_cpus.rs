//! One task on two one-core cpu resources, for the tests that serve a model's stages
//! (`serving`, `multi_io`, `recurrent_exporters`).
// Each test file uses part of this module.
#![allow(dead_code)]

use lalarand_model::{
    Allocation, DnnProfile, Mode, ModeTiming, Placement, Platform, PriorityPolicy, Resource, ResourceKind, System,
    Task, TaskSet, Time,
};
use lalarand_runtime::os;
use std::sync::Arc;

/// Task `model` of `profile`'s stages in `modes[j]`, the first half on `cpu0` and the second on
/// `cpu1` (every job crosses between the workers), each resource one core; every stage's fp32
/// and int8 times `wcet` (ns), its period `period` (ns).
pub fn system_for(profile: DnnProfile, modes: &[Mode], wcet: Time, period: Time) -> (System, Allocation) {
    let cores = os::available_cores();
    let resource = |name: &str, core: usize| Resource { cores: vec![core], ..Resource::new(name, ResourceKind::Cpu) };
    let platform = Platform { resources: vec![resource("cpu0", cores[0]), resource("cpu1", *cores.last().unwrap())] };
    let n = profile.layers.len();
    let mut profile = profile;
    for l in &mut profile.layers {
        l.modes[Mode::CpuFp32.index()] = Some(ModeTiming::from_wcet(wcet));
        l.modes[Mode::CpuInt8.index()] = Some(ModeTiming::from_wcet(wcet));
    }
    let task = Task::new("model", period, Arc::new(profile));
    let places = (0..n).map(|j| Placement { mode: modes[j], resource: usize::from(j >= n / 2) }).collect();
    (System::new(platform, TaskSet::new(vec![task], PriorityPolicy::RateMonotonic)), Allocation { tasks: vec![places] })
}
