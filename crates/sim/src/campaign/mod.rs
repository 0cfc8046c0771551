//! The soundness campaign: random plans built to stress the analysis, simulated, and every
//! task the analysis deems schedulable checked against its bound.
//!
//! Set `index` of a campaign with seed `seed` is [`campaign_set`]`(seed, index)`, so any
//! offending set can be replayed and [`minimize`]d alone.

mod generate;
mod minimize;
pub mod mode_changes;

pub use generate::campaign_set;
pub use minimize::{minimize, shrink};
pub use mode_changes::{mode_change_campaign, mode_change_set, ModeChangeReport, ModeChangeSet};

use crate::engine::{SimConfig, Simulator};
use lalarand_analysis::analyze;
use lalarand_model::{ExecutionPlan, Time};
use rayon::prelude::*;
use serde::Serialize;
use std::time::{Duration, Instant};

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
    /// Sets whose plans charge a wake-up overhead somewhere (the simulator delays a parked
    /// worker by up to it).
    pub wakeup_sets: u64,
    /// Sets released sporadically rather than periodically.
    pub sporadic_sets: u64,
    pub tasks: u64,
    pub schedulable_tasks: u64,
    /// Jobs of schedulable tasks whose response was compared with the bound.
    pub jobs_checked: u64,
    /// Schedulable tasks whose largest observed response equals the bound (the bound is exact).
    pub tight_tasks: u64,
    pub violation_count: u64,
    /// The first `KEPT_VIOLATIONS` by set index.
    pub violations: Vec<Violation>,
    /// Largest observed response / bound over schedulable tasks with a positive bound, and the
    /// set it came from.
    pub max_ratio: f64,
    pub max_ratio_set: Option<u64>,
    #[serde(serialize_with = "seconds")]
    pub wall: Duration,
}

/// A wall time as seconds in the reports' JSON.
pub(crate) fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl CampaignReport {
    fn merge(mut self, other: Self) -> Self {
        self.sets += other.sets;
        self.wakeup_sets += other.wakeup_sets;
        self.sporadic_sets += other.sporadic_sets;
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
        writeln!(
            f,
            "  sets with wake-up overheads: {}; with sporadic releases: {}",
            self.wakeup_sets, self.sporadic_sets
        )?;
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

/// A campaign's progress bar over `sets` sets (hidden unless `progress`).
pub(crate) fn progress_bar(sets: u64, progress: bool) -> indicatif::ProgressBar {
    if !progress {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(sets);
    let style = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} sets, {per_sec}, eta {eta}")
        .expect("valid template");
    bar.set_style(style);
    bar
}

/// Simulates `sets` generated sets (see [`campaign_set`]) on all cores and checks every
/// schedulable task's observed responses against its bound.
pub fn soundness_campaign(sets: u64, seed: u64, progress: bool) -> CampaignReport {
    let started = Instant::now();
    let bar = progress_bar(sets, progress);
    let mut report = (0..sets)
        .into_par_iter()
        .map_init(Simulator::default, |sim, index| {
            let set = campaign_set(seed, index);
            let c = check(sim, &set);
            bar.inc(1);
            CampaignReport {
                seed,
                sets: 1,
                wakeup_sets: set.plan.tasks.iter().flat_map(|t| &t.layers).any(|l| l.wakeup > 0) as u64,
                sporadic_sets: matches!(set.config.releases, crate::engine::Releases::Sporadic { .. }) as u64,
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

#[cfg(test)]
mod tests {
    use super::*;

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
