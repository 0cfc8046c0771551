//! Random plans shaped to stress the analysis.

use super::CampaignSet;
use crate::engine::{Horizon, Releases, SimConfig};
use crate::exec::ExecutionTimeModel;
use lalarand_model::{ExecutionPlan, Mode, PlannedLayer, PlannedTask, Time};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Period choices (times a per-set scale): their LCM is 120, so hyperperiods stay short and
/// each run covers several of them.
const PERIODS: [u64; 8] = [10, 12, 15, 20, 24, 30, 40, 60];
/// Hyperperiods simulated per set (after the largest offset).
pub(super) const HYPERPERIODS: u64 = 10;
/// Generates set `index` of the campaign seeded `seed`.
///
/// Shapes: 1..=3 resources, 1..=6 tasks of 1..=8 layers; per-resource utilization drawn so
/// that about half the tasks come out schedulable; chains that hop resources or stay on one
/// for a while; one long (blocking) layer in some tasks; constrained deadlines; deadline- or
/// random priorities; half the sets with random offsets and half below the WCET; a fifth with
/// some zero-cost layers. Half the sets use coarse integer times, so that releases,
/// completions and fixed points coincide exactly: the boundary cases an analysis gets wrong.
/// Half the sets charge a wake-up overhead per resource (up to 2 periods' scale units, 0 on
/// some resources) to every layer that starts a segment, as the model does; the simulator then
/// delays a parked worker's start by up to it. Half release jobs sporadically (gaps of `T`
/// plus up to `max_extra * T`, [`Releases::Sporadic`]).
pub fn campaign_set(seed: u64, index: u64) -> CampaignSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    let resources = rng.gen_range(1..=3usize);
    let n = rng.gen_range(1..=6usize);
    let coarse = rng.gen_bool(0.5);
    let scale: u64 = if coarse { 10 } else { 10_000 };
    let offsets = rng.gen_bool(0.5);
    // Profiles allow 0 us layers (reshapes, flattens); with no dispatch overhead they cost 0.
    let zero_layers = rng.gen_bool(0.2);
    // Total utilization over all resources, split among tasks with UUniFast.
    let total_u = resources as f64 * rng.gen_range(0.15..0.75);
    let shares = uunifast(&mut rng, n, total_u);
    let mut tasks = Vec::with_capacity(n);
    for &u in &shares {
        tasks.push(random_task(&mut rng, resources, scale, u, offsets, zero_layers));
    }
    let mut order: Vec<usize> = (0..n).collect();
    if rng.gen_bool(0.2) {
        order.shuffle(&mut rng);
    } else {
        order.sort_by_key(|&i| (tasks[i].deadline, i));
    }
    for (rank, &i) in order.iter().enumerate() {
        tasks[i].priority = rank as u32;
    }
    let execution = random_execution(&mut rng);
    let mut plan = ExecutionPlan { resources, tasks };
    let sim_seed: u64 = rng.gen();
    // Drawn after everything above, so the rest of a set does not depend on these.
    if rng.gen_bool(0.5) {
        // The runtime's wake-up overhead, per resource (0 on some): charged to every layer
        // that starts a segment, as lalarand_model::plan charges it.
        let wakeup: Vec<Time> = (0..resources).map(|_| rng.gen_range(0..=scale * 2)).collect();
        for t in &mut plan.tasks {
            charge_wakeups(t, &wakeup);
        }
    }
    let releases =
        if rng.gen_bool(0.5) { Releases::Sporadic { max_extra: rng.gen_range(0.05..1.0) } } else { Releases::Periodic };
    let max_offset = plan.tasks.iter().map(|t| t.offset).max().unwrap_or(0);
    let hyper = plan.hyperperiod().expect("periods divide 120 * scale");
    let config = SimConfig {
        horizon: Horizon::Until(max_offset + HYPERPERIODS * hyper),
        execution,
        releases,
        seed: sim_seed,
        record_jobs: false,
        record_trace: false,
    };
    CampaignSet { plan, config }
}

/// A task of utilization about `u`: a period from [`PERIODS`] times `scale`, a deadline in
/// `[T/2, T]` (`T` in 40% of tasks), an offset below the period if `offsets`, and a random
/// [`chain`]; priority 0 (the caller ranks).
pub(super) fn random_task(
    rng: &mut ChaCha8Rng,
    resources: usize,
    scale: u64,
    u: f64,
    offsets: bool,
    zero_layers: bool,
) -> PlannedTask {
    let period = PERIODS.choose(rng).expect("non-empty") * scale;
    let deadline = if rng.gen_bool(0.4) { period } else { (period as f64 * rng.gen_range(0.5..1.0)) as Time };
    let offset = if offsets { rng.gen_range(0..period) } else { 0 };
    let layers = chain(rng, resources, ((u * period as f64) as Time).max(1), zero_layers);
    PlannedTask { period, deadline: deadline.max(1), offset, priority: 0, layers }
}

/// WCET runs in half the sets, uniform or two-point draws below it in the rest.
pub(super) fn random_execution(rng: &mut ChaCha8Rng) -> ExecutionTimeModel {
    match rng.gen_range(0..4) {
        0 | 1 => ExecutionTimeModel::Wcet,
        2 => ExecutionTimeModel::Uniform { min_fraction: rng.gen_range(0.1..0.9) },
        _ => ExecutionTimeModel::TwoPoint { min_fraction: rng.gen_range(0.1..0.9), wcet_probability: 0.5 },
    }
}

/// Charges the runtime's wake-up overhead of each resource (`wakeup[r]`) to every layer of
/// `task` that starts a segment, as `lalarand_model::plan` charges it; a layer charged before
/// is charged afresh, so a task whose layers moved can be charged again.
pub(super) fn charge_wakeups(task: &mut PlannedTask, wakeup: &[Time]) {
    for j in 0..task.layers.len() {
        let starts_segment = j == 0 || task.layers[j - 1].resource != task.layers[j].resource;
        let l = &mut task.layers[j];
        l.wcet -= l.wakeup;
        l.wakeup = if starts_segment { wakeup[l.resource] } else { 0 };
        l.wcet += l.wakeup;
    }
}

/// `n` utilizations summing to `total` (Bini and Buttazzo's UUniFast).
fn uunifast(rng: &mut ChaCha8Rng, n: usize, total: f64) -> Vec<f64> {
    let mut left = total;
    let mut out = Vec::with_capacity(n);
    for i in 1..n {
        let next = left * rng.gen::<f64>().powf(1.0 / (n - i) as f64);
        out.push(left - next);
        left = next;
    }
    out.push(left);
    out
}

/// A chain of 1..=8 layers costing about `total` in all; some free if `zero_layers`.
fn chain(rng: &mut ChaCha8Rng, resources: usize, total: Time, zero_layers: bool) -> Vec<PlannedLayer> {
    let len = rng.gen_range(1..=8usize);
    let mut weights: Vec<f64> = (0..len).map(|_| rng.gen_range(0.2..1.0)).collect();
    if len > 1 && rng.gen_bool(0.4) {
        // One long non-preemptive layer: the blocking others must account for.
        let k = rng.gen_range(0..len);
        weights[k] *= 3.0 * len as f64;
    }
    let sum: f64 = weights.iter().sum();
    let stay = rng.gen_range(0.0..0.8);
    let mut resource = rng.gen_range(0..resources);
    weights
        .iter()
        .map(|w| {
            if !rng.gen_bool(stay) {
                resource = rng.gen_range(0..resources);
            }
            let wcet =
                if zero_layers && rng.gen_bool(0.2) { 0 } else { ((w / sum * total as f64).round() as Time).max(1) };
            PlannedLayer { resource, mode: Mode::Gpu, wcet, wakeup: 0 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_reproducible_and_varied() {
        assert_eq!(campaign_set(7, 3), campaign_set(7, 3));
        assert_ne!(campaign_set(7, 3), campaign_set(7, 4));
        assert_ne!(campaign_set(7, 3), campaign_set(8, 3));
        let mut zero = false;
        for i in 0..200 {
            let s = campaign_set(1, i);
            zero |= s.plan.tasks.iter().flat_map(|t| &t.layers).any(|l| l.wcet == 0);
            assert!((1..=3).contains(&s.plan.resources));
            for t in &s.plan.tasks {
                assert!(t.deadline <= t.period && t.offset < t.period);
                assert!((1..=8).contains(&t.layers.len()));
                assert!(t.layers.iter().all(|l| l.resource < s.plan.resources));
            }
        }
        assert!(zero, "some sets have zero-cost layers");
        let sets: Vec<_> = (0..200).map(|i| campaign_set(1, i)).collect();
        assert!(sets.iter().any(|s| s.plan.tasks.iter().flat_map(|t| &t.layers).any(|l| l.wakeup > 0)));
        assert!(sets.iter().any(|s| matches!(s.config.releases, Releases::Sporadic { .. })));
        assert!(sets.iter().flat_map(|s| &s.plan.tasks).flat_map(|t| &t.layers).all(|l| l.wakeup <= l.wcet));
    }
}
