//! The analysis of one allocation as a report: per task its bound, slack and int8 use, per
//! resource its utilization. The command line prints it (`lalarand analyze`, as a table and as
//! JSON) and the Python package returns it, so both say the same numbers.
//!
//! Times are integer nanoseconds (`*_ns`), the unit the analysis computes in.

use crate::Analysis;
use lalarand_model::{Allocation, ExecutionPlan, System, Time};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub name: String,
    pub model: String,
    /// 0 = highest.
    pub priority: u32,
    pub period_ns: Time,
    pub deadline_ns: Time,
    /// The proven response-time bound: the smaller of the two below; null if not proven.
    pub bound_ns: Option<Time>,
    pub job_level_ns: Option<Time>,
    pub segment_level_ns: Option<Time>,
    /// `deadline - bound`; null if not proven.
    pub slack_ns: Option<Time>,
    /// Where the analysis gave up (unschedulable tasks only): how far over, not a bound.
    pub estimate_ns: Option<Time>,
    pub schedulable: bool,
    pub layers: usize,
    pub int8_layers: usize,
    /// Sum of the int8 layers' accuracy costs, percentage points.
    pub accuracy_cost_pp: f64,
    /// int8 layers whose profile has no accuracy cost (`null`: profiled without a dataset);
    /// they count as 0 in `accuracy_cost_pp`, which is then a lower bound.
    pub int8_layers_unknown_cost: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceReport {
    pub name: String,
    pub kind: String,
    /// Sum over tasks of (cost on this resource / period), transitions included.
    pub utilization: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schedulable: bool,
    /// The allocation's accuracy cost: sum over int8 layers, percentage points.
    pub accuracy_cost_pp: f64,
    pub int8_layers: usize,
    /// int8 layers whose accuracy cost is not known (counted as 0 above).
    pub int8_layers_unknown_cost: usize,
    pub resources: Vec<ResourceReport>,
    pub tasks: Vec<TaskReport>,
}

impl Report {
    pub fn new(system: &System, alloc: &Allocation, plan: &ExecutionPlan, analysis: &Analysis) -> Self {
        let costs = alloc.task_accuracy_costs(system);
        let unknown = alloc.task_unknown_accuracy_layers(system);
        let tasks = system
            .tasks
            .iter()
            .zip(&analysis.tasks)
            .zip(&alloc.tasks)
            .zip(costs.into_iter().zip(unknown))
            .map(|(((t, b), places), (cost, unknown))| TaskReport {
                name: t.name.clone(),
                model: t.dnn.model.clone(),
                priority: t.priority,
                period_ns: t.period,
                deadline_ns: b.deadline,
                bound_ns: b.bound,
                job_level_ns: b.job_level,
                segment_level_ns: b.segment_level,
                slack_ns: b.bound.map(|r| b.deadline - r),
                estimate_ns: (!b.schedulable()).then_some(b.estimate),
                schedulable: b.schedulable(),
                layers: places.len(),
                int8_layers: places.iter().filter(|p| p.mode.is_int8()).count(),
                accuracy_cost_pp: cost + 0.0,
                int8_layers_unknown_cost: unknown,
            })
            .collect();
        let resources = system
            .platform
            .resources
            .iter()
            .zip(plan.utilization())
            .map(|(r, u)| ResourceReport { name: r.name.clone(), kind: r.kind.to_string(), utilization: u })
            .collect();
        Self {
            schedulable: analysis.schedulable(),
            // `+ 0.0`: an empty f64 sum is -0.0, which would print as "-0.000".
            accuracy_cost_pp: alloc.accuracy_cost(system) + 0.0,
            int8_layers: alloc.int8_layers(),
            int8_layers_unknown_cost: alloc.unknown_accuracy_layers(system),
            resources,
            tasks,
        }
    }
}
