//! ONNX graph work for lalarand, without an inference runtime.
//!
//! - [`proto`]: the protobuf types of `onnx.proto`, with [`load_model`] / [`save_model`];
//! - [`builder`] and [`tensor`]: writing graphs and tensors (opset 17);
//! - [`zoo`]: standard architectures with seeded random weights;
//! - [`quantize`]: calibration and the int8 QDQ rewrite that ONNX Runtime turns into int8 kernels.

pub mod builder;
pub mod error;
pub mod io;
pub mod partition;
pub mod quantize;
pub mod shape;
pub mod tensor;
pub mod zoo;

/// Protobuf types generated from ONNX's `onnx.proto` (vendored in `proto/`, Apache-2.0).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod proto {
    include!("proto/onnx.rs");
}

pub use builder::GraphBuilder;
pub use error::OnnxError;
pub use io::{decode_model, encode_model, load_model, save_model};
pub use proto::{GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
