//! The run: the dispatch core ([`crate::dispatch`]) with every task periodic, fed the
//! executor's [`StageExecutor::run_input`], until a horizon; what the threads measure is
//! written down in per-thread logs (no shared lock on the hot path), merged into the report
//! after the run.

use crate::config::{RunConfig, RunHorizon, StopHandle};
use crate::dispatch::{
    spare_cores, worker_cores, Core, CoreConfig, Done, Ending, Exec, Periodic, PeriodicSource, Sink,
};
use crate::executor::StageExecutor;
use crate::os;
use crate::serve::StalePolicy;
use crate::{Runtime, RuntimeError};
use lalarand_model::{ExecutionPlan, Time};
use lalarand_model::{JobOutcome, JobRecord, StageSlot};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most memory of one log allocated and faulted in before the run; a longer run grows it.
const PREALLOC_BYTES: usize = 8 << 20;
/// Time between the end of the warm-up and time 0, so every worker is parked before the first
/// release.
const LEAD_NS: Time = 5_000_000;
/// Most a [`RunHorizon::Jobs`] run waits after its last release for the jobs to finish
/// (or ten longest periods, if more).
const JOBS_DRAIN_NS: Time = 2_000_000_000;

/// What one thread of the run wrote down.
#[derive(Debug, Default)]
pub(crate) struct RunLog {
    pub slots: Vec<StageSlot>,
    pub slots_dropped: u64,
    pub jobs: Vec<JobRecord>,
    /// Stage ready on an idle resource -> stage started, ns.
    pub dispatch: Vec<Time>,
    /// Stage ended -> next stage queued (or job ended), ns: the runtime's per-stage work.
    pub handoff: Vec<Time>,
    /// Actual release - nominal release, ns.
    pub jitter: Vec<Time>,
    /// Per task: releases, skipped releases, releases dropped because the backlog was full.
    pub released: Vec<u64>,
    pub skipped: Vec<u64>,
    pub dropped: Vec<u64>,
}

/// What the threads wrote down, and what was still in flight at the end.
pub(crate) struct RawRun {
    pub logs: Vec<RunLog>,
    pub unfinished: Vec<JobRecord>,
    pub end: Time,
    /// Every thread got SCHED_FIFO.
    pub realtime: bool,
    pub max_backlog_seen: usize,
}

/// The run's [`Sink`]: logs, and the trace cut at `max_trace_slots`.
struct RunSink {
    tasks: usize,
    /// Per resource: stage executions and jobs expected up to the horizon; then for the release
    /// thread (last): releases.
    expected: Vec<(usize, usize)>,
    max_trace_slots: usize,
    slots_kept: AtomicUsize,
}

impl RunSink {
    fn new(plan: &ExecutionPlan, config: &RunConfig) -> Self {
        let mut expected: Vec<(usize, usize)> =
            (0..plan.resources).map(|r| expected_work(plan, &config.horizon, Some(r))).collect();
        expected.push(expected_work(plan, &config.horizon, None));
        Self {
            tasks: plan.tasks.len(),
            expected,
            max_trace_slots: config.max_trace_slots,
            slots_kept: AtomicUsize::new(0),
        }
    }
}

impl<E: StageExecutor> Sink<E> for RunSink {
    type Reply = ();
    type Log = RunLog;

    /// Allocates and faults in the log's memory for the whole horizon, so that no push in the
    /// run reallocates (a copy of megabytes, in the hand-off) or faults in a page.
    fn log(&self, worker: Option<usize>) -> RunLog {
        let n = self.tasks;
        let mut log = RunLog { released: vec![0; n], skipped: vec![0; n], dropped: vec![0; n], ..RunLog::default() };
        match worker {
            Some(r) => {
                let (stages, jobs) = self.expected[r];
                let none = JobRecord {
                    task: 0,
                    job: 0,
                    release: 0,
                    deadline: 0,
                    finish: None,
                    outcome: JobOutcome::Completed,
                };
                prefault(
                    &mut log.slots,
                    stages.min(self.max_trace_slots),
                    StageSlot { task: 0, job: 0, stage: 0, start: 0, end: 0 },
                );
                prefault(&mut log.dispatch, stages, 0);
                prefault(&mut log.handoff, stages, 0);
                prefault(&mut log.jobs, jobs, none);
            }
            None => prefault(&mut log.jitter, self.expected[self.expected.len() - 1].1, 0),
        }
        log
    }

    fn periodic_reply(&self, _task: usize) {}

    fn released(&self, log: &mut RunLog, task: usize, jitter: Time) {
        log.released[task] += 1;
        log.jitter.push(jitter);
    }

    fn dispatched(&self, log: &mut RunLog, latency: Time) {
        log.dispatch.push(latency);
    }

    fn stage_ran(&self, log: &mut RunLog, _resource: usize, slot: StageSlot) {
        if self.slots_kept.fetch_add(1, Ordering::Relaxed) < self.max_trace_slots {
            log.slots.push(slot);
        } else {
            log.slots_dropped += 1;
        }
    }

    fn handed_off(&self, log: &mut RunLog, ns: Time) {
        log.handoff.push(ns);
    }

    fn ended(&self, log: &mut RunLog, done: Done<E::Job, ()>) -> Option<E::Job> {
        let (outcome, leftover) = match done.outcome {
            Ok(state) => (JobOutcome::Completed, Some(state)),
            Err(Ending::Failed { stage, error }) => (JobOutcome::Failed { stage, error }, None),
            Err(Ending::Source(error)) => (JobOutcome::Failed { stage: 0, error }, None),
            Err(Ending::Aborted { stage }) => (JobOutcome::Aborted { stage }, None),
            Err(Ending::Cancelled) => (JobOutcome::Unfinished, None),
            Err(Ending::Skipped) => {
                log.skipped[done.task] += 1;
                return None;
            }
            Err(Ending::Dropped) => {
                log.dropped[done.task] += 1;
                return None;
            }
        };
        let finish = Some(done.finish).filter(|_| outcome != JobOutcome::Unfinished);
        log.jobs.push(JobRecord {
            task: done.task,
            job: done.job,
            release: done.release,
            deadline: done.deadline,
            finish,
            outcome,
        });
        leftover
    }
}

/// Stage executions on resource `r` (all resources: `None`) and jobs of the tasks with a stage
/// there, if the run goes to its horizon.
fn expected_work(plan: &ExecutionPlan, horizon: &RunHorizon, r: Option<usize>) -> (usize, usize) {
    let (mut stages, mut jobs) = (0u64, 0u64);
    for t in &plan.tasks {
        let k = releases(t.offset, t.period, horizon);
        let here = t.layers.iter().filter(|l| r.is_none_or(|r| l.resource == r)).count() as u64;
        stages = stages.saturating_add(k.saturating_mul(here));
        if here > 0 {
            jobs = jobs.saturating_add(k);
        }
    }
    (usize::try_from(stages).unwrap_or(usize::MAX), usize::try_from(jobs).unwrap_or(usize::MAX))
}

/// Releases of a task up to the horizon.
fn releases(offset: Time, period: Time, horizon: &RunHorizon) -> u64 {
    match *horizon {
        RunHorizon::Jobs(k) => k,
        RunHorizon::Duration(d) => d.saturating_sub(offset).div_ceil(period.max(1)),
    }
}

/// Allocates room for `n` entries in `v` (at most [`PREALLOC_BYTES`]) and writes them once, so
/// their pages are in memory.
fn prefault<T: Clone>(v: &mut Vec<T>, n: usize, blank: T) {
    v.resize(n.min(PREALLOC_BYTES / std::mem::size_of::<T>().max(1)), blank);
    v.clear();
}

/// When the jobs in flight at the horizon stop being waited for. A timed run gives them a
/// longest period after its end (any job still running then has missed its deadline, D <= T);
/// a run of so many jobs waits for all of them, within reason.
fn drain_end(plan: &ExecutionPlan, horizon: &RunHorizon) -> Time {
    let max_period = plan.tasks.iter().map(|t| t.period).max().unwrap_or(0);
    match *horizon {
        RunHorizon::Duration(d) => d + max_period,
        RunHorizon::Jobs(k) => {
            let last = plan.tasks.iter().map(|t| t.offset + k.saturating_sub(1).saturating_mul(t.period)).max();
            last.unwrap_or(0).saturating_add(JOBS_DRAIN_NS.max(10 * max_period))
        }
    }
}

/// Runs `runtime`'s plan with `exec` until the horizon or a stop.
pub(crate) fn execute<E: StageExecutor>(
    runtime: &Runtime,
    exec: &E,
    stop: &StopHandle,
) -> Result<RawRun, RuntimeError> {
    let plan = runtime.plan();
    let config = runtime.config();
    let platform = &runtime.system().platform;
    if config.realtime {
        // What the warm-up faulted in stays in the process for the run.
        os::keep_freed_memory();
    }
    let core_config = CoreConfig {
        realtime: config.realtime,
        late: config.late,
        overrun: config.overrun,
        max_backlog: config.max_backlog,
    };
    let core = Core::new(Exec::Borrowed(exec), runtime, core_config, RunSink::new(plan, config), stop.clone());
    let periodic: Vec<Periodic> = plan
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| Periodic::new(i, PeriodicSource::Fixed(exec.run_input(i)), StalePolicy::Reuse, t.offset))
        .collect();
    let spare = spare_cores(platform);
    let horizon = config.horizon;
    let (logs, end) = std::thread::scope(|s| {
        let core = &core;
        let mut workers = Vec::with_capacity(plan.resources);
        for r in 0..plan.resources {
            let cores = worker_cores(platform, r);
            let spawned = std::thread::Builder::new()
                .name(format!("lalarand-{}", platform.resources[r].name))
                .spawn_scoped(s, move || core.worker(r, &cores));
            match spawned {
                Ok(h) => workers.push(h),
                Err(e) => {
                    core.exit();
                    return Err(RuntimeError::Os(format!("cannot start the worker of resource {r}: {e}")));
                }
            }
        }
        let release = std::thread::Builder::new()
            .name("lalarand-release".into())
            .spawn_scoped(s, || {
                let log = <RunSink as Sink<E>>::log(&core.sink, None);
                let warm = core.warm_up();
                core.set_origin(os::monotonic_ns() + LEAD_NS);
                let log = warm.map(|()| core.release_loop(&spare, log, periodic, Some(horizon)));
                // Let the jobs in flight finish.
                let drain_end = drain_end(&core.plan, &horizon);
                while !core.stopping() && core.outstanding.load(Ordering::SeqCst) > 0 && core.now() < drain_end {
                    os::sleep_until(core.origin() + (core.now() + 1_000_000).min(drain_end));
                }
                let end = core.now();
                core.exit();
                log.map(|log| (log, end))
            })
            .map_err(|e| {
                core.exit();
                RuntimeError::Os(format!("cannot start the release thread: {e}"))
            })?;
        let release = release.join().map_err(|_| RuntimeError::Os("the release thread panicked".into()))?;
        let mut logs = workers
            .into_iter()
            .map(|h| h.join().map_err(|_| RuntimeError::Os("a worker panicked".into())))
            .collect::<Result<Vec<_>, _>>()?;
        let (release, end) = release.map_err(RuntimeError::Os)?;
        logs.push(release);
        Ok((logs, end))
    })?;
    // Whatever is still queued or waiting did not finish.
    let unfinished = core
        .leftovers()
        .into_iter()
        .map(|j| JobRecord {
            task: j.task,
            job: j.job,
            release: j.release,
            deadline: j.deadline,
            finish: None,
            outcome: JobOutcome::Unfinished,
        })
        .collect();
    Ok(RawRun {
        logs,
        unfinished,
        end,
        realtime: config.realtime && !core.fifo_refused.load(Ordering::Relaxed),
        max_backlog_seen: core.max_backlog_seen.load(Ordering::Relaxed),
    })
}
