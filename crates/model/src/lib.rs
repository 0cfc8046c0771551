//! The task model of lalarand: what runs where, and how long it may take.
//!
//! A [`System`] is a [`Platform`] (named resources, each running one layer at a time) plus a
//! [`TaskSet`] (periodic tasks, each a DNN whose per-layer worst-case times live in a
//! [`DnnProfile`]). An [`Allocation`] places every layer of every task on a resource in a
//! [`Mode`]; [`ExecutionPlan`] turns the three into the per-layer costs that the analysis and
//! the simulator consume, charging transitions (copies, quantize/dequantize) where
//! [`plan`] documents.
//!
//! Files: platforms, task sets and allocations are TOML; profiles are JSON. Every loader
//! reports bad input as a [`FormatError`] naming the file, the field and the fix.
//!
//! ```
//! use lalarand_model::{examples, Allocation, ExecutionPlan};
//! let system = examples::demo_system();
//! let alloc = Allocation::uniform(&system, lalarand_model::Mode::Gpu).unwrap();
//! let plan = ExecutionPlan::new(&system, &alloc).unwrap();
//! assert_eq!(plan.tasks.len(), system.tasks.len());
//! ```

pub mod allocation;
pub mod error;
pub mod examples;
mod int8_offer;
pub mod library;
pub mod plan;
pub mod platform;
pub mod profile;
pub mod record;
pub mod task;
pub mod time;

pub use allocation::{placements_accuracy_cost, Allocation, Placement};
pub use error::{FormatError, ModelError};
pub use plan::{ExecutionPlan, PlannedLayer, PlannedTask};
pub use platform::{Platform, Resource, ResourceId, ResourceKind};
pub use profile::{
    DnnProfile, Int8Calibration, Int8CostKind, Int8Note, LayerProfile, LayerSources, Mode, ModeTiming,
    OutputTransitions, StageGrouping, TimingStats, Transitions,
};
pub use record::{JobOutcome, JobRecord, StageSlot};
pub use task::{PriorityPolicy, System, Task, TaskSet};
pub use time::{ms_to_time, time_to_ms, time_to_us, us_to_time, Time};
