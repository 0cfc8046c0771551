//! Top-1 accuracy of a model under an allocation (which stages run int8) on a labeled dataset.
//!
//! gpu stages are evaluated as cpu-fp32: both are fp32 and give the same classes.

use crate::dataset::Dataset;
use crate::error::{EngineError, Result};
use crate::quant::{build_int8, Int8Stages};
use crate::stage::ExecConfig;
use crate::staged::{Pipeline, StagedModel};
use crate::tensor::argmax_rows;
use lalarand_model::Mode;
use lalarand_onnx::quantize::CalibrationMethod;

/// Samples per inference call.
const BATCH: usize = 100;

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
        rows.chunks(BATCH).map(|c| data.batch(c, &dims)).collect::<Result<_>>()?;
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
    for chunk in rows.chunks(BATCH) {
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
    let (train, test) = data.split_per_class(train_per_class);
    let int8 = if modes.contains(&Mode::CpuInt8) {
        int8_stages(staged, data, &data.take_per_class(&train, calibration.per_class), calibration.method)?
    } else {
        Int8Stages::default()
    };
    let fp32 = vec![Mode::CpuFp32; staged.stage_count()];
    Ok(AccuracyReport {
        samples: test.len(),
        fp32_top1: top1(staged, &int8, &fp32, data, &test, cfg)?,
        top1: top1(staged, &int8, modes, data, &test, cfg)?,
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
