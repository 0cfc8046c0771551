use std::collections::{HashMap, HashSet};

use super::*;
use crate::builder::{attr, elem_type_of, find_attr, GraphBuilder};
use crate::proto::tensor_proto::DataType;
use crate::proto::{GraphProto, NodeProto, TensorProto};
use crate::shape::infer_shapes;
use crate::tensor::to_f32;
use crate::zoo::{self, Architecture};

/// input [1,2,4,4] -> conv (with BN) -> relu -> maxpool -> flatten -> gemm -> `output`.
fn small_cnn() -> ModelProto {
    let mut b = GraphBuilder::new("small");
    b.input("input", DataType::Float, &[1, 2, 4, 4]);
    let w: Vec<f32> = (0..3 * 2 * 9).map(|i| (i as f32 - 27.0) / 27.0).collect();
    let w = b.f32_initializer("conv.weight", &[3, 2, 3, 3], &w);
    let c =
        b.op("Conv", "conv", &["input", &w], vec![attr::ints("pads", &[1; 4]), attr::ints("kernel_shape", &[3, 3])]);
    let mut bn = vec![c];
    for (name, v) in [("g", [1.0, 3.0, 0.5]), ("b", [0.1, -0.2, 0.0]), ("m", [0.5, 0.0, -1.0]), ("v", [1.0, 4.0, 0.25])]
    {
        bn.push(b.f32_initializer(&format!("bn.{name}"), &[3], &v));
    }
    let bn_refs: Vec<&str> = bn.iter().map(String::as_str).collect();
    let y = b.op("BatchNormalization", "bn", &bn_refs, vec![attr::float("epsilon", 0.0)]);
    let y = b.op("Relu", "relu", &[&y], vec![]);
    let y = b.op("MaxPool", "pool", &[&y], vec![attr::ints("kernel_shape", &[2, 2]), attr::ints("strides", &[2, 2])]);
    let y = b.op("Flatten", "flatten", &[&y], vec![attr::int("axis", 1)]);
    let fw = b.f32_initializer("fc.weight", &[5, 12], &[0.25; 60]);
    let fb = b.f32_initializer("fc.bias", &[5], &[0.5, -0.5, 1.0, 0.0, 2.0]);
    b.node("Gemm", "fc", &[&y, &fw, &fb], &["output"], vec![attr::int("transB", 1)]);
    b.output("output", DataType::Float, &[1, 5]);
    b.finish()
}

/// A range for every tensor a node writes, plus the graph inputs.
fn fake_ranges(model: &ModelProto) -> HashMap<String, (f32, f32)> {
    let g = model.graph.as_ref().unwrap();
    let names = g.input.iter().map(|i| i.name().to_string()).chain(g.node.iter().flat_map(|n| n.output.clone()));
    names.map(|n| (n, (-1.0, 3.0))).collect()
}

fn producer<'a>(g: &'a GraphProto, tensor: &str) -> &'a NodeProto {
    g.node.iter().find(|n| n.output.iter().any(|o| o == tensor)).unwrap_or_else(|| panic!("nothing writes {tensor}"))
}

fn readers<'a>(g: &'a GraphProto, tensor: &str) -> Vec<&'a NodeProto> {
    g.node.iter().filter(|n| n.input.iter().any(|i| i == tensor)).collect()
}

fn initializer<'a>(g: &'a GraphProto, name: &str) -> &'a TensorProto {
    g.initializer.iter().find(|t| t.name() == name).unwrap_or_else(|| panic!("no initializer {name}"))
}

fn scalar_scale(g: &GraphProto, qdq: &NodeProto) -> f32 {
    to_f32(initializer(g, &qdq.input[1])).unwrap()[0]
}

/// Every quantizable operator reads DequantizeLinear outputs and (but for the graph output
/// of a Gemm) writes only to a QuantizeLinear: the pattern ORT fuses.
fn assert_fusable(g: &GraphProto, node: &NodeProto) {
    for i in node.input.iter().filter(|i| !i.is_empty()) {
        assert_eq!(producer(g, i).op_type(), "DequantizeLinear", "{} input {i}", node.name());
    }
    let out_readers = readers(g, &node.output[0]);
    assert!(out_readers.len() == 1 && out_readers[0].op_type() == "QuantizeLinear", "{} output", node.name());
    assert!(g.output.iter().all(|o| o.name() != node.output[0]), "{} writes a graph output", node.name());
}

#[test]
fn qparams_follow_ort() {
    let q = QParams::from_range(-1.0, 3.0).unwrap();
    assert_eq!(q.zero_point, 64);
    assert!((q.scale - 4.0 / 255.0).abs() < 1e-7);
    assert_eq!(q.dequantize(q.quantize(0.0)), 0.0, "zero is exact");
    assert_eq!(QParams::from_range(2.0, 5.0).unwrap().zero_point, 0, "the range is widened to contain 0");
    assert_eq!(QParams::from_range(0.0, 0.0).unwrap(), QParams { scale: 1.0, zero_point: 0 });
    assert!(QParams::from_range(f32::NAN, 1.0).is_err());
    assert!(QParams::from_range(2.0, 1.0).is_err());
}

proptest::proptest! {
    #[test]
    fn quantization_error_is_at_most_half_a_step(lo in -100f32..0.0, width in 0.01f32..200.0, t in 0f32..1.0) {
        let hi = lo + width;
        let q = QParams::from_range(lo, hi).unwrap();
        let x = lo.min(0.0) + t * (hi.max(0.0) - lo.min(0.0));
        proptest::prop_assert!((q.dequantize(q.quantize(x)) - x).abs() <= q.scale * 0.5001);
    }
}

#[test]
fn batch_norm_folds_into_the_convolution() {
    let mut g = small_cnn().graph.unwrap();
    assert_eq!(fold_batch_norm(&mut g).unwrap(), 1);
    assert!(g.node.iter().all(|n| n.op_type() != "BatchNormalization"));
    let conv = &g.node[0];
    assert_eq!(conv.output[0], "bn.out", "the conv writes the batch norm's tensor");
    let w = to_f32(initializer(&g, &conv.input[1])).unwrap();
    let b = to_f32(initializer(&g, &conv.input[2])).unwrap();
    // Factor gamma / sqrt(var): 1, 3/2, 0.5/0.5; bias (0 - mean) * factor + beta.
    let original: Vec<f32> = (0..54).map(|i| (i as f32 - 27.0) / 27.0).collect();
    assert_eq!(w[..18], original[..18]);
    assert_eq!(w[18..36], original[18..36].iter().map(|v| v * 1.5).collect::<Vec<_>>()[..]);
    assert_eq!(w[36..], original[36..]);
    assert_eq!(b, vec![-0.4, -0.2, 1.0]);
}

#[test]
fn small_cnn_becomes_the_qdq_pattern_ort_fuses() {
    let model = small_cnn();
    let q = quantize(&model, &fake_ranges(&model), &QuantizeOptions::default()).unwrap();
    let g = q.model.graph.as_ref().unwrap();
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type()).collect();
    assert!(!ops.contains(&"BatchNormalization") && !ops.contains(&"Relu"), "{ops:?}");
    let conv = g.node.iter().find(|n| n.op_type() == "Conv").unwrap();
    assert_fusable(g, conv);
    // Per-channel int8 weight with axis 0 and an int32 bias.
    let wdq = producer(g, &conv.input[1]);
    assert_eq!(find_attr(wdq, "axis").unwrap().i, Some(0));
    let wq = initializer(g, &wdq.input[0]);
    assert_eq!(wq.data_type, Some(DataType::Int8 as i32));
    assert_eq!(initializer(g, &wdq.input[1]).dims, vec![3]);
    let bdq = producer(g, &conv.input[2]);
    assert_eq!(initializer(g, &bdq.input[0]).data_type, Some(DataType::Int32 as i32));
    // Bias scale = input scale * weight scale, per channel.
    let x_scale = scalar_scale(g, producer(g, &conv.input[0]));
    let w_scales = to_f32(initializer(g, &wdq.input[1])).unwrap();
    let b_scales = to_f32(initializer(g, &bdq.input[1])).unwrap();
    for (b, w) in b_scales.iter().zip(&w_scales) {
        assert!((b - x_scale * w).abs() <= 1e-9);
    }
    // MaxPool and Flatten keep their input's parameters, so ORT runs them on uint8.
    for op in ["MaxPool", "Flatten"] {
        let n = g.node.iter().find(|n| n.op_type() == op).unwrap();
        let dq = producer(g, &n.input[0]);
        let q_after = readers(g, &n.output[0])[0];
        assert_eq!(q_after.op_type(), "QuantizeLinear");
        assert_eq!(scalar_scale(g, dq), scalar_scale(g, q_after), "{op}");
        assert_eq!(initializer(g, &dq.input[2]).raw_data, initializer(g, &q_after.input[2]).raw_data, "{op}");
    }
    let gemm = g.node.iter().find(|n| n.op_type() == "Gemm").unwrap();
    assert_fusable(g, gemm);
    assert_eq!(find_attr(producer(g, &gemm.input[1]), "axis").unwrap().i, Some(0), "transB=1: rows are channels");
    // The graph output keeps its name and type, written by the last DequantizeLinear.
    assert_eq!(producer(g, "output").op_type(), "DequantizeLinear");
    assert_eq!(elem_type_of(&g.output[0]), Some(DataType::Float as i32));
    assert!(q.output_qparams.contains_key("output"));
    let shapes = infer_shapes(g).unwrap();
    assert_eq!(shapes["output"], vec![1, 5]);
    // No fp32 weight is left behind.
    assert!(g.initializer.iter().all(|t| t.name() != "conv.weight" && t.name() != "bn.m"));
}

#[test]
fn dequantized_weights_are_within_half_a_step() {
    let model = small_cnn();
    let mut folded = model.graph.clone().unwrap();
    fold_batch_norm(&mut folded).unwrap();
    let expected = to_f32(initializer(&folded, &folded.node[0].input[1])).unwrap();
    let q = quantize(&model, &fake_ranges(&model), &QuantizeOptions::default()).unwrap();
    let g = q.model.graph.unwrap();
    let wdq = producer(&g, &g.node.iter().find(|n| n.op_type() == "Conv").unwrap().input[1]);
    let qw = &initializer(&g, &wdq.input[0]).raw_data.clone().unwrap();
    let scales = to_f32(initializer(&g, &wdq.input[1])).unwrap();
    for (i, (&q, e)) in qw.iter().zip(&expected).enumerate() {
        let s = scales[i / 18];
        assert!(((q as i8) as f32 * s - e).abs() <= s * 0.5001, "element {i}");
    }
    // The largest magnitude of each channel maps to +-127.
    for c in 0..3 {
        assert_eq!(qw[c * 18..(c + 1) * 18].iter().map(|&q| (q as i8).unsigned_abs()).max(), Some(127));
    }
}

#[test]
fn consecutive_int8_stages_hand_over_uint8() {
    let model = small_cnn();
    let ranges = fake_ranges(&model);
    // Stage A: everything up to the pooled tensor, emitted as uint8.
    let mut a = model.clone();
    let ga = a.graph.as_mut().unwrap();
    ga.node.truncate(4);
    ga.output = vec![crate::builder::value_info("pool.out", DataType::Float, &[1, 3, 2, 2])];
    let opts_a = QuantizeOptions { uint8_outputs: HashSet::from(["pool.out".to_string()]), ..Default::default() };
    let qa = quantize(&a, &ranges, &opts_a).unwrap();
    let ga = qa.model.graph.as_ref().unwrap();
    assert_eq!(producer(ga, "pool.out").op_type(), "QuantizeLinear");
    assert_eq!(elem_type_of(&ga.output[0]), Some(DataType::Uint8 as i32));
    assert!(readers(ga, "pool.out").is_empty(), "no DequantizeLinear for an output nobody reads");
    let pool = ga.node.iter().find(|n| n.op_type() == "MaxPool").unwrap();
    assert_eq!(readers(ga, &pool.output[0])[0].op_type(), "QuantizeLinear");
    let handed = qa.output_qparams["pool.out"];
    assert_eq!(handed, QParams::from_range(-1.0, 3.0).unwrap(), "MaxPool passes on the conv output's parameters");

    // Stage B: Flatten + Gemm, reading that uint8 tensor.
    let mut b = model.clone();
    let gb = b.graph.as_mut().unwrap();
    gb.node.drain(..4);
    gb.input = vec![crate::builder::value_info("pool.out", DataType::Float, &[1, 3, 2, 2])];
    let opts_b =
        QuantizeOptions { uint8_inputs: HashMap::from([("pool.out".to_string(), handed)]), ..Default::default() };
    let qb = quantize(&b, &ranges, &opts_b).unwrap();
    let gb = qb.model.graph.as_ref().unwrap();
    assert_eq!(elem_type_of(&gb.input[0]), Some(DataType::Uint8 as i32));
    let first = &gb.node[0];
    assert_eq!((first.op_type(), first.input[0].as_str()), ("DequantizeLinear", "pool.out"));
    assert_eq!(scalar_scale(gb, first), handed.scale);
    assert!(gb.node.iter().all(|n| n.op_type() != "QuantizeLinear" || n.input[0] != "pool.out"), "no re-quantization");
    assert_fusable(gb, gb.node.iter().find(|n| n.op_type() == "Gemm").unwrap());
}

#[test]
fn missing_ranges_and_bad_options_are_named() {
    let model = small_cnn();
    let mut ranges = fake_ranges(&model);
    ranges.remove("fc.out");
    ranges.remove("output");
    let err = quantize(&model, &ranges, &QuantizeOptions::default()).unwrap_err().to_string();
    assert!(err.contains("`output`") && err.contains("calibrat"), "{err}");
    let ranges = fake_ranges(&model);
    let opts = QuantizeOptions { uint8_outputs: HashSet::from(["nope".to_string()]), ..Default::default() };
    assert!(quantize(&model, &ranges, &opts).unwrap_err().to_string().contains("`nope`"));
    let mut old = model.clone();
    old.opset_import[0].version = Some(11);
    assert!(quantize(&old, &ranges, &QuantizeOptions::default()).unwrap_err().to_string().contains("opset 11"));
}

#[test]
fn zoo_models_quantize_completely() {
    for arch in
        [Architecture::ResNet18, Architecture::MobileNetV2, Architecture::SqueezeNet1_1, Architecture::YoloV3Tiny]
    {
        let model = zoo::build(arch, 0);
        let q = quantize(&model, &fake_ranges(&model), &QuantizeOptions::default()).unwrap();
        let g = q.model.graph.as_ref().unwrap();
        let ops: HashSet<&str> = g.node.iter().map(|n| n.op_type()).collect();
        assert!(
            !ops.contains("BatchNormalization") && !ops.contains("Relu") && !ops.contains("Clip"),
            "{arch}: {ops:?}"
        );
        for n in g
            .node
            .iter()
            .filter(|n| matches!(n.op_type(), "Conv" | "Gemm" | "Add" | "Concat" | "GlobalAveragePool" | "LeakyRelu"))
        {
            assert_fusable(g, n);
        }
        // Weights are stored once, as int8: the model shrinks to about a quarter.
        let size = |m: &ModelProto| crate::encode_model(m).len() as f64;
        assert!(size(&q.model) < 0.3 * size(&model), "{arch}");
        assert_eq!(zoo::parameter_count(&q.model), zoo::parameter_count(&model) - batch_norm_params(&model), "{arch}");
        let shapes = infer_shapes(g).unwrap_or_else(|e| panic!("{arch}: {e}"));
        for o in &g.output {
            assert_eq!(Some(&shapes[o.name()]), crate::builder::shape_of(o).as_ref());
        }
    }
}

/// Folding moves batch norm's 2 parameters per channel into 1 conv bias per channel, less the
/// biases that convolutions without one gain.
fn batch_norm_params(model: &ModelProto) -> u64 {
    let g = model.graph.as_ref().unwrap();
    g.node
        .iter()
        .filter(|n| n.op_type() == "BatchNormalization")
        .map(|n| initializer(g, &n.input[1]).dims[0] as u64)
        .sum()
}

#[test]
fn activations_stay_where_no_quantized_operator_absorbs_them() {
    // Relu after Sigmoid: Sigmoid's range would not clamp negatives of a later consumer, and
    // Relu after a Conv whose output is also read elsewhere must stay for that other reader.
    let mut b = GraphBuilder::new("keep");
    b.input("x", DataType::Float, &[1, 2, 2, 2]);
    let s = b.op("Sigmoid", "sig", &["x"], vec![]);
    let r1 = b.op("Relu", "relu1", &[&s], vec![]);
    let w = b.f32_initializer("w", &[2, 2, 1, 1], &[1.0, -1.0, 0.5, 2.0]);
    let c = b.op("Conv", "conv", &[&r1, &w], vec![]);
    let r2 = b.op("Relu", "relu2", &[&c], vec![]);
    let sum = b.op("Add", "add", &[&r2, &c], vec![]);
    b.output(&sum, DataType::Float, &[1, 2, 2, 2]);
    let model = b.finish();
    let q = quantize(&model, &fake_ranges(&model), &QuantizeOptions::default()).unwrap();
    let g = q.model.graph.unwrap();
    let relus: Vec<&str> = g.node.iter().filter(|n| n.op_type() == "Relu").map(|n| n.name()).collect();
    assert_eq!(relus, vec!["relu1", "relu2"]);
    assert_fusable(&g, g.node.iter().find(|n| n.op_type() == "Conv").unwrap());
}

/// A Gemm whose input range is tiny next to its bias: the int32 bias would be about 1e14, past
/// what the accumulator holds, so the bias is added in fp32 after the (still quantized) Gemm.
/// A normal range keeps the int32 bias.
#[test]
fn a_bias_that_does_not_fit_int32_is_added_in_fp32() {
    let model = small_cnn();
    let mut ranges = fake_ranges(&model);
    let q = quantize(&model, &ranges, &QuantizeOptions::default()).unwrap();
    assert!(q.kept_fp32.is_empty(), "{:?}", q.kept_fp32);
    let g = q.model.graph.as_ref().unwrap();
    assert_eq!(g.node.iter().find(|n| n.op_type() == "Gemm").unwrap().input.len(), 3);

    // Everything between the input and the output shrinks to 1e-12.
    for (_, r) in ranges.iter_mut().filter(|(t, _)| *t != "input" && *t != "output") {
        *r = (0.0, 1e-12);
    }
    let q = quantize(&model, &ranges, &QuantizeOptions::default()).unwrap();
    assert_eq!(q.kept_fp32.len(), 1, "{:?}", q.kept_fp32);
    assert_eq!((q.kept_fp32[0].node.as_str(), q.kept_fp32[0].op.as_str()), ("fc", "Gemm"));
    assert!(q.kept_fp32[0].reason.contains("int32"), "{}", q.kept_fp32[0]);
    let g = q.model.graph.as_ref().unwrap();
    let gemm = g.node.iter().find(|n| n.op_type() == "Gemm").unwrap();
    assert_eq!(gemm.input.len(), 2, "no int32 bias input");
    assert!(gemm.input[1].ends_with("_DequantizeLinear_Output"), "the weight stays int8");
    let add = readers(g, &gemm.output[0]);
    assert_eq!(add.len(), 1);
    assert_eq!(add[0].op_type(), "Add");
    let bias = initializer(g, &add[0].input[1]);
    assert_eq!(to_f32(bias).unwrap(), [0.5, -0.5, 1.0, 0.0, 2.0]);
    let int32 = |t: &&TensorProto| t.data_type == Some(DataType::Int32 as i32);
    assert!(!g.initializer.iter().filter(int32).any(|t| t.name().contains("fc.bias")), "no int32 fc bias left");
}

/// A model that already has a tensor `conv.out_scale` (as a pre-quantized model has scales):
/// the rewrite's own scale of `conv.out` takes another name, and every name stays defined once.
#[test]
fn generated_names_never_collide_with_the_models() {
    let mut b = GraphBuilder::new("names");
    b.input("input", DataType::Float, &[1, 2, 4, 4]);
    let w = b.f32_initializer("conv.weight", &[3, 2, 1, 1], &[0.5, -0.25, 1.0, 0.75, -1.0, 0.25]);
    let c = b.op("Conv", "conv", &["input", &w], vec![]);
    let s = b.f32_initializer(&format!("{c}_scale"), &[1], &[2.0]);
    b.node("Mul", "scaled", &[&c, &s], &["output"], vec![]);
    b.output("output", DataType::Float, &[1, 3, 4, 4]);
    let model = b.finish();
    let q = quantize(&model, &fake_ranges(&model), &QuantizeOptions::default()).unwrap();
    let g = q.model.graph.as_ref().unwrap();
    let mut defined: Vec<&str> = g.initializer.iter().map(|t| t.name()).collect();
    defined.extend(g.node.iter().flat_map(|n| n.output.iter().map(String::as_str)));
    let unique: HashSet<&str> = defined.iter().copied().collect();
    assert_eq!(unique.len(), defined.len(), "a name is defined twice: {defined:?}");
    assert_eq!(to_f32(initializer(g, "conv.out_scale")).unwrap(), [2.0], "the model's own tensor is untouched");
}
