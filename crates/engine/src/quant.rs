//! int8 stage models: calibration by running the fp32 model, then lalarand-onnx's QDQ rewrite
//! of every stage.
//!
//! Consecutive int8 stages hand over uint8 tensors (no dequantize/quantize between them); a
//! tensor crossing from fp32 to int8 or back is converted by the pipeline, which is the
//! `quantize_in` / `dequantize_in` cost of the profile.
//!
//! uint8 feature maps (rank 4) are handed over in NHWC layout: ONNX Runtime's int8 kernels
//! work in NHWC, and a stage with NCHW boundaries would transpose its input and output on every
//! run (about 20% of an int8 ResNet-18). The stage models take and give NHWC and their explicit
//! boundary Transposes cancel against the runtime's own.

use crate::error::{EngineError, Result};
use crate::stage::{ExecConfig, StageRunner, Tensors};
use crate::staged::StagedModel;
use crate::tensor::f32_value;
use lalarand_model::Mode;
use lalarand_onnx::partition;
use lalarand_onnx::quantize::{quantize, CalibrationMethod, Calibrator, QParams, QuantizeOptions};
use lalarand_onnx::{encode_model, ModelProto};
use std::collections::{HashMap, HashSet};

/// Activation ranges of every fp32 tensor of the model.
pub type Ranges = HashMap<String, (f32, f32)>;

/// Runs the fp32 model on `inputs` (each `(dims, values)`) with every intermediate tensor as an
/// output and returns the calibrated range of each.
pub fn calibrate(staged: &StagedModel, inputs: &[(Vec<usize>, Vec<f32>)], method: CalibrationMethod) -> Result<Ranges> {
    calibrate_until(staged, inputs, method, &mut || false)
}

/// [`calibrate`], asking `stop` before every batch: `true` ends it with
/// [`EngineError::Interrupted`] saying how far it got.
pub fn calibrate_until(
    staged: &StagedModel,
    inputs: &[(Vec<usize>, Vec<f32>)],
    method: CalibrationMethod,
    stop: &mut dyn FnMut() -> bool,
) -> Result<Ranges> {
    if inputs.is_empty() {
        return Err(EngineError::tensor("calibration", &staged.input_name, "no calibration inputs given"));
    }
    let graph = staged.model.graph.as_ref().expect("a staged model has a graph");
    // The input is observed from the data itself: ONNX Runtime does not return a graph input
    // that is also listed as an output reliably (its buffer came back uninitialized).
    let names: Vec<String> =
        graph.node.iter().flat_map(|n| n.output.iter().cloned()).filter(|n| !n.is_empty()).collect();
    let probe = encode_model(&partition::with_outputs(&staged.model, &names));
    let mut runner = StageRunner::new("(calibration)", Mode::CpuFp32, &probe, &ExecConfig::default())?;
    let mut cal = Calibrator::new(method).map_err(|e| EngineError::graph("calibration", e))?;
    for (k, (dims, data)) in inputs.iter().enumerate() {
        if stop() {
            return Err(EngineError::Interrupted(format!(
                "stop requested during int8 calibration ({k} of {} batches done)",
                inputs.len()
            )));
        }
        staged.check_input(dims, &format!("calibration input {k}"))?;
        cal.observe(&staged.input_name, data);
        let mut t = Tensors::new();
        t.insert(staged.input_name.clone(), f32_value(dims, data.clone())?);
        runner.run(&mut t)?;
        for (name, v) in t.iter().filter(|(n, _)| **n != staged.input_name) {
            // Shape computations (int64) are not activations.
            if let Ok((_, data)) = v.try_extract_tensor::<f32>() {
                cal.observe(name, data);
            }
        }
    }
    Ok(cal.ranges())
}

/// How a tensor crosses a stage boundary: fp32, or uint8 with these parameters.
pub type Repr = Option<QParams>;

/// One stage's int8 model and the representation of its boundary tensors.
#[derive(Debug, Clone)]
pub struct Int8Stage {
    pub bytes: Vec<u8>,
    pub inputs: HashMap<String, Repr>,
    pub outputs: HashMap<String, Repr>,
}

/// The int8 models of all stages; `None` where the stage could not be quantized (with why).
#[derive(Debug, Clone, Default)]
pub struct Int8Stages {
    pub stages: Vec<Result<Int8Stage, String>>,
}

impl Int8Stages {
    pub fn get(&self, i: usize) -> Option<&Int8Stage> {
        self.stages.get(i).and_then(|s| s.as_ref().ok())
    }
}

/// Quantizes every stage with `ranges`. A stage is first tried with uint8 inputs and outputs
/// (cheap handover between int8 stages), then with fp32 boundaries; a stage where both fail
/// has no int8 mode, with a warning.
pub fn quantize_stages(staged: &StagedModel, ranges: &Ranges) -> Int8Stages {
    match quantize_stages_until(staged, ranges, &mut || false) {
        Ok(q) => q,
        Err(e) => unreachable!("only a stop request fails quantize_stages_until: {e}"),
    }
}

/// [`quantize_stages`], asking `stop` before every stage: `true` ends it with
/// [`EngineError::Interrupted`].
pub fn quantize_stages_until(
    staged: &StagedModel,
    ranges: &Ranges,
    stop: &mut dyn FnMut() -> bool,
) -> Result<Int8Stages> {
    // The uint8 parameters of each cut tensor as its producer writes it, so consumers agree.
    let mut canonical: HashMap<String, QParams> = HashMap::new();
    let mut stages = Vec::with_capacity(staged.stage_count());
    for (i, stage) in staged.partition.stages.iter().enumerate() {
        if stop() {
            return Err(EngineError::Interrupted(format!(
                "stop requested while quantizing the stages ({i} of {} done)",
                staged.stage_count()
            )));
        }
        let fp32: ModelProto = lalarand_onnx::decode_model(staged.stage_fp32(i)).expect("stage models decode");
        let param = |t: &str, canonical: &HashMap<String, QParams>| -> Option<QParams> {
            canonical.get(t).copied().or_else(|| ranges.get(t).and_then(|&(lo, hi)| QParams::from_range(lo, hi).ok()))
        };
        let is_f32 = |t: &str| staged.types.get(t).is_some_and(|ti| ti.elem_type == 1);
        let u8_in: HashMap<String, QParams> = stage
            .inputs
            .iter()
            .filter(|t| is_f32(t))
            .filter_map(|t| param(t, &canonical).map(|q| (t.clone(), q)))
            .collect();
        let u8_out: HashSet<String> =
            stage.outputs.iter().filter(|t| is_f32(t) && ranges.contains_key(*t)).cloned().collect();
        let attempts = [QuantizeOptions { uint8_inputs: u8_in, uint8_outputs: u8_out }, QuantizeOptions::default()];
        let mut result = Err(String::new());
        for opts in &attempts {
            match quantize(&fp32, ranges, opts) {
                Ok(q) => {
                    let inputs = stage.inputs.iter().map(|t| (t.clone(), opts.uint8_inputs.get(t).copied())).collect();
                    let outputs: HashMap<String, Repr> = stage
                        .outputs
                        .iter()
                        .map(|t| (t.clone(), opts.uint8_outputs.contains(t).then(|| q.output_qparams[t])))
                        .collect();
                    let mut model = q.model;
                    let rank4 = |t: &&String| staged.types.get(t.as_str()).is_some_and(|ti| ti.dims.len() == 4);
                    // In the stage's order, so that the model bytes are reproducible.
                    let ins: Vec<&String> =
                        stage.inputs.iter().filter(|t| opts.uint8_inputs.contains_key(*t)).filter(rank4).collect();
                    let outs: Vec<&String> =
                        stage.outputs.iter().filter(|t| opts.uint8_outputs.contains(*t)).filter(rank4).collect();
                    nhwc_boundaries(&mut model, &ins, &outs);
                    if let ([i], [o]) = (ins.as_slice(), outs.as_slice()) {
                        if opts.uint8_inputs.get(*i) == q.output_qparams.get(*o) {
                            nhwc_maxpool(&mut model);
                        }
                    }
                    result = Ok(Int8Stage { bytes: encode_model(&model), inputs, outputs });
                    break;
                }
                Err(e) => result = Err(e.to_string()),
            }
        }
        match &result {
            Ok(s) => {
                for (t, q) in &s.outputs {
                    if let Some(q) = q {
                        canonical.insert(t.clone(), *q);
                    }
                }
            }
            Err(e) => tracing::warn!("stage {:?} has no cpu-int8 mode: {e}", stage.name),
        }
        stages.push(result);
    }
    Ok(Int8Stages { stages })
}

const TO_NHWC: [i64; 4] = [0, 2, 3, 1];
const TO_NCHW: [i64; 4] = [0, 3, 1, 2];

/// Makes the rank-4 uint8 graph inputs `ins` and outputs `outs` NHWC, with Transposes to and
/// from the NCHW tensors the graph computes on.
fn nhwc_boundaries(model: &mut ModelProto, ins: &[&String], outs: &[&String]) {
    use lalarand_onnx::builder::{attr, node};
    let g = model.graph.as_mut().expect("quantized models have a graph");
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
fn nhwc_maxpool(model: &mut ModelProto) {
    use lalarand_onnx::proto::OperatorSetIdProto;
    let g = model.graph.as_mut().expect("quantized models have a graph");
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type()).collect();
    if ops != ["Transpose", "DequantizeLinear", "MaxPool", "QuantizeLinear", "Transpose"] {
        return;
    }
    let pool = &g.node[2];
    let mut n = lalarand_onnx::builder::node(
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

fn permute_shape(vi: &mut lalarand_onnx::ValueInfoProto, perm: [i64; 4]) {
    use lalarand_onnx::proto::type_proto::Value as T;
    if let Some(T::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        if let Some(shape) = t.shape.as_mut().filter(|s| s.dim.len() == 4) {
            let old = shape.dim.clone();
            shape.dim = perm.iter().map(|&p| old[p as usize].clone()).collect();
        }
    }
}

/// A model converting tensor `name` (dims from `staged.types`) between fp32 and uint8, in the
/// handover layout (NHWC for feature maps, see the module doc).
pub fn conversion_model(staged: &StagedModel, name: &str, q: QParams, to_u8: bool) -> Result<Vec<u8>> {
    use lalarand_onnx::builder::GraphBuilder;
    use lalarand_onnx::proto::tensor_proto::DataType;
    let info = staged
        .types
        .get(name)
        .ok_or_else(|| EngineError::tensor("building a (de)quantizer", name, "not a stage boundary"))?;
    let dims: Vec<i64> = info.dims.iter().map(|d| d.unwrap_or(-1)).collect();
    let (from, to) = if to_u8 { (DataType::Float, DataType::Uint8) } else { (DataType::Uint8, DataType::Float) };
    let nhwc: Vec<i64> =
        if dims.len() == 4 { TO_NHWC.iter().map(|&p| dims[p as usize]).collect() } else { dims.clone() };
    let mut b = GraphBuilder::new(if to_u8 { "quantize" } else { "dequantize" });
    b.initializer(lalarand_onnx::tensor::f32_tensor("scale", &[], &[q.scale]));
    b.initializer(lalarand_onnx::tensor::u8_tensor("zp", &[], &[q.zero_point]));
    let transpose = |b: &mut GraphBuilder, x: &str, y: &str, perm: [i64; 4]| {
        b.node("Transpose", "layout", &[x], &[y], vec![lalarand_onnx::builder::attr::ints("perm", &perm)]);
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
    Ok(encode_model(&m))
}

fn symbolic_batch(m: &mut ModelProto) {
    use lalarand_onnx::proto::tensor_shape_proto::dimension::Value;
    use lalarand_onnx::proto::type_proto::Value as T;
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
