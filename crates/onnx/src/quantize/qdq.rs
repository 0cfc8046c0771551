//! The QDQ rewrite itself.

use std::collections::{HashMap, HashSet};

use super::passes::{absorb_activations, fold_batch_norm, prune_initializers};
use super::{KeptFp32, QParams, QuantizeOptions, QuantizedModel};
use crate::builder::{attr, find_attr, node};
use crate::proto::tensor_proto::DataType;
use crate::proto::type_proto;
use crate::proto::{GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use crate::tensor::{f32_tensor, i32_tensor, i8_tensor, to_f32, u8_tensor};
use crate::OnnxError;

/// How an operator is quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Conv, Gemm, MatMul with a constant weight: input 0 is an activation, the weight is
    /// quantized per channel, the bias to int32.
    Weighted { axis: usize },
    /// Every input is an activation with its own parameters (Add, Mul, Concat, MatMul of two
    /// activations), and so is the output.
    Elementwise,
    /// Input 0 and the output each have their own parameters (AveragePool, LeakyRelu, ...).
    Unary,
    /// The output reuses input 0's parameters: ORT then drops the Q/DQ pair around the node
    /// and runs it on uint8 (MaxPool, Flatten, Reshape, Resize, ...).
    SameAsInput,
}

fn init<'a>(inits: &HashMap<&str, &'a TensorProto>, name: Option<&String>) -> Option<&'a TensorProto> {
    name.and_then(|n| inits.get(n.as_str()).copied())
}

fn is_float(t: &TensorProto) -> bool {
    t.data_type == Some(DataType::Float as i32)
}

fn kind(node: &NodeProto, inits: &HashMap<&str, &TensorProto>) -> Option<Kind> {
    if node.output.len() != 1 || node.input.is_empty() || init(inits, node.input.first()).is_some() {
        return None;
    }
    let weight = init(inits, node.input.get(1)).filter(|w| is_float(w));
    let bias_ok = |channels: i64| match node.input.get(2).filter(|b| !b.is_empty()) {
        None => true,
        Some(b) => inits.get(b.as_str()).is_some_and(|t| is_float(t) && t.dims == [channels]),
    };
    let int = |name: &str| find_attr(node, name).and_then(|a| a.i).unwrap_or(0);
    match node.op_type() {
        "Conv" => weight.filter(|w| w.dims.len() >= 3 && bias_ok(w.dims[0])).map(|_| Kind::Weighted { axis: 0 }),
        "Gemm" => {
            let beta = find_attr(node, "beta").and_then(|a| a.f).unwrap_or(1.0);
            let axis = if int("transB") == 1 { 0 } else { 1 };
            weight
                .filter(|w| w.dims.len() == 2 && int("transA") == 0 && beta == 1.0 && bias_ok(w.dims[axis]))
                .map(|_| Kind::Weighted { axis })
        }
        "MatMul" => match weight {
            Some(w) if w.dims.len() == 2 => Some(Kind::Weighted { axis: 1 }),
            Some(_) => None,
            None => init(inits, node.input.get(1)).is_none().then_some(Kind::Elementwise),
        },
        "Add" | "Mul" | "Concat" => {
            node.input.iter().all(|i| !i.is_empty() && !inits.contains_key(i.as_str())).then_some(Kind::Elementwise)
        }
        "AveragePool" | "GlobalAveragePool" | "LeakyRelu" | "Sigmoid" => Some(Kind::Unary),
        "MaxPool" | "Flatten" | "Reshape" | "Resize" | "Transpose" | "Squeeze" | "Unsqueeze" => Some(Kind::SameAsInput),
        _ => None,
    }
}

/// The activation inputs of a node of kind `k`.
fn activation_inputs(node: &NodeProto, k: Kind) -> Vec<&String> {
    match k {
        Kind::Elementwise => node.input.iter().collect(),
        _ => node.input.iter().take(1).collect(),
    }
}

/// Rewrites `model` into QDQ form with the activation `ranges` from calibration (keyed by the
/// tensor names of `model`). Every tensor read or written by a quantizable operator needs a
/// range; a missing one is an error naming it.
pub fn quantize(
    model: &ModelProto,
    ranges: &HashMap<String, (f32, f32)>,
    options: &QuantizeOptions,
) -> Result<QuantizedModel, OnnxError> {
    let fail = |reason: String| OnnxError::Quantize { reason };
    let opset = model.opset_import.iter().find(|o| o.domain().is_empty()).and_then(|o| o.version).unwrap_or(0);
    if opset < 13 {
        return Err(fail(format!(
            "the model imports opset {opset}; per-channel QuantizeLinear needs 13 or newer; fix: re-export with opset 17"
        )));
    }
    let mut graph = model.graph.clone().ok_or_else(|| fail("the model has no graph".into()))?;
    let gname = graph.name().to_string();
    fold_batch_norm(&mut graph)?;
    absorb_activations(&mut graph, &|g: &GraphProto, producer: &NodeProto, y: &str| {
        let inits: HashMap<&str, &TensorProto> = g.initializer.iter().map(|t| (t.name(), t)).collect();
        let absorbing = matches!(producer.op_type(), "Conv" | "Gemm" | "MatMul" | "Add" | "Mul");
        absorbing && kind(producer, &inits).is_some() && ranges.contains_key(y)
    });

    let graph_inputs: HashSet<String> = graph.input.iter().map(|i| i.name().to_string()).collect();
    let graph_outputs: HashSet<String> = graph.output.iter().map(|o| o.name().to_string()).collect();
    for name in options.uint8_inputs.keys() {
        if !graph_inputs.contains(name) {
            return Err(fail(format!("uint8 input `{name}` is not an input of graph `{gname}`")));
        }
    }
    for name in &options.uint8_outputs {
        if !graph_outputs.contains(name) || graph_inputs.contains(name) {
            return Err(fail(format!("uint8 output `{name}` is not an output computed by graph `{gname}`")));
        }
    }

    // Parameters of every activation to quantize, assigned in node (topological) order so
    // that an operator of kind SameAsInput sees its input's parameters.
    let range_qparams = |t: &str| -> Result<QParams, OnnxError> {
        let &(lo, hi) = ranges.get(t).ok_or_else(|| {
            fail(format!(
                "no calibration range for tensor `{t}` of graph `{gname}`: the calibration runs never computed it (is it an input the calibration samples do not fill?); the stage can only run in fp32, or calibrate on samples that fill it"
            ))
        })?;
        QParams::from_range(lo, hi).map_err(|e| fail(format!("tensor `{t}`: {e}")))
    };
    let inits: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name(), t)).collect();
    let mut qp: HashMap<String, QParams> = options.uint8_inputs.clone();
    let mut kinds: Vec<Option<Kind>> = Vec::with_capacity(graph.node.len());
    for n in &graph.node {
        let k = kind(n, &inits);
        if let Some(k) = k {
            for a in activation_inputs(n, k) {
                if !qp.contains_key(a) {
                    qp.insert(a.clone(), range_qparams(a)?);
                }
            }
            let out = if k == Kind::SameAsInput { qp[&n.input[0]] } else { range_qparams(&n.output[0])? };
            qp.insert(n.output[0].clone(), out);
        }
        kinds.push(k);
    }
    for name in &options.uint8_outputs {
        if !qp.contains_key(name) {
            qp.insert(name.clone(), range_qparams(name)?);
        }
    }
    let produced: HashSet<&String> = graph.node.iter().flat_map(|n| n.output.iter()).collect();
    if let Some(orphan) = qp.keys().find(|t| !produced.contains(t) && !graph_inputs.contains(*t)) {
        return Err(fail(format!("tensor `{orphan}` of graph `{gname}` is neither a graph input nor a node output")));
    }

    let tag = &name_tag(&graph);
    let mut w = Writer { qp: &qp, options, graph_outputs: &graph_outputs, tag, nodes: Vec::new(), inits: Vec::new() };
    // Where each reader finds a quantized tensor: the output of its DequantizeLinear.
    let reader_name = |t: &str| -> String {
        if graph_outputs.contains(t) && !options.uint8_outputs.contains(t) {
            t.to_string()
        } else {
            format!("{t}{tag}_DequantizeLinear_Output")
        }
    };
    for input in &graph.input {
        if qp.contains_key(input.name()) {
            w.qdq(input.name(), input.name());
        }
    }
    let mut weights_done = HashSet::new();
    let mut kept_fp32 = Vec::new();
    for (n, k) in graph.node.iter().zip(&kinds) {
        let mut n = n.clone();
        // Where the int32 bias would not fit: the bias, added in fp32 after the node.
        let mut fp32_bias = None;
        if let Some(Kind::Weighted { axis }) = *k {
            let x_scale = qp[&n.input[0]].scale;
            let w_scales = w.weight(&inits, &n.input[1], axis, &mut weights_done)?;
            let w_dims = &inits[n.input[1].as_str()].dims;
            // Products summed per output value, and trailing dims of 1 that make a bias broadcast.
            let fan_in = (crate::tensor::element_count(w_dims) / w_scales.len().max(1) as u64).max(1);
            let spatial = if n.op_type() == "Conv" { w_dims.len() - 2 } else { 0 };
            n.input[1] = format!("{}{tag}_DequantizeLinear_Output", n.input[1]);
            if let Some(b) = n.input.get(2).filter(|b| !b.is_empty()).cloned() {
                match w.bias(&inits, &b, &n, x_scale, &w_scales, fan_in, spatial)? {
                    Bias::Int32(name) => n.input[2] = name,
                    Bias::Fp32(name, kept) => {
                        n.input.truncate(2);
                        fp32_bias = Some(name);
                        kept_fp32.push(kept);
                    }
                }
            }
        }
        for i in n.input.iter_mut().filter(|i| qp.contains_key(i.as_str())) {
            *i = reader_name(i);
        }
        let outputs = n.output.clone();
        for o in n.output.iter_mut().filter(|o| qp.contains_key(o.as_str()) && graph_outputs.contains(o.as_str())) {
            *o = format!("{o}{tag}_QuantizeLinear_Input");
        }
        match fp32_bias {
            None => w.nodes.push(n),
            Some(bias) => {
                let out = n.output[0].clone();
                n.output[0] = format!("{out}{tag}_without_bias");
                let add = node("Add", &format!("{}{tag}_fp32_bias", n.name()), &[&n.output[0], &bias], &[&out], vec![]);
                w.nodes.push(n);
                w.nodes.push(add);
            }
        }
        for (o, written) in outputs.iter().zip(&w.nodes.last().expect("just pushed").output.clone()) {
            if qp.contains_key(o) {
                w.qdq(o, written);
            }
        }
    }

    let (nodes, new_inits) = (w.nodes, w.inits);
    // A uint8 output that no node reads needs no DequantizeLinear.
    let read: HashSet<&String> = nodes.iter().flat_map(|n| n.input.iter()).chain(&graph_outputs).collect();
    let unread: Vec<bool> =
        nodes.iter().map(|n| n.op_type() == "DequantizeLinear" && !read.contains(&n.output[0])).collect();
    graph.node = nodes.into_iter().zip(unread).filter(|(_, unread)| !unread).map(|(n, _)| n).collect();
    prune_initializers(&mut graph);
    graph.initializer.extend(new_inits);
    let uint8: HashSet<&String> = options.uint8_inputs.keys().chain(&options.uint8_outputs).collect();
    for vi in graph.input.iter_mut().chain(graph.output.iter_mut()).filter(|v| uint8.contains(&v.name().to_string())) {
        set_elem_type(vi, DataType::Uint8);
    }
    graph.value_info.retain(|v| !uint8.contains(&v.name().to_string()));
    let output_qparams =
        graph.output.iter().filter_map(|o| qp.get(o.name()).map(|&q| (o.name().to_string(), q))).collect();
    Ok(QuantizedModel { model: ModelProto { graph: Some(graph), ..model.clone() }, output_qparams, kept_fp32 })
}

/// The suffixes of the names the rewrite makes (`{tensor}{tag}{suffix}`).
const GENERATED: &[&str] = &[
    "_DequantizeLinear_Output",
    "_QuantizeLinear_Output",
    "_QuantizeLinear_Input",
    "_QuantizeLinear",
    "_DequantizeLinear",
    "_without_bias",
    "_fp32_bias",
    "_fp32",
    "_scale",
    "_zero_point",
    "_quantized",
];

/// The tag that makes every generated name new: none, unless some name of `graph` (a tensor, a
/// node) contains a generated suffix (`select_scale` in a model that already has scales), then
/// the first of `_lq`, `_lq2`, ... that none contains. Every generated name contains
/// `{tag}{suffix}`, so it can equal no name of the model.
fn name_tag(graph: &GraphProto) -> String {
    let mut names: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    names.extend(graph.input.iter().chain(&graph.output).chain(&graph.value_info).map(|v| v.name()));
    for n in &graph.node {
        names.insert(n.name());
        names.extend(n.input.iter().chain(&n.output).map(String::as_str));
    }
    let free =
        |tag: &str| !names.iter().any(|n| GENERATED.iter().any(|suffix| n.contains(&format!("{tag}{suffix}") as &str)));
    std::iter::once(String::new())
        .chain((1..).map(|k| if k == 1 { "_lq".to_string() } else { format!("_lq{k}") }))
        .find(|t| free(t))
        .expect("some tag is free")
}

/// The largest |value| of an int32 bias the rewrite writes for a node summing `fan_in`
/// products: QLinearConv / QGemm add the bias to an int32 accumulator that also holds up to
/// `fan_in` products of a uint8 and an int8 (each at most 255 x 127 in magnitude), and the sum
/// must not overflow either.
pub fn int32_bias_limit(fan_in: u64) -> f64 {
    i32::MAX as f64 - fan_in as f64 * 255.0 * 127.0
}

/// Per-channel symmetric int8 scales of weight `t` along `axis` (`absmax / 127`; 1 for an
/// all-zero channel).
fn weight_scales(t: &TensorProto, axis: usize) -> Result<(Vec<f32>, Vec<f32>), OnnxError> {
    let values = to_f32(t)?;
    let channels = t.dims[axis] as usize;
    let inner: usize = t.dims[axis + 1..].iter().product::<i64>() as usize;
    let mut absmax = vec![0f32; channels];
    for (i, v) in values.iter().enumerate() {
        let c = (i / inner) % channels;
        absmax[c] = absmax[c].max(v.abs());
    }
    // Symmetric int8 over [-127, 127] so that zero point 0 is exact; ORT does the same.
    let scales = absmax.iter().map(|&m| if m > 0.0 && (m / 127.0).is_normal() { m / 127.0 } else { 1.0 }).collect();
    Ok((values, scales))
}

fn set_elem_type(vi: &mut ValueInfoProto, t: DataType) {
    if let Some(type_proto::Value::TensorType(tt)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        tt.elem_type = Some(t as i32);
    }
}

/// How a bias is written: the name of its int32 DequantizeLinear output, or an fp32 tensor
/// for an Add after the node (with why).
enum Bias {
    Int32(String),
    Fp32(String, KeptFp32),
}

/// Accumulates the nodes and initializers of the rewritten graph.
struct Writer<'a> {
    qp: &'a HashMap<String, QParams>,
    options: &'a QuantizeOptions,
    graph_outputs: &'a HashSet<String>,
    /// What every generated name carries before its suffix ([`name_tag`]).
    tag: &'a str,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
}

impl Writer<'_> {
    /// Emits the QuantizeLinear / DequantizeLinear of tensor `t`, whose value is `written`
    /// (the name its producer now writes, or the graph input).
    fn qdq(&mut self, t: &str, written: &str) {
        let q = self.qp[t];
        let (scale, zp) = (format!("{t}{}_scale", self.tag), format!("{t}{}_zero_point", self.tag));
        self.inits.push(f32_tensor(&scale, &[], &[q.scale]));
        self.inits.push(u8_tensor(&zp, &[], &[q.zero_point]));
        let dq_out = format!("{t}{}_DequantizeLinear_Output", self.tag);
        if self.options.uint8_inputs.contains_key(t) {
            self.dq(t, &scale, &zp, &dq_out, None);
        } else if self.options.uint8_outputs.contains(t) {
            self.q(written, &scale, &zp, t);
            self.dq(t, &scale, &zp, &dq_out, None);
        } else {
            let q_out = format!("{t}{}_QuantizeLinear_Output", self.tag);
            self.q(written, &scale, &zp, &q_out);
            let dq_out = if self.graph_outputs.contains(t) { t.to_string() } else { dq_out };
            self.dq(&q_out, &scale, &zp, &dq_out, None);
        }
    }

    fn q(&mut self, x: &str, scale: &str, zp: &str, out: &str) {
        let name = format!("{out}{}_QuantizeLinear", self.tag);
        self.nodes.push(node("QuantizeLinear", &name, &[x, scale, zp], &[out], vec![]));
    }

    fn dq(&mut self, x: &str, scale: &str, zp: &str, out: &str, axis: Option<usize>) {
        let name = format!("{out}{}_DequantizeLinear", self.tag);
        let attrs = axis.map(|a| vec![attr::int("axis", a as i64)]).unwrap_or_default();
        self.nodes.push(node("DequantizeLinear", &name, &[x, scale, zp], &[out], attrs));
    }

    /// Quantizes weight `w` per channel along `axis` (once, however many nodes share it) and
    /// returns the channel scales.
    fn weight(
        &mut self,
        inits: &HashMap<&str, &TensorProto>,
        w: &str,
        axis: usize,
        done: &mut HashSet<String>,
    ) -> Result<Vec<f32>, OnnxError> {
        let t = inits[w];
        let (values, scales) = weight_scales(t, axis)?;
        let channels = t.dims[axis] as usize;
        let inner: usize = t.dims[axis + 1..].iter().product::<i64>() as usize;
        let channel = |i: usize| (i / inner) % channels;
        if done.insert(w.to_string()) {
            let tag = self.tag;
            let q: Vec<i8> = values
                .iter()
                .enumerate()
                .map(|(i, v)| (v / scales[channel(i)]).round_ties_even().clamp(-127.0, 127.0) as i8)
                .collect();
            let (qn, sn, zn) =
                (format!("{w}{tag}_quantized"), format!("{w}{tag}_scale"), format!("{w}{tag}_zero_point"));
            self.inits.push(i8_tensor(&qn, &t.dims, &q));
            self.inits.push(f32_tensor(&sn, &[channels as i64], &scales));
            self.inits.push(i8_tensor(&zn, &[channels as i64], &vec![0; channels]));
            self.dq(&qn, &sn, &zn, &format!("{w}{tag}_DequantizeLinear_Output"), Some(axis));
        }
        Ok(scales)
    }

    /// Quantizes bias `b` of node `n` to int32 with scales `x_scale * w_scales[c]` and
    /// returns the name its readers use; or, where that int32 would not fit the accumulator
    /// next to `fan_in` products ([`int32_bias_limit`]), keeps it fp32, shaped to broadcast
    /// over the node's output (`spatial` trailing dims of 1), for an Add after the node.
    ///
    /// That happens where the activations entering the node are tiny next to its bias (a
    /// classifier after layers whose outputs shrink to 1e-5 .. 1e-11): ORT would clamp the
    /// int32 bias without a word and the output would be wrong (measured: identically zero).
    /// Leaving the node's bias as a plain fp32 input is no way out: ORT's own QDQ pass then
    /// quantizes it the same way. The node still runs int8 (QGemm with fp32 output, or fp32
    /// Conv on dequantized inputs), the Add in fp32, and its output is quantized as before.
    #[allow(clippy::too_many_arguments)]
    fn bias(
        &mut self,
        inits: &HashMap<&str, &TensorProto>,
        b: &str,
        n: &NodeProto,
        x_scale: f32,
        w_scales: &[f32],
        fan_in: u64,
        spatial: usize,
    ) -> Result<Bias, OnnxError> {
        let values = to_f32(inits[b])?;
        let scales: Vec<f32> = w_scales.iter().map(|s| x_scale * s).collect();
        let exact: Vec<f64> = values.iter().zip(&scales).map(|(v, s)| *v as f64 / *s as f64).collect();
        let limit = int32_bias_limit(fan_in);
        let node = if n.name().is_empty() { n.output[0].as_str() } else { n.name() };
        let prefix = format!("{node}_{b}{}", self.tag);
        let worst = (0..exact.len()).max_by(|&i, &j| exact[i].abs().total_cmp(&exact[j].abs()));
        if let Some(c) = worst.filter(|&c| exact[c].is_nan() || exact[c].abs() > limit) {
            let name = format!("{prefix}_fp32");
            let mut dims = vec![values.len() as i64];
            dims.extend(std::iter::repeat_n(1, spatial));
            self.inits.push(f32_tensor(&name, &dims, &values));
            let reason = format!(
                "bias kept fp32 (added after the int8 op): bias {:.3e} / (input scale {x_scale:.3e} x weight scale {:.3e}) = {:.3e} does not fit the int32 accumulator (limit {limit:.3e} next to {fan_in} products); the input's values are tiny next to the bias",
                values[c], w_scales[c], exact[c]
            );
            return Ok(Bias::Fp32(name, KeptFp32 { node: node.to_string(), op: n.op_type().to_string(), reason }));
        }
        let q: Vec<i32> = exact.iter().map(|v| v.round_ties_even() as i32).collect();
        let (qn, sn, zn) = (format!("{prefix}_quantized"), format!("{prefix}_scale"), format!("{prefix}_zero_point"));
        let n = [values.len() as i64];
        self.inits.push(i32_tensor(&qn, &n, &q));
        self.inits.push(f32_tensor(&sn, &n, &scales));
        self.inits.push(i32_tensor(&zn, &n, &vec![0; values.len()]));
        let out = format!("{prefix}_DequantizeLinear_Output");
        self.dq(&qn, &sn, &zn, &out, Some(0));
        Ok(Bias::Int32(out))
    }
}
