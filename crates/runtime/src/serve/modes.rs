//! Mode changes: tasks join and leave a running server, and the proof holds through the change.
//!
//! A [`ModeServer`] serves sporadic tasks like a [`Server`] and also takes
//! [`ModeServer::load_task`] and [`ModeServer::unload_task`]. A change is decided by
//! admission control ([`admit_load`], [`admit_unload`]) against the running [`Proven`]
//! system before anything changes (a rejection, or an executor that cannot be built for the
//! new system, changes nothing), then carried out by the drain-then-switch protocol of
//! docs/analysis.md, section 5:
//!
//! - **P1** at the request no job is released under the old mode any more: the old
//!   [`Server`] is stopped with [`StopPolicy::Drain`] (submissions from then on wait, below);
//! - **P2** the old mode's jobs finish under the old allocation (the old server's workers);
//! - **P3** the new mode starts at `t_s`, once none is pending: a new [`Server`] for the new
//!   system, allocation and executor, on the same time 0, each continuing task's last
//!   release carried over so its first new-mode release is at `max(t_s, last + T)`
//!   ([`lalarand_analysis::mode_change::continuing_release`]: a submission before that is
//!   early and handled by the task's [`EarlyPolicy`](super::EarlyPolicy), as any early submission);
//! - **P4** a change requested while another is under way waits for it, in request order.
//!
//! Submissions that arrive during a drain wait until the switch and are then submitted to the
//! new mode (so they are released at or after `t_s`); a submission for an unloaded task then
//! fails with [`ServeError::UnknownTask`]. Jobs a submission had admitted before the request
//! with a release after it ([`EarlyPolicy::Wait`](super::EarlyPolicy::Wait)) are not released by the old mode (P1): they
//! keep their handles and are released by the new one, in order, each at its task's earliest
//! legal release from `t_s` on (a job of an unloaded task resolves with
//! [`ServeError::UnknownTask`]). So the drain waits only for jobs released before the request
//! and ends within [`Admitted::drain_bound`] of it.
//!
//! Workers never take a new lock: a change swaps whole servers, so the dispatch hot path is the
//! [`Server`]'s. The cost is that the new mode's threads start (and warm up, if
//! [`ServeConfig::warm_up`]) after the drain; [`ModeChange`] reports the time from the request
//! to the decision, to the switch and to the new mode's first possible release.
//! Periodic tasks are not served here (their sources belong to one server).
//!
//! Statistics ([`Server::stats`] of [`ModeServer::current`]) are totals since the server
//! started, across changes: the new mode's server starts from the old one's counters,
//! histograms, stalls, busy times and job numbers (a continuing task keeps its own), so no
//! counter goes backwards. An unloaded task leaves the statistics; loaded again under the same
//! name, it continues its totals. Bounds, deadlines and periods are the current mode's.

use super::stats::TaskTotals;
use super::{Input, JobHandle, JobResult};
use super::{Resume, ServeConfig, ServeError, ServeReport, Server, StopPolicy};
use crate::executor::StageExecutor;
use crate::{os, RunConfig, Runtime};
use lalarand_alloc::admission::{admit_load, admit_unload, AdmissionError, AdmissionOptions, Admitted, LoadRequest};
use lalarand_alloc::admission::{Proven, TaskMoves};
use lalarand_model::{Allocation, System, Time};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};

/// Why a change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ModeChangeError {
    /// Admission refused it (a name taken, an unknown task, the accuracy budget, a task that
    /// would miss: [`AdmissionError::Rejected`] names which and by how much). Nothing changed.
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// The analysis admitted the new system, but the server's own check of it refused it (the
    /// int8 layers measured end to end over the accuracy budget). Nothing changed.
    #[error("the analysis admits the new system with task {task:?}, but this server's check refuses it: {problem}")]
    Refused { task: String, problem: String },
    /// The executor could not be built for the new system. Nothing changed.
    #[error("cannot build the executor for the new system with task {task:?}: {problem}")]
    Executor { task: String, problem: String },
    /// The new system cannot be served here (e.g. a cpu resource without usable cores).
    /// Nothing changed.
    #[error("the new system cannot be served: {0}")]
    Start(ServeError),
    /// The old mode drained but the new one failed to start; the server is stopped.
    #[error("the switch failed after the drain, the server is stopped: {0}")]
    Switch(ServeError),
    #[error("the server is stopped; fix: start a new one")]
    Stopped,
}

/// Load or unload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Load,
    Unload,
}

/// A change carried out: what moved and what it took. Times in ns on the server's clock.
#[derive(Debug, Clone, Serialize)]
pub struct ModeChange {
    pub kind: ChangeKind,
    pub task: String,
    /// Layers of running tasks whose placement changed.
    pub moved_layers: usize,
    pub moves: Vec<TaskMoves>,
    /// The analysis' bound on the drain (the old mode's largest bound).
    pub drain_bound: Time,
    /// `t_r`: the request (before waiting for an earlier change).
    pub requested: Time,
    /// Admission decided.
    pub decided: Time,
    /// `t_s`: the old mode drained.
    pub switched: Time,
    /// The new mode serves: its first release can be now.
    pub resumed: Time,
    /// The old mode's final report (its jobs, all under the old bounds).
    pub old_mode: ServeReport,
    /// Every task's bound in the new mode, by name.
    pub new_bounds: Vec<(String, Time)>,
}

impl ModeChange {
    pub fn decision_ns(&self) -> Time {
        self.decided - self.requested
    }

    /// From the request to the new mode's first possible release.
    pub fn to_first_release_ns(&self) -> Time {
        self.resumed - self.requested
    }
}

/// A server whose task set changes while it runs; see the [module documentation](self).
pub struct ModeServer<E: StageExecutor> {
    current: RwLock<Arc<Server<E>>>,
    proven: Mutex<Proven>,
    /// Request order of changes (P4): (next ticket, ticket being served).
    turns: Mutex<(u64, u64)>,
    turn_cv: Condvar,
    config: ServeConfig,
    options: AdmissionOptions,
    cores: Option<Vec<usize>>,
    stopped: AtomicBool,
    /// Totals of the tasks unloaded, by name, for a task loaded again under its name.
    retired: Mutex<HashMap<String, TaskTotals>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<E: StageExecutor> ModeServer<E> {
    /// Starts serving `proven` (every task sporadic with [`ServeConfig::early`]).
    pub fn start(proven: Proven, exec: E, config: ServeConfig, options: AdmissionOptions) -> Result<Self, ServeError> {
        Self::start_on(proven, exec, config, options, None)
    }

    /// [`Self::start`], checking against these cores instead of the process' (tests).
    pub fn start_on(
        proven: Proven,
        exec: E,
        config: ServeConfig,
        options: AdmissionOptions,
        cores: Option<Vec<usize>>,
    ) -> Result<Self, ServeError> {
        let mut b = Server::builder(proven.system(), proven.allocation(), exec).config(config.clone());
        if let Some(c) = &cores {
            b = b.cores(c.clone());
        }
        let server = b.start()?;
        Ok(Self {
            current: RwLock::new(Arc::new(server)),
            proven: Mutex::new(proven),
            turns: Mutex::new((0, 0)),
            turn_cv: Condvar::new(),
            config,
            options,
            cores,
            stopped: AtomicBool::new(false),
            retired: Mutex::new(HashMap::new()),
        })
    }

    /// The server of the current mode.
    pub fn current(&self) -> Arc<Server<E>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The running system, its allocation and analysis.
    pub fn proven(&self) -> Proven {
        lock(&self.proven).clone()
    }

    pub fn now(&self) -> Time {
        self.current().now()
    }

    /// [`Server::submit`] on the current mode; during a change, waits for the switch.
    pub fn submit(&self, task: &str, input: Input) -> Result<JobHandle, ServeError> {
        loop {
            match self.current().submit(task, input.clone()) {
                // A change stopped this mode; the next `current` waits for the switch.
                Err(ServeError::Stopped { .. }) if !self.stopped.load(Ordering::SeqCst) => continue,
                r => return r,
            }
        }
    }

    /// Submits and waits for the result.
    pub fn infer(&self, task: &str, input: Input) -> Result<JobResult, ServeError> {
        self.submit(task, input)?.wait()
    }

    /// Loads a task: `build` makes the executor for the new system (given the running one, to
    /// reuse what did not move) before anything changes.
    pub fn load_task(
        &self,
        request: LoadRequest,
        build: impl FnOnce(&System, &Allocation, &E) -> Result<E, String>,
    ) -> Result<ModeChange, ModeChangeError> {
        self.load_task_checked(request, |_, _| Ok(()), build)
    }

    /// [`Self::load_task`], with `check` asked about the admitted system before the executor is
    /// built: an `Err` refuses the load ([`ModeChangeError::Refused`], its words).
    pub fn load_task_checked(
        &self,
        request: LoadRequest,
        check: impl FnOnce(&System, &Allocation) -> Result<(), String>,
        build: impl FnOnce(&System, &Allocation, &E) -> Result<E, String>,
    ) -> Result<ModeChange, ModeChangeError> {
        let task = request.task.name.clone();
        self.change(ChangeKind::Load, task, |p| admit_load(p, request, &self.options), check, build)
    }

    /// Unloads task `name` (always admitted if it runs); `build` as for a load.
    pub fn unload_task(
        &self,
        name: &str,
        build: impl FnOnce(&System, &Allocation, &E) -> Result<E, String>,
    ) -> Result<ModeChange, ModeChangeError> {
        self.change(ChangeKind::Unload, name.to_string(), |p| admit_unload(p, name), |_, _| Ok(()), build)
    }

    fn change(
        &self,
        kind: ChangeKind,
        task: String,
        decide: impl FnOnce(&Proven) -> Result<Admitted, AdmissionError>,
        check: impl FnOnce(&System, &Allocation) -> Result<(), String>,
        build: impl FnOnce(&System, &Allocation, &E) -> Result<E, String>,
    ) -> Result<ModeChange, ModeChangeError> {
        let clock = self.current();
        let requested = clock.now();
        let origin = clock.origin();
        drop(clock);
        let _turn = self.turn();
        if self.stopped.load(Ordering::SeqCst) {
            return Err(ModeChangeError::Stopped);
        }
        let mut proven = lock(&self.proven);
        let admitted = decide(&proven)?;
        let now = || os::monotonic_ns().saturating_sub(origin);
        let decided = now();
        let (system, alloc) = (admitted.proven.system(), admitted.proven.allocation());
        check(system, alloc).map_err(|problem| ModeChangeError::Refused { task: task.clone(), problem })?;
        let run = RunConfig { force: self.config.force, ..RunConfig::default() };
        match &self.cores {
            Some(c) => Runtime::with_cores(system, alloc, run, c),
            None => Runtime::new(system, alloc, run),
        }
        .map_err(|e| ModeChangeError::Start(e.into()))?;
        let exec = build(system, alloc, self.current().executor())
            .map_err(|problem| ModeChangeError::Executor { task: task.clone(), problem })?;

        // P1, P2: no more old-mode releases; its jobs drain under the old allocation.
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let carried = current.close_releases();
        let old_mode = current.stop(StopPolicy::Drain).map_err(|e| {
            self.stopped.store(true, Ordering::SeqCst);
            ModeChangeError::Switch(e)
        })?;
        let switched = now();
        // P3: the new mode on the same clock, continuing tasks a period after their last release.
        let resume = Resume { origin, last_releases: current.last_releases() };
        let mut b = Server::builder(system, alloc, exec).config(self.config.clone()).resume(resume);
        if let Some(c) = &self.cores {
            b = b.cores(c.clone());
        }
        let server = b.start().map_err(|e| {
            self.stopped.store(true, Ordering::SeqCst);
            ModeChangeError::Switch(e)
        })?;
        server.continue_totals(&current, &mut lock(&self.retired));
        let resumed = server.now();
        server.carry_over(carried);
        *current = Arc::new(server);
        drop(current);
        let new_bounds = system.tasks.iter().zip(admitted.proven.bounds()).map(|(t, b)| (t.name.clone(), b)).collect();
        let change = ModeChange {
            kind,
            task,
            moved_layers: admitted.moved_layers(),
            moves: admitted.moves.clone(),
            drain_bound: admitted.drain_bound,
            requested,
            decided,
            switched,
            resumed,
            old_mode,
            new_bounds,
        };
        *proven = admitted.proven;
        tracing::info!(
            kind = ?change.kind, task = %change.task, moved_layers = change.moved_layers,
            decision_ns = change.decision_ns(), to_first_release_ns = change.to_first_release_ns(),
            "mode change"
        );
        Ok(change)
    }

    /// Waits for this request's turn among changes (P4: request order).
    fn turn(&self) -> Turn<'_, E> {
        let mut t = lock(&self.turns);
        let mine = t.0;
        t.0 += 1;
        while t.1 != mine {
            t = self.turn_cv.wait(t).unwrap_or_else(PoisonError::into_inner);
        }
        Turn(self)
    }

    /// Stops the current mode (see [`Server::stop`]); a later change is refused.
    pub fn stop(&self, policy: StopPolicy) -> Result<ServeReport, ServeError> {
        self.stopped.store(true, Ordering::SeqCst);
        let _turn = self.turn();
        self.current().stop(policy)
    }
}

/// A change's turn; the next waits until it ends.
struct Turn<'a, E: StageExecutor>(&'a ModeServer<E>);

impl<E: StageExecutor> Drop for Turn<'_, E> {
    fn drop(&mut self) {
        lock(&self.0.turns).1 += 1;
        self.0.turn_cv.notify_all();
    }
}
