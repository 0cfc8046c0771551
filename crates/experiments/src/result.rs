//! Results of a sweep: counts per utilization point and policy, and their CSV rows (the
//! files are written by `output.rs`).

use crate::config::LibraryInfo;
use lalarand_alloc::Policy;
use serde::Serialize;
use std::fmt::Write as _;

/// The settings a result came from (the serializable part of [`crate::SweepConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepSettings {
    pub tasks: usize,
    pub sets_per_point: usize,
    pub seed: u64,
    pub policies: Vec<Policy>,
    pub accuracy_budget: f64,
    pub allow_int8: bool,
    pub node_limit: u64,
    /// The int8 cost layers of unknown cost were budgeted at (`--assume-int8-cost`); absent:
    /// such layers were not offered int8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assume_int8_cost: Option<f64>,
    pub random_offsets: bool,
    pub library: LibraryInfo,
    /// `name (kind)` per resource, `name (cpu, accelerator)` for a cpu standing in for a gpu.
    pub platform: Vec<String>,
    /// What the total utilization is of: the vanilla framework's cost on the accelerator per
    /// period (see [`crate::generate`]).
    pub utilization_axis: String,
}

/// One policy at one utilization point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyPoint {
    pub policy: Policy,
    /// Sets the policy made schedulable. For optimal, a search cut off by its node limit never
    /// counts, so this is also "schedulable among the sets where optimal finished".
    pub schedulable: u64,
    /// Sets where the allocator returned an error (counted unschedulable); see `first_error`.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Sets where the policy's search stopped at its node limit (`Outcome::complete == false`).
    pub incomplete: u64,
    /// Of the sets where optimal finished, how many this policy made schedulable; `None` when
    /// optimal did not run.
    pub schedulable_where_optimal_finished: Option<u64>,
    /// Sum over schedulable allocations of their accuracy cost (percentage points).
    pub accuracy_cost_sum: f64,
    /// Wall time spent in the allocator over all sets of the point.
    pub alloc_seconds: f64,
}

/// One utilization point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointResult {
    pub utilization: f64,
    pub sets: u64,
    /// Sets on which optimal finished its search; `None` when optimal did not run.
    pub optimal_finished: Option<u64>,
    pub policies: Vec<PolicyPoint>,
}

impl PointResult {
    pub fn policy(&self, policy: Policy) -> Option<&PolicyPoint> {
        self.policies.iter().find(|p| p.policy == policy)
    }

    /// Schedulable fraction: over all sets, except optimal over the sets where it finished
    /// (`None` when it finished none).
    pub fn ratio(&self, policy: Policy) -> Option<f64> {
        let p = self.policy(policy)?;
        let over = if policy == Policy::Optimal { self.optimal_finished? } else { self.sets };
        (over > 0).then(|| p.schedulable as f64 / over as f64)
    }

    /// Schedulable fraction over the sets where optimal finished.
    pub fn ratio_where_optimal_finished(&self, policy: Policy) -> Option<f64> {
        let finished = self.optimal_finished?;
        let n = self.policy(policy)?.schedulable_where_optimal_finished?;
        (finished > 0).then(|| n as f64 / finished as f64)
    }

    /// Mean accuracy cost of the policy's schedulable allocations; `None` if none.
    pub fn mean_accuracy_cost(&self, policy: Policy) -> Option<f64> {
        let p = self.policy(policy)?;
        (p.schedulable > 0).then(|| p.accuracy_cost_sum / p.schedulable as f64)
    }
}

/// One CSV row (also in the JSON report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub utilization: f64,
    pub policy: Policy,
    pub sets: u64,
    pub schedulable: u64,
    pub ratio: Option<f64>,
    pub errors: u64,
    pub incomplete: u64,
    pub optimal_finished: Option<u64>,
    pub schedulable_where_optimal_finished: Option<u64>,
    pub ratio_where_optimal_finished: Option<f64>,
    pub mean_accuracy_cost: Option<f64>,
    pub mean_alloc_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepResult {
    pub settings: SweepSettings,
    pub points: Vec<PointResult>,
    /// Wall time of the whole sweep, generation included.
    pub wall_seconds: f64,
}

const CSV_HEADER: &str = "utilization,policy,sets,schedulable,ratio,errors,incomplete,optimal_finished,\
schedulable_where_optimal_finished,ratio_where_optimal_finished,mean_accuracy_cost,mean_alloc_ms";

impl SweepResult {
    /// Policies in the order they ran.
    pub fn policies(&self) -> &[Policy] {
        &self.settings.policies
    }

    /// One row per utilization x policy, in sweep then policy order.
    pub fn rows(&self) -> Vec<Row> {
        self.points
            .iter()
            .flat_map(|pt| {
                pt.policies.iter().map(move |p| Row {
                    utilization: pt.utilization,
                    policy: p.policy,
                    sets: pt.sets,
                    schedulable: p.schedulable,
                    ratio: pt.ratio(p.policy),
                    errors: p.errors,
                    incomplete: p.incomplete,
                    optimal_finished: pt.optimal_finished,
                    schedulable_where_optimal_finished: p.schedulable_where_optimal_finished,
                    ratio_where_optimal_finished: pt.ratio_where_optimal_finished(p.policy),
                    mean_accuracy_cost: pt.mean_accuracy_cost(p.policy),
                    mean_alloc_ms: if pt.sets > 0 { p.alloc_seconds * 1e3 / pt.sets as f64 } else { 0.0 },
                })
            })
            .collect()
    }

    /// The CSV text: a header, then [`Self::rows`]; absent values are empty cells.
    pub fn to_csv(&self) -> String {
        fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
            v.map(|v| v.to_string()).unwrap_or_default()
        }
        let mut out = String::from(CSV_HEADER);
        out.push('\n');
        for r in self.rows() {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{:.4}",
                r.utilization,
                r.policy,
                r.sets,
                r.schedulable,
                opt(r.ratio),
                r.errors,
                r.incomplete,
                opt(r.optimal_finished),
                opt(r.schedulable_where_optimal_finished),
                opt(r.ratio_where_optimal_finished),
                opt(r.mean_accuracy_cost),
                r.mean_alloc_ms
            );
        }
        out
    }
}
