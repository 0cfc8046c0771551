//! Top-1 accuracy of a model under an allocation (which stages run int8) on a labeled dataset.
//!
//! gpu stages are evaluated as cpu-fp32: both are fp32 and give the same classes.

use crate::dataset::Dataset;
use crate::error::{EngineError, Result};
use crate::output_checks;
use crate::quant::{build_int8, Int8Stages};
use crate::stage::ExecConfig;
use crate::staged::{Pipeline, StagedModel};
use crate::tensor::argmax_rows;
use lalarand_model::Mode;
use lalarand_onnx::quantize::CalibrationMethod;

/// Samples per inference call where the model's batch is symbolic.
const BATCH: usize = 100;

/// Samples per inference call: [`BATCH`], or the batch the model's input fixes (a model loaded
/// with `--input-shape`, or exported at batch 1, runs only that many at a time).
fn rows_per_run(staged: &StagedModel) -> usize {
    match staged.input_dims.first() {
        Some(Some(b)) if *b > 0 => *b as usize,
        _ => BATCH,
    }
}

/// Calibration of the int8 stages from a dataset.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// Samples of every class used (taken from the training rows).
    pub per_class: usize,
    pub method: CalibrationMethod,
}

impl Default for Calibration {
    fn default() -> Self {
        // 20 per class: 200 rows for a 10-class dataset, as onnxruntime's own MNIST recipe.
        Self { per_class: 20, method: CalibrationMethod::Percentile(99.99) }
    }
}

/// Per-sample input dims of a staged model (its input without the batch).
fn sample_dims(staged: &StagedModel) -> Vec<usize> {
    staged.input_shape(1)[1..].to_vec()
}

/// Calibrates on `rows` of `data`, quantizes every stage and checks it ([`build_int8`]).
pub fn int8_stages(
    staged: &StagedModel,
    data: &Dataset,
    rows: &[usize],
    method: CalibrationMethod,
) -> Result<Int8Stages> {
    let dims = sample_dims(staged);
    let batches: Vec<(Vec<usize>, Vec<f32>)> =
        rows.chunks(rows_per_run(staged)).map(|c| data.batch(c, &dims)).collect::<Result<_>>()?;
    build_int8(staged, &batches, method, &mut || false)
}

/// Top-1 accuracy (percent) of the pipeline with `modes` on `rows`.
pub fn top1(
    staged: &StagedModel,
    int8: &Int8Stages,
    modes: &[Mode],
    data: &Dataset,
    rows: &[usize],
    cfg: &ExecConfig,
) -> Result<f64> {
    top1_until(staged, int8, modes, data, rows, cfg, &mut || false)
}

/// [`top1`], asking `stop` before every batch.
fn top1_until(
    staged: &StagedModel,
    int8: &Int8Stages,
    modes: &[Mode],
    data: &Dataset,
    rows: &[usize],
    cfg: &ExecConfig,
    stop: &mut dyn FnMut() -> bool,
) -> Result<f64> {
    if rows.is_empty() {
        return Err(EngineError::Dataset {
            file: data.file.clone(),
            row: 0,
            column: 0,
            problem: "no rows to evaluate".into(),
        });
    }
    let modes: Vec<Mode> = modes.iter().map(|&m| if m == Mode::Gpu { Mode::CpuFp32 } else { m }).collect();
    let pipeline = Pipeline::new(staged, &modes, Some(int8), cfg)?;
    let dims = sample_dims(staged);
    let mut correct = 0usize;
    for chunk in rows.chunks(rows_per_run(staged)) {
        if stop() {
            return Err(EngineError::Interrupted("stop requested while measuring int8 accuracy costs".into()));
        }
        let (bdims, input) = data.batch(chunk, &dims)?;
        let (shape, out) = pipeline.run(&bdims, input)?;
        let classes = *shape.last().unwrap_or(&1);
        data.check_labels(classes)?;
        let predicted = argmax_rows(&out, classes);
        correct += chunk.iter().zip(&predicted).filter(|(&i, &p)| data.labels[i] == p).count();
    }
    Ok(100.0 * correct as f64 / rows.len() as f64)
}

/// What [`evaluate`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyReport {
    pub samples: usize,
    pub fp32_top1: f64,
    /// Top-1 under the allocation.
    pub top1: f64,
    /// Names of the stages that ran int8.
    pub int8_stages: Vec<String>,
}

/// Accuracy of `staged` with `modes` (one per stage) on the test rows of `data`, next to fp32.
/// The dataset is split per class (`train_per_class` training rows of each class first, as the
/// MNIST set in testdata); int8 stages are calibrated on training rows.
pub fn evaluate(
    staged: &StagedModel,
    modes: &[Mode],
    data: &Dataset,
    train_per_class: usize,
    calibration: &Calibration,
    cfg: &ExecConfig,
) -> Result<AccuracyReport> {
    let int8 = if modes.contains(&Mode::CpuInt8) {
        let (train, _) = data.split_per_class(train_per_class);
        int8_stages(staged, data, &data.take_per_class(&train, calibration.per_class), calibration.method)?
    } else {
        Int8Stages::default()
    };
    evaluate_with_int8(staged, modes, data, train_per_class, &int8, cfg)
}

/// [`evaluate`] with int8 stages already built (e.g. rebuilt from a profile's saved
/// calibration, [`crate::calibration::profiled_int8_stages`]) instead of calibrating anew.
pub fn evaluate_with_int8(
    staged: &StagedModel,
    modes: &[Mode],
    data: &Dataset,
    train_per_class: usize,
    int8: &Int8Stages,
    cfg: &ExecConfig,
) -> Result<AccuracyReport> {
    let (_, test) = data.split_per_class(train_per_class);
    let fp32 = vec![Mode::CpuFp32; staged.stage_count()];
    Ok(AccuracyReport {
        samples: test.len(),
        fp32_top1: top1(staged, int8, &fp32, data, &test, cfg)?,
        top1: top1(staged, int8, modes, data, &test, cfg)?,
        int8_stages: staged
            .stage_names()
            .iter()
            .zip(modes)
            .filter(|(_, m)| **m == Mode::CpuInt8)
            .map(|(n, _)| n.to_string())
            .collect(),
    })
}

/// Top-1 drop (percentage points) when stage `i` alone runs int8, for every stage; `None`
/// where the stage has no int8 model.
pub fn int8_costs(
    staged: &StagedModel,
    int8: &Int8Stages,
    data: &Dataset,
    rows: &[usize],
    cfg: &ExecConfig,
) -> Result<Vec<Option<f64>>> {
    int8_costs_until(staged, int8, data, rows, cfg, &mut || false)
}

/// [`int8_costs`], asking `stop` before every batch of every stage's evaluation: `true` ends
/// it with [`EngineError::Interrupted`].
pub fn int8_costs_until(
    staged: &StagedModel,
    int8: &Int8Stages,
    data: &Dataset,
    rows: &[usize],
    cfg: &ExecConfig,
    stop: &mut dyn FnMut() -> bool,
) -> Result<Vec<Option<f64>>> {
    let n = staged.stage_count();
    let fp32 = top1_until(staged, int8, &vec![Mode::CpuFp32; n], data, rows, cfg, stop)?;
    (0..n)
        .map(|i| {
            if int8.get(i).is_none() {
                return Ok(None);
            }
            let mut modes = vec![Mode::CpuFp32; n];
            modes[i] = Mode::CpuInt8;
            Ok(Some(fp32 - top1_until(staged, int8, &modes, data, rows, cfg, stop)?))
        })
        .collect()
}

/// One mode per stage: `cpu-int8` for the stages named in `int8`, `cpu-fp32` for the rest.
/// An unknown name is an error listing the model's stages.
pub fn modes_with_int8(staged: &StagedModel, int8: &[String]) -> Result<Vec<Mode>> {
    let names = staged.stage_names();
    if let Some(bad) = int8.iter().find(|n| !names.contains(&n.as_str())) {
        return Err(EngineError::Unsupported {
            stage: bad.clone(),
            mode: Mode::CpuInt8.to_string(),
            problem: format!("{} has no such stage; its stages are {}", staged.source.display(), names.join(", ")),
        });
    }
    Ok(names.iter().map(|n| if int8.iter().any(|i| i == n) { Mode::CpuInt8 } else { Mode::CpuFp32 }).collect())
}

/// The largest `max |chained - whole| / max |whole|` a chain of fp32 stages may show on the CPU:
/// the stage models compute what the whole model computes, up to the float reassociation of
/// ONNX Runtime's per-session graph optimisations (measured: 1e-6 .. 1e-5 on the zoo).
pub const FP32_CHAIN_TOLERANCE: f64 = 1e-4;
/// The same bound for gpu stages against the whole model on the CPU: other kernels (cuDNN),
/// other summation orders.
pub const GPU_CHAIN_TOLERANCE: f64 = 1e-3;
/// The smallest output scale the chain tolerances are taken relative to. Reassociation error
/// follows the magnitude of what a value was computed from, not the value: a sigmoid map near 0
/// comes from large negative logits, and a difference there far above the map's own scale
/// times 1e-4 can still be fp32 rounding (issue 20: a pretrained text detector's correct chain
/// was reported FAILED). Below this scale the bound is absolute (`tolerance x 1e-2`).
pub const CHAIN_SCALE_FLOOR: f64 = 1e-2;

/// Whether a chain whose largest difference to the whole model is `max_abs_diff`, on outputs
/// whose largest magnitude is `scale`, is within `tolerance` ([`FP32_CHAIN_TOLERANCE`],
/// [`GPU_CHAIN_TOLERANCE`]) of it.
pub fn chain_within(max_abs_diff: f64, scale: f64, tolerance: f64) -> bool {
    max_abs_diff <= tolerance * scale.max(CHAIN_SCALE_FLOOR)
}

/// One mode's chained run next to the whole fp32 model ([`verify`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ModeVerdict {
    pub mode: Mode,
    /// Stages that ran in `mode` (for cpu-int8, the stages offered in it; the rest ran fp32).
    pub stages_in_mode: usize,
    /// Stages not run in `mode`, with why (cpu-int8: refused by the build check or not quantized).
    pub not_in_mode: Vec<(String, String)>,
    pub samples: usize,
    /// Largest |chained - whole| over every graph output and sample.
    pub max_abs_diff: f64,
    /// Largest |whole| over the same, what `max_abs_diff` is relative to.
    pub output_scale: f64,
    /// Cosine similarity of the chained outputs to the whole model's (all outputs, all samples).
    pub cosine: f64,
    pub relative_error: f64,
    /// Classifier outputs (one graph output `[batch, classes]`): the percentage of samples
    /// whose top-1 class is the whole model's.
    pub top1_agreement: Option<f64>,
    /// Where the whole model's output hardly depends on the input
    /// ([`crate::output_checks::MIN_INPUT_DEPENDENCE`]): the cosine of the chain's deviations
    /// from the fp32 mean to the whole model's, which cpu-int8 is judged by instead.
    pub centered_cosine: Option<f64>,
    /// What the mode must meet, in words.
    pub threshold: String,
    pub passed: bool,
    /// Why it failed beyond the numbers above, or what they cannot show, in words.
    pub notes: Vec<String>,
}

/// Runs the whole model (cpu-fp32, one session) and the chain of its stages in every mode of
/// `modes` on the same `inputs` (each `(dims, values)`), and compares each chain's graph
/// outputs with the whole model's. int8 stages are built with [`build_int8`] on `calibration`;
/// the cpu-int8 chain runs every stage offered in cpu-int8 as int8 and the others as fp32.
/// Thresholds: fp32 [`FP32_CHAIN_TOLERANCE`], gpu [`GPU_CHAIN_TOLERANCE`] (max abs difference
/// relative to the output's scale), cpu-int8 a cosine of at least
/// [`crate::quant::MIN_STAGE_COSINE`], the per-stage check's own threshold.
pub fn verify(
    staged: &StagedModel,
    modes: &[Mode],
    inputs: &[(Vec<usize>, Vec<f32>)],
    calibration: &[(Vec<usize>, Vec<f32>)],
    method: CalibrationMethod,
    cfg: &ExecConfig,
) -> Result<Vec<ModeVerdict>> {
    use crate::quant::Agreement;
    use crate::stage::StageRunner;
    if inputs.is_empty() {
        return Err(EngineError::tensor("verify", &staged.input_name, "no inputs to verify on"));
    }
    let mut whole = StageRunner::new(&format!("{} (whole model)", staged.name), Mode::CpuFp32, &staged.bytes, cfg)?;
    let outputs = &staged.partition.graph_outputs;
    let mut reference = Vec::with_capacity(inputs.len());
    let mut classes = None;
    for (dims, x) in inputs {
        staged.check_input(dims, "verify input")?;
        let mut t = staged.feed(dims, x.clone())?;
        whole.run(&mut t)?;
        let mut flat = Vec::new();
        for o in outputs {
            let v = t.get(o).ok_or_else(|| EngineError::tensor("verify", o, "the whole model did not produce it"))?;
            let (shape, values) = crate::tensor::f32_values(v, o)?;
            classes = (outputs.len() == 1 && shape.len() == 2 && shape[1] >= 2).then_some(shape[1]);
            flat.extend(values);
        }
        reference.push(flat);
    }
    let dependence = output_checks::input_dependence(&reference);
    let barely_varies = dependence.is_some_and(|d| d < output_checks::MIN_INPUT_DEPENDENCE);
    let n = staged.stage_count();
    let mut verdicts = Vec::new();
    for &mode in modes {
        let (int8, chain, not_in_mode) = match mode {
            Mode::CpuInt8 => {
                let int8 = build_int8(staged, calibration, method, &mut || false)?;
                let chain: Vec<Mode> =
                    (0..n).map(|i| if int8.get(i).is_some() { Mode::CpuInt8 } else { Mode::CpuFp32 }).collect();
                let not_in: Vec<(String, String)> = (0..n)
                    .filter_map(|i| {
                        int8.stages[i].as_ref().err().map(|e| (staged.partition.stages[i].name.clone(), e.clone()))
                    })
                    .collect();
                (Some(int8), chain, not_in)
            }
            m => (None, vec![m; n], Vec::new()),
        };
        let pipeline = Pipeline::new(staged, &chain, int8.as_ref(), cfg)?;
        let mut sum = Agreement::default();
        let mut scale = 0f64;
        let mut chained = Vec::with_capacity(inputs.len());
        for ((dims, x), want) in inputs.iter().zip(&reference) {
            let held = pipeline.run_all(dims, x.clone())?;
            let mut got = Vec::with_capacity(want.len());
            for o in outputs {
                let v = held
                    .get(o)
                    .ok_or_else(|| EngineError::tensor("verify", o, "the chained stages did not produce it"))?;
                got.extend(crate::tensor::f32_values(v, o)?.1);
            }
            sum.add(want, &got);
            scale = want.iter().fold(scale, |m, v| m.max(v.abs() as f64));
            chained.push(got);
        }
        let top1_agreement = classes.map(|c| output_checks::top1_agreement(&reference, &chained, c));
        let centered_cosine = barely_varies.then(|| output_checks::centered_cosine(&reference, &chained));
        let mut notes = Vec::new();
        let (threshold, passed) = match mode {
            Mode::CpuInt8 => int8_verdict(sum.cosine(), top1_agreement, centered_cosine, dependence, &mut notes),
            m => {
                let tol = if m == Mode::Gpu { GPU_CHAIN_TOLERANCE } else { FP32_CHAIN_TOLERANCE };
                let threshold = format!("max abs diff <= {tol:e} x max(output scale, {CHAIN_SCALE_FLOOR:e})");
                (threshold, chain_within(sum.max_abs_diff(), scale, tol))
            }
        };
        verdicts.push(ModeVerdict {
            mode,
            stages_in_mode: chain.iter().filter(|m| **m == mode).count(),
            not_in_mode,
            samples: inputs.len(),
            max_abs_diff: sum.max_abs_diff(),
            output_scale: scale,
            cosine: sum.cosine(),
            relative_error: sum.relative_error(),
            top1_agreement,
            centered_cosine,
            threshold,
            passed,
            notes,
        });
    }
    Ok(verdicts)
}

/// The cpu-int8 chain's threshold in words and whether it is met: a cosine of at least
/// [`crate::quant::MIN_STAGE_COSINE`] to the whole model, taken on the deviations from the fp32
/// mean where the output hardly depends on the input ([`output_checks`]), and for a classifier
/// at most [`output_checks::MAX_TOP1_DISAGREEMENT_PCT`] of the samples with another top-1 class.
fn int8_verdict(
    cosine: f64,
    top1_agreement: Option<f64>,
    centered_cosine: Option<f64>,
    dependence: Option<f64>,
    notes: &mut Vec<String>,
) -> (String, bool) {
    use crate::quant::MIN_STAGE_COSINE;
    use output_checks::{MAX_TOP1_DISAGREEMENT_PCT, MIN_INPUT_DEPENDENCE};
    let mut threshold = format!("cosine >= {MIN_STAGE_COSINE}");
    let mut passed = cosine >= MIN_STAGE_COSINE;
    if let (Some(centered), Some(d)) = (centered_cosine, dependence) {
        threshold = format!("cosine of the deviations from the fp32 mean >= {MIN_STAGE_COSINE}");
        passed = centered >= MIN_STAGE_COSINE;
        notes.push(format!(
            "the model's output hardly depends on its input (spread across inputs {d:.1e} of its mean, under {MIN_INPUT_DEPENDENCE:e}), so the cosine of {cosine:.6} mostly compares what every input shares; on what varies, the cosine is {centered:.6}"
        ));
    }
    if let Some(agree) = top1_agreement {
        threshold += &format!(", top-1 agreement >= {}%", 100.0 - MAX_TOP1_DISAGREEMENT_PCT);
        if 100.0 - agree > MAX_TOP1_DISAGREEMENT_PCT {
            passed = false;
            notes.push(format!("top-1 class the whole model's on {agree:.1}% of the samples only"));
        }
    }
    (threshold, passed)
}

/// What an `int8_accuracy_cost` measures (the profile's `int8_cost_kind`).
pub use lalarand_model::Int8CostKind;

/// Label-free int8 cost of every stage: the effect on the model's output when that stage alone
/// runs int8, on unlabeled `inputs` (each `(dims, values)`). For a classifier output (one graph
/// output of shape `[batch, classes]`, `classes >= 2`): the percentage of inputs whose top-1
/// class differs from fp32's ([`Int8CostKind::Top1Disagreement`], percentage points like the
/// labeled top-1 drop). For any other output: `100 x (1 - cosine similarity)` of the outputs
/// (all outputs, all inputs) to fp32's ([`Int8CostKind::Distortion`]). `None` where the stage
/// has no int8 model. `stop` is asked before every stage.
pub fn label_free_costs_until(
    staged: &StagedModel,
    int8: &Int8Stages,
    inputs: &[(Vec<usize>, Vec<f32>)],
    cfg: &ExecConfig,
    stop: &mut dyn FnMut() -> bool,
) -> Result<(Int8CostKind, Vec<Option<f64>>)> {
    if inputs.is_empty() {
        return Err(EngineError::tensor("label-free int8 costs", &staged.input_name, "no inputs given"));
    }
    let n = staged.stage_count();
    let run = |modes: &[Mode], int8: Option<&Int8Stages>| {
        chained_outputs(staged, modes, int8, inputs, cfg, "label-free int8 costs")
    };
    let reference = run(&vec![Mode::CpuFp32; n], None)?;
    let classifier = crate::end_to_end::is_classifier(staged, &reference);
    let kind = if classifier { Int8CostKind::Top1Disagreement } else { Int8CostKind::Distortion };
    let mut costs = Vec::with_capacity(n);
    for i in 0..n {
        if stop() {
            return Err(EngineError::Interrupted("stop requested while measuring label-free int8 costs".into()));
        }
        if int8.get(i).is_none() {
            costs.push(None);
            continue;
        }
        let mut modes = vec![Mode::CpuFp32; n];
        modes[i] = Mode::CpuInt8;
        let got = run(&modes, Some(int8))?;
        costs.push(Some(crate::end_to_end::output_cost(kind, classifier, &reference, &got)));
    }
    Ok((kind, costs))
}

/// The graph outputs of `staged`'s chain in `modes` on `inputs` (each `(dims, values)`): one
/// `(shape, values)` per input and graph output, in that order. `context` names the caller in
/// errors.
pub fn chained_outputs(
    staged: &StagedModel,
    modes: &[Mode],
    int8: Option<&Int8Stages>,
    inputs: &[(Vec<usize>, Vec<f32>)],
    cfg: &ExecConfig,
    context: &str,
) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
    let pipeline = Pipeline::new(staged, modes, int8, cfg)?;
    let mut all = Vec::with_capacity(inputs.len());
    for (dims, x) in inputs {
        let held = pipeline.run_all(dims, x.clone())?;
        for o in &staged.partition.graph_outputs {
            let v = held.get(o).ok_or_else(|| EngineError::tensor(context, o, "not produced"))?;
            all.push(crate::tensor::f32_values(v, o)?);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pretrained detector's correct fp32 chain (1.8e-7 on a 6.7e-4 map) passes; a wrong
    /// chain on the same map, or 1e-3 off on outputs of magnitude 1, does not.
    #[test]
    fn fp32_chains_are_judged_relative_to_at_least_the_scale_floor() {
        assert!(chain_within(1.8e-7, 6.7e-4, FP32_CHAIN_TOLERANCE));
        assert!(!chain_within(6.7e-5, 6.7e-4, FP32_CHAIN_TOLERANCE), "a tenth of the map's scale off");
        assert!(chain_within(5e-5, 1.0, FP32_CHAIN_TOLERANCE));
        assert!(!chain_within(1e-3, 1.0, FP32_CHAIN_TOLERANCE));
        assert!(chain_within(5e-4, 1.0, GPU_CHAIN_TOLERANCE) && !chain_within(5e-3, 1.0, GPU_CHAIN_TOLERANCE));
    }
}
