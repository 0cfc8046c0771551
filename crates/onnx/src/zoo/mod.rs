//! Standard DNN architectures with seeded random weights, written as ONNX (opset 17, batch 1).
//!
//! Every model reads `input` (float32 `[1,3,224,224]`; `[1,3,416,416]` for YOLOv3-tiny) and
//! writes `output` (`[1,1000]` logits; YOLOv3-tiny writes its 13x13 head as `output` and its
//! 26x26 head as `output_1`, each 255 channels). Batch norm stays a separate
//! `BatchNormalization` node, as in users' exports. Nodes carry their PyTorch module names
//! (`layer1.0.conv1`) or darknet layer indices (`layer13.conv`); each node's output is
//! `{node}.out`.
//!
//! Parameter counts (trainable initializers, see [`parameter_count`]) equal torchvision's:
//! ResNet-18 11,689,512; ResNet-50 25,557,032; MobileNetV2 3,504,872; SqueezeNet 1.1 1,235,496.
//! YOLOv3-tiny has 8,852,366, the count implied by darknet's cfg (conv weights, conv biases of
//! the two linear heads, batch-norm scales and biases).

mod layers;
mod mobilenet;
mod resnet;
mod squeezenet;
mod yolo;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use crate::proto::ModelProto;
use crate::tensor::element_count;

pub use yolo::{YOLOV3_TINY_CFG, YOLOV3_TINY_INPUT};

/// The architectures of the zoo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    ResNet18,
    ResNet50,
    MobileNetV2,
    SqueezeNet1_1,
    YoloV3Tiny,
}

impl Architecture {
    pub const ALL: [Architecture; 5] = [
        Architecture::ResNet18,
        Architecture::ResNet50,
        Architecture::MobileNetV2,
        Architecture::SqueezeNet1_1,
        Architecture::YoloV3Tiny,
    ];

    /// The name used on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::ResNet18 => "resnet18",
            Architecture::ResNet50 => "resnet50",
            Architecture::MobileNetV2 => "mobilenet_v2",
            Architecture::SqueezeNet1_1 => "squeezenet1_1",
            Architecture::YoloV3Tiny => "yolov3_tiny",
        }
    }

    /// Side of the square input image.
    pub fn input_size(self) -> i64 {
        match self {
            Architecture::YoloV3Tiny => YOLOV3_TINY_INPUT,
            _ => 224,
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An architecture name that the zoo does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown architecture `{0}`; fix: use one of resnet18, resnet50, mobilenet_v2, squeezenet1_1, yolov3_tiny")]
pub struct UnknownArchitecture(pub String);

impl FromStr for Architecture {
    type Err = UnknownArchitecture;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Architecture::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| UnknownArchitecture(s.to_string()))
    }
}

/// Builds `arch` with weights drawn from a ChaCha8 generator seeded with `seed`.
pub fn build(arch: Architecture, seed: u64) -> ModelProto {
    match arch {
        Architecture::ResNet18 => resnet::resnet("resnet18", resnet::Block::Basic, [2, 2, 2, 2], seed),
        Architecture::ResNet50 => resnet::resnet("resnet50", resnet::Block::Bottleneck, [3, 4, 6, 3], seed),
        Architecture::MobileNetV2 => mobilenet::mobilenet_v2(seed),
        Architecture::SqueezeNet1_1 => squeezenet::squeezenet1_1(seed),
        Architecture::YoloV3Tiny => yolo::yolov3_tiny(seed),
    }
}

/// Number of trainable parameters: elements of the initializers that are weights or biases of
/// Conv, ConvTranspose, Gemm and MatMul, or scale and bias of BatchNormalization (running
/// mean and variance are statistics, not parameters). A weight behind a DequantizeLinear
/// counts as the quantized initializer feeding it, so a quantized model counts the same.
pub fn parameter_count(model: &ModelProto) -> u64 {
    let Some(graph) = &model.graph else { return 0 };
    let dims: HashMap<&str, &[i64]> = graph.initializer.iter().map(|t| (t.name(), t.dims.as_slice())).collect();
    let dequantized: HashMap<&str, &str> = graph
        .node
        .iter()
        .filter(|n| n.op_type() == "DequantizeLinear" && !n.input.is_empty() && !n.output.is_empty())
        .map(|n| (n.output[0].as_str(), n.input[0].as_str()))
        .collect();
    let mut counted = HashSet::new();
    let mut total = 0;
    for node in &graph.node {
        let slots: &[usize] = match node.op_type() {
            "Conv" | "ConvTranspose" | "Gemm" => &[1, 2],
            "MatMul" => &[1],
            "BatchNormalization" => &[1, 2],
            _ => continue,
        };
        for &slot in slots {
            let Some(mut name) = node.input.get(slot).map(String::as_str) else { continue };
            if let Some(&source) = dequantized.get(name) {
                name = source;
            }
            if let Some(d) = dims.get(name) {
                if counted.insert(name) {
                    total += element_count(d);
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests;
