//! ONNX graph work for lalarand, without an inference runtime.
//!
//! - [`proto`]: the protobuf types of `onnx.proto`, with [`load_model`] / [`save_model`];
//! - [`builder`] and [`tensor`]: writing graphs and tensors (opset 17);
//! - [`zoo`]: standard architectures with seeded random weights;
//! - [`quantize`]: calibration and the int8 QDQ rewrite that ONNX Runtime turns into int8 kernels;
//!   [`layout`]: the NHWC handover of uint8 tensors between int8 stages;
//! - [`fold`]: fixing input shapes and folding the shape computations they determine;
//! - [`partition`]: cutting a model into stages; [`granularity`]: merging them; [`shape`]: static
//!   shapes of the cut tensors.
//!
//! ```
//! use lalarand_onnx::quantize::{quantize, CalibrationMethod, Calibrator, QuantizeOptions};
//! use lalarand_onnx::zoo::{self, Architecture};
//!
//! let model = zoo::build("squeezenet1_1".parse::<Architecture>().unwrap(), 0);
//! assert_eq!(zoo::parameter_count(&model), 1_235_496);
//! // A runtime feeds the calibrator every tensor of a few fp32 runs; here, one made-up value
//! // per tensor.
//! let mut calibrator = Calibrator::new(CalibrationMethod::Percentile(99.99)).unwrap();
//! let graph = model.graph.as_ref().unwrap();
//! for tensor in graph.node.iter().flat_map(|n| n.output.iter()).chain(["input".to_string()].iter()) {
//!     calibrator.observe(tensor, &[-1.0, 0.5, 4.0]);
//! }
//! let int8 = quantize(&model, &calibrator.ranges(), &QuantizeOptions::default()).unwrap();
//! assert!(int8.model.graph.unwrap().node.iter().any(|n| n.op_type() == "QuantizeLinear"));
//! ```

pub mod builder;
pub mod error;
pub mod fold;
pub mod granularity;
pub mod io;
pub mod layout;
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
