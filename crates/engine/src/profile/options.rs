//! What a profile run measures and how ([`ProfileOptions`]), and how it is stopped.

use super::cold_runs::ColdRuns;
use crate::dataset::Dataset;
use crate::stage::ExecConfig;
use lalarand_model::Mode;
use lalarand_onnx::granularity::Granularity;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Profiling inputs the label-free int8 costs are measured on, at most (each stage alone int8
/// runs the whole model on every one of them).
pub const LABEL_FREE_SAMPLES: usize = 100;

/// See [`ProfileOptions::stop`].
pub type StopFn = Arc<dyn Fn(usize) -> bool + Send + Sync>;

/// A [`StopFn`] that stops once `flag` is set.
pub fn stop_on_flag(flag: Arc<AtomicBool>) -> StopFn {
    Arc::new(move |_| flag.load(Ordering::Relaxed))
}

#[derive(Clone)]
pub struct ProfileOptions {
    /// Timed runs per stage and mode (after `warmup` untimed ones).
    pub runs: usize,
    /// With `cold_cache`: how many of the `runs` start with evicted caches, at least; the first
    /// runs are cold until their max is stable ([`ColdRuns`]), the rest warm. `runs` here makes
    /// every timed run cold.
    pub min_cold_runs: usize,
    pub warmup: usize,
    /// WCET = observed max x margin; >= 1.
    pub margin: f64,
    pub cfg: ExecConfig,
    /// Modes to measure; a mode that cannot run here (gpu without a GPU) is left out with a warning.
    pub modes: Vec<Mode>,
    /// Show an indicatif progress bar.
    pub progress: bool,
    /// Asked before every measurement with the number of stages done, and with 0 during the
    /// set-up (before loading the model, before the fp32 reference run, before every int8
    /// calibration batch, every stage's quantization and every batch of the accuracy
    /// measurement); `true` stops the run (a Ctrl-C handler sets a flag that this reads, see
    /// [`stop_on_flag`]).
    pub stop: Option<StopFn>,
    /// Labeled data for `int8_accuracy_cost`, with the number of training rows per class that
    /// precede the test rows of each class. Without it every layer's cost is written as `null`
    /// (not known).
    pub accuracy: Option<(Dataset, usize)>,
    /// Without `accuracy`: measure every stage's int8 cost without labels on the (up to
    /// [`LABEL_FREE_SAMPLES`]) profiling inputs ([`crate::accuracy::label_free_costs_until`]; the
    /// profile's `int8_cost_kind` says which measure). Only meaningful with real inputs, not
    /// [`super::synthetic_inputs`].
    pub label_free_accuracy: bool,
    /// Evict the caches before the first timed runs (see [`super::CacheEvictor`], [`ColdRuns`]), so
    /// the WCET covers a stage that finds its input and weights out of cache, as it does in a
    /// run where other stages ran in between. Without it a stage is timed with what its previous run left in
    /// cache: a demo run measured yolov3_tiny's memory-bound maxpool stages at 3x their
    /// warm-cache means, above their WCETs (docs/engine.md, "Profiler").
    pub cold_cache: bool,
    /// How coarse the profiled stages are (`--granularity`; [`crate::granularity`]); the
    /// profile records the grouping (`stage_grouping`).
    pub granularity: Granularity,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        Self {
            runs: 100,
            min_cold_runs: ColdRuns::MIN_RUNS,
            warmup: 10,
            margin: 1.2,
            cfg: ExecConfig::default(),
            modes: Mode::ALL.to_vec(),
            progress: true,
            stop: None,
            accuracy: None,
            label_free_accuracy: false,
            cold_cache: true,
            granularity: Granularity::Layer,
        }
    }
}
