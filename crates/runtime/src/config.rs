//! Run settings and the policies for overload.

use lalarand_model::Time;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The shortest period the runtime accepts: below it, release jitter and dispatch costs (tens
/// of microseconds on a loaded machine without SCHED_FIFO) are a large part of the period.
pub const MIN_PERIOD: Time = 100_000;

/// When the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunHorizon {
    /// Release jobs during this long (nanoseconds after the run's time 0), then let the jobs
    /// in flight finish (at most one longest period more).
    Duration(Time),
    /// Release this many jobs of every task, then let them finish (waiting at most 2 s or ten
    /// longest periods after the last release).
    Jobs(u64),
}

/// What happens to a job still running at its deadline (always counted as a miss).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatePolicy {
    /// It runs to completion.
    #[default]
    Continue,
    /// It ends at its next stage boundary, freeing the resources for the jobs behind it.
    Abort,
}

/// What happens to a release while a job of the same task is still in flight (jobs of one task
/// never overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverrunPolicy {
    /// The new job waits (its response time counts from its release); at most
    /// [`RunConfig::max_backlog`] wait per task, further releases are dropped.
    #[default]
    Queue,
    /// The release is skipped.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunConfig {
    pub horizon: RunHorizon,
    pub late: LatePolicy,
    pub overrun: OverrunPolicy,
    /// Releases that may wait per task under [`OverrunPolicy::Queue`] (bounds memory under
    /// overload).
    pub max_backlog: usize,
    /// Run even if the analysis finds no bound for some task.
    pub force: bool,
    /// Ask for SCHED_FIFO (refusal is warned about, not fatal).
    pub realtime: bool,
    /// Stage executions kept for the trace; beyond it the trace is cut (statistics go on).
    pub max_trace_slots: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            horizon: RunHorizon::Duration(1_000_000_000),
            late: LatePolicy::Continue,
            overrun: OverrunPolicy::Queue,
            max_backlog: 4,
            force: false,
            realtime: true,
            max_trace_slots: 1_000_000,
        }
    }
}

/// Stops a run from another thread, or on Ctrl-C ([`StopHandle::on_ctrl_c`]): releases end,
/// running stages finish (they are non-preemptive), and everything measured is reported.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Also stops on SIGINT and SIGTERM (the flag is set from the signal handler; the run polls
    /// it at least every 10 ms). A second Ctrl-C exits the process (status 130): the way out
    /// of a stage that never returns.
    pub fn on_ctrl_c(&self) -> std::io::Result<()> {
        // Registered first, so it sees the flag as the previous Ctrl-C left it.
        signal_hook::flag::register_conditional_shutdown(signal_hook::consts::SIGINT, 130, self.0.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGINT, self.0.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, self.0.clone())?;
        Ok(())
    }
}
