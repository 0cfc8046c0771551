//! What a run produces: jobs, per-task statistics, and the per-resource trace.

use lalarand_model::Time;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct JobRecord {
    pub task: usize,
    /// 0 for the task's first job.
    pub job: u64,
    pub release: Time,
    /// Absolute deadline.
    pub deadline: Time,
    /// `None` if the job was still unfinished at the end of the run.
    pub finish: Option<Time>,
    /// Finished after its deadline, or unfinished at an end that is past its deadline.
    pub missed: bool,
}

impl JobRecord {
    pub fn response(&self) -> Option<Time> {
        self.finish.map(|f| f - self.release)
    }
}

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

/// One layer instance's execution on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TraceSlot {
    pub task: usize,
    pub job: u64,
    pub layer: usize,
    pub start: Time,
    pub end: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Trace {
    /// Per resource, slots in start order. A layer still running at the end of the run is cut
    /// at the end.
    pub resources: Vec<Vec<TraceSlot>>,
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
