//! The cold-run policy: how many of a stage's timed runs start with evicted caches.

/// How many of a stage's timed runs start with evicted caches: the first ones, at least `min`,
/// at most `max`, and in between until their max is stable: the last `stable` did not raise it
/// above `1 + tolerance` times the max of the cold runs before them. The timed runs after them
/// start with what the previous run left in cache.
///
/// Why: an eviction (14 ms per 64 MiB here) costs more than most stage runs, and evicting
/// before each of 100 runs per stage and mode made a zoo ResNet-18 take 71 s to profile. Cold
/// runs are what make a stage slower than warm ones, and once more of them stop raising their
/// max they only cost; a stage whose cold times keep rising (noise, a slow start) gets more.
/// The warm runs are cheap and still catch what is not about caches (an interrupt, a
/// preemption), back to back, with no eviction between them for it to land in instead. The
/// WCET is the max of all timed runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColdRuns {
    pub min: usize,
    pub max: usize,
    pub stable: usize,
    /// A rise of the max by at most this fraction counts as stable (well inside a 1.2 margin).
    pub tolerance: f64,
}

impl ColdRuns {
    /// The default floor of [`super::ProfileOptions::min_cold_runs`].
    pub const MIN_RUNS: usize = 10;
    /// Cold runs that must not raise their max for it to count as stable.
    pub const STABLE_RUNS: usize = 10;
    pub const TOLERANCE: f64 = 0.02;

    /// `min` to `max` cold runs, stable over [`Self::STABLE_RUNS`] within [`Self::TOLERANCE`].
    pub fn new(min: usize, max: usize) -> Self {
        Self { min, max, stable: Self::STABLE_RUNS, tolerance: Self::TOLERANCE }
    }

    /// How the profile's `source` says it: "all", or "the first 11 to 100 (...)".
    pub fn describe(&self) -> String {
        let least = self.min.max(self.stable + 1);
        if least >= self.max {
            return "all".into();
        }
        format!(
            "the first {least} to {} (until the last {} did not raise their max by over {:.1}%)",
            self.max,
            self.stable,
            self.tolerance * 100.0
        )
    }

    /// Whether the cold runs so far (`samples`, in order) are enough.
    pub fn enough(&self, samples: &[f64]) -> bool {
        let n = samples.len();
        if n >= self.max {
            return true;
        }
        // A stable max needs runs before the last `stable` ones to compare with.
        if n < self.min || n <= self.stable {
            return false;
        }
        let (before, last) = samples.split_at(n - self.stable);
        let max_before = before.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        last.iter().all(|&s| s <= max_before * (1.0 + self.tolerance))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At least `min` cold runs; then warm ones once the last `stable` cold runs stay within
    /// the tolerance of the max before them; a max that keeps rising stays cold to `max`.
    #[test]
    fn runs_stay_cold_until_their_max_is_stable() {
        let cold = ColdRuns { min: 4, max: 8, stable: 2, tolerance: 0.05 };
        let first_warm = |c: &ColdRuns, samples: &[f64]| (0..=samples.len()).find(|&n| c.enough(&samples[..n]));
        // Flat: warm after the floor.
        assert_eq!(first_warm(&cold, &[10.0; 8]), Some(4));
        // A rise within the tolerance is stable; one above it needs `stable` more cold runs.
        assert_eq!(first_warm(&cold, &[10.0, 10.0, 10.0, 10.4, 10.0, 10.0, 10.0, 10.0]), Some(4));
        assert_eq!(first_warm(&cold, &[10.0, 10.0, 10.0, 11.0, 10.0, 10.0, 10.0, 10.0]), Some(6));
        assert_eq!(first_warm(&cold, &[10.0, 10.0, 11.0, 10.0, 10.0, 10.0, 10.0, 10.0]), Some(5));
        // Rising all along: cold to the cap.
        let rising: Vec<f64> = (0..10).map(|k| 10.0 * 1.1f64.powi(k)).collect();
        assert_eq!(first_warm(&cold, &rising), Some(8));
        // Never fewer than stable + 1 (something before the window to compare with).
        assert_eq!(first_warm(&ColdRuns { min: 1, ..cold }, &[10.0; 8]), Some(3));
        // A floor above the cap: the cap.
        assert_eq!(first_warm(&ColdRuns::new(50, 6), &[1.0; 8]), Some(6));
        assert_eq!(ColdRuns::new(10, 11).describe(), "all");
        assert_eq!(ColdRuns::new(100, 100).describe(), "all");
        assert_eq!(
            ColdRuns::new(10, 100).describe(),
            "the first 11 to 100 (until the last 10 did not raise their max by over 2.0%)"
        );
    }
}
