//! lalarand's real-time runtime: runs an allocated task set in this process, one worker
//! thread per resource, and reports what happened next to the analysis' bounds.
//!
//! The scheduling model is the analysis' and the simulator's: every resource runs one stage
//! at a time, non-preemptively, picking the ready stage of highest fixed priority (rank 0
//! highest; ties: earliest release, then task index); when a stage finishes, the job's next
//! stage is queued on its resource at once. Jobs are released on absolute times, so there is
//! no drift. What a stage does is a [`StageExecutor`]: [`BusyWait`] spins for the stage's
//! time (for checking the runtime against the simulator), inference plugs in the same way.
//! [`Runtime::run`] (periodic jobs until a horizon, then a report) and the server
//! ([`serve::Server`]) sit on one dispatch core (`dispatch/`). Design and measurements:
//! docs/runtime.md.
//!
//! ```no_run
//! use lalarand_model::{examples, Allocation, Mode};
//! use lalarand_runtime::{BusyTime, RunConfig, Runtime};
//! let system = examples::demo_system(); // give its cpu resource cores first
//! let alloc = Allocation::uniform(&system, Mode::Gpu).unwrap();
//! let runtime = Runtime::new(&system, &alloc, RunConfig::default()).unwrap();
//! let outcome = runtime.run(&runtime.busy_wait(BusyTime::Wcet)).unwrap();
//! println!("{}", serde_json::to_string_pretty(&outcome.report).unwrap());
//! ```

mod config;
mod dispatch;
mod error;
mod executor;
pub mod os;
mod report;
mod run;
pub mod serve;
mod trace;
mod validate;

pub use config::{LatePolicy, OverrunPolicy, RunConfig, RunHorizon, StopHandle, MIN_PERIOD};
pub use error::RuntimeError;
pub use executor::{BusyTime, BusyWait, StageError, StageExecutor};
/// The shared records of a schedule (`lalarand_model::record`).
pub use lalarand_model::{JobOutcome, JobRecord, StageSlot};
pub use report::{LatencyStats, RunReport, RunTrace, StageFailure, TaskReport, Verdict};

use lalarand_analysis::{analyze, Analysis};
use lalarand_model::{Allocation, ExecutionPlan, System};

/// A validated system, allocation and settings, ready to run (any number of times).
#[derive(Debug, Clone)]
pub struct Runtime {
    system: System,
    plan: ExecutionPlan,
    analysis: Analysis,
    config: RunConfig,
    stop: StopHandle,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub report: RunReport,
    pub trace: RunTrace,
}

impl Runtime {
    /// Checks everything a run needs and refuses with a [`RuntimeError`] naming what and
    /// where: an allocation that does not fit, cpu resources without cores or with cores this
    /// process cannot use, periods below [`MIN_PERIOD`], settings out of range, and (unless
    /// `config.force`) an allocation the analysis cannot bound.
    pub fn new(system: &System, alloc: &Allocation, config: RunConfig) -> Result<Self, RuntimeError> {
        Self::with_cores(system, alloc, config, &os::available_cores())
    }

    /// [`Runtime::new`] against a given set of usable cores (tests).
    pub fn with_cores(
        system: &System,
        alloc: &Allocation,
        config: RunConfig,
        cores: &[usize],
    ) -> Result<Self, RuntimeError> {
        let plan = ExecutionPlan::new(system, alloc)?;
        validate::check_config(&config)?;
        validate::check_system(system, cores)?;
        let analysis = analyze(&plan);
        validate::check_analysis(system, &analysis, config.force)?;
        Ok(Self { system: system.clone(), plan, analysis, config, stop: StopHandle::new() })
    }

    pub fn plan(&self) -> &ExecutionPlan {
        &self.plan
    }

    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }

    pub fn system(&self) -> &System {
        &self.system
    }

    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Stops the current (or next) run; see [`StopHandle::on_ctrl_c`].
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Stages that spin for their planned time.
    pub fn busy_wait(&self, time: BusyTime) -> BusyWait {
        BusyWait::from_plan(&self.plan, &self.system.platform, time)
    }

    /// Runs until the horizon or a stop and reports. Misses, failed stages and overload are
    /// in the report, not errors; an error means the threads could not be started.
    pub fn run<E: StageExecutor>(&self, exec: &E) -> Result<RunOutcome, RuntimeError> {
        let raw = run::execute(self, exec, &self.stop)?;
        let (report, trace) = report::build(&self.system, &self.analysis, raw, self.stop.is_stopped());
        Ok(RunOutcome { report, trace })
    }
}

impl RunOutcome {
    pub fn write_chrome_trace(&self, runtime: &Runtime, path: &std::path::Path) -> Result<(), RuntimeError> {
        self.trace.write_chrome_trace(&runtime.system, path)
    }
}
