//! Time is an integer count of nanoseconds.
//!
//! Integers keep the analysis exact and its fixed points terminating; files speak in
//! microseconds (profiles) or milliseconds (task sets) and are converted by rounding *up*, so a
//! worst-case time never shrinks on its way in.

/// Nanoseconds.
pub type Time = u64;

/// Largest time a file may give (2^50 ns, about 13 days): sums over thousands of layers and
/// the analysis's products then stay far from `u64` overflow.
pub const MAX_TIME: Time = 1 << 50;

/// Whether a time read from a file (in `unit_ns` nanoseconds) is finite, non-negative and at
/// most [`MAX_TIME`].
pub fn in_range(value: f64, unit_ns: f64) -> bool {
    value.is_finite() && value >= 0.0 && value * unit_ns <= MAX_TIME as f64
}

/// Microseconds (as written in profiles) to [`Time`], rounded up.
pub fn us_to_time(us: f64) -> Time {
    ceil_ns(us * 1_000.0)
}

/// Milliseconds (as written in task sets) to [`Time`], rounded up.
pub fn ms_to_time(ms: f64) -> Time {
    ceil_ns(ms * 1_000_000.0)
}

/// Rounds nanoseconds up, except that a value within float noise of an integer is that integer:
/// a time written to a file from whole nanoseconds (8224182 ns as 8224.182 µs) reads back as
/// 8224182.000000001 and must not grow by 1 ns on every round trip.
fn ceil_ns(ns: f64) -> Time {
    let nearest = ns.round();
    if (ns - nearest).abs() <= nearest.abs() * 1e-12 {
        nearest as Time
    } else {
        ns.ceil() as Time
    }
}

pub fn time_to_us(t: Time) -> f64 {
    t as f64 / 1_000.0
}

pub fn time_to_ms(t: Time) -> f64 {
    t as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_up_and_invert() {
        assert_eq!(us_to_time(1.0001), 1_001);
        assert_eq!(ms_to_time(2.5), 2_500_000);
        assert_eq!(time_to_us(us_to_time(12.0)), 12.0);
        assert_eq!(time_to_ms(ms_to_time(40.0)), 40.0);
    }

    #[test]
    fn whole_nanoseconds_survive_a_round_trip_through_microseconds() {
        for t in [8_224_182, 1, 999, 1_000_001, 123_456_789_012, 1 << 50] {
            assert_eq!(us_to_time(time_to_us(t)), t, "{t} ns");
            assert_eq!(ms_to_time(time_to_ms(t)), t, "{t} ns");
        }
        let mut t: Time = 7;
        while t < 1 << 40 {
            assert_eq!(us_to_time(time_to_us(t)), t, "{t} ns");
            t = t * 3 + 1;
        }
    }
}
