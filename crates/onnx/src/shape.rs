//! Static shape inference for the operators of the zoo and of QDQ graphs, so a graph's
//! structure can be checked (and stage boundaries given shapes) without a runtime.

use std::collections::HashMap;

use crate::builder::{find_attr, shape_of};
use crate::proto::{GraphProto, NodeProto};
use crate::tensor::to_i64;
use crate::OnnxError;

/// Shapes of every value of `graph`, from its input shapes, in node order (which ONNX requires
/// to be topological). Unknown operators and inconsistent shapes are errors naming the node.
pub fn infer_shapes(graph: &GraphProto) -> Result<HashMap<String, Vec<i64>>, OnnxError> {
    let gname = graph.name();
    let mut shapes: HashMap<String, Vec<i64>> = HashMap::new();
    for t in &graph.initializer {
        shapes.insert(t.name().to_string(), t.dims.clone());
    }
    for input in &graph.input {
        if shapes.contains_key(input.name()) {
            continue;
        }
        let shape = shape_of(input).ok_or_else(|| {
            OnnxError::graph(
                gname,
                format!("input `{}` has no fixed shape; fix: export with a fixed batch", input.name()),
            )
        })?;
        shapes.insert(input.name().to_string(), shape);
    }
    for node in &graph.node {
        let err =
            |reason: String| OnnxError::graph(gname, format!("node `{}` ({}): {reason}", node.name(), node.op_type()));
        let ins: Vec<&Vec<i64>> = node
            .input
            .iter()
            .filter(|i| !i.is_empty())
            .map(|i| shapes.get(i).ok_or_else(|| err(format!("input `{i}` is not computed before this node"))))
            .collect::<Result<_, _>>()?;
        let out = infer_node(node, &ins, graph).map_err(err)?;
        if let Some(name) = node.output.first() {
            shapes.insert(name.clone(), out);
        }
    }
    Ok(shapes)
}

fn ints(node: &NodeProto, name: &str, default: &[i64]) -> Vec<i64> {
    find_attr(node, name).map_or_else(|| default.to_vec(), |a| a.ints.clone())
}

fn int(node: &NodeProto, name: &str, default: i64) -> i64 {
    find_attr(node, name).and_then(|a| a.i).unwrap_or(default)
}

/// Output size of a sliding window along one axis.
fn window(size: i64, k: i64, stride: i64, pad: i64, ceil: bool) -> i64 {
    let span = size + pad - k;
    if ceil {
        let mut out = (span + stride - 1) / stride + 1;
        // The last window must start inside the padded input (PyTorch's and ONNX's rule).
        if (out - 1) * stride >= size + pad / 2 {
            out -= 1;
        }
        out
    } else {
        span / stride + 1
    }
}

fn spatial(node: &NodeProto, x: &[i64], kernel: &[i64], channels: i64, ceil: bool) -> Result<Vec<i64>, String> {
    if x.len() != 4 {
        return Err(format!("expects a 4-D input, got {x:?}"));
    }
    let strides = ints(node, "strides", &[1, 1]);
    let pads = ints(node, "pads", &[0, 0, 0, 0]);
    let mut out = vec![x[0], channels];
    for axis in 0..2 {
        out.push(window(x[2 + axis], kernel[axis], strides[axis], pads[axis] + pads[axis + 2], ceil));
    }
    Ok(out)
}

fn infer_node(node: &NodeProto, ins: &[&Vec<i64>], graph: &GraphProto) -> Result<Vec<i64>, String> {
    let first = ins.first().ok_or("has no inputs")?;
    match node.op_type() {
        "Conv" => {
            let w = ins.get(1).ok_or("has no weight")?;
            let group = int(node, "group", 1);
            if first.len() == 4 && w.len() == 4 && first[1] != w[1] * group {
                return Err(format!(
                    "input has {} channels but the weight {w:?} with group {group} expects {}",
                    first[1],
                    w[1] * group
                ));
            }
            spatial(node, first, &w[2..], w[0], false)
        }
        "MaxPool" | "AveragePool" => {
            let k = ints(node, "kernel_shape", &[]);
            spatial(node, first, &k, first[1], int(node, "ceil_mode", 0) == 1)
        }
        "GlobalAveragePool" | "GlobalMaxPool" => Ok(vec![first[0], first[1], 1, 1]),
        "Flatten" => {
            let axis = int(node, "axis", 1) as usize;
            Ok(vec![first[..axis].iter().product(), first[axis..].iter().product()])
        }
        "Gemm" => {
            let w = ins.get(1).ok_or("has no weight")?;
            let n = if int(node, "transB", 0) == 1 { w[0] } else { w[1] };
            Ok(vec![first[0], n])
        }
        "Concat" => {
            let axis = int(node, "axis", 1) as usize;
            let mut out = (*first).clone();
            out[axis] = ins.iter().map(|s| s[axis]).sum();
            Ok(out)
        }
        "Add" | "Mul" | "Sub" | "Div" => {
            let b = ins.get(1).ok_or("needs two inputs")?;
            if first != b && b.iter().product::<i64>() != 1 {
                return Err(format!("operand shapes {first:?} and {b:?} differ"));
            }
            Ok((*first).clone())
        }
        "Resize" => {
            let scales = node.input.get(2).and_then(|s| graph.initializer.iter().find(|t| t.name() == s));
            let scales = scales.ok_or("needs constant scales")?;
            let scales = crate::tensor::to_f32(scales).map_err(|e| e.to_string())?;
            Ok(first.iter().zip(scales).map(|(&d, s)| (d as f32 * s).floor() as i64).collect())
        }
        "Reshape" => {
            let target = node.input.get(1).and_then(|s| graph.initializer.iter().find(|t| t.name() == s));
            let target = to_i64(target.ok_or("needs a constant shape")?).map_err(|e| e.to_string())?;
            let total: i64 = first.iter().product();
            let known: i64 = target.iter().filter(|&&d| d > 0).product();
            Ok(target
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    if d == 0 {
                        first[i]
                    } else if d < 0 {
                        total / known
                    } else {
                        d
                    }
                })
                .collect())
        }
        "Relu" | "Clip" | "LeakyRelu" | "Sigmoid" | "BatchNormalization" | "Identity" | "Dropout"
        | "QuantizeLinear" | "DequantizeLinear" | "Softmax" => Ok((*first).clone()),
        other => Err(format!("operator {other} is not supported by lalarand's shape inference")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{attr, GraphBuilder};
    use crate::proto::tensor_proto::DataType;

    #[test]
    fn ceil_mode_drops_a_window_that_starts_in_the_padding() {
        // SqueezeNet: 111 -> 55 with k=3,s=2,ceil; PyTorch gives 55, not 56.
        assert_eq!(window(111, 3, 2, 0, true), 55);
        assert_eq!(window(112, 3, 2, 2, false), 56);
        assert_eq!(window(13, 2, 1, 1, false), 13);
    }

    #[test]
    fn mismatched_channels_name_the_node() {
        let mut b = GraphBuilder::new("g");
        b.input("x", DataType::Float, &[1, 3, 8, 8]);
        let w = b.f32_initializer("w", &[4, 5, 1, 1], &[0.0; 20]);
        b.op("Conv", "bad_conv", &["x", &w], vec![attr::int("group", 1)]);
        let err = infer_shapes(&b.graph).unwrap_err().to_string();
        assert!(err.contains("bad_conv") && err.contains("channels"), "{err}");
    }
}
