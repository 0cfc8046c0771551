//! Fixing a model's input shapes and folding what they determine.
//!
//! Exporters write dynamic height, width and batch as symbolic dimensions, and compute the
//! shapes of reshapes, splits and anchor grids at run time from them (`Shape`, `Gather`,
//! `Range`, `Cast`, integer `Add`/`Div`, `Concat`, `ConstantOfShape`, ...). Once the input
//! shapes are fixed ([`fix_input_shapes`]), every such value is a constant: [`foldable`] finds
//! the ones the rest of the graph reads, a runtime computes them once, and [`fold`] puts them
//! in the graph as initializers and removes the nodes that computed them. After that no stage
//! runs integer shape arithmetic, and no quantizer ever sees it.
//!
//! `Constant` nodes become initializers too ([`constants_to_initializers`]), so the rest of
//! lalarand treats both alike.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use crate::proto::tensor_proto::DataType;
use crate::proto::tensor_shape_proto::dimension;
use crate::proto::type_proto;
use crate::proto::{GraphProto, ModelProto, NodeProto, TensorProto};
use crate::OnnxError;

/// A fixed shape for one graph input: `NAME=1,3,640,640` (the `--input-shape` flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputShape {
    pub name: String,
    pub dims: Vec<i64>,
}

impl FromStr for InputShape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, dims) =
            s.rsplit_once('=').ok_or_else(|| format!("{s:?} is not NAME=D1,D2,...; e.g. images=1,3,640,640"))?;
        if name.trim().is_empty() {
            return Err(format!("{s:?} names no input; write NAME=D1,D2,..., e.g. images=1,3,640,640"));
        }
        let dims = dims
            .split([',', 'x'])
            .map(|d| d.trim().parse::<i64>().ok().filter(|&d| d > 0))
            .collect::<Option<Vec<i64>>>()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| format!("{s:?}: the dimensions must be positive integers, e.g. {name}=1,3,640,640"))?;
        Ok(InputShape { name: name.trim().to_string(), dims })
    }
}

impl std::fmt::Display for InputShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self.dims.iter().map(i64::to_string).collect();
        write!(f, "{}={}", self.name, dims.join(","))
    }
}

/// One dimension of a graph input that has no fixed size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolicDim {
    pub input: String,
    pub axis: usize,
    /// The exporter's name for it (`batch`, `height`), or `?` when it has none.
    pub param: String,
}

/// A graph input: its name, its dims (`None` if it declares no shape; a `None` dim is
/// symbolic) and the exporter's names of its dims (`?` where there is none).
pub type InputDims = (String, Option<Vec<Option<i64>>>, Vec<String>);

/// The (non-initializer) graph inputs with their dims.
pub fn input_dims(model: &ModelProto) -> Vec<InputDims> {
    let Some(graph) = model.graph.as_ref() else { return Vec::new() };
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name()))
        .map(|i| {
            let shape = match i.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(type_proto::Value::TensorType(t)) => t.shape.as_ref(),
                _ => None,
            };
            let dims = shape.map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(dimension::Value::DimValue(v)) if *v > 0 => Some(*v),
                        _ => None,
                    })
                    .collect()
            });
            let params = shape.map_or_else(Vec::new, |s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(dimension::Value::DimParam(p)) if !p.is_empty() => p.clone(),
                        _ => "?".into(),
                    })
                    .collect()
            });
            (i.name().to_string(), dims, params)
        })
        .collect()
}

/// Every symbolic dimension of the graph inputs.
pub fn symbolic_dims(model: &ModelProto) -> Vec<SymbolicDim> {
    input_dims(model)
        .into_iter()
        .flat_map(|(input, dims, params)| {
            dims.unwrap_or_default()
                .into_iter()
                .enumerate()
                .filter(|(_, d)| d.is_none())
                .map(|(axis, _)| SymbolicDim { input: input.clone(), axis, param: params[axis].clone() })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Gives the inputs named in `shapes` those fixed shapes. A name that is not an input, a rank
/// that differs, or a size that contradicts a fixed one is an error that names the flag.
pub fn fix_input_shapes(model: &mut ModelProto, shapes: &[InputShape]) -> Result<(), OnnxError> {
    let inputs = input_dims(model);
    let names: Vec<&str> = inputs.iter().map(|(n, _, _)| n.as_str()).collect();
    for s in shapes {
        let Some((_, dims, _)) = inputs.iter().find(|(n, _, _)| *n == s.name) else {
            return Err(OnnxError::tensor(
                &s.name,
                format!(
                    "--input-shape {s}: the model has no input of that name; its inputs are {names:?}; fix: name one of them, e.g. {}",
                    inputs.first().map_or_else(|| "--input-shape NAME=D1,D2,...".into(), flag_example)
                ),
            ));
        };
        if let Some(dims) = dims {
            if dims.len() != s.dims.len() {
                return Err(OnnxError::tensor(
                    &s.name,
                    format!(
                        "--input-shape {s}: the input has rank {} ({}), not {}; fix: give {} dimensions",
                        dims.len(),
                        show_dims(dims),
                        s.dims.len(),
                        dims.len()
                    ),
                ));
            }
            if let Some(axis) = dims.iter().zip(&s.dims).position(|(d, g)| d.is_some_and(|d| d != *g)) {
                return Err(OnnxError::tensor(
                    &s.name,
                    format!(
                        "--input-shape {s}: axis {axis} of the input is fixed at {} ({}); fix: keep it",
                        dims[axis].unwrap_or(0),
                        show_dims(dims)
                    ),
                ));
            }
        }
    }
    let graph = model.graph.as_mut().ok_or_else(|| OnnxError::graph("(none)", "the model has no graph"))?;
    for s in shapes {
        let vi = graph.input.iter_mut().find(|i| i.name() == s.name).expect("checked above");
        let elem_type = crate::builder::elem_type_of(vi).unwrap_or(DataType::Float as i32);
        let mut fixed = crate::builder::value_info(&s.name, DataType::Float, &s.dims);
        if let Some(type_proto::Value::TensorType(t)) = fixed.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            t.elem_type = Some(elem_type);
        }
        *vi = fixed;
    }
    Ok(())
}

fn show_dims(dims: &[Option<i64>]) -> String {
    let d: Vec<String> = dims.iter().map(|d| d.map_or("?".into(), |v| v.to_string())).collect();
    format!("[{}]", d.join(", "))
}

/// `--input-shape NAME=1,3,<height>,<width>` for an input: its fixed dims, 1 for a symbolic
/// batch (axis 0, or a dim whose name says batch), the exporter's name of any other symbolic
/// dim, or its axis where it has no name.
fn flag_example((name, shape, params): &InputDims) -> String {
    let shape: Vec<String> = shape
        .as_deref()
        .unwrap_or_default()
        .iter()
        .zip(params)
        .enumerate()
        .map(|(axis, (d, p))| match d {
            Some(v) => v.to_string(),
            // lalarand runs batch 1, wherever the exporter put the batch (an LSTM state's is axis 1).
            None if axis == 0 || p.to_ascii_lowercase().contains("batch") => "1".into(),
            None if p == "?" => format!("<size of axis {axis}>"),
            None => format!("<{p}>"),
        })
        .collect();
    format!("--input-shape {name}={}", shape.join(","))
}

/// The error for `model` (named `model_name`) whose inputs have the symbolic dimensions
/// `dims` and no shapes given: each dimension, and the flag to set it with.
pub fn symbolic_error(model_name: &str, model: &ModelProto, dims: &[SymbolicDim]) -> OnnxError {
    let listed: Vec<String> = dims.iter().map(|d| format!("`{}` axis {} ({})", d.input, d.axis, d.param)).collect();
    let example: Vec<String> = input_dims(model)
        .into_iter()
        .filter(|(name, _, _)| dims.iter().any(|d| &d.input == name))
        .map(|i| flag_example(&i))
        .collect();
    OnnxError::graph(
        model_name,
        format!(
            "the model input has symbolic dimensions {}; fix: give the size it runs at, {}",
            listed.join(", "),
            example.join(" ")
        ),
    )
}

/// Turns every `Constant` node of the main graph into an initializer of the same name.
pub fn constants_to_initializers(model: &mut ModelProto) -> Result<(), OnnxError> {
    let Some(graph) = model.graph.as_mut() else { return Ok(()) };
    let gname = graph.name().to_string();
    let mut kept = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        if node.op_type() != "Constant" || !node.domain().is_empty() || node.output.len() != 1 {
            kept.push(node);
            continue;
        }
        let mut t = constant_value(&node)
            .map_err(|reason| OnnxError::graph(&gname, format!("node `{}` (Constant): {reason}", node.name())))?;
        t.name = Some(node.output[0].clone());
        graph.initializer.push(t);
    }
    graph.node = kept;
    Ok(())
}

/// Removes the `Identity` nodes of the main graph: their readers read the Identity's input
/// instead. paddle2onnx writes one around nearly every op (`auto.cast.N`,
/// `p2o.builtin.combine...`); left in, a copy is a node the partitioner can make a stage of its
/// own, run for nothing. An Identity that writes a graph output, or whose output a subgraph
/// reads by name, stays. Returns how many were removed.
pub fn remove_identities(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else { return 0 };
    let mut keep: HashSet<String> = graph.output.iter().map(|o| o.name().to_string()).collect();
    for n in &graph.node {
        keep.extend(subgraph_reads(n));
    }
    let is_copy = |n: &NodeProto| {
        n.op_type() == "Identity"
            && n.domain().is_empty()
            && n.input.len() == 1
            && n.output.len() == 1
            && !n.input[0].is_empty()
            && !keep.contains(&n.output[0])
    };
    let renamed: HashMap<String, String> =
        graph.node.iter().filter(|n| is_copy(n)).map(|n| (n.output[0].clone(), n.input[0].clone())).collect();
    if renamed.is_empty() {
        return 0;
    }
    // A chain of copies resolves to the first tensor (no cycle: a graph is acyclic).
    let resolve = |t: &str| {
        let mut t = t.to_string();
        while let Some(src) = renamed.get(&t) {
            t.clone_from(src);
        }
        t
    };
    let before = graph.node.len();
    graph.node.retain(|n| !is_copy(n));
    for n in &mut graph.node {
        for t in n.input.iter_mut().filter(|t| renamed.contains_key(t.as_str())) {
            *t = resolve(t);
        }
    }
    graph.value_info.retain(|v| !renamed.contains_key(v.name()));
    before - graph.node.len()
}

/// Checks that every graph output is computed from a model input: one that no node, input or
/// initializer provides, or that only constants feed, is an error naming it (and the node that
/// computes it) with the fix. Run before folding: an output computed from an input's shape
/// alone counts as reachable here.
pub fn check_outputs_reachable(model: &ModelProto) -> Result<(), OnnxError> {
    let Some(graph) = model.graph.as_ref() else { return Ok(()) };
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    let mut from_input: HashSet<&str> = graph.input.iter().map(|i| i.name()).filter(|n| !inits.contains(n)).collect();
    // Nodes are in topological order (ONNX requires it); a subgraph's outer reads count too.
    for n in &graph.node {
        let reads = subgraph_reads(n);
        if n.input.iter().chain(&reads).any(|t| from_input.contains(t.as_str())) {
            from_input.extend(n.output.iter().filter(|o| !o.is_empty()).map(String::as_str));
        }
    }
    let made = producers(graph);
    for o in &graph.output {
        let name = o.name();
        if from_input.contains(name) {
            continue;
        }
        let reason = match made.get(name) {
            Some(node) => format!(
                "graph output `{name}` does not depend on any model input: node `{}` ({}) computes it from constants only; fix: drop it from the model's outputs (compute it once outside the model), or re-export the model so that it reads its input",
                node.name(),
                node.op_type()
            ),
            None if inits.contains(name) => format!(
                "graph output `{name}` is an initializer, a constant that does not depend on any model input; fix: drop it from the model's outputs"
            ),
            None => format!(
                "graph output `{name}` is computed by no node and is no input or initializer: the graph is incomplete; fix: re-export the model, or drop that output"
            ),
        };
        return Err(OnnxError::graph(graph.name(), reason));
    }
    Ok(())
}

fn constant_value(node: &NodeProto) -> Result<TensorProto, String> {
    let a = node.attribute.first().ok_or("has no value attribute")?;
    let t = match a.name() {
        "value" => a.t.clone().ok_or("`value` holds no tensor")?,
        "value_float" => crate::tensor::f32_tensor("", &[], &[a.f()]),
        "value_floats" => crate::tensor::f32_tensor("", &[a.floats.len() as i64], &a.floats),
        "value_int" => crate::tensor::i64_tensor("", &[], &[a.i()]),
        "value_ints" => crate::tensor::i64_tensor("", &[a.ints.len() as i64], &a.ints),
        other => return Err(format!("attribute `{other}` is not supported; fix: export it as `value`")),
    };
    Ok(t)
}

/// Ops whose output depends only on the *shape* of their input, which is fixed once the input
/// shapes are.
const SHAPE_READERS: &[&str] = &["Shape", "Size"];

/// Whether a node computes the same values on every run given its inputs (no randomness, no
/// subgraph that could read data tensors of the outer graph, no sequence values).
fn pure(node: &NodeProto) -> bool {
    let op = node.op_type();
    node.domain().is_empty()
        && !op.starts_with("Random")
        && !matches!(op, "Multinomial" | "Bernoulli" | "If" | "Loop" | "Scan" | "SplitToSequence")
        && !op.starts_with("Sequence")
        && node.attribute.iter().all(|a| a.g.is_none() && a.graphs.is_empty())
}

/// The tensors that the fixed input shapes determine, which the rest of the graph reads: each
/// is computed (from a `Shape`/`Size` of some tensor and constants only) by nodes that
/// [`fold`] can then remove. Requires every input shape to be fixed; empty when nothing reads
/// a shape.
pub fn foldable(graph: &GraphProto) -> Vec<String> {
    let inputs: HashSet<&str> = graph.input.iter().map(|i| i.name()).collect();
    let mut constant: HashSet<&str> =
        graph.initializer.iter().map(|t| t.name()).filter(|n| !inputs.contains(n)).collect();
    constant.insert("");
    let mut derived: HashSet<&str> = HashSet::new();
    let mut derived_nodes: HashSet<usize> = HashSet::new();
    for (i, n) in graph.node.iter().enumerate() {
        let shape_reader = SHAPE_READERS.contains(&n.op_type()) && n.domain().is_empty();
        let from_shapes = pure(n)
            && n.input.iter().all(|t| constant.contains(t.as_str()) || derived.contains(t.as_str()))
            && n.input.iter().any(|t| derived.contains(t.as_str()));
        if shape_reader || from_shapes {
            derived.extend(n.output.iter().map(String::as_str));
            derived_nodes.insert(i);
        }
    }
    let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name()).collect();
    let mut frontier = Vec::new();
    for (i, n) in graph.node.iter().enumerate() {
        for t in &n.input {
            let read_by_data = !derived_nodes.contains(&i);
            if read_by_data && derived.contains(t.as_str()) && !frontier.contains(t) {
                frontier.push(t.clone());
            }
        }
    }
    for o in &outputs {
        if derived.contains(o) && !frontier.iter().any(|f| f == o) {
            frontier.push(o.to_string());
        }
    }
    frontier
}

/// Puts `values` (named tensors, as [`foldable`] lists them) into the graph as initializers and
/// removes every node whose outputs nothing reads any more, then every unread initializer.
pub fn fold(model: &mut ModelProto, values: Vec<TensorProto>) {
    let Some(graph) = model.graph.as_mut() else { return };
    let folded: HashSet<String> = values.iter().map(|t| t.name().to_string()).collect();
    for n in graph.node.iter_mut() {
        // A node that produced a folded value no longer does (its other outputs stay).
        for o in n.output.iter_mut().filter(|o| folded.contains(o.as_str())) {
            o.clear();
        }
    }
    graph.initializer.retain(|t| !folded.contains(t.name()));
    graph.initializer.extend(values);
    remove_dead(graph);
}

/// Removes nodes none of whose outputs is read (by a node or as a graph output), repeatedly,
/// and initializers nothing reads.
fn remove_dead(graph: &mut GraphProto) {
    loop {
        let mut read: HashSet<String> = graph.output.iter().map(|o| o.name().to_string()).collect();
        for n in &graph.node {
            read.extend(n.input.iter().cloned());
            read.extend(subgraph_reads(n));
        }
        let before = graph.node.len();
        graph.node.retain(|n| n.output.iter().any(|o| !o.is_empty() && read.contains(o)));
        if graph.node.len() == before {
            graph.initializer.retain(|t| read.contains(t.name()));
            let inits: HashSet<String> = graph.initializer.iter().map(|t| t.name().to_string()).collect();
            // Initializers listed as inputs (older exporters) that were folded away go too.
            graph.input.retain(|i| !inits.contains(i.name()) || read.contains(i.name()));
            return;
        }
    }
}

/// Names the subgraphs of `node` (If branches, Loop bodies) read from the outer scope.
pub fn subgraph_reads(node: &NodeProto) -> Vec<String> {
    let mut out = Vec::new();
    for a in &node.attribute {
        for g in a.g.iter().chain(&a.graphs) {
            let mut defined: HashSet<&str> = g.input.iter().map(|i| i.name()).collect();
            defined.extend(g.initializer.iter().map(|t| t.name()));
            for n in &g.node {
                for t in n.input.iter().cloned().chain(subgraph_reads(n)) {
                    if !t.is_empty() && !defined.contains(t.as_str()) && !out.contains(&t) {
                        out.push(t);
                    }
                }
                defined.extend(n.output.iter().map(String::as_str));
            }
            for o in &g.output {
                if !defined.contains(o.name()) && !out.iter().any(|x| x == o.name()) {
                    out.push(o.name().to_string());
                }
            }
        }
    }
    out
}

/// How many of `graph`'s nodes read a shape (what [`foldable`] starts from).
pub fn reads_shapes(graph: &GraphProto) -> bool {
    graph.node.iter().any(|n| SHAPE_READERS.contains(&n.op_type()))
}

/// Maps of what each tensor's producer is, for diagnostics.
pub fn producers(graph: &GraphProto) -> HashMap<&str, &NodeProto> {
    graph.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect()
}

/// Rewrites an opset 7 to 12 model to opset 13, the first whose QuantizeLinear takes a
/// per-channel axis (what int8 stages need). Only the ops whose signature changed in between
/// are touched: attributes that became inputs (`Split`'s `split`, `Squeeze`/`Unsqueeze`'s and
/// `ReduceSum`'s `axes`, before 10 `Slice`'s `starts`/`ends`/`axes` and `TopK`'s `k`, before 11
/// `Pad`'s `pads`/`value` and `Clip`'s `min`/`max`), `Dropout`'s `ratio` and `BatchNormalization`'s
/// `spatial` go (inference ignores the one, 1 is the only meaning left of the other),
/// `Upsample` and opset 10's `Resize` become the `Resize` that computes the same (asymmetric
/// coordinates, nearest rounding down), `Scatter` is `ScatterElements`, and a `Softmax`-like
/// op whose axis is not `-1` becomes what it meant before 13 (`flatten_softmax`). Returns
/// `false` (model unchanged) for other opsets, for graphs with subgraphs and for graphs with
/// an op it cannot carry over ([`opset13_blocker`]).
pub fn upgrade_to_opset13(model: &mut ModelProto) -> bool {
    let Some(version) = model.opset_import.iter().find(|o| o.domain().is_empty()).and_then(|o| o.version) else {
        return false;
    };
    let Some(graph) = model.graph.as_mut() else { return false };
    if !(7..13).contains(&version) || opset13_blocker(graph, version).is_some() {
        return false;
    }
    flatten_softmax(graph);
    let mut extra = Vec::new();
    for (k, n) in graph.node.iter_mut().enumerate() {
        if !n.domain().is_empty() {
            continue;
        }
        let out = n.output.first().map_or("node", String::as_str).to_string();
        // An fp32 constant input made from an attribute.
        let constant = |extra: &mut Vec<TensorProto>, name: &str, v: &[f32], dims: &[i64]| {
            let tn = format!("{out}__{name}_{k}");
            extra.push(crate::tensor::f32_tensor(&tn, dims, v));
            tn
        };
        let moved: &[(&str, usize)] = match n.op_type() {
            "Split" => &[("split", 1)],
            "Squeeze" | "Unsqueeze" | "ReduceSum" => &[("axes", 1)],
            "Slice" if version < 10 => &[("starts", 1), ("ends", 2), ("axes", 3)],
            "Pad" if version < 11 => &[("pads", 1)],
            _ => &[],
        };
        for &(name, at) in moved {
            if let Some(pos) = n.attribute.iter().position(|a| a.name() == name) {
                let a = n.attribute.remove(pos);
                let t = format!("{out}__{name}_{k}");
                extra.push(crate::tensor::i64_tensor(&t, &[a.ints.len() as i64], &a.ints));
                set_input(n, at, t);
            }
        }
        match n.op_type() {
            "Dropout" => n.attribute.retain(|a| a.name() != "ratio"),
            "BatchNormalization" => n.attribute.retain(|a| a.name() != "spatial"),
            "Pad" if version < 11 => {
                let value = take_attr(n, "value").and_then(|a| a.f).unwrap_or(0.0);
                let t = constant(&mut extra, "value", &[value], &[]);
                set_input(n, 2, t);
            }
            "Clip" if version < 11 => {
                for (name, at) in [("min", 1), ("max", 2)] {
                    if let Some(v) = take_attr(n, name).and_then(|a| a.f) {
                        let t = constant(&mut extra, name, &[v], &[]);
                        set_input(n, at, t);
                    }
                }
            }
            "TopK" if version < 10 => {
                if let Some(kk) = take_attr(n, "k").and_then(|a| a.i) {
                    let t = format!("{out}__k_{k}");
                    extra.push(crate::tensor::i64_tensor(&t, &[1], &[kk]));
                    set_input(n, 1, t);
                }
            }
            "Scatter" => n.op_type = Some("ScatterElements".into()),
            "Upsample" | "Resize" if version < 11 => {
                let mode = take_attr(n, "mode").and_then(|a| a.s).map(|s| String::from_utf8_lossy(&s).into_owned());
                let mode = mode.unwrap_or_else(|| "nearest".into());
                let scales = match take_attr(n, "scales") {
                    Some(a) => constant(&mut extra, "scales", &a.floats, &[a.floats.len() as i64]),
                    None => n.input.get(1).cloned().unwrap_or_default(),
                };
                n.op_type = Some("Resize".into());
                n.input = vec![n.input[0].clone(), String::new(), scales];
                n.attribute.clear();
                n.attribute.push(crate::builder::attr::string("mode", &mode));
                n.attribute.push(crate::builder::attr::string("coordinate_transformation_mode", "asymmetric"));
                if mode == "nearest" {
                    n.attribute.push(crate::builder::attr::string("nearest_mode", "floor"));
                }
            }
            _ => {}
        }
    }
    graph.initializer.extend(extra);
    for o in model.opset_import.iter_mut().filter(|o| o.domain().is_empty()) {
        o.version = Some(13);
    }
    model.ir_version = Some(model.ir_version.unwrap_or(7).max(7));
    true
}

/// Why a graph of opset `version` (7 to 12) cannot be carried over to 13, if it cannot: an op
/// that opset 13 no longer has (`ImageScaler`, `Crop`, ...) or whose meaning it no longer has
/// (`BatchNormalization` with `spatial = 0`).
pub fn opset13_blocker(graph: &GraphProto, version: i64) -> Option<String> {
    const GONE: &[&str] = &[
        "ImageScaler",
        "Crop",
        "Affine",
        "ParametricSoftplus",
        "ScaledTanh",
        "GivenTensorFill",
        "Scale",
        "DynamicSlice",
    ];
    if graph.node.iter().any(|n| n.attribute.iter().any(|a| a.g.is_some() || !a.graphs.is_empty())) {
        return Some("the graph has control flow (If, Loop, Scan)".into());
    }
    graph.node.iter().filter(|n| n.domain().is_empty()).find_map(|n| {
        let spatial = crate::builder::find_attr(n, "spatial").and_then(|a| a.i).unwrap_or(1);
        if GONE.contains(&n.op_type()) {
            Some(format!("node `{}` is a {} (opset {version}), which opset 13 does not have", n.name(), n.op_type()))
        } else if n.op_type() == "BatchNormalization" && spatial == 0 {
            Some(format!("node `{}` is a BatchNormalization with spatial = 0, which opset 13 does not have", n.name()))
        } else {
            None
        }
    })
}

/// Removes attribute `name` of `n` and returns it.
fn take_attr(n: &mut NodeProto, name: &str) -> Option<crate::proto::AttributeProto> {
    let pos = n.attribute.iter().position(|a| a.name() == name)?;
    Some(n.attribute.remove(pos))
}

/// Sets input `at` of `n` to `t`, the optional inputs before it left empty.
fn set_input(n: &mut NodeProto, at: usize, t: String) {
    while n.input.len() < at {
        n.input.push(String::new());
    }
    if n.input.len() == at {
        n.input.push(t);
    } else {
        n.input.insert(at, t);
    }
}

/// Graph inputs that are also initializers become plain initializers, as ONNX Runtime treats
/// them: every export before IR version 4 (early PyTorch, old converters) lists its weights as
/// inputs, and lalarand never feeds a weight, so it is a constant like any other (a newer model
/// could override one; lalarand does not). The IR version is raised to 4, the first that does
/// not require the listing. Returns how many inputs were weights.
pub fn weights_as_initializers(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else { return 0 };
    let weights: HashSet<String> = graph.initializer.iter().map(|t| t.name().to_string()).collect();
    let before = graph.input.len();
    graph.input.retain(|i| !weights.contains(i.name()));
    let removed = before - graph.input.len();
    if removed > 0 {
        model.ir_version = Some(model.ir_version.unwrap_or(4).max(4));
    }
    removed
}

/// Before opset 13, `Softmax`, `LogSoftmax` and `Hardmax` with `axis = a` (default 1) work on
/// their input flattened to 2-D at `a`; from 13 on, along `a` alone. Each such op whose axis is
/// not `-1` (where both mean the same) becomes `Flatten(a)`, the op along `-1`, and a `Reshape`
/// back to the input's `Shape`, which is what it computed: paddle2onnx and older tf2onnx write
/// `Softmax(axis = 1)` on a `[batch, classes]` tensor. The `Shape` is folded once the input
/// shapes are fixed.
fn flatten_softmax(graph: &mut GraphProto) {
    let mut nodes = Vec::with_capacity(graph.node.len());
    for mut n in std::mem::take(&mut graph.node) {
        let axis = crate::builder::find_attr(&n, "axis").and_then(|a| a.i).unwrap_or(1);
        let changes = n.domain().is_empty()
            && matches!(n.op_type(), "Softmax" | "LogSoftmax" | "Hardmax")
            && axis != -1
            && n.input.len() == 1
            && n.output.len() == 1;
        if !changes {
            nodes.push(n);
            continue;
        }
        let (x, y, name) = (n.input[0].clone(), n.output[0].clone(), n.name().to_string());
        let flat = format!("{y}__flat");
        let along = format!("{y}__2d");
        let shape = format!("{y}__shape");
        nodes.push(crate::builder::node(
            "Flatten",
            &format!("{name}/Flatten"),
            &[&x],
            &[&flat],
            vec![crate::builder::attr::int("axis", axis)],
        ));
        n.attribute.retain(|a| a.name() != "axis");
        n.attribute.push(crate::builder::attr::int("axis", -1));
        n.input = vec![flat];
        n.output = vec![along.clone()];
        nodes.push(n);
        nodes.push(crate::builder::node("Shape", &format!("{name}/Shape"), &[&x], &[&shape], vec![]));
        nodes.push(crate::builder::node("Reshape", &format!("{name}/Reshape"), &[&along, &shape], &[&y], vec![]));
    }
    graph.node = nodes;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{attr, GraphBuilder};

    /// Softmax(axis = 1) of opset 11 becomes Flatten(1), Softmax(-1), Reshape(Shape(x)) at 13;
    /// Softmax(-1) means the same in both and stays.
    #[test]
    fn softmax_keeps_its_pre_13_meaning_in_the_upgrade() {
        let mut b = GraphBuilder::new("cls");
        b.input("x", DataType::Float, &[1, 2, 3]);
        b.node("Softmax", "sm", &["x"], &["y"], vec![attr::int("axis", 1)]);
        b.node("LogSoftmax", "lsm", &["y"], &["z"], vec![attr::int("axis", -1)]);
        b.output("z", DataType::Float, &[1, 2, 3]);
        let mut m = b.finish();
        m.opset_import[0].version = Some(11);
        assert!(upgrade_to_opset13(&mut m));
        let g = m.graph.as_ref().unwrap();
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type()).collect();
        assert_eq!(ops, ["Flatten", "Softmax", "Shape", "Reshape", "LogSoftmax"]);
        let axis = |n: &NodeProto| crate::builder::find_attr(n, "axis").and_then(|a| a.i);
        assert_eq!((axis(&g.node[0]), axis(&g.node[1]), axis(&g.node[4])), (Some(1), Some(-1), Some(-1)));
        assert_eq!(g.node[0].input, ["x"]);
        assert_eq!(g.node[3].input, ["y__2d", "y__shape"]);
        assert_eq!(g.node[3].output, ["y"]);
        assert_eq!(m.opset_import[0].version, Some(13));
    }

    /// An output no node makes, or made from constants only, is named with its node and the fix.
    #[test]
    fn outputs_the_input_cannot_reach_are_named() {
        let model = |out_node: Option<(&str, &str)>| {
            let mut b = GraphBuilder::new("g");
            b.input("x", DataType::Float, &[1, 4]);
            b.initializer(crate::tensor::f32_tensor("c", &[1, 4], &[1.0; 4]));
            b.node("Relu", "/relu/Relu", &["x"], &["r"], vec![]);
            if let Some((op, input)) = out_node {
                b.node(op, "/out/Node", &[input], &["y"], vec![]);
            }
            b.output("r", DataType::Float, &[1, 4]);
            b.output("y", DataType::Float, &[1, 4]);
            b.finish()
        };
        check_outputs_reachable(&model(Some(("Neg", "r")))).unwrap();
        // Through the input's shape only: reachable (folding deals with it).
        let mut m = model(Some(("Shape", "x")));
        check_outputs_reachable(&m).unwrap();
        let e = check_outputs_reachable(&model(Some(("Neg", "c")))).unwrap_err().to_string();
        assert!(e.contains("`y` does not depend on any model input") && e.contains("`/out/Node` (Neg)"), "{e}");
        assert!(e.contains("fix: drop it"), "{e}");
        let e = check_outputs_reachable(&model(None)).unwrap_err().to_string();
        assert!(e.contains("`y` is computed by no node") && e.contains("fix: re-export"), "{e}");
        m.graph.as_mut().unwrap().output[1].name = Some("c".into());
        let e = check_outputs_reachable(&m).unwrap_err().to_string();
        assert!(e.contains("`c` is an initializer"), "{e}");
    }

    /// paddle2onnx's copies go, chains included; one that writes a graph output stays.
    #[test]
    fn identities_are_removed_except_graph_outputs() {
        let mut b = GraphBuilder::new("copies");
        b.input("x", DataType::Float, &[1, 4]);
        b.node("Identity", "Identity.0", &["x"], &["auto.cast.0"], vec![]);
        b.node("Identity", "Identity.1", &["auto.cast.0"], &["auto.cast.1"], vec![]);
        b.node("Relu", "Relu.0", &["auto.cast.1"], &["r"], vec![]);
        b.node("Add", "Add.0", &["r", "auto.cast.0"], &["y"], vec![]);
        b.node("Identity", "Identity.2", &["y"], &["out"], vec![]);
        b.output("out", DataType::Float, &[1, 4]);
        let mut m = b.finish();
        assert_eq!(remove_identities(&mut m), 2);
        let g = m.graph.as_ref().unwrap();
        let ops: Vec<(&str, Vec<&str>)> =
            g.node.iter().map(|n| (n.op_type(), n.input.iter().map(String::as_str).collect())).collect();
        assert_eq!(ops, [("Relu", vec!["x"]), ("Add", vec!["r", "x"]), ("Identity", vec!["y"])]);
        assert_eq!(remove_identities(&mut m), 0);
    }

    /// x -> Shape -> Gather(1) -> Div(2) -> Unsqueeze -> Concat -> Split(x, sizes): torch.chunk.
    fn chunk_model(symbolic: bool) -> ModelProto {
        let mut b = GraphBuilder::new("chunk");
        b.input("x", DataType::Float, &[1, 4, 2, 2]);
        if symbolic {
            let vi = &mut b.graph.input[0];
            if let Some(type_proto::Value::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
                let d = &mut t.shape.as_mut().unwrap().dim;
                d[0].value = Some(dimension::Value::DimParam("batch".into()));
                d[2].value = Some(dimension::Value::DimParam("height".into()));
            }
        }
        b.initializer(crate::tensor::i64_tensor("one", &[], &[1]));
        b.initializer(crate::tensor::i64_tensor("two", &[], &[2]));
        b.initializer(crate::tensor::i64_tensor("axes0", &[1], &[0]));
        b.node("Relu", "relu", &["x"], &["r"], vec![]);
        b.node("Shape", "shape", &["r"], &["s"], vec![]);
        b.node("Gather", "gather", &["s", "one"], &["c"], vec![attr::int("axis", 0)]);
        b.node("Div", "div", &["c", "two"], &["half"], vec![]);
        b.node("Unsqueeze", "unsq", &["half", "axes0"], &["h1"], vec![]);
        b.node("Concat", "cat", &["h1", "h1"], &["sizes"], vec![attr::int("axis", 0)]);
        b.node("Split", "split", &["r", "sizes"], &["a", "b"], vec![attr::int("axis", 1)]);
        b.node("Add", "add", &["a", "b"], &["y"], vec![]);
        b.output("y", DataType::Float, &[1, 2, 2, 2]);
        b.finish()
    }

    #[test]
    fn input_shapes_parse_and_print() {
        let s: InputShape = "images=1,3,640,640".parse().unwrap();
        assert_eq!(s, InputShape { name: "images".into(), dims: vec![1, 3, 640, 640] });
        assert_eq!(s.to_string(), "images=1,3,640,640");
        assert!("images".parse::<InputShape>().unwrap_err().contains("NAME="));
        assert!("x=1,0,3".parse::<InputShape>().unwrap_err().contains("positive"));
        assert!("=1,2".parse::<InputShape>().is_err());
    }

    /// A hint fills every dim it can: a batch named anywhere is 1, an unnamed dim says which axis.
    #[test]
    fn flag_examples_fill_the_batch_and_name_unnamed_dims() {
        let input = |name: &str, dims: &[Option<i64>], params: &[&str]| -> InputDims {
            (name.into(), Some(dims.to_vec()), params.iter().map(|p| p.to_string()).collect())
        };
        let h0 = input("h0", &[Some(3), None, Some(512)], &["?", "batch_size", "?"]);
        assert_eq!(flag_example(&h0), "--input-shape h0=3,1,512");
        let x = input("x", &[None, Some(3), None, None], &["?", "?", "?", "?"]);
        assert_eq!(flag_example(&x), "--input-shape x=1,3,<size of axis 2>,<size of axis 3>");
    }

    #[test]
    fn symbolic_dims_are_listed_and_fixed() {
        let mut m = chunk_model(true);
        let dims = symbolic_dims(&m);
        assert_eq!(dims.len(), 2);
        assert_eq!((dims[1].axis, dims[1].param.as_str()), (2, "height"));
        let msg = symbolic_error("chunk.onnx", &m, &dims).to_string();
        assert!(msg.contains("axis 2 (height)") && msg.contains("--input-shape x=1,4,<height>,2"), "{msg}");

        let bad_name = fix_input_shapes(&mut m, &["images=1,4,2,2".parse().unwrap()]).unwrap_err().to_string();
        assert!(bad_name.contains("no input of that name") && bad_name.contains("\"x\""), "{bad_name}");
        assert!(bad_name.contains("fix: name one of them, e.g. --input-shape x=1,4,<height>,2"), "{bad_name}");
        let bad_rank = fix_input_shapes(&mut m, &["x=1,4,2".parse().unwrap()]).unwrap_err().to_string();
        assert!(bad_rank.contains("rank 4") && bad_rank.contains("--input-shape x=1,4,2"), "{bad_rank}");
        let contradicts = fix_input_shapes(&mut m, &["x=1,3,2,2".parse().unwrap()]).unwrap_err().to_string();
        assert!(contradicts.contains("axis 1") && contradicts.contains("fixed at 4"), "{contradicts}");
        fix_input_shapes(&mut m, &["x=1,4,2,2".parse().unwrap()]).unwrap();
        assert!(symbolic_dims(&m).is_empty());
    }

    #[test]
    fn shape_arithmetic_folds_to_a_constant() {
        let mut m = chunk_model(false);
        let graph = m.graph.as_ref().unwrap();
        assert_eq!(foldable(graph), ["sizes"]);
        fold(&mut m, vec![crate::tensor::i64_tensor("sizes", &[2], &[2, 2])]);
        let g = m.graph.unwrap();
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type()).collect();
        assert_eq!(ops, ["Relu", "Split", "Add"]);
        let inits: Vec<&str> = g.initializer.iter().map(|t| t.name()).collect();
        assert_eq!(inits, ["sizes"]);
    }

    #[test]
    fn constant_nodes_become_initializers() {
        let mut b = GraphBuilder::new("c");
        b.input("x", DataType::Float, &[2]);
        b.node(
            "Constant",
            "k",
            &[],
            &["k_out"],
            vec![attr::tensor("value", crate::tensor::f32_tensor("", &[2], &[1.0, 2.0]))],
        );
        b.node("Constant", "i", &[], &["i_out"], vec![attr::ints("value_ints", &[3, 4])]);
        b.node("Add", "add", &["x", "k_out"], &["y"], vec![]);
        b.output("y", DataType::Float, &[2]);
        let mut m = b.finish();
        constants_to_initializers(&mut m).unwrap();
        let g = m.graph.unwrap();
        assert_eq!(g.node.len(), 1);
        let k = g.initializer.iter().find(|t| t.name() == "k_out").unwrap();
        assert_eq!(crate::tensor::to_f32(k).unwrap(), [1.0, 2.0]);
        let i = g.initializer.iter().find(|t| t.name() == "i_out").unwrap();
        assert_eq!(crate::tensor::to_i64(i).unwrap(), [3, 4]);
    }

    /// Opset 7's Upsample (scales as an attribute) becomes Resize with a scales input; an op
    /// opset 13 no longer has keeps the model at its opset, saying which.
    #[test]
    fn opset7_attributes_become_inputs_and_removed_ops_block_the_lift() {
        let mut b = GraphBuilder::new("old");
        b.input("x", DataType::Float, &[1, 1, 2, 2]);
        b.node("Upsample", "up", &["x"], &["u"], vec![attr::floats("scales", &[1.0, 1.0, 2.0, 2.0])]);
        b.node("Clip", "clip", &["u"], &["y"], vec![attr::float("max", 6.0)]);
        b.output("y", DataType::Float, &[1, 1, 4, 4]);
        let mut m = b.finish();
        m.opset_import[0].version = Some(7);
        let mut blocked = m.clone();
        assert!(upgrade_to_opset13(&mut m));
        let g = m.graph.as_ref().unwrap();
        assert_eq!(g.node[0].op_type(), "Resize");
        assert_eq!(g.node[0].input[1], "", "no roi");
        let scales = g.initializer.iter().find(|t| t.name() == g.node[0].input[2]).unwrap();
        assert_eq!(crate::tensor::to_f32(scales).unwrap(), [1.0, 1.0, 2.0, 2.0]);
        assert_eq!(g.node[1].input[1], "", "Clip without min");
        assert_eq!(g.node[1].input.len(), 3);
        let bg = blocked.graph.as_mut().unwrap();
        bg.node.insert(0, crate::builder::node("ImageScaler", "scaler", &["x"], &["xs"], vec![]));
        bg.node[1].input[0] = "xs".into();
        let why = opset13_blocker(bg, 7).unwrap();
        assert!(why.contains("`scaler`") && why.contains("ImageScaler"), "{why}");
        assert!(!upgrade_to_opset13(&mut blocked));
        assert_eq!(blocked.opset_import[0].version, Some(7));
    }
}
