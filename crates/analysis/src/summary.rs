//! Per-task aggregates the analysis needs, computed once per plan.

use lalarand_model::{time::Time, ExecutionPlan, PlannedTask};

/// A maximal run of consecutive layers of one task on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub resource: usize,
    /// Cost of the run's layers before its last one starts executing: the earlier layers, and
    /// the last layer's wake-up overhead (waiting, during which higher-priority work can start).
    pub before_last: Time,
    /// The last layer's non-preemptive execution: its cost less its wake-up overhead.
    pub last: Time,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSummary {
    pub total: Time,
    /// The job's final layer's non-preemptive execution (its cost less its wake-up overhead):
    /// the job's waiting is over once it starts.
    pub last: Time,
    /// Total cost per resource (`C_k^r`).
    pub on_resource: Vec<Time>,
    /// Longest single layer per resource (what this task can block others with).
    pub longest_layer: Vec<Time>,
    /// (resource, number of arrivals on it) for each resource the task visits.
    pub visited: Vec<(usize, u32)>,
    pub segments: Vec<Segment>,
}

impl TaskSummary {
    pub fn new(task: &PlannedTask, resources: usize) -> Self {
        let mut on_resource = vec![0; resources];
        let mut longest_layer = vec![0; resources];
        let mut arrivals = vec![0u32; resources];
        let mut segments: Vec<Segment> = Vec::new();
        for layer in &task.layers {
            let r = layer.resource;
            on_resource[r] += layer.wcet;
            longest_layer[r] = longest_layer[r].max(layer.wcet);
            let executing = layer.execution();
            match segments.last_mut() {
                Some(seg) if seg.resource == r => {
                    seg.before_last += seg.last + (layer.wcet - executing);
                    seg.last = executing;
                }
                _ => {
                    arrivals[r] += 1;
                    segments.push(Segment { resource: r, before_last: layer.wcet - executing, last: executing });
                }
            }
        }
        let visited = arrivals.iter().enumerate().filter(|(_, &a)| a > 0).map(|(r, &a)| (r, a)).collect();
        Self {
            total: on_resource.iter().sum(),
            last: task.layers.last().map_or(0, |l| l.execution()),
            on_resource,
            longest_layer,
            visited,
            segments,
        }
    }
}

pub fn summarize(plan: &ExecutionPlan) -> Vec<TaskSummary> {
    plan.tasks.iter().map(|t| TaskSummary::new(t, plan.resources)).collect()
}

/// For each priority rank, the longest lower-priority layer on each resource.
pub fn blocking_per_resource<'a>(
    plan: &ExecutionPlan,
    longest_layer: impl Fn(usize) -> &'a Vec<Time>,
    order: &[usize],
) -> Vec<Vec<Time>> {
    let mut out = vec![vec![0; plan.resources]; order.len()];
    let mut running = vec![0; plan.resources];
    for (rank, &i) in order.iter().enumerate().rev() {
        out[rank].clone_from(&running);
        for (m, &l) in running.iter_mut().zip(longest_layer(i)) {
            *m = (*m).max(l);
        }
    }
    out
}
