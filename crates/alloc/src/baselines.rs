//! Baseline allocators: the approaches LaLaRAND (Kang et al., RTSS 2021) is compared against.
//!
//! * [`GpuOnly`]: the vanilla framework, every layer on one gpu.
//! * [`CpuOnly`]: every layer in fp32 on one cpu.
//! * [`Preferable`]: the LaLaRAND artifact's second baseline, each whole DNN on the resource
//!   where it alone runs fastest, fp32, no search.
//! * [`TaskLevel`] ("task-level, searched, int8"): one resource per task (the
//!   "one-resource-per-task" frameworks), chosen by a schedulability-aware search that may
//!   quantize a whole DNN; stronger than the paper's baselines.
//! * DART and its ablation live in [`crate::dart`].
//!
//! None of them searches layer by layer; all report the analysis of what they chose, schedulable
//! or not.

use crate::ACCURACY_EPS;
use crate::{AllocError, AllocOptions, Allocator, Outcome};
use lalarand_analysis::{analyze, Analysis};
use lalarand_model::{Allocation, ExecutionPlan, Mode, Placement, PlannedTask, ResourceKind, System, Time};
use std::cmp::Ordering;

/// [`TaskLevel`] enumerates every assignment when there are at most this many.
pub const TASK_LEVEL_EXHAUSTIVE_LIMIT: u64 = 4_096;

/// Every layer of every task at `place`.
fn uniform_on(policy: &'static str, system: &System, place: Placement) -> Result<Outcome, AllocError> {
    if let Some(e) = (0..system.tasks.len()).find_map(|i| missing(policy, system, i, place.mode)) {
        return Err(e);
    }
    let alloc = Allocation { tasks: system.tasks.iter().map(|t| vec![place; t.dnn.layers.len()]).collect() };
    Ok(Outcome::evaluate(system, alloc, 0))
}

/// The first layer of task `task` without `mode`, as the policy's error.
fn missing(policy: &'static str, system: &System, task: usize, mode: Mode) -> Option<AllocError> {
    let t = &system.tasks[task];
    t.dnn.layers.iter().find(|l| l.mode(mode).is_none()).map(|l| AllocError::MissingMode {
        policy,
        task: t.name.clone(),
        layer: l.name.clone(),
        mode,
    })
}

/// The planned form of task `task` placed as `places` (costs with transitions, as the analysis
/// sees them).
fn planned(system: &System, task: usize, places: &[Placement]) -> PlannedTask {
    PlannedTask::new(&system.platform, &system.tasks[task], places)
}

/// Int8 accuracy cost of a task if all its layers ran int8 (negative costs count as zero, as in
/// [`Allocation::accuracy_cost`]).
fn whole_int8_cost(system: &System, task: usize) -> f64 {
    system.tasks[task].dnn.layers.iter().map(|l| l.budgeted_int8_cost()).sum()
}

pub struct GpuOnly;
impl Allocator for GpuOnly {
    fn name(&self) -> &'static str {
        "gpu-only"
    }
    fn allocate(&self, system: &System, _options: &AllocOptions) -> Result<Outcome, AllocError> {
        let policy = self.name();
        let (resource, mode) = system.platform.accelerator().ok_or(AllocError::NoAccelerator { policy })?;
        uniform_on(policy, system, Placement { mode, resource })
    }
}

pub struct CpuOnly;
impl Allocator for CpuOnly {
    fn name(&self) -> &'static str {
        "cpu-only"
    }
    fn allocate(&self, system: &System, _options: &AllocOptions) -> Result<Outcome, AllocError> {
        let policy = self.name();
        let resource =
            system.platform.host_cpus().next().ok_or(AllocError::NoResource { policy, kind: ResourceKind::Cpu })?;
        uniform_on(policy, system, Placement { mode: Mode::CpuFp32, resource })
    }
}

/// The LaLaRAND artifact's "Preferable" baseline: each whole DNN in fp32 on the resource where
/// it alone runs fastest (its summed layer costs, transitions and overheads included: `gpu` on
/// each gpu, `cpu-fp32` on each cpu; ties: platform order). No search, no int8: what a
/// developer does who profiles each DNN once and never looks at the other tasks.
pub struct Preferable;

impl Allocator for Preferable {
    fn name(&self) -> &'static str {
        "preferable"
    }

    fn allocate(&self, system: &System, options: &AllocOptions) -> Result<Outcome, AllocError> {
        let fp32 = AllocOptions { allow_int8: false, ..*options };
        let mut tasks = Vec::with_capacity(system.tasks.len());
        for i in 0..system.tasks.len() {
            let candidates = TaskLevel::candidates(system, &fp32, i).map_err(|e| match e {
                AllocError::MissingMode { task, layer, mode, .. } => {
                    AllocError::MissingMode { policy: "preferable", task, layer, mode }
                }
                AllocError::NoResource { kind, .. } => AllocError::NoResource { policy: "preferable", kind },
                other => other,
            })?;
            let total = |w: &Whole| w.plan.layers.iter().map(|l| l.wcet).sum::<Time>();
            // `min_by_key` keeps the first of equal totals: candidates list gpu mode first, then
            // resources in platform order.
            let fastest = candidates.iter().min_by_key(|w| total(w)).expect("candidates are non-empty");
            tasks.push(vec![fastest.placement; system.tasks[i].dnn.layers.len()]);
        }
        Ok(Outcome::evaluate(system, Allocation { tasks }, 0))
    }
}

// ---- task-level -----------------------------------------------------------------------------

/// One way to run a whole task: every layer in `mode` on `resource`.
struct Whole {
    placement: Placement,
    plan: PlannedTask,
    accuracy: f64,
}

/// How good an analysis is, smaller better: unschedulable tasks, then the largest
/// bound/deadline, then the int8 accuracy spent.
#[derive(Debug, Clone, Copy)]
struct Score {
    unschedulable: usize,
    worst: f64,
    accuracy: f64,
}

impl Score {
    fn of(analysis: &Analysis, accuracy: f64) -> Self {
        Self { unschedulable: analysis.unschedulable_count(), worst: analysis.max_normalized(), accuracy }
    }

    fn cmp(&self, other: &Self) -> Ordering {
        self.unschedulable
            .cmp(&other.unschedulable)
            .then(self.worst.total_cmp(&other.worst))
            .then(self.accuracy.total_cmp(&other.accuracy))
    }

    fn better_than(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Less
    }
}

/// The task-level search's state: candidates per task and an analysis counter.
struct TaskLevelSearch<'a> {
    system: &'a System,
    budget: f64,
    candidates: Vec<Vec<Whole>>,
    evaluations: u64,
}

impl TaskLevelSearch<'_> {
    /// Analyzes the tasks `tasks` (indices into the system) with candidate `choice[i]` for
    /// task `i`; `None` if the choice exceeds the accuracy budget.
    fn score(&mut self, choice: &[usize], tasks: &[usize]) -> Option<Score> {
        let accuracy: f64 = tasks.iter().map(|&i| self.candidates[i][choice[i]].accuracy).sum();
        if accuracy > self.budget + ACCURACY_EPS {
            return None;
        }
        let plan = ExecutionPlan {
            resources: self.system.platform.resources.len(),
            tasks: tasks.iter().map(|&i| self.candidates[i][choice[i]].plan.clone()).collect(),
        };
        self.evaluations += 1;
        Some(Score::of(&analyze(&plan), accuracy))
    }

    fn score_all(&mut self, choice: &[usize]) -> Option<Score> {
        let all: Vec<usize> = (0..choice.len()).collect();
        self.score(choice, &all)
    }
}

/// One resource per task: a whole DNN on one gpu (`gpu`), or on one cpu in `cpu-fp32`, or in
/// `cpu-int8` where int8 is allowed and the allocation's int8 accuracy cost stays within
/// [`AllocOptions::accuracy_budget`].
///
/// This models the frameworks that give each DNN one processor (the "one-resource-per-task"
/// approaches LaLaRAND's evaluation compares against; the artifact's "Preferable" baseline put
/// each task on the resource where it alone runs fastest). To make the baseline as strong as
/// its structure allows, the resource is chosen by a schedulability-aware search, comparing
/// assignments by (number of unschedulable tasks, largest bound/deadline, accuracy spent) under
/// the response-time analysis:
///
/// 1. *Preferable*: every task on its fastest whole-DNN placement (ties: platform order, gpu
///    mode first).
/// 2. *Greedy*: tasks in priority order, each given the placement that scores best for the
///    tasks placed so far (lower-priority tasks are not yet placed, so their blocking is
///    ignored at this step).
/// 3. The better of 1 and 2 is improved by passes over the tasks in priority order, each task
///    moved to the placement that scores best for the whole set, until a pass changes nothing.
/// 4. If the number of assignments is at most `TASK_LEVEL_EXHAUSTIVE_LIMIT`, all are
///    analyzed and the best kept (so on small sets the result is optimal for this structure).
pub struct TaskLevel;

impl TaskLevel {
    fn candidates(system: &System, options: &AllocOptions, task: usize) -> Result<Vec<Whole>, AllocError> {
        let int8_cost = whole_int8_cost(system, task);
        let mut modes = vec![Mode::Gpu, Mode::CpuFp32];
        if options.allow_int8 && int8_cost <= options.accuracy_budget + ACCURACY_EPS {
            modes.push(Mode::CpuInt8);
        }
        let layers = &system.tasks[task].dnn.layers;
        let mut out = Vec::new();
        for mode in modes {
            if layers.iter().any(|l| l.mode(mode).is_none()) {
                continue;
            }
            for resource in system.platform.of_kind(mode.kind()) {
                let placement = Placement { mode, resource };
                let places = vec![placement; layers.len()];
                let accuracy = if mode.is_int8() { int8_cost } else { 0.0 };
                out.push(Whole { placement, plan: planned(system, task, &places), accuracy });
            }
        }
        if out.is_empty() {
            // Name the mode the platform could have run: gpu if it has one, else cpu-fp32.
            let mode = if system.platform.of_kind(ResourceKind::Gpu).next().is_some() {
                Mode::Gpu
            } else if system.platform.of_kind(ResourceKind::Cpu).next().is_some() {
                Mode::CpuFp32
            } else {
                return Err(AllocError::NoResource { policy: "task-level", kind: ResourceKind::Gpu });
            };
            return Err(missing("task-level", system, task, mode)
                .or_else(|| missing("task-level", system, task, Mode::CpuFp32))
                .expect("a task with no whole placement lacks a mode in some layer"));
        }
        Ok(out)
    }
}

impl Allocator for TaskLevel {
    fn name(&self) -> &'static str {
        "task-level"
    }

    fn allocate(&self, system: &System, options: &AllocOptions) -> Result<Outcome, AllocError> {
        let n = system.tasks.len();
        let candidates = (0..n).map(|i| TaskLevel::candidates(system, options, i)).collect::<Result<Vec<_>, _>>()?;
        let mut search = TaskLevelSearch { system, budget: options.accuracy_budget, candidates, evaluations: 0 };
        let order = system.by_priority();

        // 1. Preferable: fastest alone, fp32 (accuracy 0) before int8 on equal time.
        let fastest = |c: &[Whole]| {
            (0..c.len())
                .min_by(|&a, &b| {
                    let total = |k: usize| c[k].plan.layers.iter().map(|l| l.wcet).sum::<Time>();
                    total(a).cmp(&total(b)).then(c[a].accuracy.total_cmp(&c[b].accuracy))
                })
                .expect("candidates are non-empty")
        };
        let preferable: Vec<usize> = search.candidates.iter().map(|c| fastest(c)).collect();
        // Preferable ignores the budget; it competes only if it respects it.
        let mut best = search.score_all(&preferable).map(|s| (preferable, s));

        // 2. Greedy in priority order over the tasks placed so far.
        let mut greedy = vec![0; n];
        let mut feasible = true;
        for (k, &i) in order.iter().enumerate() {
            let placed = &order[..=k];
            let mut pick: Option<(usize, Score)> = None;
            for c in 0..search.candidates[i].len() {
                greedy[i] = c;
                if let Some(s) = search.score(&greedy, placed) {
                    if pick.as_ref().is_none_or(|(_, p)| s.better_than(p)) {
                        pick = Some((c, s));
                    }
                }
            }
            match pick {
                Some((c, _)) => greedy[i] = c,
                None => {
                    feasible = false;
                    break;
                }
            }
        }
        if feasible {
            if let Some(s) = search.score_all(&greedy) {
                if best.as_ref().is_none_or(|(_, b)| s.better_than(b)) {
                    best = Some((greedy, s));
                }
            }
        }
        // Every task has an fp32 candidate (accuracy 0) unless all its candidates are int8;
        // fall back to the cheapest-accuracy choice so the search has a start.
        let (mut choice, mut score) = match best {
            Some(b) => b,
            None => {
                let cheapest: Vec<usize> = search
                    .candidates
                    .iter()
                    .map(|c| (0..c.len()).min_by(|&a, &b| c[a].accuracy.total_cmp(&c[b].accuracy)).unwrap())
                    .collect();
                let accuracy: f64 = cheapest.iter().enumerate().map(|(i, &c)| search.candidates[i][c].accuracy).sum();
                let all: Vec<usize> = (0..n).collect();
                // Over budget whatever is chosen: report the least-accuracy assignment's analysis.
                let plan = ExecutionPlan {
                    resources: system.platform.resources.len(),
                    tasks: all.iter().map(|&i| search.candidates[i][cheapest[i]].plan.clone()).collect(),
                };
                search.evaluations += 1;
                let s = Score::of(&analyze(&plan), accuracy);
                (cheapest, s)
            }
        };

        // 3. Improvement passes on the whole set.
        let mut improved = true;
        while improved {
            improved = false;
            for &i in &order {
                let current = choice[i];
                for c in 0..search.candidates[i].len() {
                    if c == current {
                        continue;
                    }
                    let mut trial = choice.clone();
                    trial[i] = c;
                    if let Some(s) = search.score_all(&trial) {
                        if s.better_than(&score) {
                            choice = trial;
                            score = s;
                            improved = true;
                        }
                    }
                }
            }
        }

        // 4. Exhaustive when small.
        let space = search.candidates.iter().fold(1u64, |acc, c| acc.saturating_mul(c.len() as u64));
        if space <= TASK_LEVEL_EXHAUSTIVE_LIMIT {
            let mut trial = vec![0; n];
            loop {
                if let Some(s) = search.score_all(&trial) {
                    if s.better_than(&score) {
                        choice.clone_from(&trial);
                        score = s;
                    }
                }
                // Mixed-radix increment; done when it wraps around.
                let mut k = 0;
                while k < n {
                    trial[k] += 1;
                    if trial[k] < search.candidates[k].len() {
                        break;
                    }
                    trial[k] = 0;
                    k += 1;
                }
                if k == n {
                    break;
                }
            }
        }

        let allocation = Allocation {
            tasks: (0..n)
                .map(|i| vec![search.candidates[i][choice[i]].placement; system.tasks[i].dnn.layers.len()])
                .collect(),
        };
        Ok(Outcome::evaluate(system, allocation, search.evaluations))
    }
}
