//! lalarand as a library, end to end: a platform and a task set built in code, allocated layer
//! by layer with LaLaRAND, proven schedulable, then run for one second by the real-time
//! runtime with busy-waiting stages (stand-ins for inference), observed response times printed next to the bounds.
//!
//! `cargo run -p lalarand --example quickstart`

use lalarand::alloc::{AllocOptions, Policy};
use lalarand::model::examples::chain_profile;
use lalarand::model::{
    ms_to_time, time_to_ms, time_to_us, us_to_time, LayerProfile, Platform, PriorityPolicy, Resource, ResourceKind,
    System, Task, TaskSet,
};
use lalarand::runtime::{os, BusyTime, RunConfig, RunHorizon, Runtime};
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    // One GPU and one CPU. The runtime pins a cpu resource's worker to its cores; the GPU is
    // stood in for by busy-waiting stages, so no GPU is needed here.
    // Every stage dispatched is charged the runtime's own cost (measured by `lalarand run`
    // as its suggested dispatch_overhead_us; 100 us covers a loaded machine without
    // SCHED_FIFO), so that the bounds hold for what the runtime really does.
    let cores = os::available_cores();
    let mut cpu = Resource::new("cpu", ResourceKind::Cpu);
    cpu.cores = vec![*cores.last().expect("at least one usable core")];
    cpu.dispatch_overhead = us_to_time(100.0);
    let mut gpu = Resource::new("gpu", ResourceKind::Gpu);
    gpu.dispatch_overhead = us_to_time(100.0);
    let platform = Platform { resources: vec![gpu, cpu] };

    // Three DNNs, per-layer worst-case times on the GPU and on the CPU (fp32), milliseconds.
    let dnn = |name: &str, layers: &[(f64, f64)]| {
        let layers: Vec<LayerProfile> = layers
            .iter()
            .enumerate()
            .map(|(i, &(gpu, cpu))| LayerProfile::gpu_cpu(format!("{name}.{i}"), ms_to_time(gpu), ms_to_time(cpu)))
            .collect();
        Arc::new(chain_profile(name, &layers))
    };
    let tasks = vec![
        Task::new("camera", ms_to_time(20.0), dnn("detector", &[(1.6, 4.8), (1.6, 4.8), (1.6, 4.0), (1.2, 3.2)])),
        Task::new("lidar", ms_to_time(16.0), dnn("segmenter", &[(2.0, 4.0), (2.0, 4.0), (2.0, 3.6)])),
        Task::new("planner", ms_to_time(40.0), dnn("policy", &[(4.0, 6.0), (4.0, 6.0)])),
    ];
    let system = System::new(platform, TaskSet::new(tasks, PriorityPolicy::RateMonotonic));

    // Every layer on the GPU, then LaLaRAND's layer-level allocation.
    let options = AllocOptions::default();
    let gpu_only = Policy::GpuOnly.allocate(&system, &options)?;
    println!("gpu-only: {}", if gpu_only.schedulable() { "schedulable" } else { "not proven schedulable" });
    let outcome = Policy::Lalarand.allocate(&system, &options)?;
    anyhow::ensure!(outcome.schedulable(), "lalarand found no schedulable allocation");
    println!(
        "lalarand: schedulable, {} of {} layers on the cpu",
        cpu_layers(&system, &outcome.allocation),
        layers(&system)
    );

    // Run it for one second; the runtime refuses allocations the analysis cannot bound.
    let config = RunConfig { horizon: RunHorizon::Duration(ms_to_time(1_000.0)), ..RunConfig::default() };
    let runtime = Runtime::new(&system, &outcome.allocation, config)?;
    // Each stage spins for a time drawn in [0.6, 1] x its WCET (BusyTime::Wcet spins the full
    // WCET: the worst case, whose margin to the bound is only the charged overhead).
    let run = runtime.run(&runtime.busy_wait(BusyTime::Uniform { min_fraction: 0.6, seed: 1 }))?;

    println!("{:<8} {:>5} {:>6} {:>13} {:>13} {:>10}", "task", "jobs", "misses", "observed max", "bound", "deadline");
    for t in &run.report.tasks {
        let bound = t.bound.map_or("-".to_string(), |b| format!("{:.3} ms", time_to_ms(b)));
        println!(
            "{:<8} {:>5} {:>6} {:>10.3} ms {:>13} {:>7.3} ms  {:?}",
            t.name,
            t.completed,
            t.misses,
            time_to_ms(t.response_max),
            bound,
            time_to_ms(t.deadline),
            t.verdict
        );
    }
    println!(
        "runtime dispatch latency: median {:.1} us, max {:.1} us (charged 100 us per stage; suggested {:.0} us per stage \
         plus {:.0} us per wake-up, docs/runtime.md)",
        time_to_us(run.report.dispatch_latency.median),
        time_to_us(run.report.dispatch_latency.max),
        run.report.suggested_dispatch_overhead_us,
        run.report.suggested_wakeup_overhead_us
    );
    Ok(())
}

fn layers(system: &System) -> usize {
    system.tasks.iter().map(|t| t.dnn.layers.len()).sum()
}

fn cpu_layers(system: &System, alloc: &lalarand::model::Allocation) -> usize {
    alloc.tasks.iter().flatten().filter(|p| system.platform.resources[p.resource].kind == ResourceKind::Cpu).count()
}
