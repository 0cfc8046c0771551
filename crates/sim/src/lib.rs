//! Discrete-event simulator of lalarand's scheduling model, exact for that model.
//!
//! Each resource runs one layer at a time, non-preemptively, always picking the ready layer of
//! highest fixed priority (0 = highest; ties: earlier release, then smaller task index). When a
//! layer completes, the job's next layer is queued on its resource at that same instant. At
//! every instant all completions and releases are processed before idle resources dispatch, so
//! a layer that becomes ready at `t` competes with everything else ready at `t`. A zero-cost
//! layer (profiles allow 0 us) that is picked completes at the instant it starts, so its
//! successor competes at that instant too; several such layers complete one at a time,
//! highest priority first over all resources, so the order of the resources in the platform
//! never changes a run (docs/analysis.md, "Same-instant events").
//!
//! Wake-ups are modelled as the runtime has them: a worker parked on an empty queue, woken by a
//! layer queued from outside, starts up to that layer's `wakeup` (its share of its cost) later,
//! and then runs the highest-priority layer queued by then, for the rest of its cost. A worker
//! that is awake runs a layer's cost less its wake-up. Releases are periodic or sporadic
//! ([`Releases`]).
//!
//! Besides [`simulate`], the crate draws [Gantt charts](gantt) of a run and runs the
//! [soundness campaign](campaign): random plans simulated against
//! [`lalarand_analysis::analyze`]'s bounds.
//!
//! ```
//! use lalarand_model::{examples, Allocation, ExecutionPlan, Mode};
//! use lalarand_sim::{simulate, SimConfig};
//! let system = examples::demo_system();
//! let alloc = Allocation::uniform(&system, Mode::Gpu).unwrap();
//! let plan = ExecutionPlan::new(&system, &alloc).unwrap();
//! let run = simulate(&plan, &SimConfig::default()).unwrap();
//! assert_eq!(run.tasks.len(), plan.tasks.len());
//! ```

pub mod campaign;
mod engine;
mod exec;
pub mod gantt;
pub mod mode_change;
mod record;
pub mod report;

pub use campaign::{soundness_campaign, CampaignReport, Violation};
pub use engine::{simulate, Horizon, Releases, SimConfig, Simulator, AUTO_MAX_PERIODS};
pub use exec::ExecutionTimeModel;
pub use gantt::{write_gantt, write_schedule_gantt, GanttLabels, Schedule};
pub use mode_change::{simulate_mode_changes, ChangeRecord, ModeChange, ModeChangeRun, ModeJob};
pub use record::{SimResult, TaskStats, Trace};
pub use report::{SimReport, SimTaskReport};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
    #[error("invalid simulation settings: {0}")]
    InvalidConfig(String),
    #[error("cannot draw the Gantt chart: {0}")]
    Gantt(String),
    /// The I/O error is in the message and not a `source()`, so an error chain prints it once.
    #[error("cannot write {}: {error}", path.display())]
    Write { path: PathBuf, error: std::io::Error },
}
