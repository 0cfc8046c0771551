//! int8 stage models: calibration by running the fp32 model, then lalarand-onnx's QDQ rewrite
//! of every stage.
//!
//! Consecutive int8 stages hand over uint8 tensors (no dequantize/quantize between them); a
//! tensor crossing from fp32 to int8 or back is converted by the pipeline, which is the
//! `quantize_in` / `dequantize_in` cost of the profile.
//!
//! uint8 feature maps (rank 4) are handed over in NHWC layout (`lalarand_onnx::layout` says why
//! and rewrites the stages).

use crate::error::{EngineError, Result};
pub use crate::int8_stages::{
    Agreement, Int8Check, Int8Stage, Int8Stages, Repr, StageReport, CHECK_SAMPLES, MIN_STAGE_COSINE,
};
use crate::stage::{ExecConfig, StageRunner, Tensors};
use crate::staged::{Pipeline, StagedModel};
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
        if staged.sample_input().is_float() {
            cal.observe(&staged.input_name, data);
        }
        // The other graph inputs are fixed values ([`StagedModel::companions`]), not observed:
        // a range of zeros would quantize their real values to nothing.
        let mut t = staged.feed(dims, data.clone())?;
        runner.run(&mut t)?;
        for (name, v) in t.iter().filter(|(n, _)| staged.graph_input(n).is_none()) {
            // Shape computations (int64) are not activations.
            if let Ok((_, data)) = v.try_extract_tensor::<f32>() {
                cal.observe(name, data);
            }
        }
    }
    Ok(cal.ranges())
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
        // A stage of an already-quantized model that computes with the model's own int8 ops
        // already runs them in the fp32 modes: quantizing again would re-quantize their int32
        // accumulators and dequantized values. Its float stages are quantized as any other.
        if let Some(why) = staged.prequantized_stage(i) {
            stages.push(Err(why));
            reports.push(report);
            continue;
        }
        // A float graph input the samples do not fill (a recurrent state, ...) is fed fixed
        // values during calibration and has no range: its stage is refused, saying so.
        let unranged = stage.inputs.iter().find(|t| {
            staged.graph_input(t).is_some_and(|i| i.is_float()) && **t != staged.input_name && !ranges.contains_key(*t)
        });
        if let Some(t) = unranged {
            let graph = staged.model.graph.as_ref().expect("a staged model has a graph");
            let recurrent =
                stage.nodes.iter().map(|&n| &graph.node[n]).find(|n| lalarand_onnx::partition::is_recurrent(n));
            let state_of =
                recurrent.map_or(String::new(), |n| format!(" (the state of its {} `{}`)", n.op_type(), n.name()));
            result = Err(format!(
                "it reads the float graph input {t:?}{state_of}, which calibration fed fixed zeros (the samples fill {:?} only), so it has no range to quantize with; this stage runs in fp32 only",
                staged.input_name
            ));
        }
        for opts in attempts.iter().filter(|_| unranged.is_none()) {
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
                    lalarand_onnx::layout::nhwc_boundaries(&mut model, &ins, &outs);
                    if let ([i], [o]) = (ins.as_slice(), outs.as_slice()) {
                        if opts.uint8_inputs.get(*i) == q.output_qparams.get(*o) {
                            lalarand_onnx::layout::nhwc_maxpool(&mut model);
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
    let reference = Pipeline::new(staged, &vec![Mode::CpuFp32; n], None, &cfg)?;
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
                &staged.conversion_model(t, q, to_u8)?,
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
