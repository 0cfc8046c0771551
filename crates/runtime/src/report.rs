//! The run's report: per task jobs, misses, response times next to the analytical bound, and
//! a verdict; the runtime's own costs (dispatch latency, hand-off, release jitter).

use crate::run::RawRun;
use lalarand_analysis::Analysis;
use lalarand_model::{JobOutcome, JobRecord, StageSlot};
use lalarand_model::{System, Time};
use serde::Serialize;

/// Distribution of a measured cost, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct LatencyStats {
    pub samples: u64,
    pub median: Time,
    pub p99: Time,
    pub max: Time,
}

impl LatencyStats {
    pub fn of(values: &mut [Time]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable();
        Self {
            samples: values.len() as u64,
            median: percentile(values, 0.5),
            p99: percentile(values, 0.99),
            max: values[values.len() - 1],
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Time], p: f64) -> Time {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How a task fared against its deadline and its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every job completed within the analytical bound.
    WithinBound,
    /// No misses, but no bound to compare with (run forced on an unschedulable allocation).
    MetDeadlines,
    /// No misses, but a response above the bound: the platform broke the model's
    /// assumptions (OS interference, execution times over the WCET, dispatch overhead
    /// under-estimated).
    BoundExceeded,
    /// Some job missed its deadline or a release was skipped or dropped.
    DeadlineMissed,
    /// Some stage failed.
    StageFailed,
    /// No job completed.
    NoJobs,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskReport {
    pub name: String,
    /// Releases, including skipped and dropped ones.
    pub released: u64,
    pub completed: u64,
    /// Jobs that ended or were still running past their deadline.
    pub misses: u64,
    pub aborted: u64,
    pub failed: u64,
    /// Releases skipped ([`crate::OverrunPolicy::Skip`]) or dropped (backlog full).
    pub skipped: u64,
    pub dropped: u64,
    /// Released jobs still queued or waiting at the end.
    pub unfinished: u64,
    /// Response times of completed jobs, nanoseconds (0 when none completed).
    pub response_min: Time,
    pub response_mean: f64,
    pub response_p99: Time,
    pub response_max: Time,
    /// The analysis' bound, `None` if it found none.
    pub bound: Option<Time>,
    pub deadline: Time,
    pub verdict: Verdict,
}

/// A stage that failed, and the job it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageFailure {
    pub task: usize,
    pub task_name: String,
    pub job: u64,
    pub stage: usize,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub tasks: Vec<TaskReport>,
    pub failures: Vec<StageFailure>,
    /// Stage queued on an idle resource -> stage started.
    pub dispatch_latency: LatencyStats,
    /// Stage ended -> next stage queued or job ended: the runtime's work per stage.
    pub handoff: LatencyStats,
    /// Actual release - nominal release.
    pub release_jitter: LatencyStats,
    /// Measured per-stage overhead, microseconds, to put in the platform's
    /// `dispatch_overhead_us`: the p99 hand-off (every stage pays it).
    pub suggested_dispatch_overhead_us: f64,
    /// Measured wake-up overhead, microseconds, to put in the platform's `wakeup_overhead_us`:
    /// the p99 dispatch latency (paid by a stage that finds its worker asleep, which only the
    /// first stage of a job or a stage after another resource's can). A platform without
    /// `wakeup_overhead_us` must charge the sum of both in `dispatch_overhead_us`.
    pub suggested_wakeup_overhead_us: f64,
    /// Run time covered, nanoseconds since time 0.
    pub end: Time,
    pub stopped: bool,
    /// Whether the workers and the release thread got SCHED_FIFO.
    pub realtime: bool,
    /// Stage executions beyond `max_trace_slots`, counted but not traced.
    pub trace_slots_dropped: u64,
    /// Largest backlog of waiting releases seen for one task.
    pub max_backlog_seen: usize,
}

impl RunReport {
    pub fn misses(&self) -> u64 {
        self.tasks.iter().map(|t| t.misses).sum()
    }
}

/// Every stage execution, per resource in start order, and every job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunTrace {
    pub resources: Vec<Vec<StageSlot>>,
    /// By task, then job index.
    pub jobs: Vec<JobRecord>,
}

pub(crate) fn build(system: &System, analysis: &Analysis, raw: RawRun, stopped: bool) -> (RunReport, RunTrace) {
    let n = system.tasks.len();
    let end = raw.end;
    let mut jobs: Vec<JobRecord> = Vec::new();
    let mut dispatch = Vec::new();
    let mut handoff = Vec::new();
    let mut jitter = Vec::new();
    let mut resources = Vec::with_capacity(raw.logs.len());
    let mut dropped_slots = 0;
    let (mut released, mut skipped, mut dropped) = (vec![0; n], vec![0; n], vec![0; n]);
    let workers = raw.logs.len().saturating_sub(1);
    for (t, log) in raw.logs.into_iter().enumerate() {
        jobs.extend(log.jobs);
        dispatch.extend(log.dispatch);
        handoff.extend(log.handoff);
        jitter.extend(log.jitter);
        dropped_slots += log.slots_dropped;
        for i in 0..n {
            released[i] += log.released[i];
            skipped[i] += log.skipped[i];
            dropped[i] += log.dropped[i];
        }
        // The workers' logs come first, one per resource; the release thread's last.
        if t < workers {
            resources.push(log.slots);
        }
    }
    jobs.extend(raw.unfinished);
    jobs.sort_by_key(|j| (j.task, j.job));
    let mut failures = Vec::new();
    let mut tasks = Vec::with_capacity(n);
    for (i, task) in system.tasks.iter().enumerate() {
        let mine = jobs.iter().filter(|j| j.task == i);
        let mut responses: Vec<Time> = mine.clone().filter_map(JobRecord::response).collect();
        let count = |f: fn(&JobOutcome) -> bool| mine.clone().filter(|j| f(&j.outcome)).count() as u64;
        for j in mine.clone() {
            if let JobOutcome::Failed { stage, error } = &j.outcome {
                failures.push(StageFailure {
                    task: i,
                    task_name: task.name.clone(),
                    job: j.job,
                    stage: *stage,
                    error: error.clone(),
                });
            }
        }
        let misses = mine.clone().filter(|j| j.missed(end)).count() as u64;
        let bound = analysis.tasks[i].bound;
        let stats = LatencyStats::of(&mut responses);
        let mean = if responses.is_empty() {
            0.0
        } else {
            responses.iter().map(|&r| r as f64).sum::<f64>() / responses.len() as f64
        };
        let (skipped, dropped) = (skipped[i], dropped[i]);
        let failed = count(|o| matches!(o, JobOutcome::Failed { .. }));
        let verdict = if failed > 0 {
            Verdict::StageFailed
        } else if misses + skipped + dropped > 0 {
            Verdict::DeadlineMissed
        } else if responses.is_empty() {
            Verdict::NoJobs
        } else {
            match bound {
                Some(b) if stats.max > b => Verdict::BoundExceeded,
                Some(_) => Verdict::WithinBound,
                None => Verdict::MetDeadlines,
            }
        };
        tasks.push(TaskReport {
            name: task.name.clone(),
            released: released[i],
            completed: responses.len() as u64,
            misses,
            aborted: count(|o| matches!(o, JobOutcome::Aborted { .. })),
            failed,
            skipped,
            dropped,
            unfinished: count(|o| matches!(o, JobOutcome::Unfinished)),
            response_min: responses.first().copied().unwrap_or(0),
            response_mean: mean,
            response_p99: stats.p99,
            response_max: stats.max,
            bound,
            deadline: task.deadline,
            verdict,
        });
    }
    for slots in &mut resources {
        slots.sort_by_key(|s| s.start);
    }
    let dispatch_latency = LatencyStats::of(&mut dispatch);
    let handoff = LatencyStats::of(&mut handoff);
    let report = RunReport {
        tasks,
        failures,
        dispatch_latency,
        handoff,
        release_jitter: LatencyStats::of(&mut jitter),
        suggested_dispatch_overhead_us: handoff.p99 as f64 / 1_000.0,
        suggested_wakeup_overhead_us: dispatch_latency.p99 as f64 / 1_000.0,
        end,
        stopped,
        realtime: raw.realtime,
        trace_slots_dropped: dropped_slots,
        max_backlog_seen: raw.max_backlog_seen,
    };
    (report, RunTrace { resources, jobs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<Time> = (1..=100).rev().collect();
        let s = LatencyStats::of(&mut v);
        assert_eq!((s.samples, s.median, s.p99, s.max), (100, 50, 99, 100));
        assert_eq!(LatencyStats::of(&mut []), LatencyStats::default());
        assert_eq!(LatencyStats::of(&mut [7]).p99, 7);
    }
}
