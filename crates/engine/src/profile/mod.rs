//! The profiler: every stage in every available mode, after warm-up, on pinned cores, written
//! as the `lalarand-profile/1` JSON the timing core reads.
//!
//! WCET = observed max x margin (`wcet_margin` in the file). Transitions are measured with
//! one-node QuantizeLinear / DequantizeLinear models of the tensor's shape (with the NHWC
//! layout change of int8 feature maps), and `copy_in`/`copy_out` (gpu stages only) as a
//! host -> GPU -> host round trip of the stage's inputs. A mode that fails
//! for a stage is left out with a warning. On an error or a stop request, the stages measured
//! so far are written to `<out stem>.partial.json` and the error says so.
//!
//! One file per concern: [`options`] (what a run measures), [`to_file`] (the entry points and
//! the partial file), `profiler.rs` (the measurement of every stage and transition),
//! `measure.rs` (the timing loop) with [`cold_runs`] (how many runs start cold) and [`cache`]
//! (eviction sized by [`working_set`]), [`mod@stats`] (samples to WCET), [`inputs`] (loaded or
//! generated inputs), [`mod@layer_sources`] (which stages each stage reads), [`digest`] (model
//! SHA-256) and `phases.rs` (where the time went).

pub mod cache;
pub mod cold_runs;
pub mod digest;
pub mod inputs;
pub mod layer_sources;
mod measure;
pub mod options;
mod phases;
mod profiler;
pub mod raw_inputs;
pub mod stats;
pub mod to_file;
pub mod working_set;

pub use cache::{eviction_bytes, CacheEvictor, CacheSizes, LAST_LEVEL_SHARE};
pub use cold_runs::ColdRuns;
pub use digest::sha256_file;
pub use inputs::{
    calibration_inputs, load_inputs, seeded_inputs, synthetic_inputs, CALIBRATION_PER_CLASS, SYNTHETIC_SAMPLES,
};
pub use layer_sources::layer_sources;
pub use options::{stop_on_flag, ProfileOptions, StopFn, LABEL_FREE_SAMPLES};
pub use stats::stats;
pub use to_file::{partial_path, profile_shaped_to_file, profile_to_file, ProfileOutcome};
pub use working_set::stage_working_sets;
