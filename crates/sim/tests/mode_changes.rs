//! Mode changes under the drain-then-switch protocol: a hand-computed run, queued requests,
//! real admissions, and the campaign.

use lalarand_alloc::admission::{admit_load, admit_unload, AdmissionOptions, LoadPriority, LoadRequest, Proven};
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_analysis::analyze;
use lalarand_model::examples::demo_system;
use lalarand_model::{ms_to_time, ExecutionPlan, Mode, PlannedLayer, PlannedTask, System, Task, Time};
use lalarand_sim::campaign::mode_change_campaign;
use lalarand_sim::{simulate, simulate_mode_changes, ExecutionTimeModel, Horizon, ModeChange, SimConfig, SimError};

fn task(priority: u32, period: Time, cost: Time) -> PlannedTask {
    PlannedTask {
        period,
        deadline: period,
        offset: 0,
        priority,
        layers: vec![PlannedLayer { resource: 0, mode: Mode::Gpu, wcet: cost, wakeup: 0 }],
    }
}

fn plan(tasks: Vec<PlannedTask>) -> ExecutionPlan {
    ExecutionPlan { resources: 1, tasks }
}

/// (mode, task, release, finish) of every job.
fn jobs(run: &lalarand_sim::ModeChangeRun) -> Vec<(usize, usize, Time, Time)> {
    run.jobs.iter().map(|j| (j.mode, j.task, j.release, j.finish.unwrap())).collect()
}

#[test]
fn a_load_waits_for_the_old_jobs_in_flight_then_releases_at_the_switch() {
    // A (T 10, C 4) runs alone; B (T 20, C 3) is requested at 12 while A's job of 10 runs until 14.
    let a = task(0, 10, 4);
    let change =
        ModeChange { requested: 12, plan: plan(vec![a.clone(), task(1, 20, 3)]), continues: vec![Some(0), None] };
    let run = simulate_mode_changes(&plan(vec![a]), &[change], &SimConfig::default(), 30).unwrap();
    // B's first release is at the switch, 14; A continues at max(14, 10 + 10) = 20.
    assert_eq!(jobs(&run), vec![(0, 0, 0, 4), (0, 0, 10, 14), (1, 1, 14, 17), (1, 0, 20, 24)]);
    let c = &run.changes[0];
    assert_eq!((c.requested, c.started, c.switched, c.in_flight), (12, 12, 14, 1));
    assert_eq!((c.drain_bound, c.drain_ends_by), (4, 14));
    assert_eq!(c.first_releases, vec![(1, 14)]);
    assert!(run.jobs.iter().all(|j| j.within_bound()) && c.within_bounds());
}

/// Why the protocol drains: had the new task been released at the request, an old-mode job
/// would have waited for it past the bound that held at its release.
#[test]
fn an_immediate_switch_would_break_an_old_jobs_bound() {
    // L (two layers of 3) runs alone: bound 6. H (C 5) outranks it in the new mode.
    let mut l = task(0, 20, 3);
    l.layers.push(l.layers[0]);
    let old = plan(vec![l.clone()]);
    assert_eq!(analyze(&old).tasks[0].bound, Some(6));
    let mut new_l = l;
    new_l.priority = 1;
    let mut h = task(0, 20, 5);
    // Released at once, at the request (1): H takes the resource between L's layers.
    h.offset = 1;
    let immediate = simulate(
        &plan(vec![new_l.clone(), h.clone()]),
        &SimConfig { horizon: Horizon::Jobs(1), ..SimConfig::default() },
    )
    .unwrap();
    assert_eq!(immediate.jobs[0].finish, Some(11), "L's old-mode job: 11 > its bound 6");
    // Drained: H waits for L's job (until 6), which keeps its bound.
    h.offset = 0;
    let change = ModeChange { requested: 1, plan: plan(vec![new_l, h]), continues: vec![Some(0), None] };
    let run = simulate_mode_changes(&old, &[change], &SimConfig::default(), 20).unwrap();
    assert_eq!(jobs(&run)[0], (0, 0, 0, 6));
    assert_eq!(run.changes[0].first_releases, vec![(1, 6)]);
    assert!(run.jobs.iter().all(|j| j.within_bound()));
}

#[test]
fn a_request_during_a_drain_is_queued_until_the_switch() {
    let a = task(0, 10, 4);
    let b = task(1, 20, 3);
    let load = ModeChange { requested: 12, plan: plan(vec![a.clone(), b.clone()]), continues: vec![Some(0), None] };
    let mut b_alone = b;
    b_alone.priority = 0;
    let unload = ModeChange { requested: 13, plan: plan(vec![b_alone]), continues: vec![Some(1)] };
    let run = simulate_mode_changes(&plan(vec![a]), &[load, unload], &SimConfig::default(), 30).unwrap();
    let c = &run.changes[1];
    assert_eq!((c.requested, c.started, c.switched, c.in_flight), (13, 14, 14, 0), "queued behind the load");
    // The load's mode never released a job: B's first release moves to the unload's mode.
    assert_eq!(jobs(&run), vec![(0, 0, 0, 4), (0, 0, 10, 14), (2, 0, 14, 17)]);
}

#[test]
fn only_proven_modes_run() {
    let overloaded = ModeChange { requested: 5, plan: plan(vec![task(0, 10, 11)]), continues: vec![None] };
    let e = simulate_mode_changes(&plan(vec![]), &[overloaded], &SimConfig::default(), 30).unwrap_err();
    assert!(matches!(e, SimError::InvalidPlan(ref m) if m.contains("not proven")), "{e}");
}

/// The plan of a proven system, and per task of `to` the index of the same task in `from`.
fn step(from: &Proven, to: &Proven) -> (ExecutionPlan, Vec<Option<usize>>) {
    let continues =
        to.system().tasks.iter().map(|t| from.system().tasks.iter().position(|o| o.name == t.name)).collect();
    (ExecutionPlan::new(to.system(), to.allocation()).unwrap(), continues)
}

fn load_request(system: &System, name: &str, model_of: &str, period_ms: f64) -> LoadRequest {
    let dnn = system.tasks.iter().find(|t| t.name == model_of).unwrap().dnn.clone();
    LoadRequest { task: Task::new(name, ms_to_time(period_ms), dnn), priority: LoadPriority::RateMonotonic }
}

enum Request {
    /// A task named `name` with the profile of the running task `model_of`.
    Load {
        name: &'static str,
        model_of: &'static str,
        period_ms: f64,
    },
    Unload(&'static str),
}

/// Admissions decided by `lalarand_alloc::admission`, run by the simulator: every job within the
/// bound of its mode, every switch within the drain bound the admission reported.
#[test]
fn admitted_changes_keep_every_job_within_its_bound() {
    let sys = demo_system();
    let outcome = Policy::Lalarand.allocate(&sys, &AllocOptions::default()).unwrap();
    let mut current = Proven::new(sys, outcome.allocation).unwrap();
    let initial = ExecutionPlan::new(current.system(), current.allocation()).unwrap();
    let options = AdmissionOptions::default();
    let mut changes = Vec::new();
    let mut drain_bounds = Vec::new();
    let requests = [
        (7.3, Request::Load { name: "parking", model_of: "digits", period_ms: 40.0 }),
        (20.0, Request::Unload("features")),
        (20.5, Request::Load { name: "camera", model_of: "classifier", period_ms: 30.0 }),
        (61.0, Request::Unload("parking")),
    ];
    for (at_ms, request) in requests {
        let admitted = match request {
            Request::Load { name, model_of, period_ms } => {
                admit_load(&current, load_request(current.system(), name, model_of, period_ms), &options).unwrap()
            }
            Request::Unload(name) => admit_unload(&current, name).unwrap(),
        };
        let (plan, continues) = step(&current, &admitted.proven);
        changes.push(ModeChange { requested: ms_to_time(at_ms), plan, continues });
        drain_bounds.push(admitted.drain_bound);
        current = admitted.proven;
    }
    for execution in [ExecutionTimeModel::Wcet, ExecutionTimeModel::Uniform { min_fraction: 0.3 }] {
        let config = SimConfig { execution, seed: 5, ..SimConfig::default() };
        let run = simulate_mode_changes(&initial, &changes, &config, ms_to_time(120.0)).unwrap();
        assert!(run.jobs.len() > 100);
        for j in &run.jobs {
            assert!(j.within_bound(), "{j:?}");
        }
        for (c, bound) in run.changes.iter().zip(&drain_bounds) {
            assert!(c.within_bounds(), "{c:?}");
            assert_eq!(c.drain_bound, *bound, "the simulator and the admission agree on the drain bound");
            for &(_, first) in &c.first_releases {
                assert!(first - c.started <= *bound, "a loaded task's first release waits at most the drain bound");
            }
        }
        assert!(run.changes.iter().any(|c| c.in_flight > 0), "some change had jobs to drain");
    }
}

#[test]
fn the_campaign_finds_no_violation() {
    let report = mode_change_campaign(2_000, 1, false);
    assert_eq!(report.violation_count, 0, "{report}");
    assert!(report.changes > 5_000 && report.jobs_in_flight_at_a_change > 1_000, "{report}");
}
