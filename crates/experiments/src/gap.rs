//! Explaining the sweep's largest gap between lalarand and DART: the first generated set at a
//! utilization that lalarand schedules and DART does not, and why, placement by placement.

use crate::{set_rng, ExperimentError, SweepConfig};
use lalarand_alloc::{Outcome, Policy};
use lalarand_model::{time_to_ms, System};

/// A set lalarand schedules and DART does not, with both allocations.
pub struct GapExample {
    /// Its index among the sweep's sets at `utilization`.
    pub index: u64,
    pub utilization: f64,
    pub system: System,
    pub lalarand: Outcome,
    pub dart: Outcome,
}

/// The first of `cfg`'s sets at `utilization` (the sweep's very sets: same seed and order)
/// that lalarand schedules and DART does not; `None` if there is none.
pub fn find_gap_example(cfg: &SweepConfig, utilization: f64) -> Result<Option<GapExample>, ExperimentError> {
    let generator = cfg.generator()?;
    let allocate = |policy: Policy, system: &System| {
        policy.allocate(system, &cfg.options).map_err(|e| {
            ExperimentError::config(
                format!("--explain-gap: policy {policy}"),
                e.to_string(),
                "report it: the sweep allocated the same set",
            )
        })
    };
    for index in 0..cfg.sets_per_point as u64 {
        let system = generator.generate(utilization, &mut set_rng(cfg.seed, utilization, index))?;
        let lalarand = allocate(Policy::Lalarand, &system)?;
        let dart = allocate(Policy::Dart, &system)?;
        if lalarand.schedulable() && !dart.schedulable() {
            return Ok(Some(GapExample { index, utilization, system, lalarand, dart }));
        }
    }
    Ok(None)
}

impl GapExample {
    /// What `why.txt` says: per policy and task, its period, bound and placements as runs of
    /// equal placements ("gpu@gpu x12, cpu-fp32@cpu x3"). `seed`: the sweep's.
    pub fn explain(&self, seed: u64) -> String {
        let system = &self.system;
        let mut why = format!(
            "set {} at U = {} (seed {seed}): lalarand schedules it, dart does not.\n\n",
            self.index, self.utilization
        );
        for (name, o) in [("lalarand", &self.lalarand), ("dart", &self.dart)] {
            why += &format!("{name}:\n");
            for (i, (t, b)) in system.tasks.iter().zip(&o.analysis.tasks).enumerate() {
                let places = o.allocation.tasks[i]
                    .iter()
                    .map(|p| format!("{}@{}", p.mode, system.platform.resources[p.resource].name));
                let bound = b.bound.map_or(format!("not proven (estimate {:.3} ms)", time_to_ms(b.estimate)), |r| {
                    format!("bound {:.3} ms", time_to_ms(r))
                });
                why += &format!(
                    "  {:<12} {:<12} T = D = {:.3} ms, {bound}; {}\n",
                    t.name,
                    t.dnn.model,
                    time_to_ms(t.deadline),
                    runs(places).join(", ")
                );
            }
        }
        why
    }
}

/// Runs of equal items, as "item xN".
fn runs(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for p in items {
        match out.last_mut() {
            Some((q, n)) if *q == p => *n += 1,
            _ => out.push((p, 1)),
        }
    }
    out.iter().map(|(p, n)| format!("{p} x{n}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_placements_make_one_run() {
        let items = ["a", "a", "b", "a"].map(String::from);
        assert_eq!(runs(items), ["a x2", "b x1", "a x1"]);
    }
}
