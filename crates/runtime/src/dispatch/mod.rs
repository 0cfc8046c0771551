//! The dispatch core that `lalarand run` ([`crate::Runtime::run`]) and the server
//! ([`crate::serve::Server`]) both sit on: one worker thread per resource (`worker.rs`), one
//! release thread (`release.rs`), the resources' ready queues (`queue.rs`), the fixed-priority
//! and SCHED_FIFO policy, the admission of a task's jobs one at a time with a bounded backlog,
//! the warm-up, and the stall accounting (`stalls.rs`).
//!
//! What happens to what the threads measure and to a job that ended is a [`Sink`]'s: the run
//! writes everything down in per-thread logs for its report, the server updates live
//! statistics and delivers each job's result to its handle or stream.

mod queue;
mod release;
mod stalls;
mod worker;

pub(crate) use release::{source_loop, CallbackShared, Periodic, PeriodicSource, SlotInner};
pub(crate) use stalls::{get, StallCounters};

use crate::config::{LatePolicy, OverrunPolicy, StopHandle};
use crate::executor::{StageError, StageExecutor};
use crate::os;
use crate::serve::{Input, InputSpec};
use crate::Runtime;
use lalarand_model::StageSlot;
use lalarand_model::{ExecutionPlan, Platform, Time};
use queue::ResourceQueue;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// SCHED_FIFO priority of the release thread: above every worker, so releases are on time.
const RELEASE_FIFO: i32 = 90;
/// Workers run at `WORKER_FIFO - rank` of the task whose stage they run (at least 2): where
/// resources share a core, the OS then favours the stage the task set favours.
const WORKER_FIFO: i32 = 80;
/// Warm-up jobs per task before time 0. One is not enough: glibc places a large block freed
/// by the first job elsewhere when it is reused (small allocations in between shift the heap),
/// faulting its pages in again (measured: a 2 MB input, 507 page faults, 1.2 ms at the first
/// release); from the second job on the layout repeats.
const WARM_UP_JOBS: usize = 2;
/// Warm-up jobs may take this long in all (model sessions build lazily on their first runs).
const WARM_UP_TIMEOUT_NS: Time = 120_000_000_000;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

/// The settings the core's threads follow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoreConfig {
    /// Ask for SCHED_FIFO.
    pub realtime: bool,
    pub late: LatePolicy,
    pub overrun: OverrunPolicy,
    /// Jobs of a task that may wait while one of it is in flight.
    pub max_backlog: usize,
}

/// The executor, owned (the server's threads outlive the caller) or borrowed (a run's scoped
/// threads).
pub(crate) enum Exec<'e, E> {
    Owned(E),
    Borrowed(&'e E),
}

impl<E> std::ops::Deref for Exec<'_, E> {
    type Target = E;
    fn deref(&self) -> &E {
        match self {
            Self::Owned(e) => e,
            Self::Borrowed(e) => e,
        }
    }
}

/// A job between stages. Owned by exactly one queue or worker at a time: its input and state
/// (tensors) move with it, never copied.
pub(crate) struct InFlight<J, R> {
    pub task: usize,
    pub job: u64,
    /// Nominal release: responses and the deadline count from it.
    pub release: Time,
    pub deadline: Time,
    /// The next stage to run.
    pub stage: usize,
    /// A warm-up job, run before time 0 ([`StageExecutor::warm_up`]), never recorded.
    pub warm_up: bool,
    /// Taken by [`StageExecutor::start_job`] on the worker of the first stage.
    pub input: Option<Input>,
    /// Made by [`StageExecutor::start_job`] just before the first stage runs; `None` until then.
    pub state: Option<J>,
    /// Where the job's end goes (the sink's); `None` for warm-up jobs.
    pub reply: Option<R>,
    /// When it was submitted (sporadic), or its nominal release (periodic).
    pub submitted: Time,
    /// When its first stage started.
    pub start: Option<Time>,
    /// [`StallCounters::total`] when the oldest job in flight at this one's release was
    /// released: its `stalled` counts from there.
    pub stall_mark: Time,
}

pub(crate) type Job<E, S> = Box<InFlight<<E as StageExecutor>::Job, <S as Sink<E>>::Reply>>;

/// How a job ended other than by completing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Stage `stage` (or making the job's state, stage 0) failed.
    Failed { stage: usize, error: String },
    /// Ended before running `stage`, past its deadline ([`LatePolicy::Abort`]).
    Aborted { stage: usize },
    /// Cancelled by a stop.
    Cancelled,
    /// Released while a job of its task was in flight: skipped ([`OverrunPolicy::Skip`]).
    Skipped,
    /// Released while its task's backlog was full: dropped.
    Dropped,
    /// The task's input source failed.
    Source(String),
}

/// A job that ended, handed to the [`Sink`].
pub(crate) struct Done<J, R> {
    pub task: usize,
    pub job: u64,
    pub reply: Option<R>,
    pub submitted: Time,
    pub release: Time,
    pub deadline: Time,
    pub start: Option<Time>,
    pub finish: Time,
    /// The machine's stalls while the job was in flight (`serve::JobTiming::stalled`).
    pub stalled: Time,
    /// The job's state after its last stage, or why it ended.
    pub outcome: Result<J, Ending>,
}

/// What becomes of what the core's threads measure and of the jobs that end: `run` logs it,
/// `serve` keeps live statistics and delivers results. Every method runs on a core thread
/// (worker or release thread) or on the application's thread that submits or stops; `log` is
/// that thread's own, written without a lock.
pub(crate) trait Sink<E: StageExecutor>: Send + Sync {
    /// Where a job's result goes.
    type Reply: Send;
    /// What one thread writes down; the worker of `Some(resource)` or the release thread.
    type Log: Send;
    fn log(&self, worker: Option<usize>) -> Self::Log;
    /// Where the result of a periodic job of `task` goes.
    fn periodic_reply(&self, task: usize) -> Self::Reply;
    /// A job of `task` was admitted (it will end exactly once).
    fn admitted(&self, _task: usize) {}
    /// A periodic release of `task` was made `jitter` after its nominal time.
    fn released(&self, log: &mut Self::Log, task: usize, jitter: Time);
    /// A periodic release of `task` was skipped: its source had nothing new.
    fn stale(&self, _task: usize) {}
    /// A stage queued on an idle resource started `latency` after it was queued.
    fn dispatched(&self, log: &mut Self::Log, latency: Time);
    /// A stage ran on `resource`.
    fn stage_ran(&self, log: &mut Self::Log, resource: usize, slot: StageSlot);
    /// The hand-off after a stage (its end -> the next stage queued, or the job ended).
    fn handed_off(&self, log: &mut Self::Log, ns: Time);
    /// A job ended. Returns the state it did not keep, which the worker drops after timing the
    /// hand-off.
    fn ended(&self, log: &mut Self::Log, done: Done<E::Job, Self::Reply>) -> Option<E::Job>;
}

/// Per-task admission state.
pub(crate) struct TaskSlot<J> {
    /// A job of the task is in flight (jobs of one task never overlap).
    pub active: bool,
    /// Released jobs waiting for it.
    pub backlog: VecDeque<J>,
    /// The latest release admitted (sporadic: the minimum inter-arrival time counts from it).
    pub last_release: Option<Time>,
    pub next_job: u64,
    /// Sporadic submissions waiting for their legal release.
    pub waiting: usize,
}

impl<J> Default for TaskSlot<J> {
    fn default() -> Self {
        Self { active: false, backlog: VecDeque::new(), last_release: None, next_job: 0, waiting: 0 }
    }
}

/// Sporadic submissions waiting for their legal release, by (release, sequence).
pub(crate) struct Delayed<J> {
    pub jobs: BTreeMap<(Time, u64), J>,
    pub seq: u64,
}

/// The state every thread of a run or a server shares.
pub(crate) struct Core<'e, E: StageExecutor, S: Sink<E>> {
    pub exec: Exec<'e, E>,
    pub plan: ExecutionPlan,
    /// Per resource: the wake-up overhead the plan charges.
    wakeup_charge: Vec<Time>,
    /// Per task: the input it takes.
    pub specs: Vec<InputSpec>,
    pub config: CoreConfig,
    pub sink: S,
    /// Monotonic time of time 0 (meaningless before the warm-up ended).
    origin: AtomicU64,
    queues: Vec<ResourceQueue<Job<E, S>>>,
    tasks: Vec<Mutex<TaskSlot<Job<E, S>>>>,
    /// Per task, the `stall_mark` of its job in flight (`Time::MAX`: none).
    active_marks: Vec<AtomicU64>,
    pub delayed: Mutex<Delayed<Job<E, S>>>,
    /// Wakes the release thread (a submission that must wait, a stop).
    pub release_cv: Condvar,
    pub stalls: StallCounters,
    /// Stage executions past their planned cost.
    pub overruns: AtomicU64,
    /// A thread asked for SCHED_FIFO and was refused.
    pub fifo_refused: AtomicBool,
    /// Largest backlog of one task seen.
    pub max_backlog_seen: AtomicUsize,
    /// Jobs admitted and not yet handed to the sink.
    pub outstanding: AtomicUsize,
    /// Warm-up jobs not yet ended.
    warming: AtomicUsize,
    /// Releases and submissions end.
    pub stop: StopHandle,
    /// Jobs not yet run end as cancelled.
    pub cancel: AtomicBool,
    /// Threads end.
    pub exit: AtomicBool,
}

impl<'e, E: StageExecutor, S: Sink<E>> Core<'e, E, S> {
    pub fn new(exec: Exec<'e, E>, runtime: &Runtime, config: CoreConfig, sink: S, stop: StopHandle) -> Self {
        let plan = runtime.plan().clone();
        let n = plan.tasks.len();
        let capacity = n * (config.max_backlog + 1);
        Self {
            specs: (0..n).map(|i| exec.input_spec(i)).collect(),
            exec,
            wakeup_charge: runtime.system().platform.resources.iter().map(|r| r.wakeup_overhead).collect(),
            config,
            sink,
            origin: AtomicU64::new(os::monotonic_ns()),
            queues: (0..plan.resources).map(|_| ResourceQueue::new(capacity)).collect(),
            tasks: (0..n).map(|_| Mutex::new(TaskSlot::default())).collect(),
            active_marks: (0..n).map(|_| AtomicU64::new(Time::MAX)).collect(),
            delayed: Mutex::new(Delayed { jobs: BTreeMap::new(), seq: 0 }),
            release_cv: Condvar::new(),
            stalls: StallCounters::default(),
            overruns: AtomicU64::new(0),
            fifo_refused: AtomicBool::new(false),
            max_backlog_seen: AtomicUsize::new(0),
            outstanding: AtomicUsize::new(0),
            warming: AtomicUsize::new(0),
            stop,
            cancel: AtomicBool::new(false),
            exit: AtomicBool::new(false),
            plan,
        }
    }

    /// Nanoseconds since time 0 (0 before it).
    pub fn now(&self) -> Time {
        os::monotonic_ns().saturating_sub(self.origin())
    }

    pub fn origin(&self) -> Time {
        self.origin.load(Ordering::Acquire)
    }

    /// Sets time 0 at monotonic time `t`.
    pub fn set_origin(&self, t: Time) {
        self.origin.store(t, Ordering::Release);
    }

    pub fn task(&self, i: usize) -> MutexGuard<'_, TaskSlot<Job<E, S>>> {
        lock(&self.tasks[i])
    }

    pub fn stopping(&self) -> bool {
        self.stop.is_stopped()
    }

    /// Asks for SCHED_FIFO at `priority` if the settings say so; notes a refusal.
    fn fifo(&self, priority: i32) -> bool {
        let ok = self.config.realtime && os::set_fifo(priority);
        if self.config.realtime && !ok {
            self.fifo_refused.store(true, Ordering::Relaxed);
        }
        ok
    }

    pub fn queue(&self, job: Job<E, S>) {
        self.queue_at(job, self.now());
    }

    /// Queues `job`'s next stage on its resource, ready since `now`.
    fn queue_at(&self, job: Job<E, S>, now: Time) {
        let task = &self.plan.tasks[job.task];
        let r = task.layers[job.stage].resource;
        let key = (task.priority, job.release, job.task);
        self.queues[r].push(job, key, now);
    }

    /// A new job of task `i`, released at `release`.
    pub fn new_job(
        &self,
        i: usize,
        k: u64,
        release: Time,
        submitted: Time,
        input: Input,
        reply: Option<S::Reply>,
    ) -> Job<E, S> {
        Box::new(InFlight {
            task: i,
            job: k,
            release,
            deadline: release.saturating_add(self.plan.tasks[i].deadline),
            stage: 0,
            warm_up: false,
            input: Some(input),
            state: None,
            reply,
            submitted,
            start: None,
            stall_mark: 0,
        })
    }

    /// Counts a job of task `i` as admitted: it will be handed to the sink exactly once.
    pub fn admit(&self, i: usize) {
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        self.sink.admitted(i);
    }

    /// Releases an admitted job: starts it, or puts it in the task's backlog while another
    /// runs; under [`OverrunPolicy::Skip`] it is skipped instead, and a full backlog drops it.
    /// The job's `stalled` counts the machine's stalls from the release of the oldest job still
    /// in flight (their delays carry into this one's: a backlog, a higher-priority job still
    /// pending), this one included: the time from its release to being queued (or put in the
    /// backlog), counted in `part` before the job can run (the analysis charges no release
    /// jitter).
    pub fn release(&self, log: &mut S::Log, mut job: Job<E, S>, part: &AtomicU64) {
        let (i, release) = (job.task, job.release);
        let oldest = self.active_marks.iter().map(|m| m.load(Ordering::Acquire)).min().unwrap_or(Time::MAX);
        let mark = self.stalls.total().min(oldest);
        job.stall_mark = mark;
        let late = |now: Time| self.stalls.add(part, now.saturating_sub(release));
        let mut slot = self.task(i);
        if !slot.active {
            slot.active = true;
            self.active_marks[i].store(mark, Ordering::Release);
            drop(slot);
            let now = self.now();
            late(now);
            self.start(log, job, now);
        } else if self.config.overrun == OverrunPolicy::Skip {
            drop(slot);
            let now = self.now();
            self.deliver(log, job, now, Err(Ending::Skipped));
        } else if slot.backlog.len() < self.config.max_backlog {
            late(self.now());
            slot.backlog.push_back(job);
            self.max_backlog_seen.fetch_max(slot.backlog.len(), Ordering::Relaxed);
        } else {
            drop(slot);
            let now = self.now();
            self.deliver(log, job, now, Err(Ending::Dropped));
        }
    }

    /// Queues the first stage of a job that became its task's active one.
    fn start(&self, log: &mut S::Log, job: Job<E, S>, now: Time) {
        if self.plan.tasks[job.task].layers.is_empty() {
            // Validation refuses profiles without layers; should one get here, it ends at once.
            self.end(log, job, now, Ok(()));
        } else {
            self.queue_at(job, now);
        }
    }

    /// The task's active job ended: hands it to the sink and starts the task's next waiting
    /// job. Returns the state the sink did not keep.
    pub fn end(&self, log: &mut S::Log, job: Job<E, S>, finish: Time, outcome: Result<(), Ending>) -> Option<E::Job> {
        let i = job.task;
        let next = {
            let mut slot = self.task(i);
            let next = slot.backlog.pop_front();
            slot.active = next.is_some();
            self.active_marks[i].store(next.as_ref().map_or(Time::MAX, |n| n.stall_mark), Ordering::Release);
            next
        };
        let leftover = self.deliver(log, job, finish, outcome);
        if let Some(next) = next {
            let now = self.now();
            if self.cancel.load(Ordering::SeqCst) {
                self.end(log, next, now, Err(Ending::Cancelled));
            } else {
                self.start(log, next, now);
            }
        }
        leftover
    }

    /// Hands a job that ended (or never became active) to the sink.
    #[allow(clippy::boxed_local)] // jobs travel boxed; unboxing here would move them for nothing
    pub fn deliver(
        &self,
        log: &mut S::Log,
        mut job: Job<E, S>,
        finish: Time,
        outcome: Result<(), Ending>,
    ) -> Option<E::Job> {
        let stalled = self.stalls.total().saturating_sub(job.stall_mark);
        let outcome = outcome.and_then(|()| {
            job.state
                .take()
                .ok_or_else(|| Ending::Failed { stage: 0, error: "the job has no state (no stage ran)".into() })
        });
        let done = Done {
            task: job.task,
            job: job.job,
            reply: job.reply.take(),
            submitted: job.submitted,
            release: job.release,
            deadline: job.deadline,
            start: job.start,
            finish,
            stalled,
            outcome,
        };
        let leftover = self.sink.ended(log, done);
        self.outstanding.fetch_sub(1, Ordering::SeqCst);
        leftover
    }

    /// Wakes every thread that waits for work.
    pub fn wake_all(&self) {
        for q in &self.queues {
            // Under the lock, so a worker between its exit check and parking cannot miss it.
            let _guard = q.lock();
            q.cv.notify_all();
        }
        let _guard = lock(&self.delayed);
        self.release_cv.notify_all();
    }

    /// Ends every thread (each after the stage it runs).
    pub fn exit(&self) {
        self.exit.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// [`WARM_UP_JOBS`] rounds of one job per task through every stage
    /// ([`StageExecutor::warm_up`]), inputs of zeros: in a round every task's job is queued
    /// before any runs (the footprint of a simultaneous release), then handed from stage to
    /// stage through the queues as the jobs that follow are. Returns when all have ended or
    /// the core is stopped; an error if they take longer than [`WARM_UP_TIMEOUT_NS`].
    pub fn warm_up(&self) -> Result<(), String> {
        let end = os::monotonic_ns() + WARM_UP_TIMEOUT_NS;
        for _ in 0..WARM_UP_JOBS {
            let jobs: Vec<Job<E, S>> = (0..self.plan.tasks.len())
                .filter(|&i| !self.plan.tasks[i].layers.is_empty())
                .map(|i| {
                    let mut job = self.new_job(i, 0, 0, 0, self.specs[i].example_input(), None);
                    job.warm_up = true;
                    job.deadline = Time::MAX;
                    job
                })
                .collect();
            self.warming.store(jobs.len(), Ordering::SeqCst);
            for job in jobs {
                self.queue(job);
            }
            while self.warming.load(Ordering::SeqCst) > 0 {
                if self.stopping() {
                    return Ok(());
                }
                if os::monotonic_ns() > end {
                    return Err(format!(
                        "the warm-up jobs did not end within {} s",
                        WARM_UP_TIMEOUT_NS / 1_000_000_000
                    ));
                }
                os::sleep_until(os::monotonic_ns() + 200_000);
            }
        }
        Ok(())
    }

    /// Every job still queued, in a backlog or waiting for its release (warm-up jobs left out),
    /// once the threads have ended.
    pub fn leftovers(&self) -> Vec<Job<E, S>> {
        let mut jobs: Vec<Job<E, S>> =
            self.queues.iter().flat_map(|q| q.lock().heap.drain().map(|e| e.job).collect::<Vec<_>>()).collect();
        jobs.retain(|j| !j.warm_up);
        for i in 0..self.tasks.len() {
            jobs.extend(self.task(i).backlog.drain(..));
        }
        jobs.extend(std::mem::take(&mut lock(&self.delayed).jobs).into_values());
        jobs
    }
}

/// The cores of resource `r`'s worker: its own, or (a gpu resource: it drives its device from
/// the host) the cores no cpu resource owns.
pub(crate) fn worker_cores(platform: &Platform, r: usize) -> Vec<usize> {
    let own = &platform.resources[r].cores;
    if own.is_empty() {
        spare_cores(platform)
    } else {
        own.clone()
    }
}

/// The cores no cpu resource owns: workers without cores and the release thread keep there, off
/// the cores where they would delay stages; on a machine with no core to spare they float.
pub(crate) fn spare_cores(platform: &Platform) -> Vec<usize> {
    let owned: Vec<usize> = platform.resources.iter().flat_map(|r| r.cores.iter().copied()).collect();
    os::available_cores().into_iter().filter(|c| !owned.contains(c)).collect()
}

/// Makes a job's executor state on first use (on its first stage's worker).
fn ensure_state<E: StageExecutor, R>(exec: &E, job: &mut InFlight<E::Job, R>) -> Result<(), StageError> {
    if job.state.is_none() {
        let input = job.input.take().ok_or_else(|| StageError("the job has no input".into()))?;
        let (task, index) = (job.task, job.job);
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exec.start_job(task, index, &input)))
            .map_err(|p| StageError(format!("starting the job panicked: {}", panic_text(&p))))??;
        job.state = Some(made);
    }
    Ok(())
}
