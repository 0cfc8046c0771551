//! Timing statistics of a stage's samples, and the WCET they give.

use lalarand_model::{us_to_time, Time, TimingStats};

/// Statistics of a set of samples, in microseconds.
pub fn stats(samples_us: &[f64]) -> TimingStats {
    let mut s = samples_us.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    // Nearest-rank 99th percentile.
    let p99 = if n == 0 { 0.0 } else { s[((0.99 * n as f64).ceil() as usize).clamp(1, n) - 1] };
    TimingStats {
        max_us: s.last().copied().unwrap_or(0.0),
        p99_us: p99,
        mean_us: if n == 0 { 0.0 } else { s.iter().sum::<f64>() / n as f64 },
        samples: n as u64,
    }
}

/// WCET = observed max x `margin`, rounded up.
pub(crate) fn wcet(s: &TimingStats, margin: f64) -> Time {
    // Rounded up, so the WCET is never below max x margin.
    us_to_time((s.max_us * margin * 1000.0).ceil() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_wcet() {
        let s = stats(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!((s.max_us, s.p99_us, s.mean_us, s.samples), (10.0, 10.0, 4.0, 4));
        assert_eq!(wcet(&s, 1.2), us_to_time(12.0));
        let many: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(stats(&many).p99_us, 198.0);
    }
}
