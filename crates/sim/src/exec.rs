//! Actual execution times: at most the WCET, drawn per layer instance.

use lalarand_model::Time;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ExecutionTimeModel {
    /// Every layer instance takes exactly its WCET.
    #[default]
    Wcet,
    /// Uniform in `[ceil(min_fraction * wcet), wcet]` (at least 1 ns when `wcet > 0`).
    Uniform { min_fraction: f64 },
    /// The WCET with probability `wcet_probability`, else `ceil(min_fraction * wcet)`: the
    /// extremes, which provoke non-preemptive scheduling anomalies more often than a uniform
    /// draw does.
    TwoPoint { min_fraction: f64, wcet_probability: f64 },
}

impl ExecutionTimeModel {
    pub(crate) fn validate(&self) -> Result<(), String> {
        let fraction_ok = |f: f64| (0.0..=1.0).contains(&f);
        match *self {
            Self::Wcet => Ok(()),
            Self::Uniform { min_fraction } if fraction_ok(min_fraction) => Ok(()),
            Self::TwoPoint { min_fraction, wcet_probability }
                if fraction_ok(min_fraction) && fraction_ok(wcet_probability) =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}: fractions and probabilities must lie in [0, 1]")),
        }
    }

    /// One layer instance's execution time.
    #[inline]
    pub(crate) fn draw(&self, wcet: Time, rng: &mut ChaCha8Rng) -> Time {
        // At least 1 ns for a positive WCET: zero-cost layers are the simulator's special case.
        let low = |f: f64| ((f * wcet as f64).ceil() as Time).clamp(wcet.min(1), wcet);
        match *self {
            Self::Wcet => wcet,
            Self::Uniform { min_fraction } => rng.gen_range(low(min_fraction)..=wcet),
            Self::TwoPoint { min_fraction, wcet_probability } => {
                if rng.gen_bool(wcet_probability) {
                    wcet
                } else {
                    low(min_fraction)
                }
            }
        }
    }
}

impl ExecutionTimeModel {
    /// A wake-up gap of at most `wakeup`: the full overhead under [`Self::Wcet`], else drawn
    /// from 0 up (a worker may wake at once).
    #[inline]
    pub(crate) fn draw_gap(&self, wakeup: Time, rng: &mut ChaCha8Rng) -> Time {
        match *self {
            Self::Wcet => wakeup,
            Self::Uniform { .. } => rng.gen_range(0..=wakeup),
            Self::TwoPoint { wcet_probability, .. } => {
                if rng.gen_bool(wcet_probability) {
                    wakeup
                } else {
                    0
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn draws_stay_within_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let uniform = ExecutionTimeModel::Uniform { min_fraction: 0.5 };
        let two = ExecutionTimeModel::TwoPoint { min_fraction: 0.25, wcet_probability: 0.5 };
        let mut seen_low = false;
        for _ in 0..1_000 {
            let x = uniform.draw(100, &mut rng);
            assert!((50..=100).contains(&x));
            let y = two.draw(100, &mut rng);
            assert!(y == 25 || y == 100);
            seen_low |= y == 25;
        }
        assert!(seen_low);
        assert_eq!(ExecutionTimeModel::Wcet.draw(7, &mut rng), 7);
        assert_eq!(uniform.draw(0, &mut rng), 0);
        let zero = ExecutionTimeModel::TwoPoint { min_fraction: 0.0, wcet_probability: 0.0 };
        assert_eq!(zero.draw(5, &mut rng), 1);
        assert!(ExecutionTimeModel::Uniform { min_fraction: 1.5 }.validate().is_err());
    }
}
