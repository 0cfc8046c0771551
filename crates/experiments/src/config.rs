//! What a schedulability sweep runs: task-set shape, utilization points, policies, options.

use crate::error::ExperimentError;
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_model::library::{artifact_profiles, ArtifactSet, Int8Model};
use lalarand_model::{DnnProfile, Mode, Platform};
use serde::Serialize;
use std::sync::Arc;

/// Where the generator draws DNNs from.
#[derive(Debug, Clone)]
pub enum ProfileLibrary {
    /// The LaLaRAND artifact's published times; `int8` models a `cpu-int8` mode per layer.
    Artifact { set: ArtifactSet, int8: Option<Int8Model> },
    /// Any profiles, e.g. measured ones; `name` labels reports.
    Custom { name: String, profiles: Vec<Arc<DnnProfile>> },
}

impl Default for ProfileLibrary {
    fn default() -> Self {
        Self::Artifact { set: ArtifactSet::A, int8: Some(Int8Model::default()) }
    }
}

impl ProfileLibrary {
    pub fn profiles(&self) -> Vec<Arc<DnnProfile>> {
        match self {
            Self::Artifact { set, int8 } => artifact_profiles(*set, *int8).into_iter().map(Arc::new).collect(),
            Self::Custom { profiles, .. } => profiles.clone(),
        }
    }

    /// The profiles with every `cpu-fp32` and `cpu-int8` time divided by `cpu_speedup` (rounded
    /// up): a data-parallel cpu node modelled from one-thread profiles (see
    /// [`SweepConfig::cpu_speedup`]).
    pub fn profiles_scaled(&self, cpu_speedup: Option<f64>) -> Vec<Arc<DnnProfile>> {
        let profiles = self.profiles();
        let Some(s) = cpu_speedup else { return profiles };
        profiles
            .into_iter()
            .map(|p| {
                let mut p = (*p).clone();
                for layer in &mut p.layers {
                    for mode in [Mode::CpuFp32, Mode::CpuInt8] {
                        if let Some(t) = layer.modes[mode.index()].as_mut() {
                            t.wcet = (t.wcet as f64 / s).ceil() as lalarand_model::Time;
                            t.stats = None;
                        }
                    }
                }
                p.source = format!("{} (cpu times / {s}: modelled data-parallel cpu node)", p.source);
                Arc::new(p)
            })
            .collect()
    }

    pub fn describe(&self) -> LibraryInfo {
        let profiles = self.profiles();
        let models = profiles.iter().map(|p| p.model.clone()).collect();
        let int8_accuracy_unknown_layers = profiles
            .iter()
            .map(|p| {
                (0..p.layers.len())
                    .filter(|&j| p.layers[j].wcet(Mode::CpuInt8).is_some() && !p.int8_accuracy_known(j))
                    .count()
            })
            .sum();
        match self {
            Self::Artifact { set, int8 } => LibraryInfo {
                name: format!("lalarand-artifact-{}", format!("{set:?}").to_lowercase()),
                int8_speedup: int8.map(|q| q.speedup),
                int8_all_layers_drop: int8.map(|q| q.all_int8_drop),
                int8_accuracy_unknown_layers,
                models,
                cpu_speedup: None,
            },
            Self::Custom { name, .. } => LibraryInfo {
                name: name.clone(),
                int8_speedup: None,
                int8_all_layers_drop: None,
                int8_accuracy_unknown_layers,
                models,
                cpu_speedup: None,
            },
        }
    }
}

/// A serializable description of a [`ProfileLibrary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LibraryInfo {
    pub name: String,
    pub models: Vec<String>,
    /// Modelled `cpu-int8` speed-up over `cpu-fp32` (artifact libraries with int8 only).
    pub int8_speedup: Option<f64>,
    /// Modelled whole-model int8 accuracy drop, percentage points.
    pub int8_all_layers_drop: Option<f64>,
    /// Layers with a `cpu-int8` mode whose int8 accuracy cost is not known (`null` in the
    /// profile: measured without a labeled dataset). They count as 0 against the accuracy
    /// budget, so where this is not 0 the budget does not bind on them.
    pub int8_accuracy_unknown_layers: usize,
    /// Every cpu time divided by this ([`SweepConfig::cpu_speedup`]); `None`: as profiled.
    pub cpu_speedup: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub tasks: usize,
    /// Task sets generated per utilization point; every policy sees the same sets.
    pub sets_per_point: usize,
    /// Total utilizations of the all-accelerator framework (see [`crate::generate`]), each in
    /// `(0, tasks)`.
    pub utilizations: Vec<f64>,
    /// Policies to compare. [`Policy::Optimal`] here is ignored: `optimal` decides.
    pub policies: Vec<Policy>,
    /// Also run the exact search (slow; bounded by `options.node_limit` per set).
    pub optimal: bool,
    /// Accuracy budget, int8 permission and node limit handed to every policy.
    pub options: AllocOptions,
    pub library: ProfileLibrary,
    pub platform: Platform,
    pub random_offsets: bool,
    pub seed: u64,
    /// Divide every `cpu-fp32` and `cpu-int8` time of the library by this: models a
    /// data-parallel cpu node (a `cpu` resource of k cores running each layer on k intra-op
    /// threads) from one-thread profiles, with a measured k-thread speed-up. Every policy sees
    /// the scaled profiles. `None`: the profiles as they are.
    pub cpu_speedup: Option<f64>,
}

impl Default for SweepConfig {
    /// The paper's setting: 4 tasks, 200 sets per point, utilization 0.1..=2.0 step 0.1, every
    /// heuristic policy, artifact set A with int8 modelled, one gpu + one cpu.
    fn default() -> Self {
        Self {
            tasks: 4,
            sets_per_point: 200,
            utilizations: utilization_range(0.1, 2.0, 0.1),
            policies: Policy::ALL.into_iter().filter(|&p| p != Policy::Optimal).collect(),
            optimal: false,
            options: AllocOptions::default(),
            library: ProfileLibrary::default(),
            platform: Platform::default_cpu_gpu(),
            random_offsets: false,
            seed: 2021,
            cpu_speedup: None,
        }
    }
}

impl SweepConfig {
    /// The policies in run order: `policies` without duplicates or optimal, then optimal if asked.
    pub fn effective_policies(&self) -> Vec<Policy> {
        let mut out: Vec<Policy> = Vec::new();
        for &p in &self.policies {
            if p != Policy::Optimal && !out.contains(&p) {
                out.push(p);
            }
        }
        if self.optimal {
            out.push(Policy::Optimal);
        }
        out
    }

    /// Checks everything the generator and the sweep need, before any work starts.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        if self.tasks == 0 {
            return Err(ExperimentError::config("tasks", "0 tasks per set", "use --tasks 1 or more"));
        }
        if self.sets_per_point == 0 {
            return Err(ExperimentError::config("sets", "0 sets per point", "use --sets 1 or more"));
        }
        if self.utilizations.is_empty() {
            return Err(ExperimentError::config("utilizations", "no utilization points", "give e.g. 0.1:2.0:0.1"));
        }
        if let Some(u) = self.utilizations.iter().find(|&&u| !(u.is_finite() && u > 0.0 && u < self.tasks as f64)) {
            return Err(ExperimentError::config(
                "utilizations",
                format!("{u} is not in (0, {}) for {} tasks", self.tasks, self.tasks),
                "keep every total utilization above 0 and below the task count (each task has u <= 1)",
            ));
        }
        if self.effective_policies().is_empty() {
            return Err(ExperimentError::config("policies", "no policy to run", "name at least one policy"));
        }
        let budget = self.options.accuracy_budget;
        if !(budget.is_finite() && budget >= 0.0) {
            return Err(ExperimentError::config(
                "budget",
                format!("accuracy budget {budget} is not a non-negative number"),
                "use a budget in percentage points >= 0, e.g. --budget 1.0",
            ));
        }
        if let Some(s) = self.cpu_speedup {
            if !(s.is_finite() && s >= 1.0) {
                return Err(ExperimentError::config(
                    "cpu-speedup",
                    format!("{s} is not a speed-up >= 1"),
                    "give the measured k-thread over one-thread speed-up, e.g. 1.8",
                ));
            }
        }
        if let ProfileLibrary::Artifact { int8: Some(q), .. } = self.library {
            if !(q.speedup.is_finite() && q.speedup > 0.0) {
                return Err(ExperimentError::config(
                    "int8-speedup",
                    format!("{} is not a positive speed-up", q.speedup),
                    "use a speed-up > 0, e.g. 2.5",
                ));
            }
            if !(q.all_int8_drop.is_finite() && q.all_int8_drop >= 0.0) {
                return Err(ExperimentError::config(
                    "int8-drop",
                    format!("{} is not a non-negative accuracy drop", q.all_int8_drop),
                    "use percentage points >= 0, e.g. 0.5",
                ));
            }
        }
        Ok(())
    }
}

/// `start, start + step, ..` up to `end` inclusive, rounded to 1e-9 so 0.1 steps print cleanly.
fn utilization_range(start: f64, end: f64, step: f64) -> Vec<f64> {
    let n = ((end - start) / step + 1e-9).floor() as usize;
    (0..=n).map(|i| ((start + i as f64 * step) * 1e9).round() / 1e9).collect()
}

/// Parses a utilization spec: `start:end:step` (inclusive), a comma list, or one number.
pub fn parse_utilizations(spec: &str) -> Result<Vec<f64>, ExperimentError> {
    let bad = |problem: String| {
        ExperimentError::config(
            "utilizations",
            problem,
            "write start:end:step (e.g. 0.1:2.0:0.1) or a list (0.5,1,1.5)",
        )
    };
    let num = |s: &str| -> Result<f64, ExperimentError> {
        let v: f64 = s.trim().parse().map_err(|_| bad(format!("{s:?} is not a number")))?;
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(bad(format!("{v} is not a positive utilization")))
        }
    };
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [start, end, step] => {
            let (start, end, step) = (num(start)?, num(end)?, num(step)?);
            if end < start {
                return Err(bad(format!("end {end} is below start {start}")));
            }
            if (end - start) / step > 10_000.0 {
                return Err(bad(format!("step {step} gives more than 10000 points")));
            }
            Ok(utilization_range(start, end, step))
        }
        [list] => list.split(',').map(num).collect(),
        _ => Err(bad(format!("{spec:?} has {} colons", parts.len() - 1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_lists_and_rejects_nonsense() {
        let r = parse_utilizations("0.1:2.0:0.1").unwrap();
        assert_eq!(r.len(), 20);
        assert_eq!((r[0], r[2], r[19]), (0.1, 0.3, 2.0));
        assert_eq!(parse_utilizations("0.5, 1,1.5").unwrap(), vec![0.5, 1.0, 1.5]);
        assert_eq!(parse_utilizations("0.7").unwrap(), vec![0.7]);
        assert_eq!(parse_utilizations("1:1:0.5").unwrap(), vec![1.0]);
        for bad in ["", "a:b:c", "2:1:0.1", "0.1:2:0", "0.1:2:-1", "1:2", "1:2:3:4", "0.5,x", "0", "1e-9:10:1e-9"] {
            let e = parse_utilizations(bad).unwrap_err();
            assert!(e.to_string().starts_with("utilizations: "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let check = |cfg: SweepConfig, field: &str| {
            let e = cfg.validate().unwrap_err();
            assert!(e.to_string().starts_with(field), "{field}: {e}");
        };
        assert!(SweepConfig::default().validate().is_ok());
        check(SweepConfig { tasks: 0, ..Default::default() }, "tasks");
        check(SweepConfig { sets_per_point: 0, ..Default::default() }, "sets");
        check(SweepConfig { utilizations: vec![], ..Default::default() }, "utilizations");
        check(SweepConfig { tasks: 2, utilizations: vec![1.0, 2.0], ..Default::default() }, "utilizations");
        check(SweepConfig { policies: vec![Policy::Optimal], ..Default::default() }, "policies");
        let options = AllocOptions { accuracy_budget: -1.0, ..Default::default() };
        check(SweepConfig { options, ..Default::default() }, "budget");
        let library = ProfileLibrary::Artifact {
            set: ArtifactSet::A,
            int8: Some(Int8Model { speedup: 0.0, all_int8_drop: 0.5 }),
        };
        check(SweepConfig { library, ..Default::default() }, "int8-speedup");
        check(SweepConfig { cpu_speedup: Some(0.5), ..Default::default() }, "cpu-speedup");
    }

    #[test]
    fn optimal_runs_only_when_asked_and_last() {
        let cfg = SweepConfig {
            policies: vec![Policy::Optimal, Policy::Lalarand, Policy::Dart, Policy::Lalarand],
            ..Default::default()
        };
        assert_eq!(cfg.effective_policies(), vec![Policy::Lalarand, Policy::Dart]);
        let cfg = SweepConfig { optimal: true, ..cfg };
        assert_eq!(cfg.effective_policies(), vec![Policy::Lalarand, Policy::Dart, Policy::Optimal]);
    }
}
