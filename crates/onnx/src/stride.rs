//! How far a graph downsamples its input: the product of the strides of the convolutions and
//! poolings along its deepest path. A spatial input size this does not divide leaves sizes
//! that no longer match where an upsampled branch meets a skip connection (a detector's
//! Concat), which ONNX Runtime reports only as a shape-inference error at that node.

use std::collections::HashMap;

use crate::builder::find_attr;
use crate::proto::GraphProto;

/// The largest product of `strides` (the largest over a node's spatial axes) along any path
/// from a graph input, over Conv, MaxPool, AveragePool and LpPool; 1 for a graph that does not
/// downsample. Upsampling is not divided out: what matters is the deepest level reached.
pub fn deepest_stride(graph: &GraphProto) -> u64 {
    let mut reached: HashMap<&str, u64> = graph.input.iter().map(|i| (i.name(), 1)).collect();
    let mut deepest = 1;
    // ONNX requires node order to be topological.
    for node in &graph.node {
        let from = node.input.iter().filter_map(|i| reached.get(i.as_str()).copied()).max();
        let Some(from) = from else { continue };
        let own = match node.op_type() {
            "Conv" | "MaxPool" | "AveragePool" | "LpPool" => {
                find_attr(node, "strides").map(|a| a.ints.iter().copied().max().unwrap_or(1).max(1) as u64).unwrap_or(1)
            }
            _ => 1,
        };
        let at = from.saturating_mul(own);
        deepest = deepest.max(at);
        for o in &node.output {
            reached.insert(o.as_str(), at);
        }
    }
    deepest
}

/// The multiples of `stride` on either side of `size` (the one below at least `stride`).
pub fn nearest_multiples(size: u64, stride: u64) -> (u64, u64) {
    let below = (size / stride * stride).max(stride);
    let above = size.div_ceil(stride) * stride;
    (below, above)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{attr, GraphBuilder};
    use crate::proto::tensor_proto::DataType;

    #[test]
    fn strides_multiply_along_the_deepest_path() {
        let mut b = GraphBuilder::new("g");
        b.input("x", DataType::Float, &[1, 1, 64, 64]);
        let w = b.f32_initializer("w", &[1, 1, 3, 3], &[0.1; 9]);
        let a = b.op("Conv", "a", &["x", &w], vec![attr::ints("strides", &[2, 2]), attr::ints("pads", &[1, 1, 1, 1])]);
        let p = b.op("MaxPool", "p", &[&a], vec![attr::ints("kernel_shape", &[2, 2]), attr::ints("strides", &[2, 2])]);
        let side = b.op("Relu", "side", &["x"], vec![]);
        b.op("Add", "late", &[&side, &side], vec![]);
        assert_eq!(deepest_stride(&b.finish().graph.unwrap()), 4, "{p}");
        assert_eq!(nearest_multiples(321, 32), (320, 352));
        assert_eq!(nearest_multiples(9, 2), (8, 10));
        assert_eq!(nearest_multiples(3, 32), (32, 32));
    }
}
