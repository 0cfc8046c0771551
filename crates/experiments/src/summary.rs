//! The sweep's totals and the paper's headline comparisons.

use crate::result::SweepResult;
use lalarand_alloc::Policy;
use serde::Serialize;
use std::fmt;

/// LaLaRAND (RTSS 2021): schedulable task sets vs DART, percent more.
pub const PAPER_VS_DART_PERCENT: f64 = 56.0;
/// LaLaRAND (RTSS 2021): schedulable task sets vs the vanilla all-GPU framework, percent more.
pub const PAPER_VS_GPU_ONLY_PERCENT: f64 = 80.0;

/// One policy's total over the sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyTotal {
    pub policy: Policy,
    /// Sets it was judged on (for optimal: those where it finished).
    pub sets: u64,
    pub schedulable: u64,
    pub ratio: Option<f64>,
}

/// `ours` against `theirs`, in schedulable sets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    pub ours: u64,
    pub theirs: u64,
    /// `(ours - theirs) / theirs` in percent; `None` when `theirs` is 0.
    pub more_percent: Option<f64>,
    /// `ours / theirs`; `None` when `theirs` is 0.
    pub ratio: Option<f64>,
    /// The paper's figure for the same comparison, when it gives one.
    pub paper_more_percent: Option<f64>,
    /// The utilization point where `ours - theirs` is largest (the first such point), with the
    /// counts there; `None` when lalarand is nowhere ahead.
    pub largest_gap: Option<Gap>,
}

/// One utilization point of a [`Comparison`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gap {
    pub utilization: f64,
    pub ours: u64,
    pub theirs: u64,
    /// `ours / theirs`; `None` when `theirs` is 0.
    pub ratio: Option<f64>,
}

impl Comparison {
    pub fn new(ours: u64, theirs: u64, paper_more_percent: Option<f64>) -> Self {
        let ratio = (theirs > 0).then(|| ours as f64 / theirs as f64);
        Self {
            ours,
            theirs,
            more_percent: ratio.map(|r| (r - 1.0) * 100.0),
            ratio,
            paper_more_percent,
            largest_gap: None,
        }
    }
}

/// The comparisons of the headline, in report order, with the paper's figure where it has one.
pub const HEADLINE: [(Policy, Option<f64>); 3] = [
    (Policy::Dart, Some(PAPER_VS_DART_PERCENT)),
    (Policy::GpuOnly, Some(PAPER_VS_GPU_ONLY_PERCENT)),
    (Policy::TaskLevel, None),
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The profile library's name ([`crate::LibraryInfo::name`]).
    pub library: String,
    /// The platform's resources, as in [`crate::SweepSettings::platform`].
    pub platform: Vec<String>,
    /// [`crate::LibraryInfo::int8_accuracy_unknown_layers`].
    pub int8_accuracy_unknown_layers: usize,
    /// [`crate::SweepSettings::assume_int8_cost`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assume_int8_cost: Option<f64>,
    /// [`crate::LibraryInfo::cpu_speedup`].
    pub cpu_speedup: Option<f64>,
    pub tasks: usize,
    pub points: usize,
    pub sets_per_point: usize,
    pub totals: Vec<PolicyTotal>,
    pub lalarand_vs_dart: Option<Comparison>,
    pub lalarand_vs_gpu_only: Option<Comparison>,
    /// Against the strongest whole-DNN baseline ("task-level, searched, int8").
    pub lalarand_vs_task_level: Option<Comparison>,
    /// Against the artifact's "Preferable" baseline.
    pub lalarand_vs_preferable: Option<Comparison>,
    /// LaLaRAND's own search (no baseline's allocation as a seed) against DART: what the
    /// search earns by itself, next to the portfolio's `lalarand_vs_dart`.
    pub own_vs_dart: Option<Comparison>,
    /// Over the sets where optimal finished: `ratio` is lalarand's share of optimal's count.
    pub lalarand_vs_optimal: Option<Comparison>,
    /// Sets where optimal finished / sets it ran on.
    pub optimal_finished: Option<(u64, u64)>,
}

impl SweepResult {
    pub fn summary(&self) -> Summary {
        let total = |policy: Policy| -> Option<PolicyTotal> {
            let mut found = false;
            let (mut sets, mut schedulable) = (0, 0);
            for pt in &self.points {
                if let Some(p) = pt.policy(policy) {
                    found = true;
                    sets += if policy == Policy::Optimal { pt.optimal_finished.unwrap_or(0) } else { pt.sets };
                    schedulable += p.schedulable;
                }
            }
            found.then(|| PolicyTotal {
                policy,
                sets,
                schedulable,
                ratio: (sets > 0).then(|| schedulable as f64 / sets as f64),
            })
        };
        let totals: Vec<PolicyTotal> = self.policies().iter().filter_map(|&p| total(p)).collect();
        let count = |p: Policy| totals.iter().find(|t| t.policy == p).map(|t| t.schedulable);
        let versus = |ours: Policy, other: Policy, paper: Option<f64>| {
            let mut c = Comparison::new(count(ours)?, count(other)?, paper);
            c.largest_gap = self
                .points
                .iter()
                .filter_map(|pt| {
                    let (ours, theirs) = (pt.policy(ours)?.schedulable, pt.policy(other)?.schedulable);
                    let ratio = (theirs > 0).then(|| ours as f64 / theirs as f64);
                    (ours > theirs).then_some(Gap { utilization: pt.utilization, ours, theirs, ratio })
                })
                // `max_by_key` keeps the last of equal gaps; the first is wanted.
                .fold(None, |best: Option<Gap>, g| match best {
                    Some(b) if b.ours - b.theirs >= g.ours - g.theirs => Some(b),
                    _ => Some(g),
                });
            Some(c)
        };
        let vs = |other: Policy, paper: Option<f64>| versus(Policy::Lalarand, other, paper);
        let optimal_ran = self.points.iter().any(|pt| pt.optimal_finished.is_some());
        let optimal_finished = optimal_ran
            .then(|| self.points.iter().fold((0, 0), |(f, n), pt| (f + pt.optimal_finished.unwrap_or(0), n + pt.sets)));
        let lalarand_vs_optimal = optimal_ran
            .then(|| {
                let lal: Option<u64> = self
                    .points
                    .iter()
                    .map(|pt| pt.policy(Policy::Lalarand).and_then(|p| p.schedulable_where_optimal_finished))
                    .sum();
                Some(Comparison::new(lal?, count(Policy::Optimal)?, None))
            })
            .flatten();
        Summary {
            library: self.settings.library.name.clone(),
            platform: self.settings.platform.clone(),
            int8_accuracy_unknown_layers: self.settings.library.int8_accuracy_unknown_layers,
            assume_int8_cost: self.settings.assume_int8_cost,
            cpu_speedup: self.settings.library.cpu_speedup,
            tasks: self.settings.tasks,
            points: self.points.len(),
            sets_per_point: self.settings.sets_per_point,
            lalarand_vs_dart: vs(Policy::Dart, Some(PAPER_VS_DART_PERCENT)),
            lalarand_vs_gpu_only: vs(Policy::GpuOnly, Some(PAPER_VS_GPU_ONLY_PERCENT)),
            lalarand_vs_task_level: vs(Policy::TaskLevel, None),
            lalarand_vs_preferable: vs(Policy::Preferable, None),
            own_vs_dart: versus(Policy::LalarandOwn, Policy::Dart, Some(PAPER_VS_DART_PERCENT)),
            lalarand_vs_optimal,
            optimal_finished,
            totals,
        }
    }
}

fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{:+.1}%", v)).unwrap_or_else(|| "n/a".into())
}

fn times(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}x")).unwrap_or_else(|| "n/a".into())
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Profiles: {}", self.library)?;
        if let Some(s) = self.cpu_speedup {
            writeln!(f, "cpu times divided by {s} (modelled data-parallel cpu node, not measured on it)")?;
        }
        writeln!(f, "Platform, the same for every policy: {}", self.platform.join("; "))?;
        match (self.int8_accuracy_unknown_layers, self.assume_int8_cost) {
            (0, _) => {}
            (n, None) => writeln!(
                f,
                "int8 accuracy cost not known for {n} layers: not offered int8 (--assume-int8-cost PP would budget them)"
            )?,
            (n, Some(pp)) => writeln!(
                f,
                "int8 accuracy cost not known for {n} layers: budgeted at {pp} pp each (--assume-int8-cost, assumed, not measured)"
            )?,
        }
        writeln!(
            f,
            "Schedulable task sets, {} tasks per set, {} utilization points x {} sets:",
            self.tasks, self.points, self.sets_per_point
        )?;
        for t in &self.totals {
            let share = t.ratio.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "n/a".into());
            let note = if t.policy == Policy::Optimal { "  (over sets where optimal finished)" } else { "" };
            writeln!(
                f,
                "  {:<14} {:>6} / {:<6} {:>6}  {}{note}",
                t.policy.name(),
                t.schedulable,
                t.sets,
                share,
                t.policy.label()
            )?;
        }
        let comparisons = [
            ("lalarand", "dart", &self.lalarand_vs_dart),
            ("lalarand", "gpu-only", &self.lalarand_vs_gpu_only),
            ("lalarand", "task-level", &self.lalarand_vs_task_level),
            ("lalarand", "preferable", &self.lalarand_vs_preferable),
            ("lalarand-own", "dart", &self.own_vs_dart),
        ];
        for (ours, label, c) in comparisons {
            if let Some(c) = c {
                let paper = c.paper_more_percent.map(|p| format!("; paper: {}", percent(Some(p)))).unwrap_or_default();
                let gap = c.largest_gap.map_or(String::from("; nowhere ahead"), |g| {
                    format!("; largest gap at U = {}: {} vs {} ({})", g.utilization, g.ours, g.theirs, times(g.ratio))
                });
                writeln!(
                    f,
                    "{ours} vs {label:<10}: {} vs {} sets: {} more ({}){gap}{paper}",
                    c.ours,
                    c.theirs,
                    percent(c.more_percent),
                    times(c.ratio),
                )?;
            }
        }
        if let Some(c) = &self.lalarand_vs_optimal {
            let (finished, ran) = self.optimal_finished.unwrap_or((0, 0));
            let share = c.ratio.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "n/a".into());
            writeln!(
                f,
                "lalarand vs optimal : {} vs {} sets = {share} of optimal, over the {finished} of {ran} sets where optimal finished",
                c.ours, c.theirs
            )?;
        }
        Ok(())
    }
}
