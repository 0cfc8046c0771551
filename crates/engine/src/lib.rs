//! lalarand's inference engine: runs a DNN stage by stage, each stage in its own ONNX Runtime
//! session and mode (gpu, cpu-fp32, cpu-int8), profiles every stage in every mode, and measures
//! what int8 costs in accuracy.

pub mod error;
pub mod runtime;

pub use error::{EngineError, Result};
