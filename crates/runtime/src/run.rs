//! The run: one worker thread per resource, one release thread, all in this process.
//!
//! Workers park on their resource's queue, pop the highest-priority ready stage, run it to
//! completion (non-preemptive), and queue the job's next stage on its resource at once. The
//! release thread releases jobs on absolute times (origin + offset + k * period), so lateness
//! never accumulates. Before time 0, one warm-up job per task goes through every stage
//! ([`StageExecutor::warm_up`]), so first-run costs are not measured.

use crate::config::{LatePolicy, OverrunPolicy, RunConfig, RunHorizon, StopHandle};
use crate::executor::{StageError, StageExecutor};
use crate::os;
use crate::queue::{InFlight, ResourceQueue};
use crate::record::{JobOutcome, JobRecord, ReleaseLog, StageSlot, WorkerLog};
use lalarand_model::{ExecutionPlan, Platform, Time};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// SCHED_FIFO priority of the release thread: above every worker, so releases are on time.
pub(crate) const RELEASE_FIFO: i32 = 90;
/// Workers run at `WORKER_FIFO - rank` of the task whose stage they run (at least 2): where
/// resources share a core, the OS then favours the stage the task set favours.
pub(crate) const WORKER_FIFO: i32 = 80;
/// Warm-up jobs per task before time 0. One is not enough: glibc places a large block freed
/// by the first job elsewhere when it is reused (small allocations in between shift the heap),
/// faulting its pages in again (measured: a 2 MB input, 507 page faults, 1.2 ms at the first
/// release); from the second job on the layout repeats.
pub(crate) const WARM_UP_JOBS: usize = 2;
/// Most memory of one log allocated and faulted in before the run; a longer run grows it.
const PREALLOC_BYTES: usize = 8 << 20;
/// The release thread wakes at least this often to notice a stop.
const POLL_NS: Time = 10_000_000;
/// Time between the end of the warm-up and time 0, so every worker is parked before the first
/// release.
const LEAD_NS: Time = 5_000_000;
/// Most a [`RunHorizon::Jobs`] run waits after its last release for the jobs to finish
/// (or ten longest periods, if more).
const JOBS_DRAIN_NS: Time = 2_000_000_000;

#[derive(Debug, Default)]
struct TaskSlot {
    /// A job of the task is in flight.
    active: bool,
    /// Releases waiting for it: (job index, release).
    backlog: VecDeque<(u64, Time)>,
}

pub(crate) struct Shared<'a, E: StageExecutor> {
    exec: &'a E,
    plan: &'a ExecutionPlan,
    config: &'a RunConfig,
    /// Monotonic time of the run's time 0, set by the release thread after the warm-up (before
    /// it, `now()` is meaningless and unused).
    origin: AtomicU64,
    /// Warm-up jobs not yet ended.
    warming: AtomicUsize,
    queues: Vec<ResourceQueue<E::Job>>,
    tasks: Vec<Mutex<TaskSlot>>,
    /// Jobs released and not yet ended, backlog included.
    outstanding: AtomicUsize,
    slots_kept: AtomicUsize,
    exit: AtomicBool,
    stop: StopHandle,
}

/// What the threads wrote down, and what was still in flight at the end.
pub(crate) struct RawRun {
    pub workers: Vec<WorkerLog>,
    pub release: ReleaseLog,
    pub unfinished: Vec<JobRecord>,
}

impl<E: StageExecutor> Shared<'_, E> {
    fn now(&self) -> Time {
        os::monotonic_ns().saturating_sub(self.origin())
    }

    fn origin(&self) -> Time {
        self.origin.load(Ordering::Acquire)
    }

    fn task(&self, i: usize) -> MutexGuard<'_, TaskSlot> {
        self.tasks[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue(&self, job: Box<InFlight<E::Job>>) {
        let task = &self.plan.tasks[job.task];
        let r = task.layers[job.stage].resource;
        self.queues[r].push(job, task.priority, self.now());
    }

    /// Starts job `k` of task `i` released at `release` (the task's slot is already active).
    fn start(&self, i: usize, k: u64, release: Time, jobs: &mut Vec<JobRecord>) {
        let deadline = release + self.plan.tasks[i].deadline;
        // The job's state is made by the worker of its first stage (`start_job`), not here: the
        // release thread outranks every worker and shares their cores, so work done here would
        // delay whichever stage runs on its core, unaccounted.
        let job = Box::new(InFlight { task: i, job: k, release, deadline, stage: 0, state: None, warm_up: false });
        if self.plan.tasks[i].layers.is_empty() {
            let rec = JobRecord {
                task: i,
                job: k,
                release,
                deadline,
                finish: Some(self.now()),
                outcome: JobOutcome::Completed,
            };
            return self.end_job(rec, jobs);
        }
        self.queue(job);
    }

    /// Records a job's end and starts the task's next waiting release, if any.
    fn end_job(&self, rec: JobRecord, jobs: &mut Vec<JobRecord>) {
        let i = rec.task;
        jobs.push(rec);
        let next = {
            let mut slot = self.task(i);
            let next = slot.backlog.pop_front();
            slot.active = next.is_some();
            next
        };
        self.outstanding.fetch_sub(1, Ordering::SeqCst);
        if let Some((k, release)) = next {
            self.start(i, k, release, jobs);
        }
    }

    fn finish_run(&self) {
        self.exit.store(true, Ordering::SeqCst);
        for q in &self.queues {
            // Under the lock, so a worker between its exit check and parking cannot miss it.
            let _guard = q.lock();
            q.cv.notify_all();
        }
    }
}

/// The SCHED_FIFO priority a worker runs a stage of a task of priority rank `rank` at.
pub(crate) fn worker_fifo(rank: u32) -> i32 {
    (WORKER_FIFO - rank.min(78) as i32).max(2)
}

/// The job's state, made by [`StageExecutor::start_job`] on first use: on the worker of the
/// job's first stage, just before it runs (warm-up jobs too).
fn job_state<'j, E: StageExecutor>(exec: &E, job: &'j mut InFlight<E::Job>) -> Result<&'j mut E::Job, StageError> {
    if job.state.is_none() {
        let made = catch_unwind(AssertUnwindSafe(|| exec.start_job(job.task, job.job)))
            .map_err(|p| StageError(format!("starting the job panicked: {}", panic_text(&p))))?;
        job.state = Some(made);
    }
    Ok(job.state.as_mut().expect("made above"))
}

pub(crate) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

fn worker<E: StageExecutor>(shared: &Shared<'_, E>, r: usize, cores: &[usize]) -> WorkerLog {
    let mut log = WorkerLog::default();
    if let Err(e) = os::pin_current_thread(cores) {
        tracing::warn!("resource {r}: cannot pin its worker to cores {cores:?} ({e}); it runs unpinned");
    }
    os::set_timer_slack();
    log.fifo = shared.config.realtime && os::set_fifo(WORKER_FIFO);
    // Before the warm-up jobs can reach this worker: the logs' memory, so that no push in the run
    // reallocates (a copy of megabytes, in the hand-off) or faults in a page.
    let (stages, jobs) = expected_work(shared.plan, &shared.config.horizon, Some(r));
    let none = JobRecord { task: 0, job: 0, release: 0, deadline: 0, finish: None, outcome: JobOutcome::Completed };
    let blank = StageSlot { task: 0, job: 0, stage: 0, start: 0, end: 0 };
    prefault(&mut log.slots, stages.min(shared.config.max_trace_slots), blank);
    prefault(&mut log.dispatch, stages, 0);
    prefault(&mut log.handoff, stages, 0);
    prefault(&mut log.jobs, jobs, none);
    let mut fifo_priority = WORKER_FIFO;
    let queue = &shared.queues[r];
    loop {
        let entry = {
            let mut q = queue.lock();
            loop {
                if shared.exit.load(Ordering::SeqCst) {
                    return log;
                }
                if let Some(e) = q.heap.pop() {
                    break e;
                }
                q.parked = true;
                q = queue.cv.wait(q).unwrap_or_else(|e| e.into_inner());
                q.parked = false;
            }
        };
        let mut job = entry.job;
        let (i, stage) = (job.task, job.stage);
        // Before the start is taken: switching priority is the runtime's cost, not the stage's.
        if log.fifo {
            let p = worker_fifo(shared.plan.tasks[i].priority);
            if p != fifo_priority {
                os::set_fifo(p);
                fifo_priority = p;
            }
        }
        if job.warm_up {
            let ok = catch_unwind(AssertUnwindSafe(|| {
                let index = job.job;
                shared.exec.warm_up(i, stage, index, job_state(shared.exec, &mut job)?)
            }))
            .is_ok_and(|r| r.is_ok());
            job.stage += 1;
            if ok && job.stage < shared.plan.tasks[i].layers.len() {
                shared.queue(job);
            } else {
                shared.warming.fetch_sub(1, Ordering::SeqCst);
            }
            continue;
        }
        let start = shared.now();
        if entry.woke_idle {
            log.dispatch.push(start.saturating_sub(entry.ready));
        }
        let end_job = |job: &InFlight<E::Job>, finish: Time, outcome, log: &mut WorkerLog| {
            let rec = JobRecord {
                task: job.task,
                job: job.job,
                release: job.release,
                deadline: job.deadline,
                finish: Some(finish),
                outcome,
            };
            shared.end_job(rec, &mut log.jobs);
        };
        if shared.config.late == LatePolicy::Abort && start > job.deadline {
            end_job(&job, start, JobOutcome::Aborted { stage }, &mut log);
            continue;
        }
        // A new job's state is made here, on the first stage's worker, as part of that stage.
        let result = catch_unwind(AssertUnwindSafe(|| {
            let index = job.job;
            shared.exec.run_stage(i, stage, index, job_state(shared.exec, &mut job)?)
        }))
        .unwrap_or_else(|p| Err(StageError(format!("panicked: {}", panic_text(&p)))));
        let end = shared.now();
        if shared.slots_kept.fetch_add(1, Ordering::Relaxed) < shared.config.max_trace_slots {
            log.slots.push(StageSlot { task: i, job: job.job, stage, start, end });
        } else {
            log.slots_dropped += 1;
        }
        match result {
            Err(e) => {
                tracing::error!(task = i, stage, job = job.job, "stage failed: {e}");
                end_job(&job, end, JobOutcome::Failed { stage, error: e.0 }, &mut log);
            }
            Ok(()) => {
                job.stage += 1;
                if job.stage == shared.plan.tasks[i].layers.len() {
                    end_job(&job, end, JobOutcome::Completed, &mut log);
                } else if shared.config.late == LatePolicy::Abort && end > job.deadline {
                    end_job(&job, end, JobOutcome::Aborted { stage: job.stage }, &mut log);
                } else {
                    shared.queue(job);
                }
            }
        }
        log.handoff.push(shared.now().saturating_sub(end));
    }
}

/// Sleeps until run time `t`; false if the run was stopped meanwhile.
fn wait_until<E: StageExecutor>(shared: &Shared<'_, E>, t: Time) -> bool {
    loop {
        if shared.stop.is_stopped() {
            return false;
        }
        // Absolute time: before time 0, `shared.now()` saturates at 0, which would release the
        // jobs due at 0 up to `LEAD_NS` early.
        let now = os::monotonic_ns();
        let origin = shared.origin();
        if now >= origin + t {
            return true;
        }
        os::sleep_until(origin + t.min(now.saturating_sub(origin) + POLL_NS));
    }
}

fn release_loop<E: StageExecutor>(shared: &Shared<'_, E>) -> ReleaseLog {
    let plan = shared.plan;
    let n = plan.tasks.len();
    let mut log =
        ReleaseLog { released: vec![0; n], skipped: vec![0; n], dropped: vec![0; n], ..ReleaseLog::default() };
    os::set_timer_slack();
    log.fifo = shared.config.realtime && os::set_fifo(RELEASE_FIFO);
    prefault(&mut log.jitter, expected_work(plan, &shared.config.horizon, None).1, 0);
    warm_up(shared);
    shared.origin.store(os::monotonic_ns() + LEAD_NS, Ordering::Release);
    let mut next: Vec<Time> = plan.tasks.iter().map(|t| t.offset).collect();
    let mut count = vec![0u64; n];
    let more = |i: usize, next: &[Time], count: &[u64]| match shared.config.horizon {
        RunHorizon::Duration(d) => next[i] < d,
        RunHorizon::Jobs(k) => count[i] < k,
    };
    let mut last_release = 0;
    // Releases in time order; simultaneous ones highest priority first, the same-instant rule
    // of docs/analysis.md that the simulator follows: a worker woken by the first push then
    // finds the highest-priority job of the instant, not the lowest-indexed task's.
    while let Some(i) = (0..n).filter(|&i| more(i, &next, &count)).min_by_key(|&i| (next[i], plan.tasks[i].priority, i))
    {
        let t = next[i];
        if !wait_until(shared, t) {
            break;
        }
        log.jitter.push(shared.now() - t);
        release(shared, &mut log, i, count[i], t);
        count[i] += 1;
        next[i] = t.saturating_add(plan.tasks[i].period);
        last_release = t;
    }
    // Let the jobs in flight finish. A timed run gives them a longest period after its end
    // (any job still running then has missed its deadline, D <= T); a run of so many jobs
    // waits for all of them, within reason.
    let max_period = plan.tasks.iter().map(|t| t.period).max().unwrap_or(0);
    let drain_end = match shared.config.horizon {
        RunHorizon::Duration(d) => d.max(last_release) + max_period,
        RunHorizon::Jobs(_) => last_release + JOBS_DRAIN_NS.max(10 * max_period),
    };
    while !shared.stop.is_stopped() && shared.outstanding.load(Ordering::SeqCst) > 0 && shared.now() < drain_end {
        os::sleep_until(shared.origin() + (shared.now() + 1_000_000).min(drain_end));
    }
    log.end = shared.now();
    shared.finish_run();
    log
}

/// Stage executions on resource `r` (all resources: `None`) and jobs of the tasks with a stage
/// there, if the run goes to its horizon.
fn expected_work(plan: &ExecutionPlan, horizon: &RunHorizon, r: Option<usize>) -> (usize, usize) {
    let (mut stages, mut jobs) = (0u64, 0u64);
    for t in &plan.tasks {
        let k = match *horizon {
            RunHorizon::Jobs(k) => k,
            RunHorizon::Duration(d) => d.saturating_sub(t.offset).div_ceil(t.period.max(1)),
        };
        let here = t.layers.iter().filter(|l| r.is_none_or(|r| l.resource == r)).count() as u64;
        stages = stages.saturating_add(k.saturating_mul(here));
        if here > 0 {
            jobs = jobs.saturating_add(k);
        }
    }
    (usize::try_from(stages).unwrap_or(usize::MAX), usize::try_from(jobs).unwrap_or(usize::MAX))
}

/// Allocates room for `n` entries in `v` (at most [`PREALLOC_BYTES`]) and writes them once, so
/// their pages are in memory.
fn prefault<T: Clone>(v: &mut Vec<T>, n: usize, blank: T) {
    v.resize(n.min(PREALLOC_BYTES / std::mem::size_of::<T>().max(1)), blank);
    v.clear();
}

/// [`WARM_UP_JOBS`] rounds of one job per task through every stage ([`StageExecutor::warm_up`]):
/// in a round every task's job is started before any runs (the footprint of a simultaneous
/// release), then handed from stage to stage through the queues as in the run. Returns when all
/// have ended or the run is stopped.
fn warm_up<E: StageExecutor>(shared: &Shared<'_, E>) {
    for _ in 0..WARM_UP_JOBS {
        let mut jobs = Vec::new();
        for (i, task) in shared.plan.tasks.iter().enumerate() {
            if task.layers.is_empty() {
                continue;
            }
            // Started lazily on the first stage's worker, as in the run; a panic there is the
            // run's to report, at the task's first release.
            let deadline = Time::MAX;
            jobs.push(Box::new(InFlight {
                task: i,
                job: 0,
                release: 0,
                deadline,
                stage: 0,
                state: None,
                warm_up: true,
            }));
        }
        shared.warming.store(jobs.len(), Ordering::SeqCst);
        for job in jobs {
            shared.queue(job);
        }
        while shared.warming.load(Ordering::SeqCst) > 0 {
            if shared.stop.is_stopped() {
                return;
            }
            os::sleep_until(os::monotonic_ns() + 200_000);
        }
    }
}

fn release<E: StageExecutor>(shared: &Shared<'_, E>, log: &mut ReleaseLog, i: usize, k: u64, t: Time) {
    log.released[i] += 1;
    let mut slot = shared.task(i);
    if !slot.active {
        slot.active = true;
        drop(slot);
        shared.outstanding.fetch_add(1, Ordering::SeqCst);
        shared.start(i, k, t, &mut log.jobs);
        return;
    }
    match shared.config.overrun {
        OverrunPolicy::Skip => log.skipped[i] += 1,
        OverrunPolicy::Queue if slot.backlog.len() < shared.config.max_backlog => {
            slot.backlog.push_back((k, t));
            log.max_backlog_seen = log.max_backlog_seen.max(slot.backlog.len());
            shared.outstanding.fetch_add(1, Ordering::SeqCst);
        }
        OverrunPolicy::Queue => log.dropped[i] += 1,
    }
}

/// Runs `plan` (validated) with `exec` until the horizon or a stop.
pub(crate) fn execute<E: StageExecutor>(
    plan: &ExecutionPlan,
    platform: &Platform,
    config: &RunConfig,
    exec: &E,
    stop: &StopHandle,
) -> Result<RawRun, crate::RuntimeError> {
    let n = plan.tasks.len();
    let capacity = n * (config.max_backlog + 1);
    if config.realtime {
        // What the warm-up faulted in stays in the process for the run.
        os::keep_freed_memory();
    }
    let shared = Shared {
        exec,
        plan,
        config,
        origin: AtomicU64::new(os::monotonic_ns() + LEAD_NS),
        warming: AtomicUsize::new(0),
        queues: (0..plan.resources).map(|_| ResourceQueue::new(capacity)).collect(),
        tasks: (0..n).map(|_| Mutex::new(TaskSlot::default())).collect(),
        outstanding: AtomicUsize::new(0),
        slots_kept: AtomicUsize::new(0),
        exit: AtomicBool::new(false),
        stop: stop.clone(),
    };
    // Workers without cores (gpu resources drive their device from the host) and the release
    // thread keep off the cpu resources' cores, where they would delay stages; on a machine
    // with no core to spare they float.
    let owned: Vec<usize> = platform.resources.iter().flat_map(|r| r.cores.iter().copied()).collect();
    let spare: Vec<usize> = os::available_cores().into_iter().filter(|c| !owned.contains(c)).collect();
    let (workers, release) = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(plan.resources);
        for r in 0..plan.resources {
            let shared = &shared;
            let own = platform.resources[r].cores.as_slice();
            let cores = if own.is_empty() { spare.as_slice() } else { own };
            let spawned = std::thread::Builder::new()
                .name(format!("lalarand-{}", platform.resources[r].name))
                .spawn_scoped(s, move || worker(shared, r, cores));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.finish_run();
                    return Err(crate::RuntimeError::Os(format!("cannot start the worker of resource {r}: {e}")));
                }
            }
        }
        let release = std::thread::Builder::new()
            .name("lalarand-release".into())
            .spawn_scoped(s, || {
                if let Err(e) = os::pin_current_thread(&spare) {
                    tracing::warn!("cannot keep the release thread on cores {spare:?} ({e})");
                }
                release_loop(&shared)
            })
            .map_err(|e| {
                shared.finish_run();
                crate::RuntimeError::Os(format!("cannot start the release thread: {e}"))
            })?;
        let release = release.join().map_err(|_| crate::RuntimeError::Os("the release thread panicked".into()))?;
        let workers = handles
            .into_iter()
            .map(|h| h.join().map_err(|_| crate::RuntimeError::Os("a worker panicked".into())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((workers, release))
    })?;

    // Whatever is still queued or waiting did not finish.
    let mut unfinished = Vec::new();
    let mut push = |task: usize, job: u64, release: Time| {
        let deadline = release + plan.tasks[task].deadline;
        unfinished.push(JobRecord { task, job, release, deadline, finish: None, outcome: JobOutcome::Unfinished });
    };
    for q in &shared.queues {
        for e in q.lock().heap.drain().filter(|e| !e.job.warm_up) {
            push(e.job.task, e.job.job, e.job.release);
        }
    }
    for (i, slot) in shared.tasks.iter().enumerate() {
        for &(k, release) in &slot.lock().unwrap_or_else(|e| e.into_inner()).backlog {
            push(i, k, release);
        }
    }
    Ok(RawRun { workers, release, unfinished })
}
