//! DART (Xiang and Kim, "Pipelined data-parallel CPU/GPU scheduling for multi-DNN real-time
//! inference", RTSS 2019) as a baseline, and its utilization-balance ablation.
//!
//! DART runs each DNN as a pipeline: contiguous layer ranges (stages), one per resource node (a
//! gpu, or a cpu node of several cores working on one layer together), fp32 throughout. Its
//! stage boundaries and node configuration are chosen to make the task set schedulable. So
//! [`Dart`] searches the pipelines of every DNN by the response-time analysis, starting from the
//! all-accelerator allocation (which is itself a one-stage pipeline), so it never loses to the
//! vanilla framework. A data-parallel cpu node is a `cpu` resource with several cores whose
//! profiles were measured at that many intra-op threads: the node configuration is the
//! platform's, the same for every policy. Sources: docs/analysis.md, "Allocators".

use crate::{AllocError, AllocOptions, Allocator, Outcome, ACCURACY_EPS};
use lalarand_analysis::{analyze, analyze_after_change_if_better, analyze_summaries, Score, TaskSummary};
use lalarand_model::plan::layer_cost;
use lalarand_model::{
    placements_accuracy_cost, Allocation, ExecutionPlan, Mode, Placement, PlannedTask, ResourceId, ResourceKind,
    System, Time,
};
use std::cmp::Ordering;

/// Pipelines enumerated per DNN at most, beyond the one- and two-stage ones (which are always
/// all enumerated): with many cpu resources and long DNNs, three or more stages multiply fast.
pub const DART_PIPELINES_LIMIT: u64 = 5_000;

/// [`Dart`] analyzes every combination of the tasks' pipelines when there are at most this many.
pub const DART_EXHAUSTIVE_LIMIT: u64 = 4_096;

/// The resource nodes a DART stage can run on: each gpu in `gpu` mode and each cpu (the one
/// standing in for the accelerator included) in `cpu-fp32`, in platform order; with `int8`,
/// then each cpu in `cpu-int8` as a node of its own (`lalarand`'s int8-aware start).
fn nodes(system: &System, int8: bool) -> Vec<Placement> {
    let resources = system.platform.resources.iter().enumerate();
    let fp32 = resources.clone().map(|(resource, r)| Placement {
        mode: if r.kind == ResourceKind::Gpu { Mode::Gpu } else { Mode::CpuFp32 },
        resource,
    });
    let int8_nodes = resources
        .filter(|(_, r)| int8 && r.kind == ResourceKind::Cpu)
        .map(|(resource, _)| Placement { mode: Mode::CpuInt8, resource });
    fp32.chain(int8_nodes).collect()
}

/// Upper bound on the pipelines of `m` stages for `layers` layers over `nodes` nodes:
/// ordered node choices times cut positions.
fn pipelines_of(m: u64, layers: u64, nodes: u64) -> u64 {
    let ordered = (0..m).fold(1u64, |acc, k| acc.saturating_mul(nodes.saturating_sub(k)));
    let mut cuts = 1u64; // C(layers - 1, m - 1)
    for k in 0..m.saturating_sub(1) {
        cuts = cuts.saturating_mul(layers.saturating_sub(1 + k)) / (k + 1);
    }
    ordered.saturating_mul(cuts)
}

/// DART with its stage boundaries chosen by the analysis (module docs).
///
/// * A *pipeline* of a DNN is a sequence of stages, each a non-empty contiguous layer range on
///   a different node (`nodes`: a gpu in `gpu` mode, a cpu in `cpu-fp32`; DART has no
///   quantization), covering the chain in order. Every pipeline with one or two stages is
///   enumerated; more stages (possible where the platform has several cpu resources) while the
///   count stays within [`DART_PIPELINES_LIMIT`] per DNN. One-stage pipelines come first, the
///   accelerator's first of all; then by stage count, node order and earlier cuts.
/// * The search starts from every DNN on the accelerator (the vanilla allocation; a DNN that
///   cannot run there whole starts at its fastest pipeline). If the analysis does not prove that
///   start, passes over the tasks in priority order move one task's pipeline at a time to the
///   one scoring best (fewest unschedulable tasks, then least total overshoot of bound over
///   deadline), until proven or a pass changes nothing. If still not proven and the tasks'
///   pipelines combine in at most [`DART_EXHAUSTIVE_LIMIT`] ways, every combination is analyzed.
///
/// DART's own pipelined execution and its original analysis are not modelled: the allocation
/// is judged by this repository's analysis, like every policy ("DART allocation, lalarand
/// analysis").
pub struct Dart;

impl Dart {
    /// Every DART pipeline of task `task`, as per-layer placements, in the order above.
    pub fn pipelines(system: &System, task: usize) -> Result<Vec<Vec<Placement>>, AllocError> {
        Self::pipelines_over(system, task, &nodes(system, false), usize::MAX)
    }

    /// The pipelines over `nodes` with at most `max_stages` stages (one- and two-stage ones
    /// always), in [`Self::pipelines`]' order.
    fn pipelines_over(
        system: &System,
        task: usize,
        nodes: &[Placement],
        max_stages: usize,
    ) -> Result<Vec<Vec<Placement>>, AllocError> {
        let policy = "dart";
        if system.platform.accelerator().is_none() {
            return Err(AllocError::NoAccelerator { policy });
        }
        let t = &system.tasks[task];
        let layers = &t.dnn.layers;
        let n = layers.len();
        // How far a stage starting at layer `j` on `node` can extend: its layers need the mode.
        let reach = |j: usize, node: Placement| (j..n).take_while(|&k| layers[k].mode(node.mode).is_some()).count();
        let accelerator = system.platform.accelerator().map(|(r, _)| r);
        let mut out: Vec<Vec<Placement>> = Vec::new();
        let mut singles: Vec<Placement> = nodes.iter().copied().filter(|p| reach(0, *p) == n).collect();
        singles.sort_by_key(|p| Some(p.resource) != accelerator);
        out.extend(singles.iter().map(|&p| vec![p; n]));
        let mut stages = 2;
        while stages <= nodes.len() && stages <= n && (stages <= 2 || stages <= max_stages) {
            let count = pipelines_of(stages as u64, n as u64, nodes.len() as u64);
            if stages > 2 && out.len() as u64 + count > DART_PIPELINES_LIMIT {
                break;
            }
            let mut current = Vec::with_capacity(n);
            let mut used = vec![false; nodes.len()];
            enumerate(nodes, &reach, 0, n, stages, &mut used, &mut current, &mut out);
            stages += 1;
        }
        if out.is_empty() {
            // Name the first layer no pipeline gets past: no node runs it after its prefix.
            let blocked = (0..n)
                .find(|&j| nodes.iter().all(|&p| layers[j].mode(p.mode).is_none()))
                .or_else(|| layers.iter().rposition(|l| l.mode(Mode::CpuFp32).is_none()))
                .unwrap_or(0);
            let mode = if layers[blocked].mode(Mode::CpuFp32).is_none() { Mode::CpuFp32 } else { Mode::Gpu };
            return Err(AllocError::MissingMode {
                policy,
                task: t.name.clone(),
                layer: layers[blocked].name.clone(),
                mode,
            });
        }
        Ok(out)
    }
}

/// Appends to `out` every pipeline of exactly `stages` stages covering layers `from..n`, after
/// the stages already in `current` (nodes in `used` taken).
#[allow(clippy::too_many_arguments)]
fn enumerate(
    nodes: &[Placement],
    reach: &impl Fn(usize, Placement) -> usize,
    from: usize,
    n: usize,
    stages: usize,
    used: &mut [bool],
    current: &mut Vec<Placement>,
    out: &mut Vec<Vec<Placement>>,
) {
    for (k, &node) in nodes.iter().enumerate() {
        if used[k] {
            continue;
        }
        let max_len = reach(from, node);
        // The last stage takes the rest; earlier ones leave at least one layer per later stage.
        let lens: Vec<usize> = if stages == 1 {
            if max_len == n - from {
                vec![n - from]
            } else {
                vec![]
            }
        } else {
            (1..=max_len.min(n - from - (stages - 1))).collect()
        };
        used[k] = true;
        for len in lens {
            current.extend(std::iter::repeat_n(node, len));
            if stages == 1 {
                out.push(current.clone());
            } else {
                enumerate(nodes, reach, from + len, n, stages - 1, used, current, out);
            }
            current.truncate(current.len() - len);
        }
        used[k] = false;
    }
}

/// The search's state: every task's pipelines with their planned form and summary, the current
/// choice, its plan and analysis score.
struct DartSearch<'a> {
    system: &'a System,
    options: Vec<Vec<Vec<Placement>>>,
    /// Per task and pipeline: the accuracy cost of its int8 layers (0 in fp32), and the most
    /// the chosen pipelines may sum to ([`f64::INFINITY`] for DART itself, fp32 only).
    costs: Vec<Vec<f64>>,
    budget: f64,
    planned: Vec<Vec<(PlannedTask, TaskSummary)>>,
    choice: Vec<usize>,
    plan: ExecutionPlan,
    summaries: Vec<TaskSummary>,
    analysis: lalarand_analysis::Analysis,
    evaluations: u64,
}

impl<'a> DartSearch<'a> {
    fn new(system: &'a System, options: Vec<Vec<Vec<Placement>>>, choice: Vec<usize>, budget: f64) -> Self {
        let resources = system.platform.resources.len();
        let costs = options
            .iter()
            .enumerate()
            .map(|(i, opts)| opts.iter().map(|places| placements_accuracy_cost(&system.tasks[i].dnn, places)).collect())
            .collect();
        let planned: Vec<Vec<(PlannedTask, TaskSummary)>> = options
            .iter()
            .enumerate()
            .map(|(i, opts)| {
                opts.iter()
                    .map(|places| {
                        let t = PlannedTask::new(&system.platform, &system.tasks[i], places);
                        let s = TaskSummary::new(&t, resources);
                        (t, s)
                    })
                    .collect()
            })
            .collect();
        let plan = ExecutionPlan {
            resources,
            tasks: choice.iter().enumerate().map(|(i, &c)| planned[i][c].0.clone()).collect(),
        };
        let summaries: Vec<TaskSummary> = choice.iter().enumerate().map(|(i, &c)| planned[i][c].1.clone()).collect();
        let analysis = analyze_summaries(&plan, &summaries);
        Self { system, options, costs, budget, planned, choice, plan, summaries, analysis, evaluations: 1 }
    }

    /// Whether `choice` keeps the int8 layers' accuracy cost within the budget.
    fn within_budget(&self, choice: &[usize]) -> bool {
        let cost: f64 = choice.iter().enumerate().map(|(i, &c)| self.costs[i][c]).sum();
        cost <= self.budget + ACCURACY_EPS
    }

    /// Whether task `task` on pipeline `option`, the others as chosen, stays within the budget.
    fn fits(&self, task: usize, option: usize) -> bool {
        let others: f64 =
            self.choice.iter().enumerate().filter(|&(i, _)| i != task).map(|(i, &c)| self.costs[i][c]).sum();
        others + self.costs[task][option] <= self.budget + ACCURACY_EPS
    }

    fn set(&mut self, task: usize, option: usize) {
        self.choice[task] = option;
        self.plan.tasks[task] = self.planned[task][option].0.clone();
        self.summaries[task] = self.planned[task][option].1.clone();
    }

    /// The analysis with task `task` on pipeline `option`, if it scores better than `cutoff`;
    /// the state is left as it was.
    fn try_option(&mut self, task: usize, option: usize, cutoff: Score) -> Option<lalarand_analysis::Analysis> {
        let previous = self.choice[task];
        let before = self.summaries[task].clone();
        self.set(task, option);
        self.evaluations += 1;
        let out =
            analyze_after_change_if_better(&self.plan, &self.summaries, task, &before, &self.analysis, Some(cutoff));
        self.set(task, previous);
        out
    }

    /// One-task moves in priority order until proven or a pass changes nothing.
    fn improve(&mut self) {
        let order = self.system.by_priority();
        loop {
            let mut changed = false;
            for &i in &order {
                if self.analysis.schedulable() {
                    return;
                }
                let mut best: Option<(usize, lalarand_analysis::Analysis)> = None;
                for option in 0..self.options[i].len() {
                    if option == self.choice[i] || !self.fits(i, option) {
                        continue;
                    }
                    let cutoff = best.as_ref().map_or(self.analysis.score(), |(_, a)| a.score());
                    if let Some(a) = self.try_option(i, option, cutoff) {
                        best = Some((option, a));
                    }
                }
                if let Some((option, analysis)) = best {
                    self.set(i, option);
                    self.analysis = analysis;
                    changed = true;
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// The greedy start: tasks in priority order, each given the pipeline that scores best for
    /// the tasks placed so far (lower-priority tasks' blocking is not yet known). Returns the
    /// choice, analyzed as a whole.
    fn greedy(&mut self) -> Vec<usize> {
        let order = self.system.by_priority();
        let mut choice = self.choice.clone();
        let mut placed: Vec<usize> = Vec::new();
        let mut spent = 0.0;
        for &i in &order {
            placed.push(i);
            let mut best: Option<(usize, Score)> = None;
            for option in 0..self.options[i].len() {
                if spent + self.costs[i][option] > self.budget + ACCURACY_EPS {
                    continue;
                }
                let plan = ExecutionPlan {
                    resources: self.plan.resources,
                    tasks: placed
                        .iter()
                        .map(|&k| self.planned[k][if k == i { option } else { choice[k] }].0.clone())
                        .collect(),
                };
                self.evaluations += 1;
                let score = analyze(&plan).score();
                if best.as_ref().is_none_or(|(_, b)| score.better_than(b)) {
                    best = Some((option, score));
                }
            }
            // None fits only where the task has no fp32 pipeline: it keeps its start.
            if let Some((option, _)) = best {
                choice[i] = option;
            }
            spent += self.costs[i][choice[i]];
        }
        choice
    }

    /// Every combination of pipelines, best kept; stops at the first proven one.
    fn exhaustive(&mut self) {
        let n = self.choice.len();
        let mut trial = vec![0; n];
        loop {
            let plan = ExecutionPlan {
                resources: self.plan.resources,
                tasks: trial.iter().enumerate().map(|(i, &c)| self.planned[i][c].0.clone()).collect(),
            };
            self.evaluations += 1;
            let analysis = analyze(&plan);
            if self.within_budget(&trial) && analysis.score().better_than(&self.analysis.score()) {
                for (i, &c) in trial.iter().enumerate() {
                    self.set(i, c);
                }
                self.analysis = analysis;
                if self.analysis.schedulable() {
                    return;
                }
            }
            // Mixed-radix increment; done when it wraps around.
            let mut k = 0;
            while k < n {
                trial[k] += 1;
                if trial[k] < self.options[k].len() {
                    break;
                }
                trial[k] = 0;
                k += 1;
            }
            if k == n {
                return;
            }
        }
    }
}

impl Allocator for Dart {
    fn name(&self) -> &'static str {
        "dart"
    }

    fn allocate(&self, system: &System, _options: &AllocOptions) -> Result<Outcome, AllocError> {
        let options = (0..system.tasks.len()).map(|i| Dart::pipelines(system, i)).collect::<Result<Vec<_>, _>>()?;
        search_pipelines(system, options, f64::INFINITY)
    }
}

/// Stages at most in [`int8_pipelines_start`]'s pipelines: with `cpu-int8` as a third node,
/// three-stage pipelines are 15 times as many as all the shorter ones on a 29-layer DNN, and
/// `lalarand`'s layer moves refine the start anyway.
const INT8_START_MAX_STAGES: usize = 2;

/// `lalarand`'s int8-aware start: DART's search over pipelines whose nodes include each cpu in
/// `cpu-int8` (up to [`INT8_START_MAX_STAGES`] stages), the int8 layers' summed accuracy cost
/// within `options`' budget. `None` when int8 is not allowed or DART cannot run here.
pub(crate) fn int8_pipelines_start(system: &System, options: &AllocOptions) -> Option<Outcome> {
    if !options.allow_int8 {
        return None;
    }
    let nodes = nodes(system, true);
    let pipelines = (0..system.tasks.len())
        .map(|i| Dart::pipelines_over(system, i, &nodes, INT8_START_MAX_STAGES))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let outcome = search_pipelines(system, pipelines, options.accuracy_budget).ok()?;
    // A task without an fp32 pipeline starts in int8 whatever the budget: no start then.
    (outcome.allocation.accuracy_cost(system) <= options.accuracy_budget + ACCURACY_EPS).then_some(outcome)
}

/// DART's search (see [`Dart`]) over `options`, every task's pipelines, the chosen pipelines'
/// accuracy cost within `budget`.
fn search_pipelines(system: &System, options: Vec<Vec<Vec<Placement>>>, budget: f64) -> Result<Outcome, AllocError> {
    let (accelerator, _) = system.platform.accelerator().ok_or(AllocError::NoAccelerator { policy: "dart" })?;
    // Start: all on the accelerator (listed first when valid), else the fastest pipeline.
    let start: Vec<usize> = options
        .iter()
        .enumerate()
        .map(|(i, opts)| {
            if opts[0].iter().all(|p| p.resource == accelerator) {
                return 0;
            }
            let cost = |places: &Vec<Placement>| -> Time {
                (0..places.len()).map(|j| layer_cost(&system.platform, &system.tasks[i].dnn, places, j)).sum()
            };
            // The fastest fp32 pipeline, so that the start spends none of the budget.
            let fp32 = |k: &usize| opts[*k].iter().all(|p| !p.mode.is_int8());
            let fastest = |ks: &mut dyn Iterator<Item = usize>| ks.min_by_key(|&k| (cost(&opts[k]), k));
            fastest(&mut (0..opts.len()).filter(fp32))
                .or_else(|| fastest(&mut (0..opts.len())))
                .expect("pipelines are non-empty")
        })
        .collect();
    let mut search = DartSearch::new(system, options, start.clone(), budget);
    search.improve();
    if !search.analysis.schedulable() {
        // Second start: the greedy pass in priority order, then the same moves.
        let greedy = search.greedy();
        let evaluations = search.evaluations;
        let mut second = DartSearch::new(system, search.options.clone(), greedy, budget);
        second.evaluations += evaluations;
        second.improve();
        if second.analysis.score().better_than(&search.analysis.score()) {
            search = second;
        } else {
            search.evaluations = second.evaluations;
        }
    }
    let space = search.options.iter().fold(1u64, |acc, o| acc.saturating_mul(o.len() as u64));
    if !search.analysis.schedulable() && space <= DART_EXHAUSTIVE_LIMIT {
        search.exhaustive();
    }
    let allocation =
        Allocation { tasks: search.choice.iter().enumerate().map(|(i, &c)| search.options[i][c].clone()).collect() };
    Ok(Outcome::evaluate(system, allocation, search.evaluations))
}

/// A DART cut of one task: layers `..gpu_layers` in `gpu_mode` on `gpu`, the rest in `cpu-fp32`
/// on `cpu`, with the utilization each part puts on its resource. `gpu` is the platform's
/// [accelerator](lalarand_model::Platform::accelerator): a gpu in `gpu` mode, or the cpu
/// standing in for one in `cpu-fp32`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DartCut {
    pub gpu_layers: usize,
    pub gpu: ResourceId,
    pub gpu_mode: Mode,
    pub cpu: ResourceId,
    pub gpu_util: f64,
    pub cpu_util: f64,
}

impl DartCut {
    pub fn placements(&self, layers: usize) -> Vec<Placement> {
        (0..layers)
            .map(|j| {
                if j < self.gpu_layers {
                    Placement { mode: self.gpu_mode, resource: self.gpu }
                } else {
                    Placement { mode: Mode::CpuFp32, resource: self.cpu }
                }
            })
            .collect()
    }
}

/// `dart-util`, an **ablation**, not DART: DART's two-stage cut chosen by utilization balance
/// alone, as this repository's first `dart` did (and as the LaLaRAND artifact's driver
/// describes DART's balancing). It does not look at schedulability, so it can place long cpu
/// layers that block higher-priority tasks, and never prefers "all on the gpu"; [`Dart`] is the
/// baseline. The rule:
///
/// * each DNN is cut once: a prefix of layers in `gpu` on a gpu, the suffix in `cpu-fp32` on a
///   cpu (DART has no quantization); a cut with an empty part is allowed;
/// * the utilization of a part is its summed layer costs over the period, the costs being
///   [`layer_cost`]'s (so the copy into the first cpu layer and the gpu's output copy count);
/// * tasks are taken in decreasing utilization (the smallest `u_gpu + u_cpu` over the task's
///   valid cuts; ties: priority order), and each gets the cut, and with several gpus or cpus
///   the (gpu, cpu) pair, minimizing `max(U_gpu + u_gpu(cut), U_cpu + u_cpu(cut))` over the
///   utilizations `U` accumulated by the tasks before it; ties go to the smaller
///   `u_gpu + u_cpu`, then the longer gpu prefix, then platform order. The chosen parts are
///   added to `U` and the next task is cut.
///
/// The result is analyzed by our analysis; DART's own pipelined execution is not modelled.
pub struct DartUtil;

impl DartUtil {
    /// Every valid cut of task `task` on every (gpu, cpu) pair.
    pub fn cuts(system: &System, task: usize) -> Result<Vec<DartCut>, AllocError> {
        let policy = "dart-util";
        let Some((accelerator, gpu_mode)) = system.platform.accelerator() else {
            return Err(AllocError::NoAccelerator { policy });
        };
        // Every gpu, or the one stand-in; the cpus that are not the stand-in.
        let gpus: Vec<_> = match gpu_mode {
            Mode::Gpu => system.platform.of_kind(ResourceKind::Gpu).collect(),
            _ => vec![accelerator],
        };
        let cpus: Vec<_> = system.platform.host_cpus().collect();
        if cpus.is_empty() {
            return Err(AllocError::NoResource { policy, kind: ResourceKind::Cpu });
        }
        let t = &system.tasks[task];
        let layers = &t.dnn.layers;
        let n = layers.len();
        // Valid prefix lengths: [last layer without cpu-fp32 + 1, first layer without gpu].
        let max_gpu = layers.iter().position(|l| l.mode(gpu_mode).is_none()).unwrap_or(n);
        let min_gpu = layers.iter().rposition(|l| l.mode(Mode::CpuFp32).is_none()).map_or(0, |j| j + 1);
        if min_gpu > max_gpu {
            // This layer comes at or after one without `gpu`, so it would have to run on the cpu.
            let l = &layers[min_gpu - 1];
            return Err(AllocError::MissingMode {
                policy,
                task: t.name.clone(),
                layer: l.name.clone(),
                mode: Mode::CpuFp32,
            });
        }
        let period = t.period as f64;
        let mut out = Vec::new();
        for &gpu in &gpus {
            for &cpu in &cpus {
                for gpu_layers in (min_gpu..=max_gpu).rev() {
                    let mut cut = DartCut { gpu_layers, gpu, gpu_mode, cpu, gpu_util: 0.0, cpu_util: 0.0 };
                    let places = cut.placements(n);
                    let costs: Vec<Time> = (0..n).map(|j| layer_cost(&system.platform, &t.dnn, &places, j)).collect();
                    cut.gpu_util = costs[..gpu_layers].iter().sum::<Time>() as f64 / period;
                    cut.cpu_util = costs[gpu_layers..].iter().sum::<Time>() as f64 / period;
                    out.push(cut);
                }
            }
        }
        Ok(out)
    }

    /// The cuts DART chooses, one per task (indexed like the system's tasks).
    pub fn choose_cuts(system: &System) -> Result<Vec<DartCut>, AllocError> {
        let cuts = (0..system.tasks.len()).map(|i| DartUtil::cuts(system, i)).collect::<Result<Vec<_>, _>>()?;
        let demand: Vec<f64> =
            cuts.iter().map(|c| c.iter().map(|c| c.gpu_util + c.cpu_util).fold(f64::INFINITY, f64::min)).collect();
        let mut order = system.by_priority();
        order.sort_by(|&a, &b| demand[b].total_cmp(&demand[a]));
        let mut util = vec![0.0; system.platform.resources.len()];
        let mut chosen = vec![None; system.tasks.len()];
        for i in order {
            // `cuts` lists longer gpu prefixes first within each pair, pairs in platform order,
            // so keeping the first of equal keys applies the documented tie-break.
            let key = |c: &DartCut| ((util[c.gpu] + c.gpu_util).max(util[c.cpu] + c.cpu_util), c.gpu_util + c.cpu_util);
            let best = cuts[i]
                .iter()
                .copied()
                .reduce(|best, c| {
                    let (kb, kc) = (key(&best), key(&c));
                    if kc.0.total_cmp(&kb.0).then(kc.1.total_cmp(&kb.1)) == Ordering::Less {
                        c
                    } else {
                        best
                    }
                })
                .expect("a task with no valid cut was rejected");
            util[best.gpu] += best.gpu_util;
            util[best.cpu] += best.cpu_util;
            chosen[i] = Some(best);
        }
        Ok(chosen.into_iter().map(|c| c.expect("every task is cut")).collect())
    }
}

impl Allocator for DartUtil {
    fn name(&self) -> &'static str {
        "dart-util"
    }

    fn allocate(&self, system: &System, _options: &AllocOptions) -> Result<Outcome, AllocError> {
        let cuts = DartUtil::choose_cuts(system)?;
        let allocation = Allocation {
            tasks: system.tasks.iter().zip(&cuts).map(|(t, c)| c.placements(t.dnn.layers.len())).collect(),
        };
        Ok(Outcome::evaluate(system, allocation, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lalarand_model::examples::chain_profile;
    use lalarand_model::Transitions;
    use lalarand_model::{ms_to_time, LayerProfile, ModeTiming, Platform, PriorityPolicy, Resource, Task, TaskSet};
    use std::sync::Arc;

    fn layer(name: &str, gpu_ms: f64, cpu_ms: Option<(f64, f64)>, int8_cost: f64) -> LayerProfile {
        let t = |ms: f64| Some(ModeTiming::from_wcet(ms_to_time(ms)));
        LayerProfile {
            name: name.into(),
            modes: [t(gpu_ms), cpu_ms.and_then(|c| t(c.0)), cpu_ms.and_then(|c| t(c.1))],
            int8_accuracy_cost: int8_cost,
            transitions: Transitions::default(),
        }
    }

    /// `h` (gpu only, 3 ms, T = D = 3.5 ms) misses if any layer of `l` blocks it on the GPU, so
    /// `l` (D = 8 ms) runs on the cpu: 10 ms in fp32, 7 ms with one layer in `cpu-int8` (5 ms
    /// in fp32, 2 ms in int8, 0.3 pp each).
    fn system() -> System {
        let h = Task::new("h", ms_to_time(3.5), Arc::new(chain_profile("h", &[layer("h0", 3.0, None, 0.0)])));
        let l_layers = [layer("l0", 1.0, Some((5.0, 2.0)), 0.3), layer("l1", 1.0, Some((5.0, 2.0)), 0.3)];
        let l = Task::new("l", ms_to_time(8.0), Arc::new(chain_profile("l", &l_layers)));
        let platform = Platform {
            resources: vec![Resource::new("gpu", ResourceKind::Gpu), Resource::new("cpu", ResourceKind::Cpu)],
        };
        System::new(platform, TaskSet::new(vec![h, l], PriorityPolicy::RateMonotonic))
    }

    #[test]
    fn int8_pipelines_prove_what_fp32_pipelines_cannot_within_the_budget() {
        let sys = system();
        let fp32 = Dart.allocate(&sys, &AllocOptions::default()).unwrap();
        assert!(!fp32.schedulable(), "no fp32 pipeline fits l");
        for budget in [1.0, 0.5] {
            let options = AllocOptions { accuracy_budget: budget, ..Default::default() };
            let start = int8_pipelines_start(&sys, &options).expect("int8 allowed");
            assert!(start.schedulable(), "budget {budget}");
            let cost = start.allocation.accuracy_cost(&sys);
            assert!(cost > 0.0 && cost <= budget + ACCURACY_EPS, "budget {budget}: cost {cost}");
        }
        let none = AllocOptions { accuracy_budget: 0.2, ..Default::default() };
        let start = int8_pipelines_start(&sys, &none).expect("int8 allowed");
        assert_eq!(start.allocation.accuracy_cost(&sys), 0.0, "no int8 layer fits a 0.2 pp budget");
        assert!(!start.schedulable());
        assert!(int8_pipelines_start(&sys, &AllocOptions { allow_int8: false, ..Default::default() }).is_none());
    }
}
