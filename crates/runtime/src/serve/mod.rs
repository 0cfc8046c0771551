//! Serving: a long-running [`Server`] that takes the application's inputs, runs its jobs under
//! the proven schedule and hands back outputs with their timing.
//!
//! # Contract
//!
//! - **Start.** [`Server::builder`]`(system, allocation, executor)` then
//!   [`ServerBuilder::start`]. Starting refuses what [`crate::Runtime::new`] refuses (an
//!   allocation that does not fit, cpu resources without usable cores, periods below
//!   [`crate::MIN_PERIOD`], and, unless [`ServeConfig::force`], an allocation the analysis
//!   cannot bound) with [`ServeError::Start`]. The server runs until [`Server::stop`] (or
//!   until it is dropped, which cancels). The scheduling is the runtime's: one worker thread per
//!   resource (a cpu resource's pinned to its cores), stages dispatched non-preemptively by
//!   fixed priority from the same ready queues, SCHED_FIFO where the OS allows it.
//! - **Sporadic tasks** (every task the builder is not told otherwise about):
//!   [`Server::submit`]`(task, input)` returns a [`JobHandle`]. The task's period is its
//!   minimum inter-arrival time and is enforced: a submission less than a period after the
//!   task's previous release waits for its earliest legal release ([`EarlyPolicy::Wait`]) or
//!   is rejected ([`EarlyPolicy::Reject`]); [`JobHandle::admission`] says which. The job's
//!   release (from which its response and deadline count) is that legal release.
//!   [`Server::infer`] is submit + wait.
//! - **Periodic tasks** ([`ServerBuilder::periodic`]): released every period on absolute
//!   times from the server's time 0 (plus the task's offset). Each job's input comes from the
//!   task's [`Source`]: a latest-value slot the application writes
//!   ([`Server::input_slot`], [`InputSlot::put`]) or a callback called on a source thread of
//!   its own. With nothing new at a release, the task's [`StalePolicy`] applies (reuse the last
//!   input, or skip the release and count it). Results go to a bounded queue per task,
//!   [`Server::results`] (oldest dropped and counted when nobody reads them).
//! - **Results.** Every admitted job resolves exactly once: a [`JobResult`] with its outputs
//!   (the executor's last-stage tensors as fp32 on the host, named as in the model) and its
//!   [`JobTiming`] (release, start, finish, response, the task's bound, deadline, met), or a
//!   [`ServeError`] (failed stage, failed source, aborted late job, cancelled by stop). Nothing
//!   waits forever: `stop` resolves every pending handle.
//! - **Inputs** are an [`Input`]: dims and an `Arc<dyn InputBuffer>`, handed to the executor
//!   without copying. A wrong shape, an unknown task, a submit to a periodic task or after
//!   stop fail the call at once with an error naming the task and what was expected; the
//!   server and the other tasks go on.
//! - **Threads.** The application's callbacks (periodic sources, [`JobHandle::on_complete`])
//!   never run on a worker or the release thread: a source runs on its task's source thread,
//!   completions on the delivery thread. A job whose handle is waited on or awaited skips the
//!   delivery thread: the worker that ran its last stage counts it and wakes the waiter (or
//!   the awaiting task's `Waker`), which reads the outputs on its own thread. A slow source makes its own task's releases stale
//!   (see [`StalePolicy`]), a slow completion callback delays the delivery of later results;
//!   neither delays a stage.
//! - **Statistics.** [`Server::stats`] reads counters and histograms the threads update
//!   without locks; it never pauses a worker. [`Server::chrome_trace`] gives the last
//!   [`ServeConfig::trace_window`] of stage executions as a Perfetto trace.
//! - **Stop.** [`Server::stop`]`(`[`StopPolicy`]`)`: drain or cancel, resolve every pending
//!   handle, join every thread, return the final [`ServeReport`]. A second call returns the
//!   same report.
//!
//! Times are nanoseconds since the server's time 0 ([`Server::now`]), taken when the warm-up
//! ended. Design: docs/runtime.md, "Serving".
//!
//! ```no_run
//! use lalarand_model::{examples, Allocation, Mode};
//! use lalarand_runtime::serve::{Input, Server};
//! use lalarand_runtime::{BusyTime, BusyWait};
//! let system = examples::demo_system(); // give its cpu resource cores first
//! let alloc = Allocation::uniform(&system, Mode::Gpu).unwrap();
//! let plan = lalarand_model::ExecutionPlan::new(&system, &alloc).unwrap();
//! let exec = BusyWait::from_plan(&plan, &system.platform, BusyTime::Wcet);
//! let server = Server::builder(&system, &alloc, exec).start().unwrap();
//! let name = system.tasks[0].name.clone();
//! let result = server.infer(&name, Input::from_vec(vec![4], vec![1.0; 4]).unwrap()).unwrap();
//! println!("{:?}", result.timing);
//! println!("{}", serde_json::to_string_pretty(&server.stop(Default::default()).unwrap()).unwrap());
//! ```

mod deliver;
mod handle;
pub mod modes;
mod stats;
mod types;

pub use handle::{JobHandle, ResultStream};
pub use stats::{ServeReport, ServeStats, StallStats, TaskStats};
pub use types::{
    Admission, ByteBuffer, DataType, EarlyPolicy, HostTensor, Input, InputBuffer, InputSpec, JobResult, JobTiming,
    ServeConfig, ServeError, Source, SourceFn, StalePolicy, StopPolicy, TaskMode, Tensor, TensorData, TensorSpec,
};

use crate::config::{OverrunPolicy, StopHandle};
use crate::dispatch::{
    lock, source_loop, spare_cores, worker_cores, CallbackShared, Core, CoreConfig, Ending, Exec, Periodic,
    PeriodicSource, SlotInner,
};
use crate::executor::StageExecutor;
use crate::{os, RunConfig, Runtime};
use deliver::{delivery_loop, Msg, Reply, ServeCore, ServeSink};
use handle::{Slot, Stream};
use lalarand_model::{Allocation, System, Time};
use stats::{inc, Stats, TaskTotals};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;

/// A periodic task's latest-value input slot ([`Source::Slot`]): the application puts each new
/// frame; a release takes the latest one. Cloning shares the slot.
#[derive(Clone)]
pub struct InputSlot {
    task: String,
    spec: InputSpec,
    inner: Arc<SlotInner>,
}

impl std::fmt::Debug for InputSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputSlot").field("task", &self.task).field("spec", &self.spec).finish()
    }
}

impl InputSlot {
    pub fn task(&self) -> &str {
        &self.task
    }

    /// Makes `input` the latest (replacing one no release took); checks its shape.
    pub fn put(&self, input: Input) -> Result<(), ServeError> {
        self.spec.check(&input).map_err(|problem| ServeError::Input { task: self.task.clone(), problem })?;
        let mut latest = lock(&self.inner.latest);
        latest.1 += 1;
        latest.0 = Some(input);
        Ok(())
    }
}

/// Sets up a [`Server`]: how each task is served, and the settings.
pub struct ServerBuilder<E: StageExecutor> {
    system: System,
    alloc: Allocation,
    exec: E,
    config: ServeConfig,
    modes: Vec<(String, TaskMode)>,
    cores: Option<Vec<usize>>,
    resume: Option<Resume>,
}

/// A job admitted by a drained mode but not released by it: the next mode releases it.
pub(crate) struct Carried {
    task: String,
    submitted: Time,
    input: Input,
    reply: Arc<Slot>,
}

/// Where a server takes over from a drained one (a mode change, [`modes`]): the same time 0,
/// and each continuing task's last release, so its next is at least a period later (P3).
pub(crate) struct Resume {
    /// The old server's time 0, as monotonic time.
    pub origin: Time,
    pub last_releases: Vec<(String, Time)>,
}

impl<E: StageExecutor> ServerBuilder<E> {
    pub fn config(mut self, config: ServeConfig) -> Self {
        self.config = config;
        self
    }

    /// Serves `task` as given (a later call for the same task replaces an earlier one).
    pub fn task(mut self, task: &str, mode: TaskMode) -> Self {
        self.modes.retain(|(n, _)| n != task);
        self.modes.push((task.to_string(), mode));
        self
    }

    /// `task` is sporadic with `early` (the default for tasks not named: sporadic with
    /// [`ServeConfig::early`]).
    pub fn sporadic(self, task: &str, early: EarlyPolicy) -> Self {
        self.task(task, TaskMode::Sporadic { early })
    }

    /// `task` is periodic, its inputs from `source`.
    pub fn periodic(self, task: &str, source: Source, stale: StalePolicy) -> Self {
        self.task(task, TaskMode::Periodic { source, stale })
    }

    /// `task` is periodic, its inputs from a latest-value slot ([`Server::input_slot`]).
    pub fn periodic_slot(self, task: &str, stale: StalePolicy) -> Self {
        self.periodic(task, Source::Slot, stale)
    }

    /// `task` is periodic, its inputs from `f` ([`Source::Callback`]).
    pub fn periodic_callback(
        self,
        task: &str,
        f: impl FnMut(u64) -> Result<Option<Input>, String> + Send + 'static,
        stale: StalePolicy,
    ) -> Self {
        self.periodic(task, Source::Callback(Box::new(f)), stale)
    }

    /// Checks against these cores instead of the process' (tests).
    pub fn cores(mut self, cores: Vec<usize>) -> Self {
        self.cores = Some(cores);
        self
    }

    /// Continues the clock and the tasks' releases of a drained server.
    pub(crate) fn resume(mut self, resume: Resume) -> Self {
        self.resume = Some(resume);
        self
    }

    /// Validates, starts every thread, warms up and starts serving.
    pub fn start(self) -> Result<Server<E>, ServeError> {
        Server::start(self)
    }
}

/// A running server; see the [module documentation](self). `Send + Sync`: any thread may
/// submit, read statistics or stop it.
pub struct Server<E: StageExecutor> {
    core: Arc<ServeCore<E>>,
    /// The validated runtime (plan, analysis, system) the server serves.
    runtime: Runtime,
    drain_timeout: Time,
    /// Per task: periodic (else sporadic), and a sporadic task's early policy.
    periodic: Vec<bool>,
    early: Vec<EarlyPolicy>,
    slots: Vec<Option<Arc<SlotInner>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    delivery: Mutex<Option<JoinHandle<()>>>,
    sources: Vec<Arc<CallbackShared>>,
    report: Mutex<Option<ServeReport>>,
}

impl<E: StageExecutor> Server<E> {
    pub fn builder(system: &System, alloc: &Allocation, exec: E) -> ServerBuilder<E> {
        ServerBuilder {
            system: system.clone(),
            alloc: alloc.clone(),
            exec,
            config: ServeConfig::default(),
            modes: Vec::new(),
            cores: None,
            resume: None,
        }
    }

    fn start(b: ServerBuilder<E>) -> Result<Self, ServeError> {
        let config = b.config;
        if config.max_backlog == 0 {
            return Err(ServeError::config("max_backlog", "must be at least 1"));
        }
        if config.results_capacity == 0 {
            return Err(ServeError::config("results_capacity", "must be at least 1"));
        }
        if config.trace_window == Some(0) {
            return Err(ServeError::config("trace_window", "0 ns keeps nothing; use None for no trace"));
        }
        let run = RunConfig {
            force: config.force,
            realtime: config.realtime,
            late: config.late,
            max_backlog: config.max_backlog,
            ..RunConfig::default()
        };
        let runtime = match &b.cores {
            Some(c) => Runtime::with_cores(&b.system, &b.alloc, run, c)?,
            None => Runtime::new(&b.system, &b.alloc, run)?,
        };
        let system = runtime.system();
        let plan = runtime.plan();
        let n = system.tasks.len();
        let names: Vec<String> = system.tasks.iter().map(|t| t.name.clone()).collect();
        let mut modes: Vec<Option<TaskMode>> = (0..n).map(|_| None).collect();
        for (name, mode) in b.modes {
            let i = names
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| ServeError::UnknownTask { name: name.clone(), known: names.clone() })?;
            modes[i] = Some(mode);
        }
        let modes: Vec<TaskMode> =
            modes.into_iter().map(|m| m.unwrap_or(TaskMode::Sporadic { early: config.early })).collect();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut periodic = Vec::new();
        let mut callbacks = Vec::new();
        let mut slots = vec![None; n];
        let mut streams = vec![None; n];
        let mut early = vec![config.early; n];
        let mut is_periodic = vec![false; n];
        for (i, mode) in modes.into_iter().enumerate() {
            match mode {
                TaskMode::Sporadic { early: e } => early[i] = e,
                TaskMode::Periodic { source, stale } => {
                    is_periodic[i] = true;
                    streams[i] = Some(Stream::new(config.results_capacity));
                    let source = match source {
                        Source::Slot => {
                            let s = Arc::new(SlotInner { latest: Mutex::new((None, 0)) });
                            slots[i] = Some(s.clone());
                            PeriodicSource::Slot(s)
                        }
                        Source::Callback(f) => {
                            let cb = Arc::new(CallbackShared { state: Mutex::default(), cv: Condvar::new() });
                            callbacks.push((i, cb.clone(), f));
                            PeriodicSource::Callback(cb)
                        }
                    };
                    periodic.push(Periodic::new(i, source, stale, plan.tasks[i].offset));
                }
            }
        }
        let sink = ServeSink {
            bounds: runtime.analysis().tasks.iter().map(|t| t.bound).collect(),
            names,
            streams,
            done: Mutex::new(tx),
            stats: Stats::new(n, plan.resources),
            trace: config.trace_window.map(|_| (0..plan.resources).map(|_| Mutex::new(VecDeque::new())).collect()),
            trace_window: config.trace_window.unwrap_or(0),
            trace_max_slots: config.trace_max_slots,
            max_backlog: config.max_backlog,
            core: OnceLock::new(),
        };
        let core_config = CoreConfig {
            realtime: config.realtime,
            late: config.late,
            overrun: OverrunPolicy::Queue,
            max_backlog: config.max_backlog,
        };
        let core = Arc::new(Core::new(Exec::Owned(b.exec), &runtime, core_config, sink, StopHandle::new()));
        let _ = core.sink.core.set(Arc::downgrade(&core));
        if config.realtime {
            os::keep_freed_memory();
        }
        let platform = runtime.system().platform.clone();
        let spare = spare_cores(&platform);
        let server = Self {
            core: core.clone(),
            runtime,
            drain_timeout: config.drain_timeout,
            periodic: is_periodic,
            early,
            slots,
            threads: Mutex::new(Vec::new()),
            delivery: Mutex::new(None),
            sources: callbacks.iter().map(|(_, cb, _)| cb.clone()).collect(),
            report: Mutex::new(None),
        };
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(|e| ServeError::Os(format!("cannot start a thread: {e}")))
        };
        {
            let c = core.clone();
            *lock(&server.delivery) = Some(spawn("lalarand-deliver".into(), Box::new(move || delivery_loop(&c, rx)))?);
        }
        for (r, res) in platform.resources.iter().enumerate() {
            let c = core.clone();
            let cores = worker_cores(&platform, r);
            let h = spawn(format!("lalarand-{}", res.name), Box::new(move || c.worker(r, &cores)));
            match h {
                Ok(h) => lock(&server.threads).push(h),
                Err(e) => {
                    server.shutdown_threads();
                    return Err(e);
                }
            }
        }
        if config.warm_up {
            if let Err(e) = core.warm_up() {
                server.shutdown_threads();
                return Err(ServeError::Os(e));
            }
        }
        match &b.resume {
            Some(resume) => {
                core.set_origin(resume.origin);
                for (name, last) in &resume.last_releases {
                    if let Some(i) = core.sink.names.iter().position(|n| n == name) {
                        core.task(i).last_release = Some(*last);
                    }
                }
            }
            None => core.set_origin(os::monotonic_ns()),
        }
        for (i, cb, mut f) in callbacks {
            let name = core.sink.names[i].clone();
            let h = spawn(format!("lalarand-source-{i}"), Box::new(move || source_loop(&cb, &mut *f)));
            match h {
                Ok(h) => lock(&server.threads).push(h),
                Err(e) => {
                    server.shutdown_threads();
                    return Err(ServeError::Os(format!("task {name:?}: {e}")));
                }
            }
        }
        let c = core.clone();
        let h = spawn("lalarand-release".into(), Box::new(move || c.release_loop(&spare, (), periodic, None)));
        match h {
            Ok(h) => lock(&server.threads).push(h),
            Err(e) => {
                server.shutdown_threads();
                return Err(e);
            }
        }
        Ok(server)
    }

    /// Nanoseconds since the server's time 0 (the clock of every [`JobTiming`]).
    pub fn now(&self) -> Time {
        self.core.now()
    }

    /// The validated runtime (plan, analysis, system) the server serves.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn task_names(&self) -> &[String] {
        &self.core.sink.names
    }

    /// The index of task `name`, or [`ServeError::UnknownTask`].
    pub fn task_index(&self, name: &str) -> Result<usize, ServeError> {
        self.core
            .sink
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| ServeError::UnknownTask { name: name.into(), known: self.core.sink.names.clone() })
    }

    /// Monotonic time of the server's time 0.
    pub(crate) fn origin(&self) -> Time {
        self.core.origin()
    }

    /// The executor serving the stages (e.g. what each task's model outputs).
    pub fn executor(&self) -> &E {
        &self.core.exec
    }

    /// P3 of a mode change, on the new mode's server before it serves: its statistics continue
    /// `old`'s (every counter, histogram, stall and busy time, and each task's job numbers), so
    /// totals never go backwards across a change. A task of `old` this server does not serve
    /// (unloaded) leaves its totals in `retired`; a task new here takes back the totals
    /// `retired` kept under its name. Called before any job is in flight here, so no job's
    /// `stalled` grows by the old stalls.
    pub(crate) fn continue_totals(&self, old: &Server<E>, retired: &mut HashMap<String, TaskTotals>) {
        let (new, old) = (&*self.core, &*old.core);
        let stats = &new.sink.stats;
        stats.add_machine(&old.sink.stats);
        new.stalls.add_all(&old.stalls);
        new.overruns.fetch_add(old.overruns.load(Ordering::Relaxed), Ordering::Relaxed);
        for (j, name) in old.sink.names.iter().enumerate() {
            let (counters, responses) = (&old.sink.stats.tasks[j], &old.sink.stats.responses[j]);
            let next_job = old.task(j).next_job;
            match new.sink.names.iter().position(|n| n == name) {
                Some(i) => {
                    stats.add_task(i, counters, responses);
                    new.task(i).next_job = next_job;
                }
                None => {
                    let kept = retired.entry(name.clone()).or_insert_with(TaskTotals::new);
                    kept.add(counters, responses);
                    kept.next_job = next_job;
                }
            }
        }
        for (i, name) in new.sink.names.iter().enumerate() {
            if let Some(kept) = retired.remove(name) {
                stats.add_task(i, &kept.counters, &kept.responses);
                new.task(i).next_job = kept.next_job;
            }
        }
    }

    /// Every task's last release so far (tasks never released left out).
    pub(crate) fn last_releases(&self) -> Vec<(String, Time)> {
        let core = &*self.core;
        (0..core.sink.names.len())
            .filter_map(|i| core.task(i).last_release.map(|r| (core.sink.names[i].clone(), r)))
            .collect()
    }

    /// P1 of a mode change: stops every release at once (as [`Self::stop`] does) and withdraws
    /// the jobs admitted but not yet released ([`EarlyPolicy::Wait`]), oldest first, for the
    /// new mode to release ([`Self::carry_over`]). Each task's last release goes back to its
    /// last actual one. The caller then drains with [`Self::stop`].
    pub(crate) fn close_releases(&self) -> Vec<Carried> {
        let core = &*self.core;
        let mut slots: Vec<_> = (0..core.plan.tasks.len()).map(|i| core.task(i)).collect();
        core.stop.stop();
        let waiting: Vec<_> = std::mem::take(&mut lock(&core.delayed).jobs).into_values().collect();
        let mut carried = Vec::with_capacity(waiting.len());
        for mut job in waiting {
            let i = job.task;
            let slot = &mut slots[i];
            slot.waiting -= 1;
            let before = job.release.saturating_sub(core.plan.tasks[i].period);
            slot.last_release = slot.last_release.map(|r| r.min(before));
            core.sink.stats.tasks[i].released.fetch_sub(1, Ordering::SeqCst);
            core.sink.stats.in_flight[i].fetch_sub(1, Ordering::SeqCst);
            core.outstanding.fetch_sub(1, Ordering::SeqCst);
            if let (Some(input), Some(Reply::Handle(reply))) = (job.input.take(), job.reply.take()) {
                carried.push(Carried { task: core.sink.names[i].clone(), submitted: job.submitted, input, reply });
            }
        }
        drop(slots);
        core.wake_all();
        carried
    }

    /// P3 of a mode change: releases the jobs withdrawn from the old mode, in order, each at
    /// its task's earliest legal release (the same rule as [`Self::submit`] under
    /// [`EarlyPolicy::Wait`]); a job of a task no longer served resolves with
    /// [`ServeError::UnknownTask`].
    pub(crate) fn carry_over(&self, jobs: Vec<Carried>) {
        let core = &*self.core;
        for Carried { task, submitted, input, reply } in jobs {
            let i = match self.task_index(&task) {
                Ok(i) => i,
                Err(e) => {
                    reply.resolve(Err(e));
                    continue;
                }
            };
            let period = core.plan.tasks[i].period;
            let mut slot = core.task(i);
            let now = core.now();
            let release = slot.last_release.map_or(now, |r| now.max(r.saturating_add(period)));
            let k = slot.next_job;
            slot.next_job += 1;
            slot.last_release = Some(release);
            core.admit(i);
            let job = core.new_job(i, k, release, submitted, input, Some(Reply::Handle(reply)));
            if release <= now {
                drop(slot);
                core.release(&mut (), job, &core.stalls.submit);
                continue;
            }
            slot.waiting += 1;
            drop(slot);
            let mut d = lock(&core.delayed);
            let seq = d.seq;
            d.seq += 1;
            d.jobs.insert((release, seq), job);
            drop(d);
            core.release_cv.notify_all();
        }
    }

    /// The input task `name` takes.
    pub fn input_spec(&self, name: &str) -> Result<&InputSpec, ServeError> {
        Ok(&self.core.specs[self.task_index(name)?])
    }

    /// Whether task `name` is periodic (else sporadic).
    pub fn is_periodic(&self, name: &str) -> Result<bool, ServeError> {
        Ok(self.periodic[self.task_index(name)?])
    }

    /// Submits a job of sporadic task `task`. Fails at once (nothing admitted) for an unknown
    /// or periodic task, an input of the wrong shape, a stopped server or a full backlog; a
    /// submission too early under [`EarlyPolicy::Reject`] returns a handle already resolved
    /// with [`ServeError::TooEarly`] ([`JobHandle::admission`] is `Rejected`).
    pub fn submit(&self, task: &str, input: Input) -> Result<JobHandle, ServeError> {
        let core = &*self.core;
        let submitted = core.now();
        let i = self.task_index(task)?;
        let name = &core.sink.names[i];
        if self.periodic[i] {
            return Err(ServeError::WrongKind {
                task: name.clone(),
                problem: "is periodic: its inputs come from its source (input_slot / callback), not submit".into(),
            });
        }
        core.specs[i].check(&input).map_err(|problem| ServeError::Input { task: name.clone(), problem })?;
        let period = core.plan.tasks[i].period;
        let mut slot = core.task(i);
        if core.stopping() {
            return Err(ServeError::Stopped { task: name.clone() });
        }
        let now = core.now();
        let earliest = slot.last_release.map_or(0, |r| r.saturating_add(period));
        let k = slot.next_job;
        if now >= earliest {
            slot.next_job += 1;
            slot.last_release = Some(now);
            drop(slot);
            let handle = Slot::new();
            core.admit(i);
            let job = core.new_job(i, k, now, submitted, input, Some(Reply::Handle(handle.clone())));
            core.release(&mut (), job, &core.stalls.submit);
            return Ok(JobHandle {
                task: name.clone(),
                job: k,
                admission: Admission::Released { release: now },
                slot: handle,
            });
        }
        match self.early[i] {
            EarlyPolicy::Reject => {
                drop(slot);
                inc(&core.sink.stats.tasks[i].rejected);
                let e = ServeError::TooEarly { task: name.clone(), early: earliest - now, period };
                Ok(JobHandle {
                    task: name.clone(),
                    job: k,
                    admission: Admission::Rejected { earliest },
                    slot: Slot::resolved(Err(e)),
                })
            }
            EarlyPolicy::Wait => {
                if slot.waiting >= core.config.max_backlog {
                    let waiting = slot.waiting;
                    drop(slot);
                    inc(&core.sink.stats.tasks[i].rejected);
                    return Err(ServeError::Backlog { task: name.clone(), waiting });
                }
                slot.next_job += 1;
                slot.last_release = Some(earliest);
                slot.waiting += 1;
                drop(slot);
                let handle = Slot::new();
                core.admit(i);
                let job = core.new_job(i, k, earliest, submitted, input, Some(Reply::Handle(handle.clone())));
                let mut d = lock(&core.delayed);
                let seq = d.seq;
                d.seq += 1;
                d.jobs.insert((earliest, seq), job);
                drop(d);
                core.release_cv.notify_all();
                Ok(JobHandle {
                    task: name.clone(),
                    job: k,
                    admission: Admission::Delayed { release: earliest, by: earliest - now },
                    slot: handle,
                })
            }
        }
    }

    /// Submits and waits for the result.
    pub fn infer(&self, task: &str, input: Input) -> Result<JobResult, ServeError> {
        self.submit(task, input)?.wait()
    }

    /// The latest-value slot of periodic task `task` (served with [`Source::Slot`]).
    pub fn input_slot(&self, task: &str) -> Result<InputSlot, ServeError> {
        let i = self.task_index(task)?;
        match &self.slots[i] {
            Some(inner) => Ok(InputSlot { task: task.into(), spec: self.core.specs[i].clone(), inner: inner.clone() }),
            None => Err(ServeError::WrongKind {
                task: task.into(),
                problem: "has no input slot (it is sporadic, or periodic with a callback source)".into(),
            }),
        }
    }

    /// The results of periodic task `task`.
    pub fn results(&self, task: &str) -> Result<ResultStream, ServeError> {
        let i = self.task_index(task)?;
        match &self.core.sink.streams[i] {
            Some(s) => Ok(ResultStream { task: task.into(), stream: s.clone() }),
            None => Err(ServeError::WrongKind {
                task: task.into(),
                problem: "is sporadic: its results come back through the handles submit returns".into(),
            }),
        }
    }

    fn task_info(&self) -> Vec<(String, bool, Option<Time>, Time, Time)> {
        let (plan, sink) = (&self.core.plan, &self.core.sink);
        (0..sink.names.len())
            .map(|i| {
                let t = &plan.tasks[i];
                (sink.names[i].clone(), self.periodic[i], sink.bounds[i], t.deadline, t.period)
            })
            .collect()
    }

    /// Live statistics; workers are not paused.
    pub fn stats(&self) -> ServeStats {
        self.snapshot(self.is_stopped())
    }

    fn snapshot(&self, stopped: bool) -> ServeStats {
        let core = &*self.core;
        let realtime = core.config.realtime && !core.fifo_refused.load(Ordering::Relaxed);
        let machine = (&core.stalls, core.overruns.load(Ordering::Relaxed), realtime);
        core.sink.stats.snapshot(&self.task_info(), machine, self.now(), stopped)
    }

    /// The stage executions of the last [`ServeConfig::trace_window`] as Chrome / Perfetto
    /// trace-event JSON (`None` without a trace window).
    pub fn chrome_trace(&self) -> Option<serde_json::Value> {
        let trace = self.core.sink.trace.as_ref()?;
        let resources = trace.iter().map(|r| lock(r).iter().copied().collect()).collect();
        let run = crate::RunTrace { resources, jobs: Vec::new() };
        Some(run.chrome_trace(self.runtime.system()))
    }

    pub fn is_stopped(&self) -> bool {
        self.core.stopping()
    }

    /// Stops: no new submissions or releases; [`StopPolicy::Drain`] lets every admitted job
    /// end (at most [`ServeConfig::drain_timeout`], then cancels), [`StopPolicy::Cancel`]
    /// cancels what has not run. Resolves every pending handle, closes the result streams,
    /// joins every thread and returns the final report (again on a later call).
    pub fn stop(&self, policy: StopPolicy) -> Result<ServeReport, ServeError> {
        let mut report = lock(&self.report);
        if let Some(r) = &*report {
            return Ok(r.clone());
        }
        let core = &*self.core;
        {
            // Under every task's lock, so no submission is half admitted.
            let _guards: Vec<_> = (0..core.plan.tasks.len()).map(|i| core.task(i)).collect();
            core.stop.stop();
        }
        core.wake_all();
        let drained = |timeout: Time| {
            let end = os::monotonic_ns() + timeout;
            while core.outstanding.load(Ordering::SeqCst) > 0 {
                if os::monotonic_ns() > end {
                    return false;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            true
        };
        if policy == StopPolicy::Cancel || !drained(self.drain_timeout) {
            self.cancel_waiting();
        }
        // Running stages are not preempted; a stage that never returns leaves its job
        // unresolved (reported as not accounted).
        let all_done = drained(self.drain_timeout.max(1_000_000_000));
        self.shutdown_threads();
        let stats = self.snapshot(true);
        let every_job_accounted = all_done
            && stats.tasks.iter().all(|t| t.released == t.completed + t.failed + t.aborted + t.cancelled + t.dropped);
        let r = ServeReport { stats, policy, every_job_accounted };
        *report = Some(r.clone());
        Ok(r)
    }

    /// Cancels every job not yet started (waiting releases and backlogs; queued stages are
    /// cancelled by their workers).
    fn cancel_waiting(&self) {
        let core = &*self.core;
        core.cancel.store(true, Ordering::SeqCst);
        let now = core.now();
        let delayed: Vec<_> = std::mem::take(&mut lock(&core.delayed).jobs).into_values().collect();
        for job in delayed {
            core.task(job.task).waiting -= 1;
            core.deliver(&mut (), job, now, Err(Ending::Cancelled));
        }
        for i in 0..core.plan.tasks.len() {
            let backlog: Vec<_> = core.task(i).backlog.drain(..).collect();
            for job in backlog {
                core.deliver(&mut (), job, now, Err(Ending::Cancelled));
            }
        }
        core.wake_all();
    }

    /// Ends and joins every thread (each after finishing what it runs), then closes the streams.
    fn shutdown_threads(&self) {
        let core = &*self.core;
        core.stop.stop();
        core.exit();
        for cb in &self.sources {
            lock(&cb.state).exit = true;
            cb.cv.notify_all();
        }
        for h in lock(&self.threads).drain(..) {
            if h.join().is_err() {
                tracing::error!("a server thread panicked");
            }
        }
        let _ = lock(&core.sink.done).send(Msg::Exit);
        if let Some(h) = lock(&self.delivery).take() {
            if h.join().is_err() {
                tracing::error!("the delivery thread panicked");
            }
        }
        for s in core.sink.streams.iter().flatten() {
            s.close();
        }
    }
}

impl<E: StageExecutor> std::fmt::Debug for Server<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("tasks", &self.core.sink.names).field("stopped", &self.is_stopped()).finish()
    }
}

impl<E: StageExecutor> Drop for Server<E> {
    /// A server dropped without `stop` cancels what is left and joins its threads.
    fn drop(&mut self) {
        if lock(&self.report).is_none() {
            let _ = self.stop(StopPolicy::Cancel);
        }
    }
}
