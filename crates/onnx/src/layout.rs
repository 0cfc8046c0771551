//! The NHWC handover layout of uint8 feature maps between int8 stages: ONNX Runtime's int8
//! kernels work in NHWC, and a stage with NCHW boundaries would transpose its input and output
//! on every run (about 20% of an int8 ResNet-18). These rewrites make a quantized stage take
//! and give NHWC (its explicit boundary Transposes cancel against the runtime's own), and
//! build the one-node models converting a boundary tensor between fp32 and uint8 in it.

use crate::builder::{attr, node, GraphBuilder};
use crate::proto::tensor_proto::DataType;
use crate::quantize::QParams;
use crate::{ModelProto, ValueInfoProto};

/// NCHW -> NHWC.
pub const TO_NHWC: [i64; 4] = [0, 2, 3, 1];
/// NHWC -> NCHW.
pub const TO_NCHW: [i64; 4] = [0, 3, 1, 2];

/// A model converting a tensor of `dims` (`None`: symbolic) between fp32 and uint8 with `q`
/// (`to_u8`: fp32 in, uint8 out), its uint8 side in the handover layout (NHWC where rank 4).
pub fn conversion_model(dims: &[Option<i64>], q: QParams, to_u8: bool) -> ModelProto {
    let dims: Vec<i64> = dims.iter().map(|d| d.unwrap_or(-1)).collect();
    let (from, to) = if to_u8 { (DataType::Float, DataType::Uint8) } else { (DataType::Uint8, DataType::Float) };
    let nhwc: Vec<i64> =
        if dims.len() == 4 { TO_NHWC.iter().map(|&p| dims[p as usize]).collect() } else { dims.clone() };
    let mut b = GraphBuilder::new(if to_u8 { "quantize" } else { "dequantize" });
    b.initializer(crate::tensor::f32_tensor("scale", &[], &[q.scale]));
    b.initializer(crate::tensor::u8_tensor("zp", &[], &[q.zero_point]));
    let transpose = |b: &mut GraphBuilder, x: &str, y: &str, perm: [i64; 4]| {
        b.node("Transpose", "layout", &[x], &[y], vec![attr::ints("perm", &perm)]);
    };
    if to_u8 {
        b.input("x", from, &dims);
        let q_out = if dims.len() == 4 { "q" } else { "y" };
        b.node("QuantizeLinear", "convert", &["x", "scale", "zp"], &[q_out], vec![]);
        if dims.len() == 4 {
            transpose(&mut b, "q", "y", TO_NHWC);
        }
        b.output("y", to, &nhwc);
    } else {
        b.input("x", from, &nhwc);
        let dq_in = if dims.len() == 4 { "t" } else { "x" };
        if dims.len() == 4 {
            transpose(&mut b, "x", "t", TO_NCHW);
        }
        b.node("DequantizeLinear", "convert", &[dq_in, "scale", "zp"], &["y"], vec![]);
        b.output("y", to, &dims);
    }
    let mut m = b.finish();
    // A symbolic batch is written as -1 above; make it a named dimension.
    symbolic_batch(&mut m);
    m
}

/// Makes the rank-4 uint8 graph inputs `ins` and outputs `outs` NHWC, with Transposes to and
/// from the NCHW tensors the graph computes on.
pub fn nhwc_boundaries(model: &mut ModelProto, ins: &[&String], outs: &[&String]) {
    let g = model.graph.as_mut().expect("a quantized stage has a graph");
    let mut front = Vec::new();
    for t in ins {
        let inner = format!("{t}__nchw");
        for n in g.node.iter_mut() {
            for i in n.input.iter_mut().filter(|i| i == t) {
                i.clone_from(&inner);
            }
        }
        front.push(node(
            "Transpose",
            &format!("{t}__to_nchw"),
            &[t.as_str()],
            &[&inner],
            vec![attr::ints("perm", &TO_NCHW)],
        ));
    }
    for t in outs {
        let inner = format!("{t}__nchw_out");
        for n in g.node.iter_mut() {
            for o in n.output.iter_mut().filter(|o| o == t) {
                o.clone_from(&inner);
            }
            for i in n.input.iter_mut().filter(|i| i == t) {
                i.clone_from(&inner);
            }
        }
        g.node.push(node(
            "Transpose",
            &format!("{t}__to_nhwc"),
            &[&inner],
            &[t.as_str()],
            vec![attr::ints("perm", &TO_NHWC)],
        ));
    }
    front.append(&mut g.node);
    g.node = front;
    for vi in g.input.iter_mut().filter(|v| ins.iter().any(|t| *t == v.name())) {
        permute_shape(vi, TO_NHWC);
    }
    for vi in g.output.iter_mut().filter(|v| outs.iter().any(|t| *t == v.name())) {
        permute_shape(vi, TO_NHWC);
    }
}

/// A lone uint8 MaxPool stage, `Transpose -> DequantizeLinear -> MaxPool -> QuantizeLinear ->
/// Transpose` with equal input and output parameters, becomes ONNX Runtime's NHWC uint8
/// `com.microsoft.NhwcMaxPool`: the runtime does not do this itself for a graph this small, and
/// its NCHW uint8 MaxPool between two transposes is far slower (ResNet-18's max pooling, mean
/// on a loaded machine: 5.9 ms before, 0.06 ms after).
pub fn nhwc_maxpool(model: &mut ModelProto) {
    use crate::proto::OperatorSetIdProto;
    let g = model.graph.as_mut().expect("a quantized stage has a graph");
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type()).collect();
    if ops != ["Transpose", "DequantizeLinear", "MaxPool", "QuantizeLinear", "Transpose"] {
        return;
    }
    let pool = &g.node[2];
    let mut n = node(
        "NhwcMaxPool",
        pool.name(),
        &[g.node[0].input[0].as_str()],
        &[g.node[4].output[0].as_str()],
        pool.attribute.clone(),
    );
    n.domain = Some("com.microsoft".into());
    g.node = vec![n];
    g.initializer.clear();
    if !model.opset_import.iter().any(|o| o.domain() == "com.microsoft") {
        model.opset_import.push(OperatorSetIdProto { domain: Some("com.microsoft".into()), version: Some(1) });
    }
}

fn permute_shape(vi: &mut ValueInfoProto, perm: [i64; 4]) {
    use crate::proto::type_proto::Value as T;
    if let Some(T::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        if let Some(shape) = t.shape.as_mut().filter(|s| s.dim.len() == 4) {
            let old = shape.dim.clone();
            shape.dim = perm.iter().map(|&p| old[p as usize].clone()).collect();
        }
    }
}

fn symbolic_batch(m: &mut ModelProto) {
    use crate::proto::tensor_shape_proto::dimension::Value;
    use crate::proto::type_proto::Value as T;
    let g = m.graph.as_mut().expect("built with a graph");
    for vi in g.input.iter_mut().chain(g.output.iter_mut()) {
        if let Some(T::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            for d in t.shape.iter_mut().flat_map(|s| s.dim.iter_mut()) {
                if d.value == Some(Value::DimValue(-1)) {
                    d.value = Some(Value::DimParam("batch".into()));
                }
            }
        }
    }
}
