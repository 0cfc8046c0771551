//! The mode-change campaign: random load/unload sequences at random instants, run under the
//! drain-then-switch protocol (docs/analysis.md, section 5), with every job checked against the
//! bound of the mode it was released in, every switch against the drain bounds, and every unload
//! against Lemma 5 (no remaining bound grows).
//!
//! Set `index` of a campaign with seed `seed` is [`mode_change_set`]`(seed, index)`.

use super::generate::{charge_wakeups, random_execution, random_task};
use crate::engine::{Releases, SimConfig};
use crate::mode_change::{simulate_mode_changes, ModeChange};
use lalarand_analysis::analyze;
use lalarand_model::{ExecutionPlan, PlannedTask, Time};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Violations kept in full in a report (all are counted).
const KEPT_VIOLATIONS: usize = 20;
/// The longest period of a set, in its scale's units (`PERIODS`' largest).
const MAX_PERIOD_UNITS: u64 = 60;

/// What kind of change a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ChangeKind {
    Load,
    /// A load whose new allocation also moves some running tasks' layers.
    LoadMoving,
    Unload,
}

/// One generated sequence: the initial mode, the admitted changes, how to run them.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeChangeSet {
    pub initial: ExecutionPlan,
    pub changes: Vec<ModeChange>,
    /// Per change, what it was.
    pub kinds: Vec<ChangeKind>,
    /// Loads the analysis could not prove: refused, nothing changed.
    pub rejected: u64,
    pub config: SimConfig,
    /// The last mode releases jobs before this.
    pub end: Time,
}

/// Generates set `index` of the mode-change campaign seeded `seed`.
///
/// 1–3 resources; coarse integer times in half the sets (events coincide), zero-cost layers in
/// a fifth, wake-up overheads in half, sporadic releases in half, execution below the WCET in
/// half. An initial mode of 0–4 tasks, then 1–10 requests, each after a gap of 0 (a fifth of
/// them: same-instant requests) up to two longest periods (so requests often arrive during a
/// drain and are queued): a load (55%, always when no task runs) of a random task, ranked
/// deadline-monotonically (80%) or at a random rank, whose new mode also moves the layers of up to
/// two running tasks in 30% of loads; or an unload of a random task. A load is admitted only if
/// the analysis proves the new mode.
pub fn mode_change_set(seed: u64, index: u64) -> ModeChangeSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    let resources = rng.gen_range(1..=3usize);
    let scale: u64 = if rng.gen_bool(0.5) { 10 } else { 10_000 };
    let offsets = rng.gen_bool(0.5);
    let zero_layers = rng.gen_bool(0.2);
    let wakeup: Vec<Time> =
        (0..resources).map(|_| if rng.gen_bool(0.5) { rng.gen_range(0..=scale * 2) } else { 0 }).collect();
    let execution = random_execution(&mut rng);
    let releases =
        if rng.gen_bool(0.5) { Releases::Sporadic { max_extra: rng.gen_range(0.05..1.0) } } else { Releases::Periodic };
    let sim_seed: u64 = rng.gen();
    let new_task = |rng: &mut ChaCha8Rng| {
        let u = rng.gen_range(0.05..0.45) * resources as f64;
        let mut t = random_task(rng, resources, scale, u, offsets, zero_layers);
        charge_wakeups(&mut t, &wakeup);
        t
    };

    let mut tasks: Vec<PlannedTask> = Vec::new();
    for _ in 0..rng.gen_range(0..=4) {
        let t = new_task(&mut rng);
        let rank = deadline_rank(&tasks, &t);
        let candidate = with_task(&tasks, t, rank);
        if proven(resources, &candidate) {
            tasks = candidate;
        }
    }
    let initial = ExecutionPlan { resources, tasks: tasks.clone() };
    let (mut changes, mut kinds, mut rejected) = (Vec::new(), Vec::new(), 0);
    let mut at: Time = 0;
    for _ in 0..rng.gen_range(1..=10) {
        at += if rng.gen_bool(0.2) { 0 } else { rng.gen_range(0..=2 * MAX_PERIOD_UNITS * scale) };
        if tasks.is_empty() || rng.gen_bool(0.55) {
            let t = new_task(&mut rng);
            let rank =
                if rng.gen_bool(0.8) { deadline_rank(&tasks, &t) } else { rng.gen_range(0..=tasks.len() as u32) };
            let mut candidate = with_task(&tasks, t, rank);
            let mut kind = ChangeKind::Load;
            if candidate.len() > 1 && rng.gen_bool(0.3) {
                kind = ChangeKind::LoadMoving;
                for _ in 0..rng.gen_range(1..=2) {
                    let i = rng.gen_range(0..candidate.len() - 1);
                    move_layers(&mut rng, &mut candidate[i], resources, &wakeup);
                }
            }
            if proven(resources, &candidate) {
                let mut continues: Vec<Option<usize>> = (0..tasks.len()).map(Some).collect();
                continues.push(None);
                tasks = candidate;
                changes.push(ModeChange {
                    requested: at,
                    plan: ExecutionPlan { resources, tasks: tasks.clone() },
                    continues,
                });
                kinds.push(kind);
            } else {
                rejected += 1;
            }
        } else {
            let victim = rng.gen_range(0..tasks.len());
            let removed = tasks.remove(victim);
            for t in &mut tasks {
                if t.priority > removed.priority {
                    t.priority -= 1;
                }
            }
            let continues = (0..tasks.len()).map(|i| Some(if i < victim { i } else { i + 1 })).collect();
            changes.push(ModeChange {
                requested: at,
                plan: ExecutionPlan { resources, tasks: tasks.clone() },
                continues,
            });
            kinds.push(ChangeKind::Unload);
        }
    }
    let config = SimConfig { execution, releases, seed: sim_seed, ..SimConfig::default() };
    ModeChangeSet { initial, changes, kinds, rejected, config, end: at + 2 * MAX_PERIOD_UNITS * scale }
}

/// The rank deadline-monotonic order gives `task` among `tasks` (ties: below them).
fn deadline_rank(tasks: &[PlannedTask], task: &PlannedTask) -> u32 {
    tasks.iter().filter(|t| t.deadline <= task.deadline).count() as u32
}

/// `tasks` with `task` appended at priority `rank`; the others keep their order.
fn with_task(tasks: &[PlannedTask], mut task: PlannedTask, rank: u32) -> Vec<PlannedTask> {
    let mut out = tasks.to_vec();
    for t in &mut out {
        if t.priority >= rank {
            t.priority += 1;
        }
    }
    task.priority = rank;
    out.push(task);
    out
}

/// A re-allocation of a running task: about half its layers change resource (costs kept, the
/// wake-up charges recomputed for the new segments).
fn move_layers(rng: &mut ChaCha8Rng, task: &mut PlannedTask, resources: usize, wakeup: &[Time]) {
    for l in &mut task.layers {
        if rng.gen_bool(0.5) {
            l.resource = rng.gen_range(0..resources);
        }
    }
    charge_wakeups(task, wakeup);
}

fn proven(resources: usize, tasks: &[PlannedTask]) -> bool {
    analyze(&ExecutionPlan { resources, tasks: tasks.to_vec() }).schedulable()
}

/// A broken promise: what the campaign exists to find.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeViolation {
    /// Replay with [`mode_change_set`]`(seed, index)`.
    pub seed: u64,
    pub index: u64,
    pub what: String,
}

/// Totals of a campaign.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ModeChangeReport {
    pub seed: u64,
    pub sets: u64,
    /// Changes requested: admitted plus rejected.
    pub requests: u64,
    /// Admitted changes the simulator ran.
    pub changes: u64,
    pub loads: u64,
    pub moving_loads: u64,
    pub unloads: u64,
    pub rejected_loads: u64,
    /// Changes that waited for an earlier one to drain.
    pub queued: u64,
    /// Changes with old-mode jobs in flight at their start.
    pub with_jobs_in_flight: u64,
    pub jobs_checked: u64,
    /// Old-mode jobs still running when a change started.
    pub jobs_in_flight_at_a_change: u64,
    pub violation_count: u64,
    pub violations: Vec<ModeViolation>,
    /// Largest response / bound over jobs with a positive bound.
    pub max_response_ratio: f64,
    /// Largest (switch - start) / drain bound over changes with a positive drain bound.
    pub max_drain_ratio: f64,
    #[serde(serialize_with = "super::seconds")]
    pub wall: Duration,
}

impl ModeChangeReport {
    fn merge(mut self, other: Self) -> Self {
        self.sets += other.sets;
        self.requests += other.requests;
        self.changes += other.changes;
        self.loads += other.loads;
        self.moving_loads += other.moving_loads;
        self.unloads += other.unloads;
        self.rejected_loads += other.rejected_loads;
        self.queued += other.queued;
        self.with_jobs_in_flight += other.with_jobs_in_flight;
        self.jobs_checked += other.jobs_checked;
        self.jobs_in_flight_at_a_change += other.jobs_in_flight_at_a_change;
        self.violation_count += other.violation_count;
        self.violations.extend(other.violations);
        self.violations.sort_by_key(|v| v.index);
        self.violations.truncate(KEPT_VIOLATIONS);
        self.max_response_ratio = self.max_response_ratio.max(other.max_response_ratio);
        self.max_drain_ratio = self.max_drain_ratio.max(other.max_drain_ratio);
        self
    }
}

impl std::fmt::Display for ModeChangeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "mode-change campaign, seed {}: {} sets, {} requests", self.seed, self.sets, self.requests)?;
        writeln!(
            f,
            "  changes run: {} ({} loads, {} of them moving running layers, {} unloads); loads rejected: {}",
            self.changes, self.loads, self.moving_loads, self.unloads, self.rejected_loads
        )?;
        writeln!(
            f,
            "  changes queued behind a drain: {}; with old jobs in flight: {} ({} jobs)",
            self.queued, self.with_jobs_in_flight, self.jobs_in_flight_at_a_change
        )?;
        writeln!(f, "  jobs checked against the bound of their mode: {}", self.jobs_checked)?;
        writeln!(f, "  max response / bound: {:.4}", self.max_response_ratio)?;
        writeln!(f, "  max drain / drain bound: {:.4}", self.max_drain_ratio)?;
        writeln!(f, "  violations: {}", self.violation_count)?;
        for v in &self.violations {
            writeln!(f, "    set {} (seed {}): {}", v.index, v.seed, v.what)?;
        }
        write!(f, "  wall time: {:.1} s", self.wall.as_secs_f64())
    }
}

/// Runs set `index` and checks it; the report counts one set.
pub fn check_mode_change_set(seed: u64, index: u64) -> ModeChangeReport {
    let set = mode_change_set(seed, index);
    let mut report = ModeChangeReport {
        seed,
        sets: 1,
        requests: set.changes.len() as u64 + set.rejected,
        changes: set.changes.len() as u64,
        rejected_loads: set.rejected,
        ..Default::default()
    };
    let mut violations = Vec::new();
    for kind in &set.kinds {
        match kind {
            ChangeKind::Load => report.loads += 1,
            ChangeKind::LoadMoving => {
                report.loads += 1;
                report.moving_loads += 1;
            }
            ChangeKind::Unload => report.unloads += 1,
        }
    }
    // Lemma 5: an unload never raises a remaining task's bound.
    let plans: Vec<&ExecutionPlan> = std::iter::once(&set.initial).chain(set.changes.iter().map(|c| &c.plan)).collect();
    let analyses: Vec<_> = plans.iter().map(|p| analyze(p)).collect();
    for (k, change) in set.changes.iter().enumerate() {
        if set.kinds[k] != ChangeKind::Unload {
            continue;
        }
        for (j, from) in change.continues.iter().enumerate() {
            let (old, new) =
                (analyses[k].tasks[from.expect("unloads keep the rest")].bound, analyses[k + 1].tasks[j].bound);
            if new.is_none() || new > old {
                violations.push(format!("change {k} (unload): task {j}'s bound went from {old:?} to {new:?}"));
            }
        }
    }
    match simulate_mode_changes(&set.initial, &set.changes, &set.config, set.end) {
        Err(e) => violations.push(format!("the run failed: {e}")),
        Ok(run) => {
            report.jobs_checked = run.jobs.len() as u64;
            for j in &run.jobs {
                if !j.within_bound() {
                    violations.push(format!(
                        "mode {} task {} released at {}: finished {:?}, bound {}",
                        j.mode, j.task, j.release, j.finish, j.bound
                    ));
                }
                if let (Some(f), true) = (j.finish, j.bound > 0) {
                    report.max_response_ratio = report.max_response_ratio.max((f - j.release) as f64 / j.bound as f64);
                }
            }
            for (k, c) in run.changes.iter().enumerate() {
                report.queued += u64::from(c.started > c.requested);
                report.with_jobs_in_flight += u64::from(c.in_flight > 0);
                report.jobs_in_flight_at_a_change += c.in_flight as u64;
                if !c.within_bounds() {
                    violations.push(format!(
                        "change {k}: started {}, switched {}, drain bound {}, due by {}",
                        c.started, c.switched, c.drain_bound, c.drain_ends_by
                    ));
                }
                if c.drain_bound > 0 {
                    let ratio = (c.switched - c.started) as f64 / c.drain_bound as f64;
                    report.max_drain_ratio = report.max_drain_ratio.max(ratio);
                }
            }
        }
    }
    report.violation_count = violations.len() as u64;
    report.violations = violations.into_iter().map(|what| ModeViolation { seed, index, what }).collect();
    report.violations.truncate(KEPT_VIOLATIONS);
    report
}

/// Runs `sets` generated sequences (see [`mode_change_set`]) on all cores and checks them.
pub fn mode_change_campaign(sets: u64, seed: u64, progress: bool) -> ModeChangeReport {
    let started = Instant::now();
    let bar = super::progress_bar(sets, progress);
    let mut report = (0..sets)
        .into_par_iter()
        .map(|index| {
            let r = check_mode_change_set(seed, index);
            bar.inc(1);
            r
        })
        .reduce(|| ModeChangeReport { seed, ..Default::default() }, ModeChangeReport::merge);
    bar.finish_and_clear();
    report.wall = started.elapsed();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_reproducible_and_exercise_every_kind_of_change() {
        assert_eq!(mode_change_set(3, 5), mode_change_set(3, 5));
        let r =
            (0..300).map(|i| check_mode_change_set(9, i)).fold(ModeChangeReport::default(), ModeChangeReport::merge);
        assert_eq!(r.violation_count, 0, "{r}");
        for (what, n) in [
            ("loads", r.loads),
            ("moving loads", r.moving_loads),
            ("unloads", r.unloads),
            ("rejected loads", r.rejected_loads),
            ("queued changes", r.queued),
            ("changes with jobs in flight", r.with_jobs_in_flight),
        ] {
            assert!(n > 0, "no {what}: {r}");
        }
        assert!(r.max_drain_ratio > 0.0 && r.max_drain_ratio <= 1.0);
    }
}
