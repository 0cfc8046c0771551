//! The runtime against the simulator and the analysis: with busy-waiting stages of known
//! times, every resource runs the same stages in the same order as the simulator, and every
//! observed response time stays under the analysis' bound.

mod common;
use common::{serial, system, timed, Spec, MS};
use lalarand_model::StageSlot;
use lalarand_model::{ExecutionPlan, Time};
use lalarand_runtime::{BusyTime, RunHorizon, Runtime, Verdict};
use lalarand_sim::{simulate, Horizon, SimConfig};
use std::collections::HashMap;

/// Charged per stage by the plan but not spun: slack for OS interference on a loaded machine
/// without SCHED_FIFO, so the bound (which includes it) holds.
const OVERHEAD: Time = 2 * MS;

fn specs() -> Vec<Spec<'static>> {
    vec![
        Spec { name: "a", period: 80 * MS, offset: 0, stages: &[(0, 10 * MS), (1, 8 * MS)] },
        Spec { name: "b", period: 120 * MS, offset: 3 * MS, stages: &[(1, 12 * MS), (0, 9 * MS)] },
        Spec { name: "c", period: 240 * MS, offset: 6 * MS, stages: &[(0, 15 * MS), (1, 10 * MS), (0, 6 * MS)] },
    ]
}

/// The plan the stages actually spin: the runtime's plan without the overhead.
fn spun(plan: &ExecutionPlan) -> ExecutionPlan {
    let mut p = plan.clone();
    p.tasks.iter_mut().flat_map(|t| &mut t.layers).for_each(|l| l.wcet -= OVERHEAD);
    p
}

/// How close the simulated schedule comes to a different decision: the smallest distance
/// between a stage's start and the arrival (release or predecessor's end) of a
/// higher-priority stage that ran after it on the same resource. OS jitter below it cannot
/// reorder stages.
fn decision_margin(plan: &ExecutionPlan, sim: &lalarand_sim::SimResult) -> Time {
    let trace = sim.trace.as_ref().unwrap();
    let ends: HashMap<(usize, u64, usize), Time> =
        trace.resources.iter().flatten().map(|s| ((s.task, s.job, s.stage), s.end)).collect();
    let releases: HashMap<(usize, u64), Time> = sim.jobs.iter().map(|j| ((j.task, j.job), j.release)).collect();
    let arrival = |s: &StageSlot| match s.stage {
        0 => releases[&(s.task, s.job)],
        j => ends[&(s.task, s.job, j - 1)],
    };
    let prio = |s: &StageSlot| plan.tasks[s.task].priority;
    let mut margin = Time::MAX;
    for slots in &trace.resources {
        for (k, s) in slots.iter().enumerate() {
            for x in slots[k + 1..].iter().filter(|x| prio(x) < prio(s)) {
                margin = margin.min(arrival(x).abs_diff(s.start));
            }
        }
    }
    margin
}

#[test]
fn stage_order_matches_the_simulator_and_responses_stay_under_the_bounds() {
    let _turn = serial();
    let (sys, alloc) = system(2, OVERHEAD, &specs());
    let config = timed(RunHorizon::Jobs(4));
    let rt = Runtime::new(&sys, &alloc, config).expect("schedulable set");
    let sim_plan = spun(rt.plan());
    let sim = simulate(&sim_plan, &SimConfig { horizon: Horizon::Jobs(4), ..SimConfig::default() }).unwrap();
    let gap = decision_margin(&sim_plan, &sim);
    assert!(gap >= 2 * MS, "test set lost its margins: a decision {gap} ns from going the other way");

    let out = rt.run(&rt.busy_wait(BusyTime::Wcet)).unwrap();
    let order = |slots: &mut dyn Iterator<Item = (usize, u64, usize)>| slots.collect::<Vec<_>>();
    for (r, (mine, theirs)) in out.trace.resources.iter().zip(&sim.trace.as_ref().unwrap().resources).enumerate() {
        assert_eq!(
            order(&mut mine.iter().map(|s| (s.task, s.job, s.stage))),
            order(&mut theirs.iter().map(|s| (s.task, s.job, s.stage))),
            "resource {r}: (task, job, stage) order differs from the simulator's"
        );
    }
    for (i, t) in out.report.tasks.iter().enumerate() {
        assert_eq!((t.released, t.completed, t.misses), (4, 4, 0), "task {i}: {t:?}");
        let bound = t.bound.expect("schedulable");
        assert!(t.response_max <= bound, "task {i}: observed {} > bound {bound}", t.response_max);
        assert!(t.response_min >= sim.tasks[i].min_response, "task {i} faster than its spin times allow: {t:?}");
        assert_eq!(t.verdict, Verdict::WithinBound);
    }
    // Every stage started on an idle resource is a dispatch-latency sample.
    assert!(out.report.dispatch_latency.samples > 0);
    assert!(out.report.dispatch_latency.median <= out.report.dispatch_latency.p99);
}

#[test]
fn seeded_shorter_stages_keep_responses_under_the_bounds() {
    let _turn = serial();
    let (sys, alloc) = system(2, OVERHEAD, &specs());
    let config = timed(RunHorizon::Jobs(3));
    let rt = Runtime::new(&sys, &alloc, config).unwrap();
    let out = rt.run(&rt.busy_wait(BusyTime::Uniform { min_fraction: 0.3, seed: 11 })).unwrap();
    for t in &out.report.tasks {
        assert_eq!((t.completed, t.misses), (3, 0), "{t:?}");
        assert!(t.response_max <= t.bound.unwrap(), "{t:?}");
    }
}
