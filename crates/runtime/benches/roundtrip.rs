//! The fixed cost of a served job: `Server::submit` + `JobHandle::wait` round trips of a
//! one-stage and a 14-stage sporadic task (busy-wait stages of 50 us and 20 us, input and output
//! 1x1x28x28 fp32, one cpu resource), each call past the task's minimum inter-arrival time so
//! every job is released at once. Each call is split at the server's own timestamps (read on
//! its clock, `Server::now`, before `submit` and after `wait` returned):
//!
//! - *total*: the whole call; *response*: the job's release -> its last stage's finish;
//! - *fixed*: total - response (what a caller pays on top of the job itself);
//! - *after*: the last stage's finish -> `wait` returned (the hand-off of the finished job, the
//!   outputs read, the caller woken).
//!
//! Then the one-stage task again through `JobHandle::on_complete` (the callback signals the
//! waiting caller): *finish -> callback*, the hand-off to the server's delivery thread and its
//! copy of the outputs, and *callback -> caller*, waking the caller from there.
//!
//! `cargo bench -p lalarand-runtime --bench roundtrip [-- CALLS]` (default 3000 per task).

use lalarand_model::examples::chain_profile;
use lalarand_model::{
    Allocation, ExecutionPlan, LayerProfile, Mode, Placement, Platform, PriorityPolicy, Resource, ResourceKind, System,
    Task, TaskSet, Time,
};
use lalarand_runtime::serve::{Input, ServeConfig, Server, StopPolicy};
use lalarand_runtime::{os, BusyTime, BusyWait, LatencyStats};
use std::sync::{Arc, Condvar, Mutex};

const PERIOD_NS: Time = 1_000_000;

fn run(name: &str, stages: usize, stage_ns: Time, calls: usize, callback: bool) {
    let cores = os::available_cores();
    let core = *cores.last().expect("a core");
    let platform =
        Platform { resources: vec![Resource { cores: vec![core], ..Resource::new("cpu", ResourceKind::Cpu) }] };
    let layers: Vec<LayerProfile> =
        (0..stages).map(|s| LayerProfile::gpu_cpu(format!("l{s}"), stage_ns, stage_ns)).collect();
    let dnn = Arc::new(chain_profile(name, &layers));
    let system =
        System::new(platform, TaskSet::new(vec![Task::new("req", PERIOD_NS, dnn)], PriorityPolicy::RateMonotonic));
    let alloc = Allocation { tasks: vec![vec![Placement { mode: Mode::CpuFp32, resource: 0 }; stages]] };
    let exec = BusyWait::from_plan(&ExecutionPlan::new(&system, &alloc).unwrap(), &system.platform, BusyTime::Wcet);
    let server = Arc::new(Server::builder(&system, &alloc, exec).config(ServeConfig::default()).start().unwrap());
    let input = Input::from_vec(vec![1, 1, 28, 28], vec![0.5; 28 * 28]).unwrap();
    let (mut total, mut response, mut fixed, mut after) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut to_callback, mut from_callback) = (Vec::new(), Vec::new());
    for k in 0..calls + 50 {
        // Past the minimum inter-arrival time: every submission is released at once.
        os::sleep_until(os::monotonic_ns() + PERIOD_NS + 100_000);
        let t0 = server.now();
        let handle = server.submit("req", input.clone()).unwrap();
        let (result, called) = if callback {
            let done = Arc::new((Mutex::new(None), Condvar::new()));
            let (d, s) = (done.clone(), server.clone());
            handle.on_complete(move |r| {
                *d.0.lock().unwrap() = Some((r, s.now()));
                d.1.notify_one();
            });
            let mut got = done.0.lock().unwrap();
            while got.is_none() {
                got = done.1.wait(got).unwrap();
            }
            let (r, called) = got.take().unwrap();
            (r.unwrap(), called)
        } else {
            (handle.wait().unwrap(), 0)
        };
        let t1 = server.now();
        assert_eq!(result.outputs[0].data.len(), 28 * 28);
        if k < 50 {
            continue; // warm-up
        }
        let t = result.timing;
        total.push(t1 - t0);
        response.push(t.response);
        fixed.push((t1 - t0).saturating_sub(t.response));
        after.push(t1.saturating_sub(t.finish));
        if callback {
            to_callback.push(called.saturating_sub(t.finish));
            from_callback.push(t1.saturating_sub(called));
        }
    }
    let stats = server.stop(StopPolicy::Drain).unwrap().stats;
    let us = |v: Time| v as f64 / 1e3;
    let how = if callback { "on_complete" } else { "wait" };
    println!(
        "{name} ({how}): {stages} stage(s) of {} us, {calls} calls, SCHED_FIFO: {}",
        stage_ns / 1000,
        stats.realtime
    );
    let mut parts = vec![("total", total), ("response", response), ("fixed", fixed), ("after", after)];
    if callback {
        parts.push(("finish -> callback", to_callback));
        parts.push(("callback -> caller", from_callback));
    }
    for (part, v) in parts {
        let mut v = v;
        let l = LatencyStats::of(&mut v);
        println!("  {part:>18}: median {:7.1} us   p99 {:7.1} us", us(l.median), us(l.p99));
    }
}

fn main() {
    let calls: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3000);
    run("one-stage", 1, 50_000, calls, false);
    run("14-stage", 14, 20_000, calls, false);
    run("one-stage", 1, 50_000, calls, true);
}
