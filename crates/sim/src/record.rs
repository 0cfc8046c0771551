//! What a simulation produces: jobs, per-task statistics, and the per-resource trace (the
//! shared records of [`lalarand_model::record`]).

use lalarand_model::{JobRecord, StageSlot, Time};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TaskStats {
    /// Jobs released.
    pub jobs: u64,
    pub completed: u64,
    pub misses: u64,
    /// Over completed jobs; 0 when none completed.
    pub min_response: Time,
    pub mean_response: f64,
    pub max_response: Time,
    /// `end - release` of the oldest job unfinished at the end: its response exceeds this.
    pub oldest_incomplete: Option<Time>,
}

impl TaskStats {
    pub(crate) const EMPTY: Self = Self {
        jobs: 0,
        completed: 0,
        misses: 0,
        min_response: Time::MAX,
        mean_response: 0.0,
        max_response: 0,
        oldest_incomplete: None,
    };

    /// Whether some job of the task may have responded later than `bound`: a finished one did,
    /// or an unfinished one has been pending for `bound` or longer (it finishes after the end).
    pub fn exceeds(&self, bound: Time) -> bool {
        self.max_response > bound || self.oldest_incomplete.is_some_and(|age| age >= bound)
    }

    /// The largest response time known to have occurred, counting unfinished jobs by their age.
    pub fn observed_max(&self) -> Time {
        self.max_response.max(self.oldest_incomplete.unwrap_or(0))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Trace {
    /// Per resource, slots in start order. A layer still running at the end of the run is cut
    /// at the end.
    pub resources: Vec<Vec<StageSlot>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimResult {
    /// The run covered `[0, end]`: releases before `end`, completions up to `end`.
    pub end: Time,
    /// Every released job in release order, if [`crate::SimConfig::record_jobs`].
    pub jobs: Vec<JobRecord>,
    /// Per task of the plan, same order.
    pub tasks: Vec<TaskStats>,
    /// If [`crate::SimConfig::record_trace`].
    pub trace: Option<Trace>,
    /// Hyperperiod of the plan, if it fits a `Time`.
    pub hyperperiod: Option<Time>,
}

impl SimResult {
    pub fn misses(&self) -> u64 {
        self.tasks.iter().map(|t| t.misses).sum()
    }
}
