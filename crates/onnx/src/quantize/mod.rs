//! Static post-training int8 quantization as a QDQ rewrite that ONNX Runtime turns into int8
//! kernels (QLinearConv, QGemm, QLinearAdd, ...).
//!
//! Conventions follow onnxruntime.quantization's QDQ format:
//! - weights of Conv, Gemm and MatMul: per-channel symmetric int8 (`QuantizeLinear`'s range
//!   [-127, 127], zero point 0), stored quantized and read through a `DequantizeLinear` with
//!   `axis` on the output channel;
//! - biases: int32 with scale `input_scale * weight_scale[c]`, as ORT's fusion requires;
//!   where that int32 would not fit the accumulator ([`int32_bias_limit`]: tiny activations
//!   entering a node with a real bias, as in a classifier after shrinking layers), the node is
//!   left fp32 instead (listed in [`QuantizedModel::kept_fp32`]): ORT would clamp the bias
//!   silently and the output would be wrong;
//! - activations: per-tensor asymmetric uint8 from calibrated ranges, a
//!   `QuantizeLinear`→`DequantizeLinear` pair on every tensor read or written by a quantizable
//!   operator; pooling and shape operators (MaxPool, Flatten, Reshape, Resize, ...) reuse their
//!   input's parameters so ORT runs them directly on uint8;
//! - before that, batch norm is folded into the preceding convolution and a ReLU / ReLU6 after
//!   a quantized operator is dropped (its uint8 range clamps the same way).
//!
//! Consecutive int8 stages can hand over uint8 tensors: [`QuantizeOptions::uint8_outputs`]
//! makes a graph output the output of its `QuantizeLinear`, and
//! [`QuantizeOptions::uint8_inputs`] accepts a uint8 graph input with given parameters. Give
//! the next stage the parameters that [`QuantizedModel::output_qparams`] reports.

mod calibrate;
mod passes;
mod prequantized;
mod qdq;

use std::collections::{HashMap, HashSet};

pub use calibrate::{CalibrationMethod, Calibrator};
pub use passes::fold_batch_norm;
pub use prequantized::{prequantized, quantized_op, quantized_stage_op};
pub use qdq::{int32_bias_limit, quantize};

use crate::proto::ModelProto;

/// Parameters of per-tensor asymmetric uint8 quantization: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: u8,
}

impl QParams {
    /// ORT's parameters for a calibrated range: the range is widened to contain 0 (so that 0,
    /// the padding value, is exact) and split into 255 steps.
    pub fn from_range(min: f32, max: f32) -> Result<Self, String> {
        if !min.is_finite() || !max.is_finite() || min > max {
            return Err(format!("range ({min}, {max}) is not a finite interval"));
        }
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        let scale = (hi - lo) / 255.0;
        if scale == 0.0 || !scale.is_normal() {
            return Ok(QParams { scale: 1.0, zero_point: 0 });
        }
        let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8;
        Ok(QParams { scale, zero_point })
    }

    /// `QuantizeLinear`: round half to even, saturate to [0, 255].
    pub fn quantize(self, x: f32) -> u8 {
        ((x / self.scale).round_ties_even() + self.zero_point as f32).clamp(0.0, 255.0) as u8
    }

    /// `DequantizeLinear`.
    pub fn dequantize(self, q: u8) -> f32 {
        (q as f32 - self.zero_point as f32) * self.scale
    }
}

/// Options of [`quantize`] for a stage between other int8 stages.
#[derive(Debug, Clone, Default)]
pub struct QuantizeOptions {
    /// Graph inputs that arrive as uint8 with these parameters (the previous stage's
    /// [`QuantizedModel::output_qparams`]).
    pub uint8_inputs: HashMap<String, QParams>,
    /// Graph outputs to leave as uint8, written by their `QuantizeLinear`.
    pub uint8_outputs: HashSet<String>,
}

/// A quantized model and the parameters of its quantized outputs.
#[derive(Debug, Clone)]
pub struct QuantizedModel {
    pub model: ModelProto,
    /// Parameters of every graph output that goes through a `QuantizeLinear` (every uint8
    /// output, and fp32 outputs of quantized operators).
    pub output_qparams: HashMap<String, QParams>,
    /// Quantizable operators left in fp32 because int8 would compute them wrongly (see the
    /// module doc's safety rules), in node-name order.
    pub kept_fp32: Vec<KeptFp32>,
}

/// An operator the rewrite left in fp32, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptFp32 {
    /// The node's name (its output's where it has none).
    pub node: String,
    pub op: String,
    pub reason: String,
}

impl std::fmt::Display for KeptFp32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}`: {}", self.op, self.node, self.reason)
    }
}

#[cfg(test)]
mod tests;
