//! lalarand's inference engine: runs a DNN stage by stage, each stage in its own ONNX Runtime
//! session and mode (gpu, cpu-fp32, cpu-int8), profiles every stage in every mode, and measures
//! what int8 costs in accuracy.
//!
//! The ONNX Runtime library is fetched on first use (see [`onnxruntime`]).

pub mod accuracy;
pub mod calibration;
pub mod checked_modes;
pub mod dataset;
pub mod end_to_end;
pub mod error;
pub mod granularity;
pub mod int8_stages;
pub mod mode_change;
pub mod onnxruntime;
mod ort_log;
pub mod output_checks;
pub mod profile;
pub mod quant;
pub mod serving;
pub mod stage;
pub mod staged;
pub mod tensor;

pub use error::{EngineError, Result};

/// The old name of [`onnxruntime`], which shared the runtime crate's; kept until `serving.rs`
/// says `onnxruntime` (it belongs to the dispatch-core change).
#[doc(hidden)]
pub use onnxruntime as runtime;
pub use quant::{calibrate, quantize_stages, Int8Stages};
pub use stage::{pin_current_thread, ExecConfig, StageRunner, Tensors};
pub use staged::{Pipeline, StageTensors, StagedModel};
