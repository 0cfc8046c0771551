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

/// The int8 models of all stages; `Err` (with why) where the stage could not be quantized or
/// failed the build check ([`check_stages_until`]).
#[derive(Debug, Clone, Default)]
pub struct Int8Stages {
    pub stages: Vec<Result<Int8Stage, String>>,
    /// What the build found per stage (same indices as `stages`; empty where nothing was built).
    pub reports: Vec<StageReport>,
}

impl Int8Stages {
    pub fn get(&self, i: usize) -> Option<&Int8Stage> {
        self.stages.get(i).and_then(|s| s.as_ref().ok())
    }

    /// What the profile says about stage `i`'s int8 mode where there is something to say:
    /// operators kept fp32 and why, or why the stage has no int8 mode.
    pub fn note(&self, i: usize) -> Option<String> {
        let mut parts: Vec<String> = self.reports.get(i).map(|r| r.kept_fp32.clone()).unwrap_or_default();
        if let Some(Err(why)) = self.stages.get(i) {
            parts.push(format!("no cpu-int8 mode: {why}"));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// The build check's figure of stage `i`, where it ran.
    pub fn check(&self, i: usize) -> Option<&Int8Check> {
        self.reports.get(i).and_then(|r| r.check.as_ref())
    }
}

/// What building one stage's int8 model found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageReport {
    /// Operators left fp32 inside the int8 stage (`lalarand_onnx::quantize::KeptFp32`, as text).
    pub kept_fp32: Vec<String>,
    /// The stage's int8 output against its fp32 output on calibration inputs.
    pub check: Option<Int8Check>,
}

/// The smallest cosine similarity between a stage's int8 and fp32 outputs (all outputs, all
/// checked samples, flattened) for the stage to be offered in `cpu-int8`. Why 0.99: a healthy
/// 8-bit stage has a relative error of a few percent at most, a cosine above 0.999 (measured on
/// the zoo models and the MNIST classifier: lowest 0.9990, docs/evaluation.md), while the
/// failures this check exists for are far below (an output clamped to zero: 0 or undefined; the
/// silent failure reported in issue 10: 0.75). 0.99 is a relative error of about 14%, which no
/// working int8 stage comes near and which already changes a classifier's answers.
pub const MIN_STAGE_COSINE: f64 = 0.99;

/// Calibration samples the build check runs each stage on, at least: the first whole
/// calibration batches that hold this many.
pub const CHECK_SAMPLES: usize = 8;

/// A stage's (or a model's) int8 output next to its fp32 output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Int8Check {
    /// Cosine similarity of the flattened outputs: 1 where both are all zeros, 0 where one is.
    pub cosine: f64,
    /// ||int8 - fp32|| / ||fp32|| (infinite where fp32 is all zeros and int8 is not).
    pub relative_error: f64,
    pub samples: usize,
}

impl Int8Check {
    pub fn passed(&self) -> bool {
        self.cosine >= MIN_STAGE_COSINE
    }
}

/// Running sums behind an [`Int8Check`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Agreement {
    dot: f64,
    reference: f64,
    other: f64,
    error: f64,
    max_abs_diff: f64,
}

impl Agreement {
    /// Adds the values `other` computed where the reference computed `reference`.
    pub fn add(&mut self, reference: &[f32], other: &[f32]) {
        for (&a, &b) in reference.iter().zip(other) {
            let (a, b) = (a as f64, b as f64);
            self.dot += a * b;
            self.reference += a * a;
            self.other += b * b;
            self.error += (a - b) * (a - b);
            // A NaN is as far off as it gets (f64::max would skip it).
            let d = (a - b).abs();
            self.max_abs_diff = if d.is_nan() { f64::INFINITY } else { self.max_abs_diff.max(d) };
        }
    }

    pub fn cosine(&self) -> f64 {
        match (self.reference > 0.0, self.other > 0.0) {
            (false, false) => 1.0,
            (true, true) => (self.dot / (self.reference.sqrt() * self.other.sqrt())).clamp(-1.0, 1.0),
            _ => 0.0,
        }
    }

    pub fn relative_error(&self) -> f64 {
        if self.error == 0.0 {
            0.0
        } else {
            (self.error / self.reference).sqrt()
        }
    }

    pub fn max_abs_diff(&self) -> f64 {
        self.max_abs_diff
    }

    pub fn check(&self, samples: usize) -> Int8Check {
        Int8Check { cosine: self.cosine(), relative_error: self.relative_error(), samples }
    }
}

/// Quantizes every stage with `ranges`. A stage is first tried with uint8 inputs and outputs
/// (cheap handover between int8 stages), then with fp32 boundaries; a stage where both fail
/// has no int8 mode, with a warning.
///
/// The stages are not checked against fp32 here; [`build_int8`] is the whole safe path.
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
    let mut reports = Vec::with_capacity(staged.stage_count());
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
        let mut report = StageReport::default();
        for opts in &attempts {
            match quantize(&fp32, ranges, opts) {
                Ok(q) => {
                    report.kept_fp32 = q.kept_fp32.iter().map(|k| k.to_string()).collect();
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
                for k in &report.kept_fp32 {
                    tracing::info!("stage {:?}: {k}", stage.name);
                }
            }
            Err(e) => tracing::warn!("stage {:?} has no cpu-int8 mode: {e}", stage.name),
        }
        stages.push(result);
        reports.push(report);
    }
    Ok(Int8Stages { stages, reports })
}

/// The safe path to int8 stages: calibrates on `inputs` ([`calibrate_until`]), quantizes every
/// stage ([`quantize_stages_until`]) and checks every stage against its fp32 self
/// ([`check_stages_until`]); a stage that fails the check has no int8 model. `stop` as in
/// those functions.
pub fn build_int8(
    staged: &StagedModel,
    inputs: &[(Vec<usize>, Vec<f32>)],
    method: CalibrationMethod,
    stop: &mut dyn FnMut() -> bool,
) -> Result<Int8Stages> {
    let ranges = calibrate_until(staged, inputs, method, stop)?;
    let mut int8 = quantize_stages_until(staged, &ranges, stop)?;
    check_stages_until(staged, &mut int8, inputs, stop)?;
    Ok(int8)
}

/// Checks every int8 stage against its fp32 self on the first batches of `inputs` that hold
/// [`CHECK_SAMPLES`] samples: each stage's int8 model runs on the fp32 model's own inputs of that stage
/// (quantized where it reads uint8), and its outputs (dequantized) are compared with the fp32
/// stage's. A stage below [`MIN_STAGE_COSINE`] loses its int8 model (`Err` naming the figure)
/// with a warning; the figure of every checked stage is in [`Int8Stages::reports`]. `stop` is
/// asked before every sample: `true` ends it with [`EngineError::Interrupted`].
pub fn check_stages_until(
    staged: &StagedModel,
    int8: &mut Int8Stages,
    inputs: &[(Vec<usize>, Vec<f32>)],
    stop: &mut dyn FnMut() -> bool,
) -> Result<()> {
    let cfg = ExecConfig::default();
    let n = staged.stage_count();
    int8.reports.resize(n, StageReport::default());
    let reference = crate::staged::Pipeline::new(staged, &vec![Mode::CpuFp32; n], None, &cfg)?;
    // Sessions are built once per stage and boundary tensor; a stage whose int8 model does
    // not even load fails the check with that error.
    let mut runners: Vec<Option<std::result::Result<StageChecker, String>>> = (0..n).map(|_| None).collect();
    let mut sums = vec![Agreement::default(); n];
    let mut samples = 0;
    for (k, (dims, data)) in inputs.iter().enumerate() {
        if samples >= CHECK_SAMPLES {
            break;
        }
        if stop() {
            return Err(EngineError::Interrupted(format!(
                "stop requested while checking the int8 stages ({k} of {} batches done)",
                inputs.len().min(CHECK_SAMPLES)
            )));
        }
        let fp32 = reference.run_all(dims, data.clone())?;
        samples += dims.first().copied().unwrap_or(1);
        for i in 0..n {
            let Some(stage) = int8.get(i) else { continue };
            let checker = runners[i].get_or_insert_with(|| StageChecker::new(staged, i, stage, &cfg));
            if let Ok(c) = checker {
                if let Err(e) = c.compare(&fp32, &mut sums[i]) {
                    *checker = Err(e.to_string());
                }
            }
        }
    }
    for i in 0..n {
        let name = &staged.partition.stages[i].name;
        match runners[i].take() {
            None => {}
            Some(Err(e)) => {
                tracing::warn!("stage {name:?} has no cpu-int8 mode: its int8 model does not run: {e}");
                int8.stages[i] = Err(format!("its int8 model does not run: {e}"));
            }
            Some(Ok(_)) => {
                let check = sums[i].check(samples);
                int8.reports[i].check = Some(check);
                if !check.passed() {
                    let why = format!(
                        "int8 check failed: cosine {:.4} to its fp32 output (threshold {MIN_STAGE_COSINE}), relative error {:.3}, on {samples} calibration samples",
                        check.cosine, check.relative_error
                    );
                    tracing::warn!("stage {name:?} is not offered in cpu-int8: {why}");
                    int8.stages[i] = Err(why);
                }
            }
        }
    }
    Ok(())
}

/// One int8 stage's session and the (de)quantizers of its uint8 boundaries, for the check.
struct StageChecker {
    runner: StageRunner,
    /// Per input: its name and the quantizer where the stage reads it as uint8.
    inputs: Vec<(String, Option<StageRunner>)>,
    /// Dequantizers of the outputs written as uint8.
    outputs: HashMap<String, StageRunner>,
}

impl StageChecker {
    fn new(staged: &StagedModel, i: usize, stage: &Int8Stage, cfg: &ExecConfig) -> std::result::Result<Self, String> {
        let name = &staged.partition.stages[i].name;
        let converter = |t: &str, q: QParams, to_u8: bool| -> Result<StageRunner> {
            StageRunner::new(
                &format!("{name}: convert {t}"),
                Mode::CpuFp32,
                &conversion_model(staged, t, q, to_u8)?,
                cfg,
            )
        };
        let build = || -> Result<Self> {
            let runner = StageRunner::new(name, Mode::CpuInt8, &stage.bytes, cfg)?;
            let inputs = staged.partition.stages[i]
                .inputs
                .iter()
                .map(|t| {
                    Ok((t.clone(), stage.inputs.get(t).copied().flatten().map(|q| converter(t, q, true)).transpose()?))
                })
                .collect::<Result<_>>()?;
            let outputs = stage
                .outputs
                .iter()
                .filter_map(|(t, q)| q.map(|q| converter(t, q, false).map(|r| (t.clone(), r))))
                .collect::<Result<_>>()?;
            Ok(Self { runner, inputs, outputs })
        };
        build().map_err(|e| e.to_string())
    }

    /// Runs the int8 stage on the inputs the fp32 run gave it and adds its outputs, next to
    /// the fp32 run's, to `sum`.
    fn compare(&mut self, fp32: &Tensors, sum: &mut Agreement) -> Result<()> {
        let mut fed = Tensors::new();
        for (t, quantizer) in &mut self.inputs {
            let v = fp32
                .get(t)
                .ok_or_else(|| EngineError::tensor("checking int8", t.as_str(), "missing from the fp32 run"))?;
            if let Some(q) = quantizer {
                fed.insert(t.clone(), q.run_with(|_| Some(v))?.pop().expect("one output").1);
            }
        }
        for (t, v) in self.runner.run_with(|n| fed.get(n).or_else(|| fp32.get(n)))? {
            let v = match self.outputs.get_mut(&t) {
                Some(dq) => dq.run_with(|_| Some(&v))?.pop().expect("one output").1,
                None => v,
            };
            let want = fp32
                .get(&t)
                .ok_or_else(|| EngineError::tensor("checking int8", t.as_str(), "missing from the fp32 run"))?;
            // Integer outputs (shape arithmetic) are not quantized; only fp32 ones are compared.
            let Ok((_, want)) = crate::tensor::f32_data(want, &t) else { continue };
            let (_, got) = crate::tensor::f32_data(&v, &t)?;
            sum.add(want, got);
        }
        Ok(())
    }
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
