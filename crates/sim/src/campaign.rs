//! The soundness campaign: random plans built to stress the analysis, simulated, and every
//! task the analysis deems schedulable checked against its bound.
//!
//! Set `index` of a campaign with seed `seed` is [`campaign_set`]`(seed, index)`, so any
//! offending set can be replayed and [`minimize`]d alone.

use crate::engine::{Horizon, SimConfig, Simulator};
use crate::exec::ExecutionTimeModel;
use lalarand_analysis::analyze;
use lalarand_model::{ExecutionPlan, Mode, PlannedLayer, PlannedTask, Time};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Period choices (times a per-set scale): their LCM is 120, so hyperperiods stay short and
/// each run covers several of them.
const PERIODS: [u64; 8] = [10, 12, 15, 20, 24, 30, 40, 60];
/// Hyperperiods simulated per set (after the largest offset).
const HYPERPERIODS: u64 = 10;
/// Violations kept in full in a report (all are counted).
const KEPT_VIOLATIONS: usize = 20;

/// One generated set: what to simulate and how.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignSet {
    pub plan: ExecutionPlan,
    pub config: SimConfig,
}

/// A task deemed schedulable whose observed response exceeded its bound.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// Replay with [`campaign_set`]`(seed, index)`.
    pub seed: u64,
    pub index: u64,
    pub task: usize,
    pub bound: Time,
    /// Largest response observed (an unfinished job counts by its age at the end).
    pub observed: Time,
    #[serde(skip)]
    pub set: CampaignSet,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct CampaignReport {
    pub seed: u64,
    pub sets: u64,
    pub tasks: u64,
    pub schedulable_tasks: u64,
    /// Jobs of schedulable tasks whose response was compared with the bound.
    pub jobs_checked: u64,
    /// Schedulable tasks whose largest observed response equals the bound (the bound is exact).
    pub tight_tasks: u64,
    pub violation_count: u64,
    /// The first [`KEPT_VIOLATIONS`] by set index.
    pub violations: Vec<Violation>,
    /// Largest observed response / bound over schedulable tasks with a positive bound, and the
    /// set it came from.
    pub max_ratio: f64,
    pub max_ratio_set: Option<u64>,
    #[serde(serialize_with = "seconds")]
    pub wall: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl CampaignReport {
    fn merge(mut self, other: Self) -> Self {
        self.sets += other.sets;
        self.tasks += other.tasks;
        self.schedulable_tasks += other.schedulable_tasks;
        self.jobs_checked += other.jobs_checked;
        self.tight_tasks += other.tight_tasks;
        self.violation_count += other.violation_count;
        self.violations.extend(other.violations);
        self.violations.sort_by_key(|v| (v.index, v.task));
        self.violations.truncate(KEPT_VIOLATIONS);
        // Ties go to the smaller set index, so the report does not depend on thread timing.
        let earlier = |a: Option<u64>, than: Option<u64>| a.is_some() && (than.is_none() || a < than);
        if other.max_ratio > self.max_ratio
            || (other.max_ratio == self.max_ratio && earlier(other.max_ratio_set, self.max_ratio_set))
        {
            self.max_ratio = other.max_ratio;
            self.max_ratio_set = other.max_ratio_set;
        }
        self
    }
}

impl std::fmt::Display for CampaignReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "soundness campaign, seed {}: {} sets, {} tasks", self.seed, self.sets, self.tasks)?;
        let share = 100.0 * self.schedulable_tasks as f64 / self.tasks.max(1) as f64;
        writeln!(f, "  deemed schedulable: {} tasks ({share:.1}%)", self.schedulable_tasks)?;
        writeln!(f, "  jobs checked against their bound: {}", self.jobs_checked)?;
        writeln!(f, "  tasks whose bound was reached exactly: {}", self.tight_tasks)?;
        let at = self.max_ratio_set.map_or(String::new(), |i| format!(" (set {i})"));
        writeln!(f, "  max observed response / bound: {:.4}{at}", self.max_ratio)?;
        writeln!(f, "  violations: {}", self.violation_count)?;
        for v in &self.violations {
            writeln!(
                f,
                "    set {} (seed {}), task {}: observed {} > bound {}",
                v.index, v.seed, v.task, v.observed, v.bound
            )?;
        }
        write!(f, "  wall time: {:.1} s", self.wall.as_secs_f64())
    }
}

/// Generates set `index` of the campaign seeded `seed`.
///
/// Shapes: 1..=3 resources, 1..=6 tasks of 1..=8 layers; per-resource utilization drawn so
/// that about half the tasks come out schedulable; chains that hop resources or stay on one
/// for a while; one long (blocking) layer in some tasks; constrained deadlines; deadline- or
/// random priorities; half the sets with random offsets and half below the WCET; a fifth with
/// some zero-cost layers. Half the sets use coarse integer times, so that releases,
/// completions and fixed points coincide exactly: the boundary cases an analysis gets wrong.
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
        let period = PERIODS.choose(&mut rng).expect("non-empty") * scale;
        let deadline = if rng.gen_bool(0.4) { period } else { (period as f64 * rng.gen_range(0.5..1.0)) as Time };
        let offset = if offsets { rng.gen_range(0..period) } else { 0 };
        let layers = chain(&mut rng, resources, ((u * period as f64) as Time).max(1), zero_layers);
        tasks.push(PlannedTask { period, deadline: deadline.max(1), offset, priority: 0, layers });
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
    let execution = match rng.gen_range(0..4) {
        0 | 1 => ExecutionTimeModel::Wcet,
        2 => ExecutionTimeModel::Uniform { min_fraction: rng.gen_range(0.1..0.9) },
        _ => ExecutionTimeModel::TwoPoint { min_fraction: rng.gen_range(0.1..0.9), wcet_probability: 0.5 },
    };
    let plan = ExecutionPlan { resources, tasks };
    let max_offset = plan.tasks.iter().map(|t| t.offset).max().unwrap_or(0);
    let hyper = crate::engine::hyperperiod(&plan).expect("periods divide 120 * scale");
    let config = SimConfig {
        horizon: Horizon::Until(max_offset + HYPERPERIODS * hyper),
        execution,
        seed: rng.gen(),
        record_jobs: false,
        record_trace: false,
    };
    CampaignSet { plan, config }
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
            PlannedLayer { resource, mode: Mode::Gpu, wcet }
        })
        .collect()
}

/// Outcome of checking one set.
struct Check {
    tasks: u64,
    schedulable: u64,
    jobs: u64,
    tight: u64,
    /// (task, bound, observed) of each violation.
    violations: Vec<(usize, Time, Time)>,
    max_ratio: f64,
}

fn check(sim: &mut Simulator, set: &CampaignSet) -> Check {
    let analysis = analyze(&set.plan);
    let mut out = Check {
        tasks: set.plan.tasks.len() as u64,
        schedulable: 0,
        jobs: 0,
        tight: 0,
        violations: vec![],
        max_ratio: 0.0,
    };
    if !analysis.tasks.iter().any(|t| t.schedulable()) {
        return out;
    }
    let run = sim.run(&set.plan, &set.config).expect("generated plans are valid");
    for (i, (bound, stats)) in analysis.tasks.iter().zip(&run.tasks).enumerate() {
        let Some(b) = bound.bound else { continue };
        out.schedulable += 1;
        out.jobs += stats.jobs;
        if b > 0 {
            out.max_ratio = out.max_ratio.max(stats.observed_max() as f64 / b as f64);
        }
        out.tight += (stats.observed_max() == b) as u64;
        if stats.exceeds(b) {
            out.violations.push((i, b, stats.observed_max()));
        }
    }
    out
}

/// The violations of `set`, if any: (task, bound, observed).
pub fn violations(set: &CampaignSet) -> Vec<(usize, Time, Time)> {
    check(&mut Simulator::default(), set).violations
}

/// Simulates `sets` generated sets (see [`campaign_set`]) on all cores and checks every
/// schedulable task's observed responses against its bound.
pub fn soundness_campaign(sets: u64, seed: u64, progress: bool) -> CampaignReport {
    let started = Instant::now();
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(sets);
        let style = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} sets, {per_sec}, eta {eta}")
            .expect("valid template");
        bar.set_style(style);
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut report = (0..sets)
        .into_par_iter()
        .map_init(Simulator::default, |sim, index| {
            let set = campaign_set(seed, index);
            let c = check(sim, &set);
            bar.inc(1);
            CampaignReport {
                seed,
                sets: 1,
                tasks: c.tasks,
                schedulable_tasks: c.schedulable,
                jobs_checked: c.jobs,
                tight_tasks: c.tight,
                violation_count: c.violations.len() as u64,
                violations: c
                    .violations
                    .iter()
                    .map(|&(task, bound, observed)| Violation { seed, index, task, bound, observed, set: set.clone() })
                    .collect(),
                max_ratio: c.max_ratio,
                max_ratio_set: (c.max_ratio > 0.0).then_some(index),
                wall: Duration::ZERO,
            }
        })
        .reduce(|| CampaignReport { seed, ..Default::default() }, CampaignReport::merge);
    bar.finish_and_clear();
    report.wall = started.elapsed();
    report
}

/// Greedily shrinks a violating set (drops tasks and layers, zeroes offsets, runs at the WCET,
/// shortens layers) while it keeps violating; returns the set unchanged if it does not.
pub fn minimize(set: &CampaignSet) -> CampaignSet {
    let mut best = set.clone();
    if violations(&best).is_empty() {
        return best;
    }
    loop {
        let found = candidates(&best).into_iter().find(|c| !violations(c).is_empty());
        match found {
            Some(smaller) => best = smaller,
            None => return best,
        }
    }
}

/// One-step simplifications of `set`, simplest first.
fn candidates(set: &CampaignSet) -> Vec<CampaignSet> {
    let mut out = Vec::new();
    let with = |f: &dyn Fn(&mut CampaignSet)| {
        let mut c = set.clone();
        f(&mut c);
        c
    };
    if set.config.execution != ExecutionTimeModel::Wcet {
        out.push(with(&|c| c.config.execution = ExecutionTimeModel::Wcet));
    }
    let tasks = set.plan.tasks.len();
    for i in 0..tasks {
        if tasks > 1 {
            out.push(with(&|c| {
                c.plan.tasks.remove(i);
            }));
        }
        if set.plan.tasks[i].offset > 0 {
            out.push(with(&|c| c.plan.tasks[i].offset = 0));
        }
        for j in 0..set.plan.tasks[i].layers.len() {
            if set.plan.tasks[i].layers.len() > 1 {
                out.push(with(&|c| {
                    c.plan.tasks[i].layers.remove(j);
                }));
            }
            let w = set.plan.tasks[i].layers[j].wcet;
            for smaller in [w / 2, w - 1] {
                if smaller > 0 && smaller < w {
                    out.push(with(&|c| c.plan.tasks[i].layers[j].wcet = smaller));
                }
            }
        }
    }
    // Keep the horizon covering the (possibly changed) hyperperiod.
    for c in &mut out {
        let max_offset = c.plan.tasks.iter().map(|t| t.offset).max().unwrap_or(0);
        if let Some(h) = crate::engine::hyperperiod(&c.plan) {
            c.config.horizon = Horizon::Until(max_offset + HYPERPERIODS * h);
        }
    }
    out
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
    }

    #[test]
    fn small_campaign_reports_consistent_totals() {
        let a = soundness_campaign(300, 11, false);
        let b = soundness_campaign(300, 11, false);
        assert_eq!(a.sets, 300);
        assert_eq!((a.tasks, a.schedulable_tasks, a.jobs_checked), (b.tasks, b.schedulable_tasks, b.jobs_checked));
        assert_eq!((a.max_ratio, a.max_ratio_set), (b.max_ratio, b.max_ratio_set));
        assert!(a.schedulable_tasks > 0 && a.schedulable_tasks < a.tasks);
        assert!(a.jobs_checked >= a.schedulable_tasks);
    }
}
