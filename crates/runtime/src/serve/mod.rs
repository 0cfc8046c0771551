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
//!   completions on the delivery thread. A slow source makes its own task's releases stale
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

mod core;
mod handle;
mod stats;
mod types;

pub use handle::{JobHandle, ResultStream};
pub use stats::{ServeReport, ServeStats, StallStats, TaskStats};
pub use types::{
    Admission, ByteBuffer, DataType, EarlyPolicy, HostTensor, Input, InputBuffer, InputSpec, JobResult, JobTiming,
    ServeConfig, ServeError, Source, SourceFn, StalePolicy, StopPolicy, TaskMode, Tensor, TensorData, TensorSpec,
};

use self::core::{lock, CallbackShared, Core, Delayed, Msg, Periodic, PeriodicSource, Reply, SlotInner, TaskSlot};
use crate::executor::{BusyWait, StageError};
use crate::{os, RunConfig, Runtime};
use handle::{Slot, Stream};
use lalarand_model::{Allocation, System, Time};
use stats::{inc, Stats};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// What the stages of served jobs do: [`crate::StageExecutor`] with the application's input
/// and outputs. One executor serves every thread at once; the per-job state moves between
/// workers with the job, without copies.
pub trait ServeExecutor: Send + Sync + 'static {
    type Job: Send + 'static;

    /// The input task `task` takes (checked on every submission and release).
    fn input_spec(&self, task: usize) -> InputSpec;

    /// State of job `job` of `task` from its input (checked against [`Self::input_spec`]),
    /// made on the worker of the job's first stage just before that stage runs, and timed as
    /// part of it. It may keep `input`'s buffer (an `Arc`) instead of copying it.
    fn start_job(&self, task: usize, job: u64, input: &Input) -> Result<Self::Job, StageError>;

    /// Runs stage `stage` of `task` on the calling worker.
    fn run_stage(&self, task: usize, stage: usize, job: u64, state: &mut Self::Job) -> Result<(), StageError>;

    /// The job's outputs after its last stage, on the delivery thread (not timed: the copy to
    /// the host is not part of any stage).
    fn outputs(&self, task: usize, state: Self::Job) -> Result<Vec<HostTensor>, StageError>;

    /// A stage in a warm-up job before time 0 ([`crate::StageExecutor::warm_up`]). Default:
    /// nothing.
    fn warm_up(&self, task: usize, stage: usize, job: u64, state: &mut Self::Job) -> Result<(), StageError> {
        let _ = (task, stage, job, state);
        Ok(())
    }
}

/// Busy-waiting stages that hand the input back as the output (named `output`): a stand-in
/// for inference with known times, and a check that every job gets its own input back.
impl ServeExecutor for BusyWait {
    type Job = Input;

    fn input_spec(&self, _task: usize) -> InputSpec {
        InputSpec::any()
    }

    fn start_job(&self, _task: usize, _job: u64, input: &Input) -> Result<Input, StageError> {
        Ok(input.clone())
    }

    fn run_stage(&self, task: usize, stage: usize, job: u64, _state: &mut Input) -> Result<(), StageError> {
        crate::StageExecutor::run_stage(self, task, stage, job, &mut ())
    }

    fn outputs(&self, _task: usize, state: Input) -> Result<Vec<HostTensor>, StageError> {
        Ok(echo(&state))
    }
}

/// The busy-wait output: a single input back as `output`, several under their own names (fp32;
/// other datatypes as their values in fp32).
fn echo(input: &Input) -> Vec<HostTensor> {
    let as_f32 = |t: &Tensor| -> Vec<f32> {
        let b = t.bytes();
        match t.dtype() {
            DataType::Fp32 => t.f32().unwrap_or(&[]).to_vec(),
            DataType::Int64 => b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            DataType::Int32 => b.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            DataType::Uint8 | DataType::Bool => b.iter().map(|&v| v as f32).collect(),
        }
    };
    match input.tensors() {
        [only] => vec![HostTensor { name: "output".into(), dims: only.dims().to_vec(), data: as_f32(only) }],
        all => {
            all.iter().map(|t| HostTensor { name: t.name().into(), dims: t.dims().to_vec(), data: as_f32(t) }).collect()
        }
    }
}

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
pub struct ServerBuilder<E: ServeExecutor> {
    system: System,
    alloc: Allocation,
    exec: E,
    config: ServeConfig,
    modes: Vec<(String, TaskMode)>,
    cores: Option<Vec<usize>>,
}

impl<E: ServeExecutor> ServerBuilder<E> {
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

    /// Validates, starts every thread, warms up and starts serving.
    pub fn start(self) -> Result<Server<E>, ServeError> {
        Server::start(self)
    }
}

/// A running server; see the [module documentation](self). `Send + Sync`: any thread may
/// submit, read statistics or stop it.
pub struct Server<E: ServeExecutor> {
    core: Arc<Core<E>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    delivery: Mutex<Option<JoinHandle<()>>>,
    sources: Vec<Arc<CallbackShared>>,
    report: Mutex<Option<ServeReport>>,
}

/// Warm-up jobs may take this long in all (model sessions build lazily on their first runs).
const WARM_UP_TIMEOUT_NS: Time = 120_000_000_000;

impl<E: ServeExecutor> Server<E> {
    pub fn builder(system: &System, alloc: &Allocation, exec: E) -> ServerBuilder<E> {
        ServerBuilder {
            system: system.clone(),
            alloc: alloc.clone(),
            exec,
            config: ServeConfig::default(),
            modes: Vec::new(),
            cores: None,
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
        let system = runtime.system().clone();
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
        let specs: Vec<InputSpec> = (0..n).map(|i| b.exec.input_spec(i)).collect();
        let bounds = runtime.analysis().tasks.iter().map(|t| t.bound).collect();
        let plan = runtime.plan();
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
                    periodic.push(Periodic {
                        task: i,
                        source,
                        stale,
                        last_input: None,
                        taken: 0,
                        next_release: plan.tasks[i].offset,
                    });
                }
            }
        }
        let capacity = n * (config.max_backlog + 1);
        let trace = config.trace_window.map(|_| (0..plan.resources).map(|_| Mutex::new(VecDeque::new())).collect());
        let core = Arc::new(Core {
            queues: (0..plan.resources).map(|_| crate::queue::ResourceQueue::new(capacity)).collect(),
            tasks: (0..n).map(|_| Mutex::new(TaskSlot::default())).collect(),
            active_marks: (0..n).map(|_| AtomicU64::new(Time::MAX)).collect(),
            exec: b.exec,
            config,
            names,
            specs,
            modes: is_periodic,
            early,
            bounds,
            origin: AtomicU64::new(os::monotonic_ns()),
            delayed: Mutex::new(Delayed { jobs: BTreeMap::new(), seq: 0 }),
            release_cv: Condvar::new(),
            streams,
            slots,
            done: Mutex::new(tx),
            stats: Stats::new(n, plan.resources),
            trace,
            outstanding: AtomicUsize::new(0),
            warming: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            cancel: AtomicBool::new(false),
            exit: AtomicBool::new(false),
            runtime,
        });
        if core.config.realtime {
            os::keep_freed_memory();
        }
        let platform = &core.runtime.system().platform;
        let owned: Vec<usize> = platform.resources.iter().flat_map(|r| r.cores.iter().copied()).collect();
        let spare: Vec<usize> = os::available_cores().into_iter().filter(|c| !owned.contains(c)).collect();
        let server = Self {
            core: core.clone(),
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
            *lock(&server.delivery) =
                Some(spawn("lalarand-deliver".into(), Box::new(move || core::delivery_loop(&c, rx)))?);
        }
        for (r, res) in platform.resources.iter().enumerate() {
            let c = core.clone();
            let cores = if res.cores.is_empty() { spare.clone() } else { res.cores.clone() };
            let h = spawn(format!("lalarand-{}", res.name), Box::new(move || core::worker(&c, r, &cores)));
            match h {
                Ok(h) => lock(&server.threads).push(h),
                Err(e) => {
                    server.shutdown_threads();
                    return Err(e);
                }
            }
        }
        if core.config.warm_up {
            if let Err(e) = server.warm_up() {
                server.shutdown_threads();
                return Err(e);
            }
        }
        core.origin.store(os::monotonic_ns(), Ordering::Release);
        for (i, cb, mut f) in callbacks {
            let name = core.names[i].clone();
            let h = spawn(format!("lalarand-source-{i}"), Box::new(move || core::source_loop(&cb, &mut *f)));
            match h {
                Ok(h) => lock(&server.threads).push(h),
                Err(e) => {
                    server.shutdown_threads();
                    return Err(ServeError::Os(format!("task {name:?}: {e}")));
                }
            }
        }
        let c = core.clone();
        let spare_r = spare.clone();
        let h = spawn(
            "lalarand-release".into(),
            Box::new(move || {
                if let Err(e) = os::pin_current_thread(&spare_r) {
                    tracing::warn!("cannot keep the release thread on cores {spare_r:?} ({e})");
                }
                core::release_loop(&c, periodic)
            }),
        );
        match h {
            Ok(h) => lock(&server.threads).push(h),
            Err(e) => {
                server.shutdown_threads();
                return Err(e);
            }
        }
        Ok(server)
    }

    /// Two rounds of one job per task through every stage, inputs of zeros.
    fn warm_up(&self) -> Result<(), ServeError> {
        let core = &self.core;
        let plan = core.runtime.plan();
        for _ in 0..crate::run::WARM_UP_JOBS {
            let mut jobs = Vec::new();
            for (i, t) in plan.tasks.iter().enumerate() {
                if t.layers.is_empty() {
                    continue;
                }
                let input = core.specs[i].example_input();
                let mut job = core.new_job(i, 0, 0, 0, input, Reply::WarmUp);
                job.warm_up = true;
                job.deadline = Time::MAX;
                jobs.push(job);
            }
            core.warming.store(jobs.len(), Ordering::SeqCst);
            for job in jobs {
                core.queue(job);
            }
            let end = os::monotonic_ns() + WARM_UP_TIMEOUT_NS;
            while core.warming.load(Ordering::SeqCst) > 0 {
                if os::monotonic_ns() > end {
                    return Err(ServeError::Os("the warm-up jobs did not end within 120 s".into()));
                }
                os::sleep_until(os::monotonic_ns() + 200_000);
            }
        }
        Ok(())
    }

    /// Nanoseconds since the server's time 0 (the clock of every [`JobTiming`]).
    pub fn now(&self) -> Time {
        self.core.now()
    }

    /// The validated runtime (plan, analysis, system) the server serves.
    pub fn runtime(&self) -> &Runtime {
        &self.core.runtime
    }

    pub fn task_names(&self) -> &[String] {
        &self.core.names
    }

    /// The index of task `name`, or [`ServeError::UnknownTask`].
    pub fn task_index(&self, name: &str) -> Result<usize, ServeError> {
        self.core
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| ServeError::UnknownTask { name: name.into(), known: self.core.names.clone() })
    }

    /// The input task `name` takes.
    pub fn input_spec(&self, name: &str) -> Result<&InputSpec, ServeError> {
        Ok(&self.core.specs[self.task_index(name)?])
    }

    /// Whether task `name` is periodic (else sporadic).
    pub fn is_periodic(&self, name: &str) -> Result<bool, ServeError> {
        Ok(self.core.modes[self.task_index(name)?])
    }

    /// Submits a job of sporadic task `task`. Fails at once (nothing admitted) for an unknown
    /// or periodic task, an input of the wrong shape, a stopped server or a full backlog; a
    /// submission too early under [`EarlyPolicy::Reject`] returns a handle already resolved
    /// with [`ServeError::TooEarly`] ([`JobHandle::admission`] is `Rejected`).
    pub fn submit(&self, task: &str, input: Input) -> Result<JobHandle, ServeError> {
        let core = &*self.core;
        let submitted = core.now();
        let i = self.task_index(task)?;
        let name = &core.names[i];
        if core.modes[i] {
            return Err(ServeError::WrongKind {
                task: name.clone(),
                problem: "is periodic: its inputs come from its source (input_slot / callback), not submit".into(),
            });
        }
        core.specs[i].check(&input).map_err(|problem| ServeError::Input { task: name.clone(), problem })?;
        let period = core.runtime.plan().tasks[i].period;
        let mut slot = core.task(i);
        if core.stopping.load(Ordering::SeqCst) {
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
            core.count_admitted(i);
            let job = core.new_job(i, k, now, submitted, input, Reply::Handle(handle.clone()));
            core.release(job, &core.stats.stalls.submit);
            return Ok(JobHandle {
                task: name.clone(),
                job: k,
                admission: Admission::Released { release: now },
                slot: handle,
            });
        }
        match core.early[i] {
            EarlyPolicy::Reject => {
                drop(slot);
                inc(&core.stats.tasks[i].rejected);
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
                    inc(&core.stats.tasks[i].rejected);
                    return Err(ServeError::Backlog { task: name.clone(), waiting });
                }
                slot.next_job += 1;
                slot.last_release = Some(earliest);
                slot.waiting += 1;
                drop(slot);
                let handle = Slot::new();
                core.count_admitted(i);
                let job = core.new_job(i, k, earliest, submitted, input, Reply::Handle(handle.clone()));
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
        match &self.core.slots[i] {
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
        match &self.core.streams[i] {
            Some(s) => Ok(ResultStream { task: task.into(), stream: s.clone() }),
            None => Err(ServeError::WrongKind {
                task: task.into(),
                problem: "is sporadic: its results come back through the handles submit returns".into(),
            }),
        }
    }

    fn task_info(&self) -> Vec<(String, bool, Option<Time>, Time, Time)> {
        let plan = self.core.runtime.plan();
        (0..self.core.names.len())
            .map(|i| {
                let t = &plan.tasks[i];
                (self.core.names[i].clone(), self.core.modes[i], self.core.bounds[i], t.deadline, t.period)
            })
            .collect()
    }

    /// Live statistics; workers are not paused.
    pub fn stats(&self) -> ServeStats {
        self.core.stats.snapshot(&self.task_info(), self.now(), self.core.stopping.load(Ordering::SeqCst))
    }

    /// The stage executions of the last [`ServeConfig::trace_window`] as Chrome / Perfetto
    /// trace-event JSON (`None` without a trace window).
    pub fn chrome_trace(&self) -> Option<serde_json::Value> {
        let trace = self.core.trace.as_ref()?;
        let resources = trace.iter().map(|r| lock(r).iter().copied().collect()).collect();
        let run = crate::RunTrace { resources, jobs: Vec::new() };
        Some(run.chrome_trace(&self.core.runtime.labels()))
    }

    pub fn is_stopped(&self) -> bool {
        self.core.stopping.load(Ordering::SeqCst)
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
            let _guards: Vec<_> = (0..core.names.len()).map(|i| core.task(i)).collect();
            core.stopping.store(true, Ordering::SeqCst);
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
        if policy == StopPolicy::Cancel || !drained(core.config.drain_timeout) {
            self.cancel_waiting();
        }
        // Running stages are not preempted; a stage that never returns leaves its job
        // unresolved (reported as not accounted).
        let all_done = drained(core.config.drain_timeout.max(1_000_000_000));
        self.shutdown_threads();
        let stats = self.core.stats.snapshot(&self.task_info(), self.now(), true);
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
            let e = core.cancelled(&job);
            core.deliver(job, now, Err(e));
        }
        for i in 0..core.names.len() {
            let backlog: Vec<_> = core.task(i).backlog.drain(..).collect();
            for job in backlog {
                let e = core.cancelled(&job);
                core.deliver(job, now, Err(e));
            }
        }
        core.wake_all();
    }

    /// Ends and joins every thread (each after finishing what it runs), then closes the streams.
    fn shutdown_threads(&self) {
        let core = &*self.core;
        core.stopping.store(true, Ordering::SeqCst);
        core.exit.store(true, Ordering::SeqCst);
        core.wake_all();
        for cb in &self.sources {
            lock(&cb.state).exit = true;
            cb.cv.notify_all();
        }
        for h in lock(&self.threads).drain(..) {
            if h.join().is_err() {
                tracing::error!("a server thread panicked");
            }
        }
        let _ = lock(&core.done).send(Msg::Exit);
        if let Some(h) = lock(&self.delivery).take() {
            if h.join().is_err() {
                tracing::error!("the delivery thread panicked");
            }
        }
        for s in core.streams.iter().flatten() {
            s.close();
        }
    }
}

impl<E: ServeExecutor> std::fmt::Debug for Server<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("tasks", &self.core.names).field("stopped", &self.is_stopped()).finish()
    }
}

impl<E: ServeExecutor> Drop for Server<E> {
    /// A server dropped without `stop` cancels what is left and joins its threads.
    fn drop(&mut self) {
        if lock(&self.report).is_none() {
            let _ = self.stop(StopPolicy::Cancel);
        }
    }
}
