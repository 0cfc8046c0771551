//! fp32 graph passes that prepare a model for quantization the way ORT's pre-processing does:
//! batch norm folded into the preceding convolution, and ReLU / ReLU6 after a quantized
//! operator dropped (the uint8 range of that operator's output clamps the same way).

use std::collections::{HashMap, HashSet};

use crate::proto::{GraphProto, NodeProto, TensorProto};
use crate::tensor::{f32_tensor, to_f32};
use crate::OnnxError;

/// How many nodes read each tensor, graph outputs counting as readers.
pub(crate) fn reader_counts(graph: &GraphProto) -> HashMap<String, usize> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let inputs = graph.node.iter().flat_map(|n| n.input.iter());
    for name in inputs.chain(graph.output.iter().filter_map(|o| o.name.as_ref())) {
        *counts.entry(name.clone()).or_default() += 1;
    }
    counts
}

fn initializer<'a>(graph: &'a GraphProto, name: &str) -> Option<&'a TensorProto> {
    graph.initializer.iter().find(|t| t.name() == name)
}

fn float_attr(node: &NodeProto, name: &str, default: f32) -> f32 {
    crate::builder::find_attr(node, name).and_then(|a| a.f).unwrap_or(default)
}

/// Folds every `BatchNormalization` whose input is the output of a `Conv` with constant
/// weights (read by nothing else) into that convolution's weight and bias. The convolution
/// then writes the batch norm's output tensor, so calibration ranges keep their names.
pub fn fold_batch_norm(graph: &mut GraphProto) -> Result<usize, OnnxError> {
    let mut folded = 0;
    let mut removed = HashSet::new();
    for bn_index in 0..graph.node.len() {
        let bn = &graph.node[bn_index];
        if bn.op_type() != "BatchNormalization" || bn.input.len() < 5 || bn.output.len() != 1 {
            continue;
        }
        let readers = reader_counts(graph);
        let x = bn.input[0].clone();
        let Some(conv_index) = graph.node.iter().position(|n| n.op_type() == "Conv" && n.output.first() == Some(&x))
        else {
            continue;
        };
        let conv = &graph.node[conv_index];
        if readers.get(&x) != Some(&1) || conv.input.len() < 2 {
            continue;
        }
        let params: Option<Vec<&TensorProto>> = bn.input[1..5].iter().map(|n| initializer(graph, n)).collect();
        let (Some(params), Some(weight)) = (params, initializer(graph, &conv.input[1])) else { continue };
        let [gamma, beta, mean, var] = [params[0], params[1], params[2], params[3]].map(to_f32);
        let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
        let eps = float_attr(bn, "epsilon", 1e-5);
        let mut w = to_f32(weight)?;
        let channels = weight.dims[0] as usize;
        if [&gamma, &beta, &mean, &var].iter().any(|v| v.len() != channels) {
            return Err(OnnxError::graph(
                graph.name(),
                format!(
                    "batch norm `{}` has parameters of a length other than the {channels} channels of `{}`",
                    bn.name(),
                    conv.name()
                ),
            ));
        }
        let mut bias = match conv.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => {
                to_f32(initializer(graph, b).ok_or_else(|| OnnxError::tensor(b, "conv bias is not a constant"))?)?
            }
            None => vec![0.0; channels],
        };
        let per_channel = w.len() / channels;
        for c in 0..channels {
            let f = gamma[c] / (var[c] + eps).sqrt();
            w[c * per_channel..(c + 1) * per_channel].iter_mut().for_each(|v| *v *= f);
            bias[c] = (bias[c] - mean[c]) * f + beta[c];
        }
        let (conv_name, dims, y) = (conv.name().to_string(), weight.dims.clone(), bn.output[0].clone());
        let w_name = format!("{conv_name}.weight_bn_folded");
        let b_name = format!("{conv_name}.bias_bn_folded");
        graph.initializer.push(f32_tensor(&w_name, &dims, &w));
        graph.initializer.push(f32_tensor(&b_name, &[channels as i64], &bias));
        let conv = &mut graph.node[conv_index];
        conv.input.truncate(1);
        conv.input.extend([w_name, b_name]);
        conv.output[0] = y;
        removed.insert(bn_index);
        folded += 1;
    }
    remove_nodes(graph, &removed);
    Ok(folded)
}

/// Removes `Relu` and `Clip(min = 0)` nodes whose input is read by them alone and written by
/// a node for which `absorbs(graph, producer, activation_output)` holds: that node writes the
/// activation's output instead. Only valid when that node's output is then quantized with the
/// activation's calibrated range (non-negative, so zero point 0 clamps like ReLU, and at most
/// the Clip maximum), which `absorbs` must guarantee.
pub(crate) fn absorb_activations(
    graph: &mut GraphProto,
    absorbs: &dyn Fn(&GraphProto, &NodeProto, &str) -> bool,
) -> usize {
    let mut removed = HashSet::new();
    for i in 0..graph.node.len() {
        let act = &graph.node[i];
        let is_relu = act.op_type() == "Relu";
        let is_clip0 = act.op_type() == "Clip"
            && act.input.get(1).and_then(|m| initializer(graph, m)).and_then(|t| to_f32(t).ok()) == Some(vec![0.0]);
        if !(is_relu || is_clip0) || act.output.len() != 1 {
            continue;
        }
        let x = act.input[0].clone();
        let Some(p) = graph.node.iter().position(|n| n.output.first() == Some(&x)) else { continue };
        if !absorbs(graph, &graph.node[p], &act.output[0]) || reader_counts(graph).get(&x) != Some(&1) {
            continue;
        }
        let y = act.output[0].clone();
        graph.node[p].output[0] = y;
        removed.insert(i);
    }
    remove_nodes(graph, &removed);
    removed.len()
}

fn remove_nodes(graph: &mut GraphProto, removed: &HashSet<usize>) {
    let mut index = 0;
    graph.node.retain(|_| {
        index += 1;
        !removed.contains(&(index - 1))
    });
}

/// Drops initializers that no node reads any more.
pub(crate) fn prune_initializers(graph: &mut GraphProto) {
    let used: HashSet<String> = graph.node.iter().flat_map(|n| n.input.iter().cloned()).collect();
    let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name()).collect();
    graph.initializer.retain(|t| used.contains(t.name()) || outputs.contains(t.name()));
}
