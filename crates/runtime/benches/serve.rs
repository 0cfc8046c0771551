//! Serving overhead: `submit` -> the job's first stage starting on an idle resource, measured
//! from each job's own timing (`start - submitted`), over 5,000 submissions of a one-stage
//! sporadic task (20 us busy-wait) spaced past its minimum inter-arrival time. Targets:
//! median < 50 us, p99 < 300 us.

use lalarand_model::examples::chain_profile;
use lalarand_model::{
    Allocation, ExecutionPlan, LayerProfile, Mode, Placement, Platform, PriorityPolicy, Resource, ResourceKind, System,
    Task, TaskSet,
};
use lalarand_runtime::serve::{Admission, Input, ServeConfig, Server, StopPolicy};
use lalarand_runtime::{os, BusyTime, BusyWait, LatencyStats};
use std::sync::Arc;

const STAGE_NS: u64 = 20_000;
const PERIOD_NS: u64 = 200_000;

fn main() {
    let jobs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5_000);
    let cores = os::available_cores();
    let platform =
        Platform { resources: vec![Resource { cores: vec![cores[0]], ..Resource::new("cpu", ResourceKind::Cpu) }] };
    let dnn = Arc::new(chain_profile("one", &[LayerProfile::gpu_cpu("l0", STAGE_NS, STAGE_NS)]));
    let system =
        System::new(platform, TaskSet::new(vec![Task::new("req", PERIOD_NS, dnn)], PriorityPolicy::RateMonotonic));
    let alloc = Allocation { tasks: vec![vec![Placement { mode: Mode::CpuFp32, resource: 0 }]] };
    let exec = BusyWait::from_plan(&ExecutionPlan::new(&system, &alloc).unwrap(), &system.platform, BusyTime::Wcet);
    let server = Server::builder(&system, &alloc, exec).config(ServeConfig::default()).start().unwrap();
    let input = Input::from_vec(vec![1, 3, 224, 224], vec![0.5; 3 * 224 * 224]).unwrap();
    let mut latency = Vec::with_capacity(jobs);
    let mut delayed = 0;
    for _ in 0..jobs {
        let h = server.submit("req", input.clone()).unwrap();
        if !matches!(h.admission(), Admission::Released { .. }) {
            delayed += 1;
        }
        let t = h.wait().unwrap().timing;
        latency.push(t.start - t.submitted);
        // Past the minimum inter-arrival time, so every submission is released at once.
        os::sleep_until(os::monotonic_ns() + PERIOD_NS + 50_000);
    }
    let stats = server.stop(StopPolicy::Drain).unwrap().stats;
    let l = LatencyStats::of(&mut latency);
    eprintln!(
        "submit -> first stage start over {} jobs: median {:.1} us, p99 {:.1} us, max {:.1} us ({delayed} delayed by the \
         inter-arrival rule); server dispatch latency median {:.1} us, p99 {:.1} us; SCHED_FIFO: {}",
        l.samples,
        l.median as f64 / 1e3,
        l.p99 as f64 / 1e3,
        l.max as f64 / 1e3,
        stats.dispatch_latency.median as f64 / 1e3,
        stats.dispatch_latency.p99 as f64 / 1e3,
        stats.realtime
    );
}
