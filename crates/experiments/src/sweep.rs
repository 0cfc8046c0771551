//! Runs a schedulability sweep: every policy on the same generated sets, in parallel.

use crate::config::{LibraryInfo, SweepConfig};
use crate::error::ExperimentError;
use crate::generate::{reference_placement, set_rng, Generator};
use crate::result::{PointResult, PolicyPoint, SweepResult, SweepSettings};
use indicatif::{ParallelProgressIterator, ProgressBar, ProgressStyle};
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_model::{Mode, Platform, System};
use rayon::prelude::*;
use std::time::Instant;

/// What one policy did with one set.
#[derive(Debug, Clone)]
struct Run {
    schedulable: bool,
    complete: bool,
    error: Option<String>,
    accuracy_cost: f64,
    seconds: f64,
}

fn run_policy(policy: Policy, system: &System, options: &AllocOptions) -> Run {
    let start = Instant::now();
    let result = policy.allocate(system, options);
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(o) => Run {
            // Optimal's incomplete answer is no answer: never count it schedulable.
            schedulable: o.complete && o.schedulable(),
            complete: o.complete,
            error: None,
            accuracy_cost: if o.schedulable() { o.allocation.accuracy_cost(system) } else { 0.0 },
            seconds,
        },
        Err(e) => Run { schedulable: false, complete: true, error: Some(e.to_string()), accuracy_cost: 0.0, seconds },
    }
}

impl SweepConfig {
    /// The generator of this sweep's task sets (its library, CPU speed-up, platform, tasks
    /// per set and offsets).
    pub fn generator(&self) -> Result<Generator, ExperimentError> {
        Generator::new(
            self.library.profiles_scaled(self.cpu_speedup),
            self.platform.clone(),
            self.tasks,
            self.random_offsets,
        )
    }
}

/// Runs the sweep on all cores. Every policy sees the same sets: set `k` of point `u` is drawn
/// from [`set_rng`]`(seed, u, k)`. `progress` shows a bar on stderr.
pub fn run_schedulability(cfg: &SweepConfig, progress: bool) -> Result<SweepResult, ExperimentError> {
    cfg.validate()?;
    let start = Instant::now();
    let generator = cfg.generator()?;
    let policies = cfg.effective_policies();
    let n_sets = cfg.sets_per_point;
    let jobs: Vec<(usize, usize)> =
        (0..cfg.utilizations.len()).flat_map(|p| (0..n_sets).map(move |k| (p, k))).collect();
    let bar = if progress {
        let style = ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} task sets, eta {eta}")
            .expect("template is valid")
            .progress_chars("=> ");
        ProgressBar::new(jobs.len() as u64).with_style(style)
    } else {
        ProgressBar::hidden()
    };
    let runs: Vec<Vec<Run>> = jobs
        .par_iter()
        .progress_with(bar)
        .map(|&(p, k)| {
            let u = cfg.utilizations[p];
            let system = generator.generate(u, &mut set_rng(cfg.seed, u, k as u64))?;
            Ok(policies.iter().map(|&policy| run_policy(policy, &system, &cfg.options)).collect())
        })
        .collect::<Result<_, ExperimentError>>()?;
    let points = cfg
        .utilizations
        .iter()
        .enumerate()
        .map(|(p, &u)| aggregate(u, &policies, &runs[p * n_sets..(p + 1) * n_sets]))
        .collect();
    Ok(SweepResult { settings: settings(cfg, policies), points, wall_seconds: start.elapsed().as_secs_f64() })
}

fn aggregate(utilization: f64, policies: &[Policy], sets: &[Vec<Run>]) -> PointResult {
    let optimal = policies.iter().position(|&p| p == Policy::Optimal);
    let finished = |runs: &Vec<Run>| optimal.is_some_and(|o| runs[o].complete && runs[o].error.is_none());
    let policies = policies
        .iter()
        .enumerate()
        .map(|(i, &policy)| {
            let mut pp = PolicyPoint {
                policy,
                schedulable: 0,
                errors: 0,
                first_error: None,
                incomplete: 0,
                schedulable_where_optimal_finished: optimal.map(|_| 0),
                accuracy_cost_sum: 0.0,
                alloc_seconds: 0.0,
            };
            for runs in sets {
                let r = &runs[i];
                pp.schedulable += r.schedulable as u64;
                pp.incomplete += !r.complete as u64;
                pp.alloc_seconds += r.seconds;
                if r.schedulable {
                    pp.accuracy_cost_sum += r.accuracy_cost;
                }
                if let Some(e) = &r.error {
                    pp.errors += 1;
                    pp.first_error.get_or_insert_with(|| e.clone());
                }
                if let (Some(n), true) = (pp.schedulable_where_optimal_finished.as_mut(), finished(runs)) {
                    *n += r.schedulable as u64;
                }
            }
            pp
        })
        .collect();
    PointResult {
        utilization,
        sets: sets.len() as u64,
        optimal_finished: optimal.map(|_| sets.iter().filter(|r| finished(r)).count() as u64),
        policies,
    }
}

fn settings(cfg: &SweepConfig, policies: Vec<Policy>) -> SweepSettings {
    SweepSettings {
        tasks: cfg.tasks,
        sets_per_point: cfg.sets_per_point,
        seed: cfg.seed,
        policies,
        accuracy_budget: cfg.options.accuracy_budget,
        allow_int8: cfg.options.allow_int8,
        node_limit: cfg.options.node_limit,
        assume_int8_cost: cfg.options.assume_int8_cost,
        random_offsets: cfg.random_offsets,
        library: LibraryInfo { cpu_speedup: cfg.cpu_speedup, ..cfg.library.describe() },
        platform: describe_platform(&cfg.platform),
        utilization_axis: utilization_axis(&cfg.platform),
    }
}

/// Every resource as every policy sees it: kind, role, cores, intra-op threads and the
/// runtime's overheads the analysis charges.
pub fn describe_platform(platform: &Platform) -> Vec<String> {
    platform
        .resources
        .iter()
        .map(|r| {
            let role = if r.accelerator { ", accelerator" } else { "" };
            let mut out = format!("{} ({}{role}", r.name, r.kind);
            if r.kind == lalarand_model::ResourceKind::Cpu {
                let cores =
                    if r.cores.is_empty() { "unpinned".to_string() } else { format!("{} cores", r.cores.len()) };
                out += &format!(", {cores}, {} threads", r.threads);
            }
            out += &format!(
                ", dispatch {} us, wake-up {} us)",
                lalarand_model::time_to_us(r.dispatch_overhead),
                lalarand_model::time_to_us(r.wakeup_overhead)
            );
            out
        })
        .collect()
}

/// What the x axis measures, for the plot and the reports.
fn utilization_axis(platform: &Platform) -> String {
    match reference_placement(platform) {
        Ok(p) if p.mode == Mode::Gpu => "all-GPU WCET / period".into(),
        Ok(p) => {
            format!("all-{} {} cost / period, dispatch overhead included", platform.resources[p.resource].name, p.mode)
        }
        Err(_) => "no accelerator".into(),
    }
}
