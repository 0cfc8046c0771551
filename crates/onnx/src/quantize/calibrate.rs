//! Calibration: per-tensor activation ranges from fp32 runs of the model.

use std::collections::HashMap;

use crate::OnnxError;

/// How a tensor's range is chosen from the values observed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CalibrationMethod {
    /// The smallest and largest value seen.
    MinMax,
    /// The `(100 - p)`-th and `p`-th percentiles of the values seen (e.g. `Percentile(99.99)`),
    /// which ignores rare outliers that would otherwise stretch the quantization step.
    Percentile(f32),
}

/// Bins of the histogram behind [`CalibrationMethod::Percentile`]; ORT's histogram calibrator
/// uses 2048. More bins give a finer threshold at 8 bytes of memory each per tensor.
const BINS: usize = 4096;

/// Accumulates statistics of named fp32 tensors over calibration runs.
#[derive(Debug, Clone)]
pub struct Calibrator {
    method: CalibrationMethod,
    stats: HashMap<String, Stats>,
}

#[derive(Debug, Clone)]
struct Stats {
    min: f32,
    max: f32,
    histogram: Option<Histogram>,
}

/// A histogram over `[lo, hi)` whose range doubles (merging bins pairwise) when values fall
/// outside it, so it never needs the global range in advance.
#[derive(Debug, Clone)]
struct Histogram {
    lo: f64,
    width: f64,
    counts: Vec<u64>,
}

impl Histogram {
    fn new(min: f32, max: f32) -> Self {
        let span = ((max - min) as f64).max(1e-6);
        Histogram { lo: min as f64, width: span * 1.0001 / BINS as f64, counts: vec![0; BINS] }
    }

    fn hi(&self) -> f64 {
        self.lo + self.width * BINS as f64
    }

    /// Doubles the range until it covers `[min, max]`, growing towards the side that needs it.
    fn cover(&mut self, min: f64, max: f64) {
        while min < self.lo || max >= self.hi() {
            let mut merged = vec![0; BINS];
            let grow_down = min < self.lo;
            for (i, c) in self.counts.iter().enumerate() {
                let j = if grow_down { BINS / 2 + i / 2 } else { i / 2 };
                merged[j] += c;
            }
            if grow_down {
                self.lo -= self.width * BINS as f64;
            }
            self.width *= 2.0;
            self.counts = merged;
        }
    }

    fn add(&mut self, v: f32) {
        let i = ((v as f64 - self.lo) / self.width) as usize;
        self.counts[i.min(BINS - 1)] += 1;
    }

    /// The value below which a `fraction` of the observations lie (bin upper edge).
    fn quantile(&self, fraction: f64) -> f64 {
        let total: u64 = self.counts.iter().sum();
        let target = (fraction * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return self.lo + self.width * (i + 1) as f64;
            }
        }
        self.hi()
    }
}

impl Calibrator {
    /// A calibrator using `method`; a percentile must lie in `(50, 100]`.
    pub fn new(method: CalibrationMethod) -> Result<Self, OnnxError> {
        if let CalibrationMethod::Percentile(p) = method {
            if !(p > 50.0 && p <= 100.0) {
                return Err(OnnxError::Quantize {
                    reason: format!("percentile {p} is outside (50, 100]; fix: use e.g. 99.99"),
                });
            }
        }
        Ok(Calibrator { method, stats: HashMap::new() })
    }

    pub fn method(&self) -> CalibrationMethod {
        self.method
    }

    /// Adds the values of tensor `name` from one run. Non-finite values are ignored: they carry
    /// no usable range and would make every quantization step infinite.
    pub fn observe(&mut self, name: &str, data: &[f32]) {
        let finite = || data.iter().copied().filter(|v| v.is_finite());
        let Some(min) = finite().reduce(f32::min) else { return };
        let max = finite().fold(min, f32::max);
        let percentile = matches!(self.method, CalibrationMethod::Percentile(_));
        let stats = self.stats.entry(name.to_string()).or_insert_with(|| Stats {
            min,
            max,
            histogram: percentile.then(|| Histogram::new(min, max)),
        });
        stats.min = stats.min.min(min);
        stats.max = stats.max.max(max);
        if let Some(h) = &mut stats.histogram {
            h.cover(min as f64, max as f64);
            finite().for_each(|v| h.add(v));
        }
    }

    /// Names of the tensors observed so far.
    pub fn tensors(&self) -> impl Iterator<Item = &str> {
        self.stats.keys().map(String::as_str)
    }

    /// The `(min, max)` range of every observed tensor.
    pub fn ranges(&self) -> HashMap<String, (f32, f32)> {
        self.stats.iter().map(|(name, s)| (name.clone(), self.range(s))).collect()
    }

    fn range(&self, s: &Stats) -> (f32, f32) {
        match (self.method, &s.histogram) {
            (CalibrationMethod::Percentile(p), Some(h)) => {
                let tail = (100.0 - p as f64) / 100.0;
                // Bin edges can overshoot the data: never widen past what was seen.
                let lo = if tail == 0.0 { s.min } else { (h.quantile(tail) as f32 - h.width as f32).max(s.min) };
                let hi = (h.quantile(1.0 - tail) as f32).min(s.max);
                (lo.min(hi), hi)
            }
            _ => (s.min, s.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_spans_all_batches_and_ignores_non_finite_values() {
        let mut c = Calibrator::new(CalibrationMethod::MinMax).unwrap();
        c.observe("a", &[0.5, -1.0, f32::NAN]);
        c.observe("a", &[3.0, f32::INFINITY]);
        c.observe("b", &[f32::NAN]);
        let r = c.ranges();
        assert_eq!(r["a"], (-1.0, 3.0));
        assert!(!r.contains_key("b"), "a tensor with no finite value has no range");
    }

    #[test]
    fn percentile_drops_rare_outliers() {
        let mut c = Calibrator::new(CalibrationMethod::Percentile(99.9)).unwrap();
        // 100,000 values spread over [0, 1), then one outlier at 1000 in a later batch.
        let values: Vec<f32> = (0..100_000).map(|i| i as f32 / 100_000.0).collect();
        c.observe("x", &values[..50_000]);
        c.observe("x", &values[50_000..]);
        c.observe("x", &[1000.0]);
        let (lo, hi) = c.ranges()["x"];
        assert!((0.0..0.01).contains(&lo), "lo {lo}");
        // The outlier grew the histogram to ~1000 wide (bins of ~0.25): the threshold lands at
        // the first bin's edge, far below the outlier.
        assert!((0.99..1.3).contains(&hi), "hi {hi}");
        let mut m = Calibrator::new(CalibrationMethod::MinMax).unwrap();
        m.observe("x", &values);
        m.observe("x", &[1000.0]);
        assert_eq!(m.ranges()["x"], (0.0, 1000.0));
    }

    #[test]
    fn percentile_of_a_symmetric_distribution_is_symmetric() {
        let mut c = Calibrator::new(CalibrationMethod::Percentile(99.0)).unwrap();
        let values: Vec<f32> = (-50_000..50_000).map(|i| i as f32 / 50_000.0).collect();
        c.observe("x", &values);
        let (lo, hi) = c.ranges()["x"];
        assert!((lo + 0.98).abs() < 0.01 && (hi - 0.98).abs() < 0.01, "({lo}, {hi})");
    }

    #[test]
    fn bad_percentiles_are_rejected() {
        for p in [0.0, 50.0, 100.5, f32::NAN] {
            assert!(Calibrator::new(CalibrationMethod::Percentile(p)).is_err(), "{p}");
        }
        assert!(Calibrator::new(CalibrationMethod::Percentile(100.0)).is_ok());
    }
}
