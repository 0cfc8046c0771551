//! The same-instant rule (the order of the platform's resources never changes a run), the
//! runtime's wake-up delay and sporadic releases.

use lalarand_analysis::analyze;
use lalarand_model::{ExecutionPlan, Mode, PlannedLayer, PlannedTask, Time};
use lalarand_sim::campaign::campaign_set;
use lalarand_sim::{simulate, Horizon, Releases, SimConfig, SimResult};
use proptest::prelude::*;

fn layer(resource: usize, wcet: Time, wakeup: Time) -> PlannedLayer {
    PlannedLayer { resource, mode: Mode::Gpu, wcet, wakeup }
}

fn task(priority: u32, period: Time, offset: Time, layers: Vec<PlannedLayer>) -> PlannedTask {
    PlannedTask { period, deadline: period, offset, priority, layers }
}

/// `plan` with resource `r` renamed `perm[r]`.
fn permuted(plan: &ExecutionPlan, perm: &[usize]) -> ExecutionPlan {
    let mut out = plan.clone();
    for l in out.tasks.iter_mut().flat_map(|t| &mut t.layers) {
        l.resource = perm[l.resource];
    }
    out
}

fn per_task(r: &SimResult) -> Vec<(u64, u64, Time, Time, u64)> {
    r.tasks.iter().map(|s| (s.jobs, s.completed, s.max_response, s.min_response, s.misses)).collect()
}

#[test]
fn zero_cost_layers_at_one_instant_resolve_by_priority_not_platform_order() {
    // The example of issue 11: hi = [gpu 0, cpu 5 ms], lo = [cpu 0]. hi's zero-cost gpu layer
    // outranks lo's zero-cost cpu layer, so it completes first and hi's 5 ms cpu layer is queued
    // before lo's is chosen: lo responds at 5 ms whichever resource is listed first.
    let ms = 1_000_000;
    let (gpu, cpu) = (0, 1);
    let plan = ExecutionPlan {
        resources: 2,
        tasks: vec![
            task(0, 100 * ms, 0, vec![layer(gpu, 0, 0), layer(cpu, 5 * ms, 0)]),
            task(1, 100 * ms, 0, vec![layer(cpu, 0, 0)]),
        ],
    };
    let config = SimConfig { horizon: Horizon::Jobs(1), ..SimConfig::default() };
    for perm in [[0, 1], [1, 0]] {
        let r = simulate(&permuted(&plan, &perm), &config).unwrap();
        assert_eq!(r.tasks[1].max_response, 5 * ms, "resources ordered {perm:?}");
        assert_eq!(r.tasks[0].max_response, 5 * ms);
    }
}

#[test]
fn a_higher_priority_layer_queued_during_a_wake_up_goes_first() {
    // One resource, wake-up overhead 3 (inside each first layer's cost). lo (cost 3 + 4) is
    // released at 0 and wakes the parked worker; hi (3 + 2) is released at 1, during the wake-up.
    // At 3 the worker starts hi (ends 5), then lo runs 4 more without a wake-up (it is awake):
    // lo responds at 9, hi at 4.
    let plan = ExecutionPlan {
        resources: 1,
        tasks: vec![task(0, 100, 1, vec![layer(0, 5, 3)]), task(1, 100, 0, vec![layer(0, 7, 3)])],
    };
    let r = simulate(&plan, &SimConfig { horizon: Horizon::Jobs(1), ..SimConfig::default() }).unwrap();
    let slots: Vec<_> = r.trace.as_ref().unwrap().resources[0].iter().map(|s| (s.task, s.start, s.end)).collect();
    assert_eq!(slots, vec![(0, 3, 5), (1, 5, 9)]);
    assert_eq!((r.tasks[0].max_response, r.tasks[1].max_response), (4, 9));
    // Both within their bounds: the analysis counts lo's wake-up as waiting, inside the window
    // where hi's whole cost interferes.
    let a = analyze(&plan);
    for (bound, stats) in a.tasks.iter().zip(&r.tasks) {
        assert!(stats.max_response <= bound.bound.unwrap(), "{stats:?} vs {bound:?}");
    }
}

#[test]
fn an_awake_worker_pays_no_wake_up() {
    // Two jobs of one task queued back to back: the first wakes the worker (3), runs 2; the
    // second finds it awake and runs 2 at once.
    let plan = ExecutionPlan { resources: 1, tasks: vec![task(0, 4, 0, vec![layer(0, 5, 3)])] };
    let r = simulate(&plan, &SimConfig { horizon: Horizon::Jobs(2), ..SimConfig::default() }).unwrap();
    let slots: Vec<_> = r.trace.as_ref().unwrap().resources[0].iter().map(|s| (s.start, s.end)).collect();
    assert_eq!(slots, vec![(3, 5), (5, 7)]);
}

#[test]
fn a_layer_that_is_all_wake_up_completes_when_the_worker_wakes_even_at_the_horizon() {
    // Campaign set 75324 of seed 1: the last job's last layer (cost 17, all of it wake-up) ends
    // its wake-up exactly at the horizon, at the bound; it completes there and is no violation.
    let set = campaign_set(1, 75_324);
    assert!(lalarand_sim::campaign::violations(&set).is_empty());
    let plan = ExecutionPlan { resources: 1, tasks: vec![task(0, 10, 0, vec![layer(0, 3, 3)])] };
    let r = simulate(&plan, &SimConfig { horizon: Horizon::Until(13), ..SimConfig::default() }).unwrap();
    assert_eq!((r.tasks[0].completed, r.tasks[0].max_response, r.tasks[0].oldest_incomplete), (2, 3, None));
}

#[test]
fn sporadic_releases_are_at_least_a_period_apart_and_vary() {
    let plan = ExecutionPlan { resources: 1, tasks: vec![task(0, 10, 0, vec![layer(0, 1, 0)])] };
    let config = SimConfig {
        horizon: Horizon::Jobs(200),
        releases: Releases::Sporadic { max_extra: 0.5 },
        ..SimConfig::default()
    };
    let r = simulate(&plan, &config).unwrap();
    let releases: Vec<Time> = r.jobs.iter().map(|j| j.release).collect();
    let gaps: Vec<Time> = releases.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|&g| (10..=15).contains(&g)), "{gaps:?}");
    assert!(gaps.contains(&10) && gaps.iter().any(|&g| g > 10));
    assert!(simulate(&plan, &SimConfig { releases: Releases::Sporadic { max_extra: -1.0 }, ..config }).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Campaign sets (zero-cost layers, wake-ups, sporadic releases, random execution times)
    /// give the same per-task results under every order of their resources.
    #[test]
    fn runs_do_not_depend_on_the_order_of_resources(index in 0u64..100_000, rotate in 1usize..3) {
        let set = campaign_set(5, index);
        let m = set.plan.resources;
        let perm: Vec<usize> = (0..m).map(|r| (r + rotate) % m).collect();
        let mut reversed: Vec<usize> = (0..m).collect();
        reversed.reverse();
        let config = SimConfig { horizon: Horizon::Jobs(20), execution: set.config.execution, ..set.config };
        let base = per_task(&simulate(&set.plan, &config).unwrap());
        for p in [perm, reversed] {
            let other = per_task(&simulate(&permuted(&set.plan, &p), &config).unwrap());
            prop_assert_eq!(&base, &other, "resources permuted {:?}", p);
        }
    }
}
