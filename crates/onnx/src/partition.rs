//! Splitting a model into *stages*, the units lalarand's scheduler places on processors.
//!
//! A stage is a short run of nodes that is always worth executing together: a convolution
//! with its batch norm and activation, a pooling, a residual `Add` with its activation, a
//! `Flatten` with the `Gemm`/`MatMul` it feeds. Stages exchange named tensors, so skip
//! connections, branches and concatenations work: a stage's inputs are whatever it consumes
//! that an earlier stage (or the graph input) produces, and its outputs are whatever a later
//! stage (or the graph output) consumes.
//!
//! Constants (initializers, `Constant` nodes and nodes computed from constants only) belong to
//! no stage: every stage that uses one gets its own copy.
//!
//! [`partition`] finds the stages; [`stage_model`] turns one into a standalone model. The
//! tensor types of the cut points come from the model's `value_info` where it has them; an
//! exporter usually writes none, so the caller (which can run the model) supplies them.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::proto::tensor_shape_proto::{dimension, Dimension};
use crate::proto::type_proto::{self, Tensor};
use crate::proto::{GraphProto, ModelProto, NodeProto, TensorShapeProto, TypeProto, ValueInfoProto};
use crate::OnnxError;

/// One stage: which nodes it runs and which tensors it exchanges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Stable, readable name derived from the first node (`conv1`, `layer1.0.add`).
    pub name: String,
    /// Indices into the graph's `node` list, in execution order (constant nodes excluded).
    pub nodes: Vec<usize>,
    /// Tensors this stage reads that an earlier stage or the graph input produced.
    pub inputs: Vec<String>,
    /// Tensors this stage produces that a later stage or the graph output reads.
    pub outputs: Vec<String>,
}

/// A model cut into stages, in an order where every stage's inputs exist before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub stages: Vec<Stage>,
    /// The graph's (non-initializer) inputs and its outputs.
    pub graph_inputs: Vec<String>,
    pub graph_outputs: Vec<String>,
    /// Warnings for the user: parts of the graph that could not be cut finer, and why.
    pub notes: Vec<String>,
}

impl Partition {
    /// Every tensor that crosses a stage boundary (stage inputs and outputs), without repeats,
    /// in the order stages produce them.
    pub fn cut_tensors(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for name in self.graph_inputs.iter().chain(self.stages.iter().flat_map(|s| s.outputs.iter())) {
            if seen.insert(name.clone()) {
                out.push(name.clone());
            }
        }
        out
    }
}

/// The element type and shape of a tensor at a cut; `None` dims are symbolic (the batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub elem_type: i32,
    pub dims: Vec<Option<i64>>,
}

/// Ops that fold into the stage of the node producing their only non-constant input: cheap,
/// elementwise, and always run right after it (batch norm, activations, bias-like arithmetic).
const FOLLOWERS: &[&str] = &[
    "BatchNormalization",
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Elu",
    "Selu",
    "Softplus",
    "Dropout",
    "Identity",
    "Transpose",
    "Add",
    "Sub",
    "Mul",
    "Div",
    // A pre-quantized (QDQ) model: the QuantizeLinear of a node's output stays with the node,
    // so stages hand over uint8 and each keeps its DequantizeLinear-op-QuantizeLinear group,
    // the pattern ONNX Runtime fuses into its int8 kernel (QLinearConv, QLinearMatMul) as it
    // does in the whole model.
    "QuantizeLinear",
];

/// Ops whose output depends on nothing but their inputs' values (so a node of such an op with
/// constant inputs is itself a constant). Random generators are not.
fn is_deterministic(op: &str) -> bool {
    !op.starts_with("Random") && op != "Multinomial" && op != "Bernoulli"
}

/// Ops that only move or reshape data. A stage made of nothing else is no layer of its own:
/// the node it feeds joins it (a Flatten before a fully connected layer, tf2onnx's Transpose of
/// the NHWC input before the first convolution, paddle2onnx's Unsqueeze-Pad-Squeeze in front of
/// a convolution).
const DATA_MOVEMENT: &[&str] = &[
    "Flatten",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Pad",
    "Slice",
    "Identity",
    // A pre-quantized model's DequantizeLinear joins the node it feeds (see FOLLOWERS).
    "QuantizeLinear",
    "DequantizeLinear",
];

/// Recurrent ops: one node runs every time step, its state inside. A stage holding one is named
/// after it (`lstm`, or its module), whatever node comes first (a Transpose of a batch-first
/// input), and the op is never cut: its state crosses stages only as its own inputs (`h0`,
/// `c0`) and outputs (`Y_h`, `Y_c`), which a later stage or the application reads.
const RECURRENT: &[&str] = &["LSTM", "GRU", "RNN", "DynamicQuantizeLSTM"];

/// Whether `node` is a recurrent op (LSTM, GRU, RNN, `com.microsoft` DynamicQuantizeLSTM).
pub fn is_recurrent(node: &NodeProto) -> bool {
    RECURRENT.contains(&node.op_type())
}

/// The module a node belongs to: its innermost torch scope (dynamo's
/// `pkg.torch.onnx.name_scopes`, or the path of a `/cell/Gemm`-style name), or the path of a
/// `lstm/lstm_cell/MatMul`-style name; `None` for a node without one.
fn module_scope(node: &NodeProto) -> Option<String> {
    if let Some(scopes) = node.metadata_props.iter().find(|p| p.key() == "pkg.torch.onnx.name_scopes") {
        let scopes: Vec<&str> =
            scopes.value().trim_matches(['[', ']']).split(',').map(|p| p.trim().trim_matches(['\'', '"'])).collect();
        return scopes[..scopes.len().saturating_sub(1)].iter().rev().find(|p| !p.is_empty()).map(|s| s.to_string());
    }
    let (path, _) = node.name().trim_start_matches('/').rsplit_once('/')?;
    (!path.is_empty()).then(|| path.to_string())
}

/// Modules that are unrolled recurrent cells: an `LSTMCell` or `GRUCell` (torch), an
/// `lstm_cell` (TensorFlow) exported as ops, recognized by what a cell is made of: a matrix
/// product, sigmoid gates and a tanh, the gates multiplied in, and no convolution. Each such
/// module's nodes make one stage: a cell is never cut, its state crosses stages only as its
/// inputs and outputs.
fn recurrent_cells(graph: &GraphProto) -> HashSet<String> {
    let mut ops: HashMap<String, Vec<&str>> = HashMap::new();
    for n in &graph.node {
        if let Some(m) = module_scope(n) {
            ops.entry(m).or_default().push(n.op_type());
        }
    }
    ops.into_iter()
        .filter(|(_, ops)| {
            let count = |op: &str| ops.iter().filter(|o| **o == op).count();
            (count("Gemm") + count("MatMul")) > 0
                && count("Sigmoid") > 0
                && count("Tanh") > 0
                && count("Sigmoid") + count("Tanh") >= 3
                && count("Mul") > 0
                && count("Conv") == 0
        })
        .map(|(m, _)| m)
        .collect()
}

/// The modules holding a recurrent op: torch's `nn.LSTM`/`nn.GRU` exports as `/rnn/...` nodes
/// around the op (the batch-first Transposes, a Slice of `h0`/`c0` per layer, the Transpose and
/// Reshape between layers, a Concat of the layers' states). Like a cell, each such module's
/// nodes make one stage, so that its state crosses stages only as the module's inputs and
/// outputs.
fn recurrent_modules(graph: &GraphProto) -> HashSet<String> {
    graph.node.iter().filter(|n| is_recurrent(n)).filter_map(module_scope).collect()
}

/// ONNX Runtime's dynamic quantization (`quantize_dynamic`) writes a layer as
/// DynamicQuantizeLinear of its input, an integer product, a Cast of the int32 result to float
/// and a Mul by the scales: one stage, named after the product.
const DYNAMIC_QUANTIZER: &str = "DynamicQuantizeLinear";
const INTEGER_PRODUCTS: &[&str] = &["MatMulInteger", "ConvInteger"];

/// Whether `node` continues the stage whose last node produced its input.
fn joins(op: &str, prev_stage_ops: &[&str]) -> bool {
    FOLLOWERS.contains(&op)
        || prev_stage_ops.iter().all(|o| DATA_MOVEMENT.contains(o))
        || op == "Cast" && prev_stage_ops.last().is_some_and(|o| INTEGER_PRODUCTS.contains(o))
}

/// The stage an elementwise `node` joins when all its data inputs come from one stage `s` and
/// every other reader of those inputs is an elementwise node that reads nothing else from
/// outside `s` and the chain of elementwise nodes those readers feed: SiLU exported as
/// `Sigmoid(x) * x`, hard-swish as `HardSigmoid(x) * x` or, as paddle2onnx writes it,
/// `x * Clip(x + 3, 0, 6) / 6`, a squeeze-and-excitation `x * gate`. Those tensors then never
/// leave the stage.
fn closed_cluster(
    graph: &GraphProto,
    node: &NodeProto,
    data_inputs: &[&str],
    producer: &HashMap<&str, usize>,
    stage_of_node: &HashMap<usize, usize>,
    consumers: &HashMap<&str, Vec<usize>>,
    graph_outputs: &HashSet<&str>,
) -> Option<usize> {
    if !FOLLOWERS.contains(&node.op_type()) || data_inputs.is_empty() {
        return None;
    }
    let stage_of = |t: &str| producer.get(t).map(|p| stage_of_node[p]);
    let s = stage_of(data_inputs[0])?;
    if data_inputs.iter().any(|t| stage_of(t) != Some(s) || graph_outputs.contains(t)) {
        return None;
    }
    for t in data_inputs {
        let readers = consumers.get(t).map_or(&[][..], Vec::as_slice);
        // What the readers of `t` produce, and what elementwise nodes make of it, may feed each
        // other (Sigmoid -> Mul; Add -> Clip -> Mul).
        let cluster = elementwise_descendants(graph, readers, consumers);
        for &r in readers {
            let rn = &graph.node[r];
            if !FOLLOWERS.contains(&rn.op_type()) {
                return None;
            }
            let inside = |i: &String| {
                i.is_empty()
                    || stage_of(i) == Some(s)
                    || cluster.contains(i.as_str())
                    || !producer.contains_key(i.as_str()) && !consumers.contains_key(i.as_str())
            };
            if !rn.input.iter().all(inside) {
                return None;
            }
        }
    }
    Some(s)
}

/// Elementwise chains this short are what activations written out in ops span (hard-swish as
/// Add, Clip, Mul, Div is 4); a longer one is a block of its own.
const CLUSTER_DEPTH: usize = 4;

/// The outputs of `readers` and of the [`FOLLOWERS`] nodes they feed, up to [`CLUSTER_DEPTH`]
/// nodes deep.
fn elementwise_descendants<'g>(
    graph: &'g GraphProto,
    readers: &[usize],
    consumers: &HashMap<&str, Vec<usize>>,
) -> HashSet<&'g str> {
    let mut cluster: HashSet<&str> = HashSet::new();
    let mut level: Vec<usize> = readers.to_vec();
    for _ in 0..CLUSTER_DEPTH {
        let outputs: Vec<&str> = level
            .iter()
            .flat_map(|&n| graph.node[n].output.iter().map(String::as_str))
            .filter(|o| cluster.insert(o))
            .collect();
        level = outputs
            .iter()
            .flat_map(|o| consumers.get(o).map_or(&[][..], Vec::as_slice))
            .copied()
            .filter(|&c| FOLLOWERS.contains(&graph.node[c].op_type()))
            .collect();
        if level.is_empty() {
            break;
        }
    }
    cluster
}

/// What `node` reads: its inputs and what its subgraphs (If branches, Loop and Scan bodies)
/// read from the enclosing graph.
fn reads(node: &NodeProto) -> Vec<String> {
    let mut r = node.input.clone();
    if has_subgraph(node) {
        r.extend(crate::fold::subgraph_reads(node).into_iter().filter(|t| !node.input.contains(t)));
    }
    r
}

fn has_subgraph(node: &NodeProto) -> bool {
    node.attribute.iter().any(|a| a.g.is_some() || !a.graphs.is_empty())
}

/// Ops whose output is a sequence (not a tensor), which cannot be a stage's input or output.
fn makes_sequence(node: &NodeProto) -> bool {
    matches!(
        node.op_type(),
        "SequenceConstruct" | "SequenceEmpty" | "SequenceInsert" | "SequenceErase" | "SplitToSequence" | "SequenceMap"
    )
}

/// Finds the stages of `model`.
pub fn partition(model: &ModelProto) -> Result<Partition, OnnxError> {
    let graph = model.graph.as_ref().ok_or_else(|| OnnxError::graph("(none)", "the model has no graph"))?;
    let gname = graph.name().to_string();
    let order = topological_order(graph)?;
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    let graph_inputs: Vec<String> =
        graph.input.iter().map(|i| i.name().to_string()).filter(|n| !initializers.contains(n.as_str())).collect();
    let graph_outputs: Vec<String> = graph.output.iter().map(|o| o.name().to_string()).collect();

    let constant = constant_values(graph, &order);
    let is_const = |t: &str| t.is_empty() || constant.contains(t);

    // Consumers of every non-constant tensor (node indices).
    let node_reads: Vec<Vec<String>> = graph.node.iter().map(reads).collect();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for &i in &order {
        for t in &node_reads[i] {
            if !is_const(t) {
                consumers.entry(t.as_str()).or_default().push(i);
            }
        }
    }
    let mut notes = Vec::new();
    let outputs_set: HashSet<&str> = graph_outputs.iter().map(String::as_str).collect();

    let mut stages: Vec<Vec<usize>> = Vec::new();
    let mut stage_of_node: HashMap<usize, usize> = HashMap::new();
    let mut producer: HashMap<&str, usize> = HashMap::new();
    let cells = recurrent_cells(graph);
    // Modules whose nodes make one stage: unrolled cells and modules holding a recurrent op.
    let whole_modules: HashSet<String> = cells.iter().cloned().chain(recurrent_modules(graph)).collect();
    // The latest stage of each such module's nodes.
    let mut cell_stage: HashMap<String, usize> = HashMap::new();
    for &i in &order {
        let node = &graph.node[i];
        if node.output.iter().all(|o| is_const(o)) {
            continue;
        }
        let data_inputs: Vec<&str> = node_reads[i].iter().map(String::as_str).filter(|t| !is_const(t)).collect();
        if has_subgraph(node) {
            notes.push(format!(
                "node `{}` ({}) holds a subgraph (control flow): it runs whole, as one stage",
                node.name(),
                node.op_type()
            ));
        }
        let mut target = None;
        // A sequence value cannot cross a stage boundary: its reader joins its maker's stage.
        let sequence_from = data_inputs
            .iter()
            .find_map(|t| producer.get(t).filter(|&&p| makes_sequence(&graph.node[p])).map(|&p| stage_of_node[&p]));
        let quantizer = node.op_type() == DYNAMIC_QUANTIZER;
        // The quantizer of a layer's input goes with the layer, not with the module before it.
        let cell = module_scope(node).filter(|m| whole_modules.contains(m) && !quantizer);
        // A cell's node joins the cell's stage while that stage is the last one (a module's
        // nodes come one after the other; anything else in between would make a cycle).
        let cell_target = cell.as_ref().and_then(|m| cell_stage.get(m)).copied().filter(|&s| s + 1 == stages.len());
        // Otherwise the node starts the module's stage (its first node, or the first after an
        // interruption): it joins only data movement before it, never the layer before.
        let module_start = cell.is_some() && cell_target.is_none();
        // The last stage that makes one of the node's inputs (graph inputs: none).
        let latest_input = data_inputs.iter().filter_map(|t| producer.get(t).map(|p| stage_of_node[p])).max();
        // The last stage, when it only moves data and makes `x` for this node alone (a
        // batch-first Transpose in front of a recurrent op).
        let data_movement_before = |x: &str| {
            let s = producer.get(x).map(|p| stage_of_node[p])?;
            let sole_use = consumers.get(x).is_some_and(|c| c.len() == 1) && !outputs_set.contains(x);
            let moves_data = stages[s].iter().all(|&n| DATA_MOVEMENT.contains(&graph.node[n].op_type()));
            (s + 1 == stages.len() && sole_use && moves_data).then_some(s)
        };
        // DynamicQuantizeLinear's outputs (uint8, scale, zero point) are one quantized tensor,
        // never cut: its readers join its stage (which every other input of theirs precedes).
        let quantized_from = data_inputs
            .iter()
            .find_map(|t| producer.get(t).filter(|&&p| graph.node[p].op_type() == DYNAMIC_QUANTIZER))
            .map(|p| stage_of_node[p])
            .filter(|&s| latest_input <= Some(s));
        let final_dequantize = node.op_type() == "DequantizeLinear"
            && node.output.iter().all(|o| outputs_set.contains(o.as_str()) && !consumers.contains_key(o.as_str()));
        if let Some(s) = sequence_from {
            target = Some(s);
        } else if let Some(s) = quantized_from {
            target = Some(s);
        } else if quantizer {
            // Starts the stage of the layer it quantizes the input of.
        } else if let Some(s) = cell_target {
            target = Some(s);
        } else if module_start {
            target = data_inputs.first().and_then(|&x| data_movement_before(x));
        } else if let Some(s) =
            closed_cluster(graph, node, &data_inputs, &producer, &stage_of_node, &consumers, &outputs_set)
        {
            target = Some(s);
        } else if let [only] = data_inputs.as_slice() {
            if let Some(&p) = producer.get(only) {
                let s = stage_of_node[&p];
                let prev = &graph.node[p];
                let last = *stages[s].last().expect("stages are never empty");
                let ops: Vec<&str> = stages[s].iter().map(|&n| graph.node[n].op_type()).collect();
                // Only fuse when the producer's output goes nowhere else, so the stage stays
                // one chain and the intermediate tensor never has to leave it.
                let sole_use = consumers.get(only).is_some_and(|c| c.len() == 1) && !outputs_set.contains(only);
                // A model's last DequantizeLinear (to its fp32 output) stays with its op.
                if last == p && prev.output.len() == 1 && sole_use && (joins(node.op_type(), &ops) || final_dequantize)
                {
                    target = Some(s);
                }
            }
        }
        // A recurrent op also reads its state: it joins the data movement in front of its
        // sequence input (a batch-first Transpose) all the same.
        if target.is_none() && is_recurrent(node) {
            target = node.input.first().and_then(|x| data_movement_before(x));
        }
        let s = target.unwrap_or_else(|| {
            stages.push(Vec::new());
            stages.len() - 1
        });
        stages[s].push(i);
        stage_of_node.insert(i, s);
        if let Some(m) = cell {
            if s + 1 == stages.len() {
                cell_stage.insert(m, s);
            } else {
                cell_stage.entry(m).or_insert(s);
            }
        }
        for o in &node.output {
            producer.insert(o.as_str(), i);
        }
    }
    if stages.is_empty() {
        return Err(OnnxError::graph(&gname, "no node computes anything from the graph input"));
    }
    let graph_input_set: HashSet<&str> = graph_inputs.iter().map(String::as_str).collect();
    let reads_inputs_only =
        |n: usize| node_reads[n].iter().all(|t| is_const(t) || graph_input_set.contains(t.as_str()));
    join_state_preparation(graph, &mut stages, &mut stage_of_node, &consumers, &outputs_set, reads_inputs_only);

    let mut result = Vec::with_capacity(stages.len());
    for (s, nodes) in stages.iter().enumerate() {
        let produced: HashSet<&str> =
            nodes.iter().flat_map(|&n| graph.node[n].output.iter().map(String::as_str)).collect();
        let mut inputs = Vec::new();
        for &n in nodes {
            for t in &node_reads[n] {
                if !is_const(t) && !produced.contains(t.as_str()) && !inputs.contains(t) {
                    inputs.push(t.clone());
                }
            }
        }
        let mut outputs = Vec::new();
        for &n in nodes {
            for o in &graph.node[n].output {
                let used_later =
                    consumers.get(o.as_str()).is_some_and(|c| c.iter().any(|c| stage_of_node.get(c) != Some(&s)));
                if (used_later || outputs_set.contains(o.as_str())) && !outputs.contains(o) {
                    outputs.push(o.clone());
                }
            }
        }
        // A dynamically quantized layer is named after its product, not its input's quantizer.
        let first = &graph.node[nodes[0]];
        let namesake = match first.op_type() {
            DYNAMIC_QUANTIZER => {
                nodes.iter().map(|&n| &graph.node[n]).find(|n| INTEGER_PRODUCTS.contains(&n.op_type())).unwrap_or(first)
            }
            _ => first,
        };
        let name = match nodes.iter().map(|&n| &graph.node[n]).find(|n| is_recurrent(n)) {
            Some(rnn) => recurrent_name(rnn, s),
            None => match module_scope(namesake).filter(|m| cells.contains(m)) {
                Some(m) => module_name(&m),
                None => stage_name(namesake, s),
            },
        };
        result.push(Stage { name, nodes: nodes.clone(), inputs, outputs });
    }
    let names = unique_names(result.iter().map(|st| st.name.clone()).collect());
    for (stage, name) in result.iter_mut().zip(names) {
        stage.name = name;
    }
    for o in &graph_outputs {
        if !producer.contains_key(o.as_str()) && !graph_inputs.contains(o) {
            return Err(OnnxError::graph(
                &gname,
                format!("graph output `{o}` is a constant; lalarand cannot stage it"),
            ));
        }
    }
    // A stage reads only what earlier stages made (forced joins of sequence values could break it).
    let mut made: HashSet<&str> = graph_inputs.iter().map(String::as_str).collect();
    for st in &result {
        if let Some(t) = st.inputs.iter().find(|t| !made.contains(t.as_str())) {
            let reader = st.nodes.iter().map(|&n| &graph.node[n]).find(|n| reads(n).contains(t)).expect("an input");
            return Err(OnnxError::graph(
                &gname,
                format!(
                    "node `{}` ({}) reads `{t}`, which a later stage makes: lalarand cannot order the stages around its sequence value; fix: export without sequence ops (e.g. a fixed number of outputs instead of a list)",
                    reader.name(),
                    reader.op_type()
                ),
            ));
        }
        made.extend(st.outputs.iter().map(String::as_str));
    }
    Ok(Partition { stages: result, graph_inputs, graph_outputs, notes })
}

/// A stage that only moves data read from the graph inputs (ONNX Runtime's quantizer writes the
/// per-layer Slices of an LSTM's `h0` and `c0` at the front of the graph), all of whose outputs
/// one later stage holding a recurrent op reads, joins that stage at its front: the state goes
/// to the recurrent op as the graph input it is (so calibration knows it has no range), not as
/// a stage of its own.
fn join_state_preparation(
    graph: &GraphProto,
    stages: &mut Vec<Vec<usize>>,
    stage_of_node: &mut HashMap<usize, usize>,
    consumers: &HashMap<&str, Vec<usize>>,
    graph_outputs: &HashSet<&str>,
    reads_inputs_only: impl Fn(usize) -> bool,
) {
    let mut k = 0;
    while k < stages.len() {
        let nodes = &stages[k];
        let prepares = nodes.iter().all(|&n| DATA_MOVEMENT.contains(&graph.node[n].op_type()) && reads_inputs_only(n));
        let made: Vec<&str> = nodes.iter().flat_map(|&n| graph.node[n].output.iter().map(String::as_str)).collect();
        let readers: BTreeSet<usize> = made
            .iter()
            .flat_map(|t| consumers.get(t).map_or(&[][..], Vec::as_slice))
            .map(|c| stage_of_node[c])
            .filter(|&s| s != k)
            .collect();
        let target = match readers.iter().collect::<Vec<_>>().as_slice() {
            [&t] if t > k && stages[t].iter().any(|&n| is_recurrent(&graph.node[n])) => Some(t),
            _ => None,
        };
        match target {
            Some(t) if prepares && !made.iter().any(|t| graph_outputs.contains(t)) => {
                let moved = stages.remove(k);
                stages[t - 1].splice(0..0, moved);
                for (s, nodes) in stages.iter().enumerate() {
                    for &n in nodes {
                        stage_of_node.insert(n, s);
                    }
                }
            }
            _ => k += 1,
        }
    }
}

/// Node indices in an order where producers precede consumers (the file order when it is one).
fn topological_order(graph: &GraphProto) -> Result<Vec<usize>, OnnxError> {
    let mut available: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    available.extend(graph.input.iter().map(|i| i.name()));
    available.insert("");
    let mut done = vec![false; graph.node.len()];
    let mut order = Vec::with_capacity(graph.node.len());
    // Repeated sweeps keep file order where it is already topological (the usual case: one sweep).
    loop {
        let before = order.len();
        for (i, n) in graph.node.iter().enumerate() {
            if !done[i] && reads(n).iter().all(|t| available.contains(t.as_str())) {
                done[i] = true;
                order.push(i);
                available.extend(n.output.iter().map(String::as_str));
            }
        }
        if order.len() == graph.node.len() {
            return Ok(order);
        }
        if order.len() == before {
            let i = done.iter().position(|d| !d).expect("some node is left");
            let n = &graph.node[i];
            let reads = reads(n);
            let missing: Vec<&str> = reads.iter().map(String::as_str).filter(|t| !available.contains(t)).collect();
            return Err(OnnxError::graph(
                graph.name(),
                format!(
                    "node `{}` ({}) reads {missing:?}, which no node, input or initializer produces (or a cycle): the graph outputs cannot be computed from its inputs; fix: re-export the model",
                    n.name(),
                    n.op_type()
                ),
            ));
        }
    }
}

/// Tensors whose value is fixed: initializers that are not graph inputs, and outputs of
/// deterministic nodes that read only such tensors.
fn constant_values(graph: &GraphProto, order: &[usize]) -> HashSet<String> {
    let inputs: HashSet<&str> = graph.input.iter().map(|i| i.name()).collect();
    let mut constant: HashSet<String> =
        graph.initializer.iter().map(|t| t.name().to_string()).filter(|n| !inputs.contains(n.as_str())).collect();
    for &i in order {
        let n = &graph.node[i];
        // Shape-reading ops look at a tensor's shape, not its value, but a batch-agnostic model may
        // still change the shape, so they stay data.
        if is_deterministic(n.op_type()) && reads(n).iter().all(|t| t.is_empty() || constant.contains(t)) {
            constant.extend(n.output.iter().cloned());
        }
    }
    constant
}

/// A readable stage name: torch exporter node names like `/layer1/layer1.0/conv1/Conv` become
/// the module path `layer1.0.conv1` (`/layer2/layer2.0/downsample/downsample.0/Conv` becomes
/// `layer2.0.downsample.0`); functional ops inside a module get the op appended
/// (`layer1.0.add`). Other names are kept, unnamed nodes are named by op and position.
/// `names` made unique: the first of equal names keeps it, a later one becomes `{name}_{k}`
/// with the least `k >= 2` that no other stage is named (before or after) and no earlier one
/// took, so a repeated module `cell` never takes the name of a real module `cell_2`.
pub(crate) fn unique_names(names: Vec<String>) -> Vec<String> {
    let given: HashSet<String> = names.iter().cloned().collect();
    let mut taken: HashSet<String> = HashSet::with_capacity(names.len());
    names
        .into_iter()
        .map(|name| {
            if taken.insert(name.clone()) {
                return name;
            }
            let free = (2..)
                .map(|k| format!("{name}_{k}"))
                .find(|c| !given.contains(c) && !taken.contains(c))
                .expect("a free suffix exists");
            taken.insert(free.clone());
            free
        })
        .collect()
}

/// A recurrent op's stage name: its module (`/encoder/lstm/LSTM` is `encoder.lstm`), or the
/// op (`lstm`) where its name is an exporter's numbering (`node_LSTM_14`, `LSTM_3`) or empty.
fn recurrent_name(node: &NodeProto, index: usize) -> String {
    let name = stage_name(node, index);
    let op = node.op_type();
    let numbered = |n: &str| {
        let rest = n.strip_prefix("node_").unwrap_or(n);
        rest.strip_prefix(op)
            .or_else(|| rest.strip_prefix(&op.to_lowercase()))
            .is_some_and(|tail| tail.trim_start_matches(['_', '.']).chars().all(|c| c.is_ascii_digit()))
    };
    if numbered(&name) {
        op.to_lowercase()
    } else {
        name
    }
}

/// A module path as a stage name: `/encoder/encoder.cell` or `encoder/cell` is `encoder.cell`.
fn module_name(module: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut prev = "";
    for p in module.split('/').filter(|p| !p.is_empty()) {
        // torch repeats the parent's path in a child's scope (`encoder/encoder.cell`).
        parts.push(p.strip_prefix(prev).and_then(|r| r.strip_prefix('.')).filter(|_| !prev.is_empty()).unwrap_or(p));
        prev = p;
    }
    parts.join(".")
}

fn stage_name(node: &NodeProto, index: usize) -> String {
    let op = node.op_type();
    let raw = node.name();
    let functional = matches!(
        op,
        "Add"
            | "Sub"
            | "Mul"
            | "Div"
            | "Concat"
            | "Flatten"
            | "Reshape"
            | "Transpose"
            | "Split"
            | "Slice"
            | "Gather"
            | "Squeeze"
            | "Unsqueeze"
            | "ReduceMean"
            | "ReduceSum"
            | "ReduceMax"
            | "Pad"
            | "Tile"
            | "Expand"
    );
    // The dynamo exporter names nodes `node_Conv_12` and records the module scopes instead:
    // `pkg.torch.onnx.name_scopes` = "['', 'layer1', 'layer1.conv1', 'relu_1']" (the last one is
    // the traced op).
    if let Some(scopes) = node.metadata_props.iter().find(|p| p.key() == "pkg.torch.onnx.name_scopes") {
        let scopes: Vec<&str> =
            scopes.value().trim_matches(['[', ']']).split(',').map(|p| p.trim().trim_matches(['\'', '"'])).collect();
        if let Some(module) = scopes[..scopes.len().saturating_sub(1)].iter().rev().find(|p| !p.is_empty()) {
            return if functional { format!("{module}.{}", op.to_lowercase()) } else { module.to_string() };
        }
    }
    if raw.starts_with('/') {
        let parts: Vec<&str> = raw.split('/').filter(|p| !p.is_empty()).collect();
        // Each scope is either a child's local name (`downsample`) or its parent's scope plus
        // the child (`downsample.0` inside `downsample`): keep only what is new.
        let mut module: Vec<&str> = Vec::new();
        let mut prev = "";
        for p in &parts[..parts.len().saturating_sub(1)] {
            let new = p.strip_prefix(prev).and_then(|r| r.strip_prefix('.')).filter(|_| !prev.is_empty()).unwrap_or(p);
            module.push(new);
            prev = p;
        }
        let module = module.join(".");
        return match (module.is_empty(), functional) {
            (true, _) => op.to_lowercase(),
            (false, true) => format!("{module}.{}", op.to_lowercase()),
            (false, false) => module,
        };
    }
    let clean: String = raw.chars().filter(|c| !c.is_control()).collect();
    if clean.trim().is_empty() {
        format!("{}{index}", op.to_lowercase())
    } else {
        clean
    }
}

/// Builds the standalone model of `stage`: its nodes, the constant nodes and initializers they
/// read, and typed inputs and outputs. `types` gives the type of every cut tensor the model's
/// own `value_info` / inputs / outputs do not declare.
pub fn stage_model(
    model: &ModelProto,
    stage: &Stage,
    types: &HashMap<String, TensorInfo>,
) -> Result<ModelProto, OnnxError> {
    let graph = model.graph.as_ref().ok_or_else(|| OnnxError::graph("(none)", "the model has no graph"))?;
    let order = topological_order(graph)?;
    let constant = constant_values(graph, &order);
    let declared = declared_types(graph);

    // The constant nodes this stage needs, found by walking back from its nodes' inputs.
    let producer: HashMap<&str, usize> =
        graph.node.iter().enumerate().flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i))).collect();
    let mut needed_consts: BTreeSet<usize> = BTreeSet::new();
    let mut needed_inits: HashSet<String> = HashSet::new();
    let mut stack: Vec<String> =
        stage.nodes.iter().flat_map(|&n| reads(&graph.node[n])).filter(|t| constant.contains(t)).collect();
    while let Some(t) = stack.pop() {
        match producer.get(t.as_str()) {
            Some(&p) => {
                if needed_consts.insert(p) {
                    stack.extend(reads(&graph.node[p]).into_iter().filter(|t| !t.is_empty()));
                }
            }
            None => {
                needed_inits.insert(t);
            }
        }
    }
    let const_nodes: Vec<NodeProto> =
        order.iter().filter(|i| needed_consts.contains(i)).map(|&i| graph.node[i].clone()).collect();
    let nodes = const_nodes.into_iter().chain(stage.nodes.iter().map(|&i| graph.node[i].clone())).collect();

    let info = |name: &str| -> Result<ValueInfoProto, OnnxError> {
        if let Some(t) = types.get(name) {
            return Ok(value_info(name, t));
        }
        declared.get(name).map(|v| (*v).clone()).ok_or_else(|| {
            OnnxError::tensor(
                name,
                format!("type unknown at the boundary of stage `{}`; run the model to infer it", stage.name),
            )
        })
    };
    let stage_graph = GraphProto {
        name: Some(stage.name.clone()),
        node: nodes,
        initializer: graph.initializer.iter().filter(|t| needed_inits.contains(t.name())).cloned().collect(),
        input: stage.inputs.iter().map(|n| info(n)).collect::<Result<_, _>>()?,
        output: stage.outputs.iter().map(|n| info(n)).collect::<Result<_, _>>()?,
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: model.ir_version,
        opset_import: model.opset_import.clone(),
        producer_name: Some("lalarand-partition".into()),
        graph: Some(stage_graph),
        ..Default::default()
    })
}

/// The model with extra graph outputs (keeping the original ones), so one run yields the value
/// of every named tensor; types the graph does not declare are left for the runtime to infer.
pub fn with_outputs(model: &ModelProto, names: &[String]) -> ModelProto {
    let mut m = model.clone();
    let Some(graph) = m.graph.as_mut() else { return m };
    let declared: HashMap<String, ValueInfoProto> =
        declared_types(graph).into_iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let existing: HashSet<String> = graph.output.iter().map(|o| o.name().to_string()).collect();
    for n in names {
        if !existing.contains(n) {
            let vi = declared
                .get(n)
                .cloned()
                .unwrap_or_else(|| ValueInfoProto { name: Some(n.clone()), ..Default::default() });
            graph.output.push(vi);
        }
    }
    m
}

fn declared_types(graph: &GraphProto) -> HashMap<&str, &ValueInfoProto> {
    graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
        .filter(|v| matches!(v.r#type.as_ref().and_then(|t| t.value.as_ref()), Some(type_proto::Value::TensorType(_))))
        .map(|v| (v.name(), v))
        .collect()
}

fn value_info(name: &str, t: &TensorInfo) -> ValueInfoProto {
    let dim = t
        .dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("batch".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(Tensor {
                elem_type: Some(t.elem_type),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::GraphBuilder;
    use crate::proto::tensor_proto::DataType;

    fn f32_info(dims: &[i64]) -> TensorInfo {
        TensorInfo { elem_type: DataType::Float as i32, dims: dims.iter().map(|&d| Some(d)).collect() }
    }

    /// conv-bn-relu, a branch that is added back (residual), a concat, flatten + gemm.
    fn residual() -> ModelProto {
        let mut b = GraphBuilder::new("res");
        b.input("x", DataType::Float, &[1, 2, 4, 4]);
        b.f32_initializer("w", &[2, 2, 1, 1], &[1.0, 0.0, 0.0, 1.0]);
        b.f32_initializer("one", &[1], &[1.0]);
        b.node("Conv", "/conv1/Conv", &["x", "w"], &["c1"], vec![]);
        b.node("Relu", "/relu/Relu", &["c1"], &["r1"], vec![]);
        b.node("Conv", "/layer1/layer1.0/conv1/Conv", &["r1", "w"], &["c2"], vec![]);
        b.node("Identity", "/scale/Identity", &["one"], &["one_copy"], vec![]);
        b.node("Mul", "/layer1/layer1.0/Mul", &["c2", "one_copy"], &["m2"], vec![]);
        b.node("Add", "/layer1/layer1.0/Add", &["m2", "r1"], &["a"], vec![]);
        b.node("Relu", "/layer1/layer1.0/relu_1/Relu", &["a"], &["r2"], vec![]);
        b.node("Concat", "/cat/Concat", &["r2", "r1"], &["cat"], vec![crate::builder::attr::int("axis", 1)]);
        b.node("Flatten", "/Flatten", &["cat"], &["flat"], vec![]);
        b.f32_initializer("fc_w", &[64, 3], &[0.5; 192]);
        b.node("Gemm", "/fc/Gemm", &["flat", "fc_w"], &["y"], vec![]);
        b.output("y", DataType::Float, &[1, 3]);
        b.finish()
    }

    #[test]
    fn stages_follow_the_layer_structure() {
        let p = partition(&residual()).unwrap();
        let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["conv1", "layer1.0.conv1", "layer1.0.add", "cat.concat", "flatten"]);
        let by = |n: &str| p.stages.iter().find(|s| s.name == n).unwrap();
        // The residual add reads the skip tensor r1 from the first stage.
        assert_eq!(by("layer1.0.add").inputs, ["m2", "r1"]);
        assert_eq!(by("conv1").outputs, ["r1"]);
        assert_eq!(by("flatten").nodes.len(), 2, "flatten + gemm");
        assert_eq!(by("flatten").outputs, ["y"]);
        assert_eq!(p.cut_tensors(), ["x", "r1", "m2", "r2", "cat", "y"]);
    }

    #[test]
    fn stage_models_carry_their_constants_and_types() {
        let model = residual();
        let p = partition(&model).unwrap();
        let types: HashMap<String, TensorInfo> = [
            ("r1", f32_info(&[1, 2, 4, 4])),
            ("m2", f32_info(&[1, 2, 4, 4])),
            ("r2", f32_info(&[1, 2, 4, 4])),
            ("cat", f32_info(&[1, 4, 4, 4])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let s = p.stages.iter().find(|s| s.name == "layer1.0.conv1").unwrap();
        let m = stage_model(&model, s, &types).unwrap();
        let g = m.graph.unwrap();
        // The Identity of a constant travels with the Mul that reads it.
        assert_eq!(g.node.iter().map(|n| n.op_type()).collect::<Vec<_>>(), ["Identity", "Conv", "Mul"]);
        let mut inits: Vec<&str> = g.initializer.iter().map(|t| t.name()).collect();
        inits.sort();
        assert_eq!(inits, ["one", "w"]);
        assert_eq!(g.input.iter().map(|i| i.name()).collect::<Vec<_>>(), ["r1"]);
        assert_eq!(crate::builder::shape_of(&g.output[0]), Some(vec![1, 2, 4, 4]));
    }

    #[test]
    fn missing_types_and_dangling_inputs_are_errors() {
        let model = residual();
        let p = partition(&model).unwrap();
        let err = stage_model(&model, &p.stages[1], &HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("`r1`") && err.contains("layer1.0.conv1"), "{err}");

        let mut broken = residual();
        broken.graph.as_mut().unwrap().node[0].input[0] = "nowhere".into();
        let err = partition(&broken).unwrap_err().to_string();
        assert!(err.contains("nowhere") && err.contains("/conv1/Conv"), "{err}");
    }

    #[test]
    fn torch_scopes_become_module_paths() {
        let n = |name: &str, op: &str| stage_name(&crate::builder::node(op, name, &[], &[], vec![]), 0);
        assert_eq!(n("/layer2/layer2.0/downsample/downsample.0/Conv", "Conv"), "layer2.0.downsample.0");
        assert_eq!(n("/features/features.1/conv/conv.0/conv.0.0/Conv", "Conv"), "features.1.conv.0.0");
        assert_eq!(n("/layer1/layer1.0/Add", "Add"), "layer1.0.add");
        assert_eq!(n("/Flatten", "Flatten"), "flatten");
        assert_eq!(n("conv_7", "Conv"), "conv_7");
        assert_eq!(n("/layer1/Slice_1", "Slice"), "layer1.slice");
    }

    #[test]
    fn dynamo_scopes_become_module_paths() {
        let with_scopes = |op: &str, scopes: &str| {
            let mut node = crate::builder::node(op, &format!("node_{op}_3"), &[], &[], vec![]);
            node.metadata_props.push(crate::proto::StringStringEntryProto {
                key: Some("pkg.torch.onnx.name_scopes".into()),
                value: Some(scopes.into()),
            });
            stage_name(&node, 0)
        };
        assert_eq!(with_scopes("Conv", "['', 'layer1', 'layer1.conv1', 'layer1.conv1.bn', 'bn_1']"), "layer1.conv1.bn");
        assert_eq!(with_scopes("Slice", "['', 'layer1', 'slice_1']"), "layer1.slice");
        assert_eq!(with_scopes("Gemm", "['', 'fc', 'linear']"), "fc");
        assert_eq!(with_scopes("Add", "['', 'add']"), "node_Add_3", "no module: the node's own name");
    }

    #[test]
    fn names_are_unique_and_readable() {
        let mut b = GraphBuilder::new("n");
        b.input("x", DataType::Float, &[1, 4]);
        b.node("Relu", "", &["x"], &["a"], vec![]);
        b.node("Sigmoid", "", &["x"], &["b"], vec![]);
        b.node("Add", "plain", &["a", "b"], &["c"], vec![]);
        b.node("Add", "plain", &["c", "a"], &["d"], vec![]);
        b.output("d", DataType::Float, &[1, 4]);
        let p = partition(&b.finish()).unwrap();
        let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["relu0", "sigmoid1", "plain", "plain_2"]);
    }

    /// paddle2onnx's hard-swish, `y * Clip(y + 3, 0, 6) / 6` after a convolution, stays in the
    /// convolution's stage: `y`'s readers are Add and Mul, and Mul also reads the Clip that Add
    /// feeds.
    #[test]
    fn hard_swish_written_out_stays_with_its_convolution() {
        let mut b = GraphBuilder::new("hs");
        b.input("x", DataType::Float, &[1, 2, 4, 4]);
        let w = b.f32_initializer("w", &[2, 2, 1, 1], &[1.0, 0.5, -0.5, 1.0]);
        let w2 = b.f32_initializer("w2", &[2, 2, 1, 1], &[0.5, 1.0, 1.0, -1.0]);
        for (name, v) in [("three", 3.0), ("zero", 0.0), ("six", 6.0)] {
            b.f32_initializer(name, &[], &[v]);
        }
        b.node("Conv", "conv1", &["x", &w], &["y"], vec![]);
        b.node("Add", "hs_add", &["y", "three"], &["shifted"], vec![]);
        b.node("Clip", "hs_clip", &["shifted", "zero", "six"], &["clipped"], vec![]);
        b.node("Mul", "hs_mul", &["y", "clipped"], &["scaled"], vec![]);
        b.node("Div", "hs_div", &["scaled", "six"], &["hs"], vec![]);
        b.node("Conv", "conv2", &["hs", &w2], &["out"], vec![]);
        b.output("out", DataType::Float, &[1, 2, 4, 4]);
        let p = partition(&b.finish()).unwrap();
        let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["conv1", "conv2"], "{:?}", p.stages);
        assert_eq!(p.stages[0].nodes.len(), 5);
    }

    /// A repeated module never takes a real module's name, wherever the real one comes.
    #[test]
    fn a_repeated_name_never_takes_another_stages_name() {
        let names = |v: &[&str]| unique_names(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(names(&["cell", "cell", "cell_2"]), ["cell", "cell_3", "cell_2"]);
        assert_eq!(names(&["cell_2", "cell", "cell", "cell"]), ["cell_2", "cell", "cell_3", "cell_4"]);
        let mut b = GraphBuilder::new("n");
        b.input("x", DataType::Float, &[1, 4]);
        b.node("Relu", "cell", &["x"], &["a"], vec![]);
        b.node("Sigmoid", "cell", &["x"], &["b"], vec![]);
        b.node("Add", "cell_2", &["a", "b"], &["c"], vec![]);
        b.output("c", DataType::Float, &[1, 4]);
        let p = partition(&b.finish()).unwrap();
        let got: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(got, ["cell", "cell_3", "cell_2"]);
    }

    /// A batch-first LSTM as torch exports it (Transpose, LSTM, Squeeze) is named after the
    /// LSTM, not the Transpose that starts its stage; a numbered name becomes the op.
    #[test]
    fn a_recurrent_op_names_its_stage() {
        let mut b = GraphBuilder::new("r");
        b.input("x", DataType::Float, &[1, 5, 4]);
        let perm = crate::builder::attr::ints("perm", &[1, 0, 2]);
        b.node("Transpose", "node_Transpose_14", &["x"], &["xt"], vec![perm]);
        let w = b.f32_initializer("w", &[1, 12, 4], &[0.1; 48]);
        let r = b.f32_initializer("r", &[1, 12, 3], &[0.1; 36]);
        let hidden = crate::builder::attr::int("hidden_size", 3);
        b.input("h0", DataType::Float, &[1, 1, 3]);
        b.node("GRU", "node_GRU_15", &["xt", &w, &r, "", "", "h0"], &["y", "y_h"], vec![hidden]);
        b.output("y_h", DataType::Float, &[1, 1, 3]);
        let p = partition(&b.finish()).unwrap();
        let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["gru"], "{:?}", p.stages);
        let n = |name: &str| recurrent_name(&crate::builder::node("LSTM", name, &[], &[], vec![]), 3);
        assert_eq!(n("/encoder/lstm/LSTM"), "encoder.lstm");
        assert_eq!(n("LSTM_3"), "lstm");
        assert_eq!(n(""), "lstm");
        let mut q = crate::builder::node("DynamicQuantizeLSTM", "DynamicQuantizeLSTM_2", &[], &[], vec![]);
        q.domain = Some("com.microsoft".into());
        assert!(is_recurrent(&q));
        assert_eq!(recurrent_name(&q, 0), "dynamicquantizelstm");
    }

    /// torch's nn.GRU (`/gru/...`: the batch-first Transpose in, the GRU, Squeeze and Transpose
    /// out) is one stage named after the module, between the layers around it; a Slice of the
    /// state written at the front of the graph (as ONNX Runtime's quantizer orders them) joins
    /// it, so the stage reads the state input itself.
    #[test]
    fn a_recurrent_module_is_one_stage() {
        let mut b = GraphBuilder::new("r");
        b.input("x", DataType::Float, &[1, 5, 4]);
        b.input("h0", DataType::Float, &[2, 1, 3]);
        let int = |n: &str, v: i64| crate::tensor::i64_tensor(n, &[1], &[v]);
        let (starts, ends) = (b.initializer(int("s", 0)), b.initializer(int("e", 1)));
        b.node("Slice", "/gru/Slice", &["h0", &starts, &ends], &["h0_layer"], vec![]);
        let wf = b.f32_initializer("wf", &[4, 4], &[0.1; 16]);
        b.node("MatMul", "/front/MatMul", &["x", &wf], &["f"], vec![]);
        b.node("Relu", "/Relu", &["f"], &["fr"], vec![]);
        let perm = crate::builder::attr::ints("perm", &[1, 0, 2]);
        b.node("Transpose", "/gru/Transpose", &["fr"], &["xt"], vec![perm.clone()]);
        let w = b.f32_initializer("w", &[1, 9, 4], &[0.1; 36]);
        let r = b.f32_initializer("r", &[1, 9, 3], &[0.1; 27]);
        let hidden = crate::builder::attr::int("hidden_size", 3);
        b.node("GRU", "/gru/GRU", &["xt", &w, &r, "", "", "h0_layer"], &["y", "h_n"], vec![hidden]);
        let axis = b.initializer(int("axis", 1));
        b.node("Squeeze", "/gru/Squeeze", &["y", &axis], &["ys"], vec![]);
        b.node("Transpose", "/gru/Transpose_1", &["ys"], &["yb"], vec![perm]);
        let wh = b.f32_initializer("wh", &[3, 2], &[0.1; 6]);
        b.node("MatMul", "/head/MatMul", &["yb", &wh], &["out"], vec![]);
        b.output("out", DataType::Float, &[1, 5, 2]);
        b.output("h_n", DataType::Float, &[1, 1, 3]);
        let p = partition(&b.finish()).unwrap();
        let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["front", "gru", "head"], "{:?}", p.stages);
        assert_eq!(p.stages[1].nodes, [0, 3, 4, 5, 6], "Slice, Transpose, GRU, Squeeze, Transpose");
        assert_eq!(p.stages[1].inputs, ["h0", "fr"]);
    }

    /// ONNX Runtime's dynamic quantization of two MatMuls: each layer (DynamicQuantizeLinear,
    /// the Mul of the scales, MatMulInteger, Cast, Mul, Add) is one stage named after its
    /// MatMulInteger; the uint8 tensor, its scale and zero point never cross a cut.
    #[test]
    fn a_dynamically_quantized_layer_is_one_stage() {
        use crate::tensor::{f32_tensor, i8_tensor};
        let mut b = GraphBuilder::new("dq");
        b.input("x", DataType::Float, &[1, 4]);
        b.initializer(i8_tensor("w_q", &[4, 4], &[1; 16]));
        b.initializer(i8_tensor("w_z", &[], &[0]));
        b.initializer(f32_tensor("w_s", &[], &[0.1]));
        b.initializer(f32_tensor("bias", &[4], &[0.5; 4]));
        for (k, x) in [(1, "x"), (2, "y1")] {
            let t = |n: &str| format!("{x}_{n}");
            let q = [t("quantized"), t("scale"), t("zero_point")];
            let fc = format!("/fc{k}/MatMul_quant");
            b.node("DynamicQuantizeLinear", &format!("{x}_QuantizeLinear"), &[x], &[&q[0], &q[1], &q[2]], vec![]);
            b.node("Mul", &format!("{fc}_scales_mul"), &[&q[1], "w_s"], &[&t("s")], vec![]);
            b.node("MatMulInteger", &fc, &[&q[0], "w_q", &q[2], "w_z"], &[&t("i32")], vec![]);
            let to_float = crate::builder::attr::int("to", 1);
            b.node("Cast", &format!("{fc}_cast"), &[&t("i32")], &[&t("f")], vec![to_float]);
            b.node("Mul", &format!("{fc}_output_scale_mul"), &[&t("f"), &t("s")], &[&t("scaled")], vec![]);
            b.node("Add", &format!("/fc{k}/Add"), &[&t("scaled"), "bias"], &[&format!("y{k}")], vec![]);
        }
        b.output("y2", DataType::Float, &[1, 4]);
        let p = partition(&b.finish()).unwrap();
        let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["fc1", "fc2"], "{:?}", p.stages);
        assert_eq!(p.stages[0].nodes.len(), 6);
        assert_eq!(p.stages[0].outputs, ["y1"], "only the float output crosses the cut");
    }

    /// An LSTM cell written out in ops (`/cell/...`: two Gemm, Split, three Sigmoid, two Tanh,
    /// Mul and Add) is one stage named after the module, reading x, h and c and writing the
    /// new h and c; the head after it is a stage of its own.
    #[test]
    fn an_unrolled_cell_is_one_stage() {
        let model = unrolled_lstm_cell();
        let p = partition(&model).unwrap();
        let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["cell", "head"], "{:?}", p.stages);
        assert_eq!(p.stages[0].inputs, ["x", "h", "c"]);
        assert_eq!(p.stages[0].outputs, ["c_new", "h_new"]);
    }

    /// x [1, 4], h and c [1, 3]: the gates `x Wx + h Wh` split in four, c_new = f c + i g,
    /// h_new = o tanh(c_new); then a head `y = h_new Wy`.
    pub(crate) fn unrolled_lstm_cell() -> ModelProto {
        use crate::builder::attr;
        let mut b = GraphBuilder::new("cell");
        b.input("x", DataType::Float, &[1, 4]);
        b.input("h", DataType::Float, &[1, 3]);
        b.input("c", DataType::Float, &[1, 3]);
        let wx = b.f32_initializer("wx", &[4, 12], &(0..48).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect::<Vec<_>>());
        let wh = b.f32_initializer("wh", &[3, 12], &(0..36).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect::<Vec<_>>());
        let wy = b.f32_initializer("wy", &[3, 2], &[0.5, -0.5, 0.25, 1.0, -1.0, 0.75]);
        b.node("Gemm", "/cell/Gemm", &["x", &wx], &["gx"], vec![]);
        b.node("Gemm", "/cell/Gemm_1", &["h", &wh], &["gh"], vec![]);
        b.node("Add", "/cell/Add", &["gx", "gh"], &["g"], vec![]);
        b.node(
            "Split",
            "/cell/Split",
            &["g"],
            &["gi", "gf", "gg", "go"],
            vec![attr::int("axis", 1), attr::int("num_outputs", 4)],
        );
        b.node("Sigmoid", "/cell/Sigmoid", &["gi"], &["i"], vec![]);
        b.node("Sigmoid", "/cell/Sigmoid_1", &["gf"], &["f"], vec![]);
        b.node("Tanh", "/cell/Tanh", &["gg"], &["gt"], vec![]);
        b.node("Sigmoid", "/cell/Sigmoid_2", &["go"], &["o"], vec![]);
        b.node("Mul", "/cell/Mul", &["f", "c"], &["fc"], vec![]);
        b.node("Mul", "/cell/Mul_1", &["i", "gt"], &["ig"], vec![]);
        b.node("Add", "/cell/Add_1", &["fc", "ig"], &["c_new"], vec![]);
        b.node("Tanh", "/cell/Tanh_1", &["c_new"], &["ct"], vec![]);
        b.node("Mul", "/cell/Mul_2", &["o", "ct"], &["h_new"], vec![]);
        b.node("MatMul", "/head/MatMul", &["h_new", &wy], &["y"], vec![]);
        b.output("y", DataType::Float, &[1, 2]);
        b.output("h_new", DataType::Float, &[1, 3]);
        b.output("c_new", DataType::Float, &[1, 3]);
        let mut m = b.finish();
        // Split's num_outputs is opset 18's.
        m.opset_import[0].version = Some(18);
        m
    }

    /// A QDQ model: each stage is DequantizeLinear, the op, QuantizeLinear (what ONNX Runtime
    /// fuses into one int8 kernel), handing over uint8; the last DequantizeLinear stays with
    /// its op.
    #[test]
    fn a_qdq_model_is_cut_between_quantize_and_dequantize() {
        use crate::tensor::{f32_tensor, i8_tensor, u8_tensor};
        let mut b = GraphBuilder::new("qdq");
        b.input("x", DataType::Float, &[1, 4]);
        b.initializer(f32_tensor("s", &[], &[0.05]));
        b.initializer(u8_tensor("z", &[], &[128]));
        b.initializer(i8_tensor("w_q", &[4, 4], &[1; 16]));
        b.initializer(f32_tensor("w_s", &[], &[0.1]));
        b.initializer(i8_tensor("w_z", &[], &[0]));
        b.node("DequantizeLinear", "w_dq", &["w_q", "w_s", "w_z"], &["w"], vec![]);
        b.node("QuantizeLinear", "x_q", &["x", "s", "z"], &["xq"], vec![]);
        b.node("DequantizeLinear", "x_dq", &["xq", "s", "z"], &["xd"], vec![]);
        b.node("MatMul", "mm1", &["xd", "w"], &["a"], vec![]);
        b.node("QuantizeLinear", "a_q", &["a", "s", "z"], &["aq"], vec![]);
        b.node("DequantizeLinear", "a_dq", &["aq", "s", "z"], &["ad"], vec![]);
        b.node("MatMul", "mm2", &["ad", "w"], &["b"], vec![]);
        b.node("QuantizeLinear", "b_q", &["b", "s", "z"], &["bq"], vec![]);
        b.node("DequantizeLinear", "b_dq", &["bq", "s", "z"], &["y"], vec![]);
        b.output("y", DataType::Float, &[1, 4]);
        let p = partition(&b.finish()).unwrap();
        let ops: Vec<usize> = p.stages.iter().map(|s| s.nodes.len()).collect();
        assert_eq!(ops, [4, 4], "{:?}", p.stages);
        assert_eq!(p.stages[0].outputs, ["aq"], "uint8 crosses the cut");
    }
}
