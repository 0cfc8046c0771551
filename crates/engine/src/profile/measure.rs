//! The timing loop: warm-up, then timed runs (the first ones cold), stoppable.

use super::cache::CacheEvictor;
use super::cold_runs::ColdRuns;
use crate::error::{EngineError, Result};
use std::time::Instant;

/// How often a measurement asks whether to stop: a stage timed many times (or with caches to
/// evict before each run) can take minutes, and a Ctrl-C must not wait for it.
pub(crate) const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs `f` `warmup` times, then `runs` times timed, and returns the timed durations in
/// microseconds; with `cold`, the caches are evicted before the first timed runs until
/// [`ColdRuns::enough`]. `stop` is asked every [`STOP_POLL`]; `true` abandons the measurement.
pub(crate) fn measure(
    warmup: usize,
    runs: usize,
    mut cold: Option<(ColdRuns, &mut CacheEvictor)>,
    stop: &dyn Fn() -> bool,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    let mut asked = Instant::now();
    let mut check = || {
        if asked.elapsed() < STOP_POLL {
            return Ok(());
        }
        asked = Instant::now();
        match stop() {
            true => Err(EngineError::Interrupted("stop requested while a stage was being timed".into())),
            false => Ok(()),
        }
    };
    for _ in 0..warmup {
        check()?;
        f()?;
    }
    let mut out = Vec::with_capacity(runs.min(1 << 16));
    for _ in 0..runs {
        check()?;
        // Cold runs come first, so `out` holds only cold ones until they are enough.
        if cold.as_ref().is_some_and(|(c, _)| c.enough(&out)) {
            cold = None;
        }
        if let Some((_, e)) = cold.as_mut() {
            e.evict();
        }
        let t = Instant::now();
        f()?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every timed run is returned, cold or warm; a stop request ends the measurement.
    #[test]
    fn measure_times_every_run_cold_ones_first() {
        let mut evictor = CacheEvictor::with_capacity(1 << 10);
        let mut calls = 0;
        let cold = Some((ColdRuns::new(3, 20), &mut evictor));
        let samples = measure(2, 20, cold, &|| false, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((samples.len(), calls), (20, 22));
        let samples = measure(0, 5, None, &|| false, || Ok(())).unwrap();
        assert_eq!(samples.len(), 5);
        let asked = std::cell::Cell::new(false);
        let slow = || {
            std::thread::sleep(STOP_POLL / 20);
            Ok(())
        };
        let stopped = measure(0, 1_000, None, &|| asked.replace(true), slow);
        assert!(matches!(stopped, Err(EngineError::Interrupted(_))), "{stopped:?}");
    }
}
