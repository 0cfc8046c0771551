//! What a schedule produced, simulated (`lalarand-sim`) or run (`lalarand-runtime`): every
//! stage execution on its resource and every job, in one vocabulary, so that the simulator,
//! the runtime and the charts drawn from either read the same records.

use crate::Time;
use serde::Serialize;

/// One stage (layer) execution on a resource, nanoseconds since time 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StageSlot {
    pub task: usize,
    /// 0 for the task's first job.
    pub job: u64,
    /// The stage (the profile's layer) of the task.
    pub stage: usize,
    pub start: Time,
    pub end: Time,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum JobOutcome {
    Completed,
    /// Ended at a stage boundary past its deadline (the runtime's `LatePolicy::Abort`) before
    /// running `stage`.
    Aborted {
        stage: usize,
    },
    /// Stage `stage` returned an error.
    Failed {
        stage: usize,
        error: String,
    },
    /// Still queued or running when the schedule ended.
    Unfinished,
}

/// One job: its release, its deadline, and how and when it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRecord {
    pub task: usize,
    /// 0 for the task's first job.
    pub job: u64,
    /// Nominal (absolute-schedule) release; responses count from it, so release jitter is in
    /// them.
    pub release: Time,
    /// Absolute deadline.
    pub deadline: Time,
    /// When the job ended (completed, aborted or failed); `None` if unfinished.
    pub finish: Option<Time>,
    pub outcome: JobOutcome,
}

impl JobRecord {
    /// Ended after its deadline, aborted, or unfinished at an `end` at or past its deadline
    /// (it cannot finish by then).
    pub fn missed(&self, end: Time) -> bool {
        match self.outcome {
            JobOutcome::Completed | JobOutcome::Failed { .. } => self.finish.is_some_and(|f| f > self.deadline),
            JobOutcome::Aborted { .. } => true,
            JobOutcome::Unfinished => end >= self.deadline,
        }
    }

    /// `finish - release` of a completed job.
    pub fn response(&self) -> Option<Time> {
        match self.outcome {
            JobOutcome::Completed => self.finish.map(|f| f - self.release),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(finish: Option<Time>, outcome: JobOutcome) -> JobRecord {
        JobRecord { task: 0, job: 0, release: 10, deadline: 50, finish, outcome }
    }

    #[test]
    fn misses_and_responses_follow_the_outcome() {
        assert!(!job(Some(50), JobOutcome::Completed).missed(100));
        assert!(job(Some(51), JobOutcome::Completed).missed(100));
        assert_eq!(job(Some(50), JobOutcome::Completed).response(), Some(40));
        assert!(job(Some(20), JobOutcome::Aborted { stage: 1 }).missed(100));
        assert!(!job(None, JobOutcome::Unfinished).missed(49));
        assert!(job(None, JobOutcome::Unfinished).missed(50), "cannot finish by its deadline");
        let failed = job(Some(30), JobOutcome::Failed { stage: 0, error: "x".into() });
        assert!(!failed.missed(100) && failed.response().is_none());
    }
}
