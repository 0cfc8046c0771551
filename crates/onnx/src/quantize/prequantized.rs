//! Recognizing a model that arrives already quantized: QDQ (QuantizeLinear / DequantizeLinear
//! pairs), QOperator (QLinearConv, QLinearMatMul, ...), integer matrix products (MatMulInteger,
//! ConvInteger, dynamic quantization) and ONNX Runtime's `com.microsoft` quantized ops
//! (QGemm, QLinearAdd, DynamicQuantizeLSTM, ...). lalarand runs such a model as it is: its fp32
//! modes run the given graph (int8 kernels included), and it is never quantized again (an int8
//! rewrite would re-quantize the int32 accumulators and dequantized values the model already
//! computes).

use std::collections::BTreeMap;

use crate::proto::{ModelProto, NodeProto};

/// Default-domain ops that only a quantized model has.
const QUANTIZED_OPS: &[&str] = &[
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "MatMulInteger",
    "ConvInteger",
];

/// `com.microsoft` ops that compute on quantized values.
fn is_microsoft_quantized(op: &str) -> bool {
    op.starts_with("QLinear")
        || op.starts_with("DynamicQuantize")
        || op.starts_with("QOrdered")
        || matches!(
            op,
            "QGemm"
                | "QAttention"
                | "QEmbedLayerNormalization"
                | "MatMulIntegerToFloat"
                | "MatMulInteger16"
                | "QuantizeLinear"
                | "DequantizeLinear"
                | "MatMulNBits"
        )
}

/// Whether `node` is an op only a quantized model has (any of the formats above).
pub fn quantized_op(node: &NodeProto) -> bool {
    match node.domain() {
        "" | "ai.onnx" => QUANTIZED_OPS.contains(&node.op_type()),
        "com.microsoft" => is_microsoft_quantized(node.op_type()),
        _ => false,
    }
}

/// Why a stage of an already-quantized model (its nodes `nodes`, reading `inputs`) cannot be
/// quantized by lalarand, if it cannot: it computes with the model's own quantized ops (the
/// first that computes, not a DynamicQuantizeLinear of its input, where it has one). A stage
/// whose only such op is a DequantizeLinear of one of its inputs (the uint8 a quantized stage
/// before it handed over) computes in float after it, and lalarand can quantize it.
pub fn quantized_stage_op<'a>(
    nodes: impl IntoIterator<Item = &'a NodeProto>,
    inputs: &[String],
) -> Option<&'a NodeProto> {
    let ops: Vec<&NodeProto> = nodes
        .into_iter()
        .filter(|n| {
            let entry = n.op_type() == "DequantizeLinear" && n.input.first().is_some_and(|x| inputs.contains(x));
            quantized_op(n) && !entry
        })
        .collect();
    ops.iter().find(|n| n.op_type() != "DynamicQuantizeLinear").or(ops.first()).copied()
}

/// What makes `model` already quantized, in words (`"QDQ: 3 QuantizeLinear, 4
/// DequantizeLinear"`, `"QOperator: 2 QLinearConv, ..."`), or `None` for a float model.
pub fn prequantized(model: &ModelProto) -> Option<String> {
    let graph = model.graph.as_ref()?;
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for n in graph.node.iter().filter(|n| quantized_op(n)) {
        *ops.entry(n.op_type()).or_default() += 1;
    }
    if ops.is_empty() {
        return None;
    }
    let qdq_only = ops.keys().all(|op| matches!(*op, "QuantizeLinear" | "DequantizeLinear"));
    let format = if qdq_only { "QDQ" } else { "QOperator / integer ops" };
    let list: Vec<String> = ops.iter().map(|(op, n)| format!("{n} {op}")).collect();
    Some(format!("{format}: {}", list.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::GraphBuilder;
    use crate::proto::tensor_proto::DataType;

    #[test]
    fn quantized_ops_of_every_format_are_recognized() {
        let model = |ops: &[(&str, &str)]| {
            let mut b = GraphBuilder::new("q");
            b.input("x", DataType::Float, &[1]);
            for (k, (domain, op)) in ops.iter().enumerate() {
                b.node(op, &format!("n{k}"), &["x"], &[&format!("y{k}")], vec![]);
                b.graph.node[k].domain = Some(domain.to_string());
            }
            b.finish()
        };
        assert_eq!(prequantized(&model(&[("", "Relu"), ("com.microsoft", "FusedConv")])), None);
        assert_eq!(
            prequantized(&model(&[("", "QuantizeLinear"), ("", "DequantizeLinear"), ("", "DequantizeLinear")]))
                .unwrap(),
            "QDQ: 2 DequantizeLinear, 1 QuantizeLinear"
        );
        let q = prequantized(&model(&[("", "MatMulInteger"), ("com.microsoft", "DynamicQuantizeLSTM")])).unwrap();
        assert!(q.starts_with("QOperator") && q.contains("1 DynamicQuantizeLSTM"), "{q}");
        assert!(prequantized(&model(&[("com.microsoft", "QLinearAdd")])).is_some());
        assert!(prequantized(&model(&[("", "QLinearConv")])).is_some());
    }
}
