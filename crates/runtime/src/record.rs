//! What a run records: stage executions and jobs.

use lalarand_model::Time;
use serde::Serialize;

/// One stage execution on a resource. Times are nanoseconds since the run's time 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StageSlot {
    pub task: usize,
    pub job: u64,
    pub stage: usize,
    pub start: Time,
    pub end: Time,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum JobOutcome {
    Completed,
    /// Ended at a stage boundary past its deadline ([`crate::LatePolicy::Abort`]) before
    /// running `stage`.
    Aborted {
        stage: usize,
    },
    /// Stage `stage` returned an error.
    Failed {
        stage: usize,
        error: String,
    },
    /// Still queued or waiting when the run ended.
    Unfinished,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRecord {
    pub task: usize,
    pub job: u64,
    /// Nominal (absolute-schedule) release; responses count from it, so release jitter is in
    /// them.
    pub release: Time,
    /// Absolute deadline.
    pub deadline: Time,
    /// When the job ended (completed, aborted or failed).
    pub finish: Option<Time>,
    pub outcome: JobOutcome,
}

impl JobRecord {
    /// Completed after its deadline, aborted, or unfinished at an `end` past its deadline.
    pub fn missed(&self, end: Time) -> bool {
        match self.outcome {
            JobOutcome::Completed => self.finish.is_some_and(|f| f > self.deadline),
            JobOutcome::Aborted { .. } => true,
            JobOutcome::Failed { .. } => self.finish.is_some_and(|f| f > self.deadline),
            JobOutcome::Unfinished => end > self.deadline,
        }
    }

    pub fn response(&self) -> Option<Time> {
        match self.outcome {
            JobOutcome::Completed => self.finish.map(|f| f - self.release),
            _ => None,
        }
    }
}
