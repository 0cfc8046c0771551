//! int8 stage models: calibration by running the fp32 model, then lalarand-onnx's QDQ rewrite
//! of every stage.
//!
//! Consecutive int8 stages hand over uint8 tensors (no dequantize/quantize between them); a
//! tensor crossing from fp32 to int8 or back is converted by the pipeline, which is the
//! `quantize_in` / `dequantize_in` cost of the profile.

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
    if inputs.is_empty() {
        return Err(EngineError::tensor("calibration", &staged.input_name, "no calibration inputs given"));
    }
    let graph = staged.model.graph.as_ref().expect("a staged model has a graph");
    let names: Vec<String> = std::iter::once(staged.input_name.clone())
        .chain(graph.node.iter().flat_map(|n| n.output.iter().cloned()))
        .filter(|n| !n.is_empty())
        .collect();
    let probe = encode_model(&partition::with_outputs(&staged.model, &names));
    let mut runner = StageRunner::new("(calibration)", Mode::CpuFp32, &probe, &ExecConfig::default())?;
    let mut cal = Calibrator::new(method).map_err(|e| EngineError::graph("calibration", e))?;
    for (k, (dims, data)) in inputs.iter().enumerate() {
        staged.check_input(dims, &format!("calibration input {k}"))?;
        let mut t = Tensors::new();
        t.insert(staged.input_name.clone(), f32_value(dims, data.clone())?);
        runner.run(&mut t)?;
        for (name, v) in &t {
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
    // The uint8 parameters of each cut tensor as its producer writes it, so consumers agree.
    let mut canonical: HashMap<String, QParams> = HashMap::new();
    let mut stages = Vec::with_capacity(staged.stage_count());
    for (i, stage) in staged.partition.stages.iter().enumerate() {
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
                    result = Ok(Int8Stage { bytes: encode_model(&q.model), inputs, outputs });
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
    Int8Stages { stages }
}

/// A one-node model converting tensor `name` (dims from `staged.types`) between fp32 and uint8.
pub fn conversion_model(staged: &StagedModel, name: &str, q: QParams, to_u8: bool) -> Result<Vec<u8>> {
    use lalarand_onnx::builder::GraphBuilder;
    use lalarand_onnx::proto::tensor_proto::DataType;
    let info = staged
        .types
        .get(name)
        .ok_or_else(|| EngineError::tensor("building a (de)quantizer", name, "not a stage boundary"))?;
    let dims: Vec<i64> = info.dims.iter().map(|d| d.unwrap_or(-1)).collect();
    let (from, to) = if to_u8 { (DataType::Float, DataType::Uint8) } else { (DataType::Uint8, DataType::Float) };
    let mut b = GraphBuilder::new(if to_u8 { "quantize" } else { "dequantize" });
    b.input("x", from, &dims);
    b.initializer(lalarand_onnx::tensor::f32_tensor("scale", &[], &[q.scale]));
    b.initializer(lalarand_onnx::tensor::u8_tensor("zp", &[], &[q.zero_point]));
    b.node(if to_u8 { "QuantizeLinear" } else { "DequantizeLinear" }, "convert", &["x", "scale", "zp"], &["y"], vec![]);
    b.output("y", to, &dims);
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
