//! The int8 models of a model's stages, what building and checking them found, and the
//! agreement figure the check uses.

use lalarand_onnx::quantize::QParams;
use std::collections::HashMap;

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
/// failed the build check ([`crate::quant::check_stages_until`]).
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
