//! Dispatch latency: a stage queued on an idle resource -> the stage starts, measured by the
//! runtime itself on a two-stage chain across two resources (the hand-over between workers)
//! at the shortest allowed period. Criterion's time per iteration is the mean latency; the
//! median and p99 of a longer run are printed after it. Targets (2-core machine): median <
//! 20 us, p99 < 200 us.

use criterion::{criterion_group, criterion_main, Criterion};
use lalarand_model::examples::chain_profile;
use lalarand_model::{
    Allocation, LayerProfile, Mode, Placement, Platform, PriorityPolicy, Resource, ResourceKind, System, Task, TaskSet,
};
use lalarand_runtime::{os, BusyTime, RunConfig, RunHorizon, Runtime};
use std::sync::Arc;
use std::time::Duration;

const STAGE_NS: u64 = 20_000;
const PERIOD_NS: u64 = 200_000;

fn runtime(jobs: u64) -> Runtime {
    let cores = os::available_cores();
    let resource = |name: &str, core: usize| Resource { cores: vec![core], ..Resource::new(name, ResourceKind::Cpu) };
    let platform =
        Platform { resources: vec![resource("a", cores[0]), resource("b", cores[cores.len().saturating_sub(1)])] };
    let layer = |n: &str| LayerProfile::gpu_cpu(n, STAGE_NS, STAGE_NS);
    let dnn = Arc::new(chain_profile("chain", &[layer("l0"), layer("l1")]));
    let system =
        System::new(platform, TaskSet::new(vec![Task::new("chain", PERIOD_NS, dnn)], PriorityPolicy::RateMonotonic));
    let alloc = Allocation {
        tasks: vec![vec![
            Placement { mode: Mode::CpuFp32, resource: 0 },
            Placement { mode: Mode::CpuFp32, resource: 1 },
        ]],
    };
    let config = RunConfig { horizon: RunHorizon::Jobs(jobs), max_trace_slots: 0, ..RunConfig::default() };
    Runtime::new(&system, &alloc, config).expect("a valid chain")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("runtime");
    group.sample_size(10).warm_up_time(Duration::from_millis(50)).measurement_time(Duration::from_millis(100));
    group.bench_function("dispatch latency (idle resource)", |b| {
        b.iter_custom(|iters| {
            let rt = runtime(iters.max(1));
            let report = rt.run(&rt.busy_wait(BusyTime::Wcet)).unwrap().report;
            let d = report.dispatch_latency;
            // This run's median, once per iteration: criterion then reports medians of runs.
            Duration::from_nanos(d.median.max(1)) * iters as u32
        })
    });
    group.finish();
    let rt = runtime(5_000);
    let report = rt.run(&rt.busy_wait(BusyTime::Wcet)).unwrap().report;
    let (d, h) = (report.dispatch_latency, report.handoff);
    eprintln!(
        "dispatch latency over {} stages: median {:.1} us, p99 {:.1} us, max {:.1} us; hand-off median {:.1} us, p99 {:.1} us; \
         release jitter p99 {:.1} us; SCHED_FIFO: {}; suggested dispatch_overhead_us = {:.1}, wakeup_overhead_us = {:.1}",
        d.samples,
        d.median as f64 / 1e3,
        d.p99 as f64 / 1e3,
        d.max as f64 / 1e3,
        h.median as f64 / 1e3,
        h.p99 as f64 / 1e3,
        report.release_jitter.p99 as f64 / 1e3,
        report.realtime,
        report.suggested_dispatch_overhead_us,
        report.suggested_wakeup_overhead_us
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
