//! The server's threads: one worker per resource (the run's queues, priority order and
//! SCHED_FIFO policy), one release thread (periodic releases, delayed sporadic ones), one
//! delivery thread (outputs to the host, handles, result streams, statistics) and one source
//! thread per periodic task fed by a callback.

use super::handle::{Slot, Stream};
use super::stats::{inc, Stats};
use super::types::*;
use super::ServeExecutor;
use crate::config::LatePolicy;
use crate::executor::StageError;
use crate::os;
use crate::queue::{InFlight, ResourceQueue};
use crate::record::StageSlot;
use crate::run::{panic_text, worker_fifo, RELEASE_FIFO, WORKER_FIFO};
use crate::Runtime;
use lalarand_model::Time;
use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// SCHED_FIFO priority of the delivery thread (workers run at 2 and above).
const DELIVERY_FIFO: i32 = 1;
/// The release thread waits at most this long between looks at its state.
const POLL_NS: Time = 10_000_000;
/// Closer than this to a release, the release thread sleeps to it precisely
/// ([`os::sleep_until`]) instead of on its condition variable.
const PRECISE_NS: Time = 1_000_000;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a job's result goes.
pub(crate) enum Reply {
    Handle(Arc<Slot>),
    Stream,
    WarmUp,
}

/// A job's state between stages (inside the run's [`InFlight`]).
pub(crate) struct ServeJob<J> {
    pub input: Option<Input>,
    pub state: Option<J>,
    pub reply: Reply,
    pub submitted: Time,
    pub start: Option<Time>,
    /// [`super::stats::StallCounters::total`] when the oldest job in flight at this one's
    /// release was released: its `stalled` counts from there.
    pub stall_mark: Time,
}

pub(crate) type Job<E> = Box<InFlight<ServeJob<<E as ServeExecutor>::Job>>>;

/// A job that ended, on its way to the delivery thread.
pub(crate) struct Done<J> {
    pub task: usize,
    pub job: u64,
    pub reply: Reply,
    pub submitted: Time,
    pub release: Time,
    pub deadline: Time,
    pub start: Option<Time>,
    pub finish: Time,
    /// The machine's stalls while the job was in flight ([`JobTiming::stalled`]).
    pub stalled: Time,
    pub outcome: Result<J, ServeError>,
}

pub(crate) enum Msg<J> {
    Done(Box<Done<J>>),
    Exit,
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

/// A slot an application writes a periodic task's latest input into.
pub(crate) struct SlotInner {
    /// The latest input and its version (0: none yet).
    pub latest: Mutex<(Option<Input>, u64)>,
}

/// A callback source's state, shared with its thread.
pub(crate) struct CallbackShared {
    pub state: Mutex<CallbackState>,
    pub cv: Condvar,
}

#[derive(Default)]
pub(crate) struct CallbackState {
    /// The next call to make, for this job.
    pub want: Option<u64>,
    pub running: bool,
    pub result: Option<Result<Option<Input>, String>>,
    pub exit: bool,
}

pub(crate) enum PeriodicSource {
    Slot(Arc<SlotInner>),
    Callback(Arc<CallbackShared>),
}

pub(crate) struct Periodic {
    pub task: usize,
    pub source: PeriodicSource,
    pub stale: StalePolicy,
    pub last_input: Option<Input>,
    /// Version of the slot's input the last release took.
    pub taken: u64,
    pub next_release: Time,
}

/// Sporadic submissions waiting for their legal release, by (release, sequence).
pub(crate) struct Delayed<J> {
    pub jobs: BTreeMap<(Time, u64), J>,
    pub seq: u64,
}

pub(crate) struct Core<E: ServeExecutor> {
    pub exec: E,
    pub runtime: Runtime,
    pub config: ServeConfig,
    pub names: Vec<String>,
    pub specs: Vec<InputSpec>,
    pub modes: Vec<bool>,
    pub early: Vec<EarlyPolicy>,
    pub bounds: Vec<Option<Time>>,
    pub origin: AtomicU64,
    pub queues: Vec<ResourceQueue<ServeJob<E::Job>>>,
    pub tasks: Vec<Mutex<TaskSlot<Job<E>>>>,
    /// Per task, the `stall_mark` of its job in flight (`Time::MAX`: none).
    pub active_marks: Vec<AtomicU64>,
    pub delayed: Mutex<Delayed<Job<E>>>,
    pub release_cv: Condvar,
    pub streams: Vec<Option<Arc<Stream>>>,
    pub slots: Vec<Option<Arc<SlotInner>>>,
    pub done: Mutex<Sender<Msg<E::Job>>>,
    pub stats: Stats,
    pub trace: Option<Vec<Mutex<VecDeque<StageSlot>>>>,
    /// Admitted jobs not yet delivered.
    pub outstanding: AtomicUsize,
    pub warming: AtomicUsize,
    /// Submissions and releases end.
    pub stopping: AtomicBool,
    /// Jobs not yet run end as cancelled.
    pub cancel: AtomicBool,
    /// Threads end.
    pub exit: AtomicBool,
}

impl<E: ServeExecutor> Core<E> {
    pub fn now(&self) -> Time {
        os::monotonic_ns().saturating_sub(self.origin.load(Ordering::Acquire))
    }

    pub fn task(&self, i: usize) -> MutexGuard<'_, TaskSlot<Job<E>>> {
        lock(&self.tasks[i])
    }

    fn plan_task(&self, i: usize) -> &lalarand_model::PlannedTask {
        &self.runtime.plan().tasks[i]
    }

    pub fn queue(&self, job: Job<E>) {
        self.queue_at(job, self.now());
    }

    /// Queues `job`'s next stage, ready since `now`.
    fn queue_at(&self, job: Job<E>, now: Time) {
        let task = self.plan_task(job.task);
        let r = task.layers[job.stage].resource;
        self.queues[r].push(job, task.priority, now);
    }

    /// A new job of task `i`, released at `release`.
    pub fn new_job(&self, i: usize, k: u64, release: Time, submitted: Time, input: Input, reply: Reply) -> Job<E> {
        Box::new(InFlight {
            task: i,
            job: k,
            release,
            deadline: release + self.plan_task(i).deadline,
            stage: 0,
            state: Some(ServeJob { input: Some(input), state: None, reply, submitted, start: None, stall_mark: 0 }),
            warm_up: false,
        })
    }

    /// Admits a job at its release: starts it, or puts it in the task's backlog while another
    /// runs; a full backlog drops it (resolved with an error). The job's `stalled` counts the
    /// machine's stalls from the release of the oldest job still in flight (their delays carry
    /// into this one's: a backlog, a higher-priority job still pending), this one included: the
    /// time from its release to being queued (or put in the backlog), counted in `part` before
    /// the job can run (the analysis charges no release jitter).
    pub fn release(&self, mut job: Job<E>, part: &AtomicU64) {
        let (i, release) = (job.task, job.release);
        let oldest = self.active_marks.iter().map(|m| m.load(Ordering::Acquire)).min().unwrap_or(Time::MAX);
        let mark = self.stats.stalls.total().min(oldest);
        if let Some(sj) = job.state.as_mut() {
            sj.stall_mark = mark;
        }
        let late = |now: Time| self.stats.stalls.add(part, now.saturating_sub(release));
        let mut slot = self.task(i);
        if !slot.active {
            slot.active = true;
            self.active_marks[i].store(mark, Ordering::Release);
            drop(slot);
            let now = self.now();
            late(now);
            if self.plan_task(i).layers.is_empty() {
                return self.end(job, now, Ok(()));
            }
            self.queue_at(job, now);
        } else if slot.backlog.len() < self.config.max_backlog {
            late(self.now());
            slot.backlog.push_back(job);
        } else {
            drop(slot);
            inc(&self.stats.tasks[i].dropped);
            let waiting = self.config.max_backlog;
            let now = self.now();
            self.deliver(job, now, Err(ServeError::Backlog { task: self.names[i].clone(), waiting }));
        }
    }

    /// Counts a job as admitted (it will be delivered exactly once).
    pub fn count_admitted(&self, i: usize) {
        inc(&self.stats.tasks[i].released);
        self.stats.in_flight[i].fetch_add(1, Ordering::SeqCst);
        self.outstanding.fetch_add(1, Ordering::SeqCst);
    }

    /// A job that was running (or queued) ended: starts the task's next waiting job and
    /// hands this one to the delivery thread.
    pub fn end(&self, job: Job<E>, finish: Time, outcome: Result<(), ServeError>) {
        let i = job.task;
        let next = {
            let mut slot = self.task(i);
            let next = slot.backlog.pop_front();
            slot.active = next.is_some();
            let mark = next.as_ref().and_then(|n| n.state.as_ref()).map_or(Time::MAX, |s| s.stall_mark);
            self.active_marks[i].store(mark, Ordering::Release);
            next
        };
        self.deliver(job, finish, outcome);
        if let Some(next) = next {
            if self.cancel.load(Ordering::SeqCst) {
                let now = self.now();
                let e = self.cancelled(&next);
                self.end(next, now, Err(e));
            } else {
                self.queue(next);
            }
        }
    }

    pub fn cancelled(&self, job: &Job<E>) -> ServeError {
        ServeError::Cancelled { task: self.names[job.task].clone(), job: job.job }
    }

    /// Sends a job that ended to the delivery thread.
    #[allow(clippy::boxed_local)] // jobs travel boxed; unboxing here would move them for nothing
    pub fn deliver(&self, mut job: Job<E>, finish: Time, outcome: Result<(), ServeError>) {
        let sj = job.state.take().expect("serve jobs carry their state");
        let stalled = self.stats.stalls.total().saturating_sub(sj.stall_mark);
        let outcome = match outcome {
            Ok(()) => sj.state.ok_or_else(|| ServeError::Failed {
                task: self.names[job.task].clone(),
                job: job.job,
                stage: 0,
                error: "the job has no state (no stage ran)".into(),
            }),
            Err(e) => Err(e),
        };
        let done = Done {
            task: job.task,
            job: job.job,
            reply: sj.reply,
            submitted: sj.submitted,
            release: job.release,
            deadline: job.deadline,
            start: sj.start,
            finish,
            stalled,
            outcome,
        };
        // The receiver lives until every other thread has ended.
        let _ = lock(&self.done).send(Msg::Done(Box::new(done)));
    }

    /// Wakes every thread that waits for work.
    pub fn wake_all(&self) {
        for q in &self.queues {
            let _guard = q.lock();
            q.cv.notify_all();
        }
        let _guard = lock(&self.delayed);
        self.release_cv.notify_all();
    }
}

/// Makes a job's executor state on first use (on its first stage's worker).
fn ensure_state<E: ServeExecutor>(exec: &E, job: &mut InFlight<ServeJob<E::Job>>) -> Result<(), StageError> {
    let sj = job.state.as_mut().expect("serve jobs carry their state");
    if sj.state.is_none() {
        let input = sj.input.take().ok_or_else(|| StageError("the job has no input".into()))?;
        let (task, index) = (job.task, job.job);
        let made = catch_unwind(AssertUnwindSafe(|| exec.start_job(task, index, &input)))
            .map_err(|p| StageError(format!("starting the job panicked: {}", panic_text(&p))))??;
        sj.state = Some(made);
    }
    Ok(())
}

fn state_of<J>(job: &mut InFlight<ServeJob<J>>) -> &mut J {
    job.state.as_mut().and_then(|s| s.state.as_mut()).expect("made by ensure_state")
}

pub(crate) fn worker<E: ServeExecutor>(core: &Core<E>, r: usize, cores: &[usize]) {
    if let Err(e) = os::pin_current_thread(cores) {
        tracing::warn!("resource {r}: cannot pin its worker to cores {cores:?} ({e}); it runs unpinned");
    }
    os::set_timer_slack();
    let fifo = core.config.realtime && os::set_fifo(WORKER_FIFO);
    if core.config.realtime && !fifo {
        *lock(&core.stats.fifo_refused) = true;
    }
    let mut fifo_priority = WORKER_FIFO;
    let queue = &core.queues[r];
    let plan = core.runtime.plan();
    let wakeup_charge = core.runtime.system().platform.resources[r].wakeup_overhead;
    let stalls = &core.stats.stalls;
    loop {
        let (entry, woken_by) = {
            let mut q = queue.lock();
            loop {
                if core.exit.load(Ordering::SeqCst) {
                    return;
                }
                if let Some(e) = q.heap.pop() {
                    break (e, q.woken_by.take());
                }
                q.parked = true;
                q = queue.cv.wait(q).unwrap_or_else(|e| e.into_inner());
                q.parked = false;
            }
        };
        let popped = core.now();
        let mut job = entry.job;
        let (i, stage) = (job.task, job.stage);
        if let Some(queued) = woken_by.filter(|_| !job.warm_up) {
            // Woken from its empty queue: the wake-up past the charge is the machine's.
            stalls.add(&stalls.wakeup, popped.saturating_sub(queued).saturating_sub(wakeup_charge));
        }
        if fifo {
            let p = worker_fifo(plan.tasks[i].priority);
            if p != fifo_priority {
                os::set_fifo(p);
                fifo_priority = p;
            }
        }
        if job.warm_up {
            let ok = catch_unwind(AssertUnwindSafe(|| {
                ensure_state(&core.exec, &mut job)?;
                let index = job.job;
                core.exec.warm_up(i, stage, index, state_of(&mut job))
            }))
            .is_ok_and(|r| r.is_ok());
            job.stage += 1;
            if ok && job.stage < plan.tasks[i].layers.len() {
                core.queue(job);
            } else {
                core.warming.fetch_sub(1, Ordering::SeqCst);
            }
            continue;
        }
        let start = core.now();
        if entry.woke_idle {
            core.stats.dispatch.record(start.saturating_sub(entry.ready));
        }
        if core.cancel.load(Ordering::SeqCst) {
            let e = core.cancelled(&job);
            core.end(job, start, Err(e));
            continue;
        }
        if core.config.late == LatePolicy::Abort && start > job.deadline {
            let e = ServeError::Aborted { task: core.names[i].clone(), job: job.job, stage };
            core.end(job, start, Err(e));
            continue;
        }
        if stage == 0 {
            if let Some(sj) = job.state.as_mut() {
                sj.start = Some(start);
            }
        }
        let result = catch_unwind(AssertUnwindSafe(|| {
            ensure_state(&core.exec, &mut job)?;
            let index = job.job;
            core.exec.run_stage(i, stage, index, state_of(&mut job))
        }))
        .unwrap_or_else(|p| Err(StageError(format!("panicked: {}", panic_text(&p)))));
        let end = core.now();
        core.stats.busy[r].fetch_add(end - start, Ordering::Relaxed);
        let layer = &plan.tasks[i].layers[stage];
        if end - start > layer.wcet {
            inc(&core.stats.overruns);
        }
        // The stage's work from its pop (priority change included) to its end, then with its
        // hand-off, against its planned cost less the wake-up charge (counted above): past it,
        // the machine took the core away (steal, interrupts) or the work overran its profile.
        let budget = layer.wcet.saturating_sub(layer.wakeup);
        let run_excess = (end - popped).saturating_sub(budget);
        stalls.add(&stalls.stage, run_excess);
        if let Some(trace) = &core.trace {
            let mut ring = lock(&trace[r]);
            ring.push_back(StageSlot { task: i, job: job.job, stage, start, end });
            let window = core.config.trace_window.unwrap_or(0);
            while ring.len() > core.config.trace_max_slots
                || ring.front().is_some_and(|s| s.end.saturating_add(window) < end)
            {
                ring.pop_front();
            }
        }
        match result {
            Err(e) => {
                tracing::error!(task = i, stage, job = job.job, "stage failed: {e}");
                let e = ServeError::Failed { task: core.names[i].clone(), job: job.job, stage, error: e.0 };
                core.end(job, end, Err(e));
            }
            Ok(()) => {
                job.stage += 1;
                if job.stage == plan.tasks[i].layers.len() {
                    core.end(job, end, Ok(()));
                } else if core.cancel.load(Ordering::SeqCst) {
                    let e = core.cancelled(&job);
                    core.end(job, end, Err(e));
                } else if core.config.late == LatePolicy::Abort && end > job.deadline {
                    let e = ServeError::Aborted { task: core.names[i].clone(), job: job.job, stage: job.stage };
                    core.end(job, end, Err(e));
                } else {
                    core.queue(job);
                }
            }
        }
        let handed = core.now();
        core.stats.handoff.record(handed.saturating_sub(end));
        stalls.add(&stalls.stage, (handed - popped).saturating_sub(budget).saturating_sub(run_excess));
    }
}

/// The release thread: periodic releases on absolute times, and sporadic submissions that
/// waited for their legal release.
pub(crate) fn release_loop<E: ServeExecutor>(core: &Core<E>, mut periodic: Vec<Periodic>) {
    os::set_timer_slack();
    if core.config.realtime && !os::set_fifo(RELEASE_FIFO) {
        *lock(&core.stats.fifo_refused) = true;
    }
    for p in &periodic {
        if let PeriodicSource::Callback(cb) = &p.source {
            request(cb, 0);
        }
    }
    loop {
        if core.exit.load(Ordering::SeqCst) {
            return;
        }
        let stopping = core.stopping.load(Ordering::SeqCst);
        let now = core.now();
        if !stopping {
            for p in periodic.iter_mut() {
                while p.next_release <= now {
                    let t = p.next_release;
                    release_periodic(core, p, t);
                    p.next_release = t.saturating_add(core.plan_task(p.task).period);
                }
            }
        }
        let due: Vec<Job<E>> = {
            let mut d = lock(&core.delayed);
            let cancel = core.cancel.load(Ordering::SeqCst);
            let keys: Vec<(Time, u64)> = d.jobs.keys().take_while(|k| cancel || k.0 <= now).copied().collect();
            keys.into_iter().filter_map(|k| d.jobs.remove(&k)).collect()
        };
        for job in due {
            core.task(job.task).waiting -= 1;
            if core.cancel.load(Ordering::SeqCst) {
                let e = core.cancelled(&job);
                core.deliver(job, now, Err(e));
            } else {
                core.release(job, &core.stats.stalls.release);
            }
        }
        // Sleep to the next event (a submission that must wait wakes this thread).
        let d = lock(&core.delayed);
        let next_delayed = d.jobs.keys().next().map(|k| k.0);
        let next_periodic = if stopping { None } else { periodic.iter().map(|p| p.next_release).min() };
        let next = next_delayed.into_iter().chain(next_periodic).min().unwrap_or(Time::MAX);
        let now = core.now();
        if next <= now || core.exit.load(Ordering::SeqCst) {
            continue;
        }
        if next - now <= PRECISE_NS {
            drop(d);
            os::sleep_until(core.origin.load(Ordering::Acquire) + next);
        } else {
            let wait = (next - now - PRECISE_NS / 2).min(POLL_NS);
            let _ = core.release_cv.wait_timeout(d, std::time::Duration::from_nanos(wait));
        }
    }
}

fn request(cb: &CallbackShared, job: u64) {
    let mut s = lock(&cb.state);
    if !s.running && s.want.is_none() {
        s.want = Some(job);
        cb.cv.notify_all();
    }
}

fn release_periodic<E: ServeExecutor>(core: &Core<E>, p: &mut Periodic, t: Time) {
    let i = p.task;
    core.stats.jitter.record(core.now().saturating_sub(t));
    let fresh: Option<Result<Input, String>> = match &p.source {
        PeriodicSource::Slot(slot) => {
            let latest = lock(&slot.latest);
            match &latest.0 {
                Some(input) if latest.1 != p.taken => {
                    p.taken = latest.1;
                    Some(Ok(input.clone()))
                }
                _ => None,
            }
        }
        PeriodicSource::Callback(cb) => {
            let r = lock(&cb.state).result.take();
            let k = core.task(i).next_job;
            request(cb, k + 1);
            match r {
                Some(Ok(Some(input))) => Some(Ok(input)),
                Some(Ok(None)) | None => None,
                Some(Err(e)) => Some(Err(e)),
            }
        }
    };
    let fresh = fresh.map(|r| r.and_then(|input| core.specs[i].check(&input).map(|()| input)));
    let input = match fresh {
        Some(Ok(input)) => {
            p.last_input = Some(input.clone());
            Ok(input)
        }
        Some(Err(e)) => Err(e),
        None => match (&p.last_input, p.stale) {
            (Some(last), StalePolicy::Reuse) => Ok(last.clone()),
            _ => {
                inc(&core.stats.tasks[i].skipped);
                return;
            }
        },
    };
    let k = {
        let mut slot = core.task(i);
        let k = slot.next_job;
        slot.next_job += 1;
        slot.last_release = Some(t);
        k
    };
    core.count_admitted(i);
    match input {
        Ok(input) => core.release(core.new_job(i, k, t, t, input, Reply::Stream), &core.stats.stalls.release),
        Err(error) => {
            let job = core.new_job(i, k, t, t, Input::zeros(vec![0]), Reply::Stream);
            let e = ServeError::Source { task: core.names[i].clone(), job: k, error };
            core.deliver(job, core.now(), Err(e));
        }
    }
}

/// A callback source's thread: calls the callback when the release thread asks.
pub(crate) fn source_loop(cb: &CallbackShared, f: &mut SourceFn) {
    loop {
        let job = {
            let mut s = lock(&cb.state);
            loop {
                if s.exit {
                    return;
                }
                if let Some(k) = s.want.take() {
                    s.running = true;
                    break k;
                }
                s = cb.cv.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        };
        let r = catch_unwind(AssertUnwindSafe(|| f(job)))
            .unwrap_or_else(|p| Err(format!("the source panicked: {}", panic_text(&p))));
        let mut s = lock(&cb.state);
        s.running = false;
        s.result = Some(r);
    }
}

/// The delivery thread: moves outputs to the host, resolves handles, fills result streams and
/// keeps the statistics. It runs the application's completion callbacks.
pub(crate) fn delivery_loop<E: ServeExecutor>(core: &Core<E>, rx: Receiver<Msg<E::Job>>) {
    // Below every worker (they run at 2 and up) but above the machine's normal threads: a worker
    // handing a job over may wait on the channel's lock while this thread holds it, and under
    // the normal scheduler it would wait for a time slice among every other process.
    if core.config.realtime {
        os::set_fifo(DELIVERY_FIFO);
    }
    while let Ok(Msg::Done(done)) = rx.recv() {
        let Done { task: i, job, reply, submitted, release, deadline, start, finish, stalled, outcome } = *done;
        if matches!(reply, Reply::WarmUp) {
            continue;
        }
        let name = &core.names[i];
        let c = &core.stats.tasks[i];
        let outcome = outcome.and_then(|state| {
            catch_unwind(AssertUnwindSafe(|| core.exec.outputs(i, state)))
                .unwrap_or_else(|p| Err(StageError(format!("panicked: {}", panic_text(&p)))))
                .map_err(|e| ServeError::Failed {
                    task: name.clone(),
                    job,
                    stage: core.plan_task(i).layers.len().saturating_sub(1),
                    error: format!("reading the outputs: {}", e.0),
                })
        });
        let late = finish > deadline;
        let result = match outcome {
            Ok(outputs) => {
                inc(&c.completed);
                let response = finish - release;
                core.stats.responses[i].record(response);
                if late {
                    inc(&c.misses);
                }
                Ok(JobResult {
                    task: name.clone(),
                    task_index: i,
                    job,
                    outputs,
                    timing: JobTiming {
                        submitted,
                        release,
                        start: start.unwrap_or(finish),
                        finish,
                        response,
                        bound: core.bounds[i],
                        deadline,
                        met: !late,
                        stalled,
                    },
                })
            }
            Err(e) => {
                match &e {
                    ServeError::Cancelled { .. } => inc(&c.cancelled),
                    // Counted as dropped when the backlog refused it.
                    ServeError::Backlog { .. } => {}
                    ServeError::Aborted { .. } => {
                        inc(&c.aborted);
                        inc(&c.misses);
                    }
                    _ => {
                        inc(&c.failed);
                        if late {
                            inc(&c.misses);
                        }
                    }
                }
                Err(e)
            }
        };
        match reply {
            Reply::Handle(slot) => slot.resolve(result),
            Reply::Stream => {
                if let Some(s) = &core.streams[i] {
                    if s.push(result) {
                        inc(&c.results_dropped);
                    }
                }
            }
            Reply::WarmUp => {}
        }
        core.stats.in_flight[i].fetch_sub(1, Ordering::SeqCst);
        core.outstanding.fetch_sub(1, Ordering::SeqCst);
    }
}
