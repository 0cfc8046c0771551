//! The int8 calibration saved with a profile ([`Int8Calibration`]): recorded by the profiler
//! from the ranges its `cpu-int8` stages were built with, and turned back into the same
//! stages for every run and server, checked by a digest of the stage models.

use crate::error::{EngineError, Result};
use crate::quant::{quantize_stages, Int8Stages, Ranges};
use crate::staged::StagedModel;
use lalarand_model::{DnnProfile, Int8Calibration};
use lalarand_onnx::quantize::CalibrationMethod;
use sha2::{Digest, Sha256};

/// `percentile:99.99` or `minmax`.
pub fn method_name(method: CalibrationMethod) -> String {
    match method {
        CalibrationMethod::MinMax => "minmax".into(),
        CalibrationMethod::Percentile(p) => format!("percentile:{p}"),
    }
}

/// SHA-256 (hex) of the int8 stage models in stage order; a stage without an int8 model
/// counts as its index and the marker `none`.
pub fn int8_digest(int8: &Int8Stages) -> String {
    let mut h = Sha256::new();
    for (i, s) in int8.stages.iter().enumerate() {
        h.update((i as u64).to_le_bytes());
        match s {
            Ok(s) => {
                h.update((s.bytes.len() as u64).to_le_bytes());
                h.update(&s.bytes);
            }
            Err(_) => h.update(b"none"),
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a profile records of the calibration that built `int8` from `ranges`.
pub fn record(ranges: &Ranges, method: CalibrationMethod, samples: usize, int8: &Int8Stages) -> Int8Calibration {
    Int8Calibration {
        method: method_name(method),
        samples: samples as u64,
        int8_sha256: int8_digest(int8),
        ranges: ranges.iter().map(|(k, &(lo, hi))| (k.clone(), [lo, hi])).collect(),
    }
}

/// The int8 stages `profile` measured, rebuilt from its saved calibration: refused, with the
/// fix, when the profile has no calibration or the rebuilt stages differ from the profiled
/// ones (another model, or another quantizer).
pub fn profiled_int8_stages(staged: &StagedModel, profile: &DnnProfile, task: &str) -> Result<Int8Stages> {
    let refuse = |problem: String| {
        EngineError::Serving {
        task: task.into(),
        problem,
        fix: format!(
            "profile the model again with this version of lalarand (lalarand profile {} --out PROFILE.json), which saves the calibration with the profile",
            staged.source.display()
        ),
    }
    };
    let Some(cal) = &profile.calibration else {
        return Err(refuse(format!(
            "stages of {} run in cpu-int8, but their profile (model {:?}) has no saved int8 calibration, so the int8 stages that were profiled cannot be rebuilt",
            staged.source.display(),
            profile.model
        )));
    };
    let ranges: Ranges = cal.ranges.iter().map(|(k, r)| (k.clone(), (r[0], r[1]))).collect();
    let int8 = quantize_stages(staged, &ranges);
    let digest = int8_digest(&int8);
    if digest != cal.int8_sha256 {
        return Err(refuse(format!(
            "the int8 stages rebuilt from the profile's calibration ({}, {} samples) differ from the profiled ones (sha256 {digest}, the profile has {})",
            cal.method, cal.samples, cal.int8_sha256
        )));
    }
    Ok(int8)
}
