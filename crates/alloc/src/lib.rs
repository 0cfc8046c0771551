//! Layer allocators behind one interface.
//!
//! Every allocator returns the allocation it settled on together with its analysis, schedulable
//! or not, so callers can show *why* a set fails. Sources and search descriptions:
//! docs/analysis.md, "Allocators".

use lalarand_analysis::{analyze, Analysis};
use lalarand_model::{Allocation, ExecutionPlan, Mode, ResourceKind, System};
use serde::Serialize;

pub mod admission;
mod baselines;
pub mod dart;
mod evaluator;
mod lalarand;
pub mod moves;
mod optimal;
pub mod search;

pub use baselines::{CpuOnly, GpuOnly, Preferable, TaskLevel};
pub use dart::{Dart, DartCut, DartUtil};
pub use lalarand::{Lalarand, LalarandOwn};
pub use optimal::Optimal;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AllocError {
    #[error("the platform has no {kind} resource, which policy {policy} needs; fix: add one to the platform file")]
    NoResource { policy: &'static str, kind: ResourceKind },
    #[error("the platform has no gpu resource, which policy {policy} needs; fix: add one to the platform file, or mark the cpu resource standing in for it `accelerator = true`")]
    NoAccelerator { policy: &'static str },
    #[error("task {task:?} layer {layer:?} has no {mode} mode, which policy {policy} needs; fix: profile that mode or pick another policy")]
    MissingMode { policy: &'static str, task: String, layer: String, mode: Mode },
    #[error("task {task:?} layer {layer:?} cannot run on any resource of this platform; fix: profile a mode whose resource kind the platform has (a cpu-int8 mode whose accuracy cost is unknown is not offered: measure it with lalarand profile --calibration, or assume one with --assume-int8-cost)")]
    Unplaceable { task: String, layer: String },
}

/// Accuracy sums are compared with this slack so that a budget equal to a sum computed in
/// another order is not rejected by rounding.
pub(crate) const ACCURACY_EPS: f64 = 1e-9;

/// What the caller allows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AllocOptions {
    /// Largest allowed sum of the int8 layers' accuracy costs, percentage points.
    pub accuracy_budget: f64,
    /// `false`: fp32 modes only ("lalarand without quantization").
    pub allow_int8: bool,
    /// Search-node cap for [`Optimal`]; past it the search reports itself incomplete.
    pub node_limit: u64,
    /// The int8 accuracy cost, percentage points, budgeted for a layer whose cost is not known
    /// (its profile has `null`). `None`: such layers are not offered int8 at all
    /// ([`System::with_unknown_int8_costs`]), so an unknown cost never counts as zero.
    pub assume_int8_cost: Option<f64>,
}

impl Default for AllocOptions {
    fn default() -> Self {
        Self { accuracy_budget: 1.0, allow_int8: true, node_limit: 2_000_000, assume_int8_cost: None }
    }
}

/// An allocation with its analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub allocation: Allocation,
    pub analysis: Analysis,
    /// Analyses run while searching.
    pub evaluations: u64,
    /// `false` only for a search that stopped at its limit without an answer (exact policies).
    pub complete: bool,
}

impl Outcome {
    pub fn schedulable(&self) -> bool {
        self.analysis.schedulable()
    }

    /// Analyzes `allocation` (valid for `system`) into an outcome.
    pub fn evaluate(system: &System, allocation: Allocation, evaluations: u64) -> Self {
        let analysis = analyze(&ExecutionPlan::new_unchecked(system, &allocation));
        Self { allocation, analysis, evaluations: evaluations + 1, complete: true }
    }
}

pub trait Allocator: Sync {
    fn name(&self) -> &'static str;
    fn allocate(&self, system: &System, options: &AllocOptions) -> Result<Outcome, AllocError>;
}

/// The policies by name, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    GpuOnly,
    CpuOnly,
    /// Each whole DNN on its fastest resource, fp32 (the artifact's "Preferable").
    Preferable,
    /// One resource per whole DNN, searched by schedulability, int8 allowed.
    TaskLevel,
    /// Ablation: DART's two-stage cut by utilization balance, not by schedulability.
    DartUtil,
    /// DART's pipelines chosen by the analysis.
    Dart,
    /// LaLaRAND restricted to fp32 modes.
    LalarandFp32,
    /// LaLaRAND's own search, without the baselines' allocations as seeds.
    LalarandOwn,
    /// LaLaRAND, the portfolio: its own search, then the baselines' allocations as seeds.
    Lalarand,
    Optimal,
}

impl Policy {
    pub const ALL: [Policy; 10] = [
        Policy::GpuOnly,
        Policy::CpuOnly,
        Policy::Preferable,
        Policy::TaskLevel,
        Policy::DartUtil,
        Policy::Dart,
        Policy::LalarandFp32,
        Policy::LalarandOwn,
        Policy::Lalarand,
        Policy::Optimal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::GpuOnly => "gpu-only",
            Policy::CpuOnly => "cpu-only",
            Policy::Preferable => "preferable",
            Policy::TaskLevel => "task-level",
            Policy::DartUtil => "dart-util",
            Policy::Dart => "dart",
            Policy::LalarandFp32 => "lalarand-fp32",
            Policy::LalarandOwn => "lalarand-own",
            Policy::Lalarand => "lalarand",
            Policy::Optimal => "optimal",
        }
    }

    /// What the policy is, for reports: the baselines say what they search and allow.
    pub fn label(self) -> &'static str {
        match self {
            Policy::GpuOnly => "gpu-only (vanilla: all on the accelerator, fp32)",
            Policy::CpuOnly => "cpu-only (all on the first cpu, fp32)",
            Policy::Preferable => "preferable (whole DNN on its fastest resource, fp32, no search)",
            Policy::TaskLevel => "task-level, searched, int8 (whole DNN per resource)",
            Policy::DartUtil => "dart-util (ablation: DART cut by utilization balance)",
            Policy::Dart => "dart (DART allocation, lalarand analysis)",
            Policy::LalarandFp32 => "lalarand-fp32 (no quantization)",
            Policy::LalarandOwn => "lalarand-own (its own search: no baseline's allocation as a seed)",
            Policy::Lalarand => "lalarand (portfolio: its own search, then the baselines' allocations as seeds)",
            Policy::Optimal => "optimal (exact search)",
        }
    }

    /// Runs the policy; `lalarand-fp32` is `lalarand` with int8 disallowed. Layers of unknown
    /// int8 cost are offered int8 only at `options.assume_int8_cost`
    /// ([`System::with_unknown_int8_costs`]).
    pub fn allocate(self, system: &System, options: &AllocOptions) -> Result<Outcome, AllocError> {
        let offered = system.with_unknown_int8_costs(options.assume_int8_cost);
        let system = offered.as_ref();
        match self {
            Policy::GpuOnly => GpuOnly.allocate(system, options),
            Policy::CpuOnly => CpuOnly.allocate(system, options),
            Policy::Preferable => Preferable.allocate(system, options),
            Policy::TaskLevel => TaskLevel.allocate(system, options),
            Policy::DartUtil => DartUtil.allocate(system, options),
            Policy::Dart => Dart.allocate(system, options),
            Policy::LalarandFp32 => Lalarand.allocate(system, &AllocOptions { allow_int8: false, ..*options }),
            Policy::LalarandOwn => LalarandOwn.allocate(system, options),
            Policy::Lalarand => Lalarand.allocate(system, options),
            Policy::Optimal => Optimal.allocate(system, options),
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Policy::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<_> = Policy::ALL.iter().map(|p| p.name()).collect();
            format!("unknown policy {s:?}; known: {}", names.join(", "))
        })
    }
}
