//! LaLaRAND's allocator: layer-level, quantization-aware, accuracy-aware.
//!
//! After Kang et al., "LaLaRAND: Flexible Layer-by-Layer CPU/GPU Scheduling for Real-Time DNN
//! Tasks" (RTSS 2021): one resource per *layer*, CPU-friendly int8 to narrow the CPU/GPU gap,
//! and accuracy recovered once timing is met. The search (docs/analysis.md, "The lalarand
//! allocator"):
//!
//! 1. **Schedulability.** From a start allocation, repeat: take the highest-priority task the
//!    analysis cannot schedule (its fate decides the lower ones'); list the moves (a single
//!    layer, a prefix or a suffix of a chain, to one placement) that can shorten its bound — its
//!    own layers, higher-priority layers on the resources it visits (interference),
//!    lower-priority layers that block it there — rank them by a cheap
//!    estimate of the bound they save, analyze them best-first in batches, and apply the best
//!    move that improves the lexicographic score (unschedulable tasks, total deadline
//!    overshoot). int8 modes are offered only while the accuracy budget allows. Stops when
//!    schedulable or when no move improves. Its own starts: the fastest-fp32 allocation
//!    (usually all on the GPU), then DART's pipeline search with `cpu-int8` as a node of its own
//!    and the accuracy budget kept (int8-aware pipelines, which DART lacks). [`LalarandOwn`]
//!    stops there. [`Lalarand`], the portfolio, then restarts from the `dart`, `dart-util` and
//!    task-level allocations, so the result never schedules less than those baselines. Where
//!    every start fails, one more search runs with the accuracy budget lifted, kept only if
//!    phase 2 brings it back within the budget (a budget can prune the path to a schedulable
//!    allocation that fits it).
//! 2. **Accuracy recovery.** int8 layers, costliest first, are moved back to an fp32 mode (same
//!    CPU, then a GPU, then other CPUs) whenever the set stays schedulable.
//!
//! Cost: each step analyzes at most every candidate move once (O(layers x placements)
//! analyses, each O(n^2 x resources x iterations)); in practice the first batch improves.

use crate::evaluator::{Evaluator, Move};
use crate::moves::MoveLimit;
use crate::search::all_placements;
use crate::{AllocError, AllocOptions, Allocator, Dart, DartUtil, Outcome, TaskLevel};
use lalarand_analysis::Score;
use lalarand_model::plan::placed_cost;
use lalarand_model::{Allocation, Mode, Placement, System, Time};

/// The portfolio: LaLaRAND's own search, then restarts from the baselines' allocations.
pub struct Lalarand;

/// LaLaRAND's own search alone: its two starts, no baseline's allocation as a seed (what
/// the search itself contributes, reported next to the portfolio).
pub struct LalarandOwn;

/// Analyses per batch of best-first candidates.
const BATCH: usize = 12;

/// Batches a restart (the int8-aware pipelines, or the `dart`, `dart-util` or task-level
/// allocation) may scan per step. The first start scans every move before giving up; restarts exist to keep `lalarand` at least as good
/// as those baselines, and an exhaustive scan from each would triple the cost of proving
/// that a set is out of reach.
const RESTART_BATCHES: usize = 8;

impl Allocator for Lalarand {
    fn name(&self) -> &'static str {
        "lalarand"
    }

    fn allocate(&self, system: &System, options: &AllocOptions) -> Result<Outcome, AllocError> {
        search(system, options, true)
    }
}

impl Allocator for LalarandOwn {
    fn name(&self) -> &'static str {
        "lalarand-own"
    }

    fn allocate(&self, system: &System, options: &AllocOptions) -> Result<Outcome, AllocError> {
        search(system, options, false)
    }
}

/// The search from each start in turn until one is proven, the best result kept; `seeds`: the
/// baselines' allocations after the own starts.
fn search(system: &System, options: &AllocOptions, seeds: bool) -> Result<Outcome, AllocError> {
    let choices = all_placements(system, options)?;
    let mut evaluations = 0;
    let mut best: Option<(Score, Evaluator)> = None;
    let fp32 = AllocOptions { allow_int8: false, ..*options };
    // Each start is made only if the ones before it fail.
    type Start<'a> = Box<dyn Fn() -> Option<Allocation> + 'a>;
    let mut starts: Vec<Start> = vec![
        Box::new(|| Some(fastest_fp32(system, &choices))),
        Box::new(|| crate::dart::int8_pipelines_start(system, options).map(|o| o.allocation)),
    ];
    if seeds {
        starts.push(Box::new(|| start_from(Dart, system, &fp32)));
        starts.push(Box::new(|| start_from(DartUtil, system, &fp32)));
        starts.push(Box::new(|| start_from(TaskLevel, system, options)));
    }
    for (n, start) in starts.iter().enumerate() {
        let Some(start) = start() else { continue };
        let mut ev = Evaluator::new(system, start);
        let batches = if n == 0 { usize::MAX } else { RESTART_BATCHES };
        let score = make_schedulable(&mut ev, &choices, options, batches, None);
        evaluations += ev.evaluations;
        let done = score.unschedulable == 0;
        if best.as_ref().is_none_or(|(s, _)| score.better_than(s)) {
            best = Some((score, ev));
        }
        if done {
            break;
        }
    }
    if best.as_ref().is_some_and(|(s, _)| s.unschedulable > 0) && options.allow_int8 {
        if let Some(relaxed) = relax_then_tighten(system, &choices, options, &mut evaluations) {
            best = Some((relaxed.current.score(), relaxed));
        }
    }
    let (score, mut ev) = best.expect("the first start always exists");
    if score.unschedulable == 0 {
        let before = ev.evaluations;
        recover_accuracy(&mut ev, &choices, None);
        evaluations += ev.evaluations - before;
    }
    Ok(Outcome::evaluate(system, ev.allocation, evaluations))
}

/// The last start, where every other failed: the search with the accuracy budget lifted, from
/// the fastest-fp32 allocation, then accuracy recovery; kept if that ends within the budget.
/// A budget can prune the path to a schedulable allocation: the greedy search spends it on
/// cheap int8 layers that do not shorten the bound enough, and no move is left, while a search
/// that may spend more reaches an allocation whose recovery brings it back within the budget
/// (PP-OCRv4's recognizer, docs/evaluation.md §15: none at 0.4 pp, one of 0.159 pp at 1).
fn relax_then_tighten<'a>(
    system: &'a System,
    choices: &[Vec<Vec<Placement>>],
    options: &AllocOptions,
    evaluations: &mut u64,
) -> Option<Evaluator<'a>> {
    let relaxed = AllocOptions { accuracy_budget: f64::INFINITY, ..*options };
    let mut ev = Evaluator::new(system, fastest_fp32(system, choices));
    let score = make_schedulable(&mut ev, choices, &relaxed, RESTART_BATCHES, None);
    let mut within = false;
    if score.unschedulable == 0 {
        recover_accuracy(&mut ev, choices, None);
        within = ev.accuracy_cost() <= options.accuracy_budget + 1e-12;
    }
    *evaluations += ev.evaluations;
    within.then_some(ev)
}

/// LaLaRAND's two phases from `start` (valid for `system`), making only the moves `limit`
/// allows: admission's re-allocation that keeps running layers where they are.
pub(crate) fn search_within(
    system: &System,
    start: Allocation,
    options: &AllocOptions,
    limit: &MoveLimit,
) -> Result<Outcome, AllocError> {
    let choices = all_placements(system, options)?;
    let mut ev = Evaluator::new(system, start);
    let score = make_schedulable(&mut ev, &choices, options, usize::MAX, Some(limit));
    if score.unschedulable == 0 {
        recover_accuracy(&mut ev, &choices, Some(limit));
    }
    let evaluations = ev.evaluations;
    Ok(Outcome::evaluate(system, ev.allocation, evaluations))
}

fn start_from(policy: impl Allocator, system: &System, options: &AllocOptions) -> Option<Allocation> {
    policy.allocate(system, options).ok().map(|o| o.allocation)
}

/// Each layer in its fastest fp32 placement (ties: the first listed, i.e. the GPU).
pub(crate) fn fastest_fp32(system: &System, choices: &[Vec<Vec<Placement>>]) -> Allocation {
    let tasks = choices
        .iter()
        .enumerate()
        .map(|(i, layers)| {
            layers
                .iter()
                .enumerate()
                .map(|(j, ps)| {
                    let layer = &system.tasks[i].dnn.layers[j];
                    let fastest = |fp32_only: bool| {
                        ps.iter()
                            .filter(|p| !fp32_only || !p.mode.is_int8())
                            .min_by_key(|p| layer.wcet(p.mode))
                            .copied()
                    };
                    fastest(true).or_else(|| fastest(false)).expect("non-empty placements")
                })
                .collect()
        })
        .collect();
    Allocation { tasks }
}

/// Phase 1: greedy best-improvement over layer-block moves, guided by the first failing task;
/// only moves `limit` allows, if any.
fn make_schedulable(
    ev: &mut Evaluator,
    choices: &[Vec<Vec<Placement>>],
    options: &AllocOptions,
    max_batches: usize,
    limit: Option<&MoveLimit>,
) -> Score {
    let total_layers: usize = choices.iter().map(Vec::len).sum();
    let mut score = ev.current.score();
    for _ in 0..4 * total_layers {
        let by_priority = ev.system.by_priority();
        let Some(&focus) = by_priority.iter().find(|&&i| !ev.current.tasks[i].schedulable()) else {
            break;
        };
        let budget_left = options.accuracy_budget - ev.accuracy_cost();
        let mut candidates = candidate_moves(ev, choices, focus, budget_left, limit);
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut improved: Option<(Score, Move, lalarand_analysis::Analysis)> = None;
        for batch in candidates.chunks(BATCH).take(max_batches) {
            for &(_, m) in batch {
                let bar = improved.as_ref().map_or(score, |(s, ..)| *s);
                if let Some(a) = ev.try_block_if_better(&m, Some(bar)) {
                    improved = Some((a.score(), m, a));
                }
            }
            if improved.is_some() {
                break;
            }
        }
        let Some((s, m, a)) = improved else {
            break;
        };
        ev.apply(&m, a);
        score = s;
    }
    score
}

/// Moves that may shorten `focus`'s bound, with an estimate of the time each saves: for every
/// task and placement, each single layer, each prefix and each suffix of its chain (a prefix
/// or suffix covering the chain moves the whole task). Costs come from running sums, so a
/// candidate is estimated in O(resources).
fn candidate_moves(
    ev: &Evaluator,
    choices: &[Vec<Vec<Placement>>],
    focus: usize,
    budget_left: f64,
    limit: Option<&MoveLimit>,
) -> Vec<(f64, Move)> {
    let moved_now = limit.map_or(0, |l| l.moved(&ev.allocation));
    let system = ev.system;
    let focus_priority = system.tasks[focus].priority;
    let focus_deadline = system.tasks[focus].deadline;
    let resources = ev.plan.resources;
    let visited: Vec<bool> = ev.summaries[focus].on_resource.iter().map(|&c| c > 0).collect();
    let mut out = Vec::new();
    for (k, layers) in choices.iter().enumerate() {
        if limit.is_some_and(|l| !l.may_move_task(k)) {
            continue;
        }
        let task = &system.tasks[k];
        let relation = if k == focus {
            Relation::Focus
        } else if task.priority < focus_priority {
            Relation::Higher { jobs_in_window: focus_deadline.div_ceil(task.period) as f64 }
        } else {
            // Longest lower-priority layer per resource from tasks other than `k`.
            let others = (0..resources)
                .map(|r| {
                    (0..system.tasks.len())
                        .filter(|&o| o != k && system.tasks[o].priority > focus_priority)
                        .map(|o| ev.summaries[o].longest_layer[r])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            Relation::Lower { others }
        };
        let chain = ChainCosts::new(ev, k);
        let mut distinct: Vec<Placement> = layers.iter().flatten().copied().collect();
        distinct.sort_by_key(|p| (p.mode, p.resource));
        distinct.dedup();
        for place in distinct {
            chain.for_each_block(ev, layers, place, |first, last, effect| {
                if place.mode.is_int8() && chain.int8_cost_added(first, last) > budget_left + 1e-12 {
                    return;
                }
                let saving = relation.saving(&effect, &chain, &visited);
                let m = Move { task: k, first, last, place };
                if (saving > 0.0 || k == focus) && limit.is_none_or(|l| l.allows(&ev.allocation, moved_now, &m)) {
                    out.push((saving, m));
                }
            });
        }
    }
    out
}

/// How a moved task relates to the task being helped.
enum Relation {
    Focus,
    Higher { jobs_in_window: f64 },
    Lower { others: Vec<Time> },
}

impl Relation {
    /// Estimated time the move saves the focus task.
    fn saving(&self, effect: &Effect, chain: &ChainCosts, visited: &[bool]) -> f64 {
        match self {
            Relation::Focus => -effect.delta.iter().sum::<i64>() as f64,
            Relation::Higher { jobs_in_window } => {
                -(0..visited.len()).filter(|&r| visited[r]).map(|r| effect.delta[r]).sum::<i64>() as f64
                    * jobs_in_window
            }
            Relation::Lower { others } => (0..visited.len())
                .filter(|&r| visited[r])
                .map(|r| others[r].max(chain.longest[r]) as f64 - others[r].max(effect.longest[r]) as f64)
                .sum(),
        }
    }
}

/// What a block move does to its task: per-resource cost change and longest layer after.
struct Effect {
    delta: Vec<i64>,
    longest: Vec<Time>,
}

/// One task's current costs with prefix sums and maxima, for O(resources) move estimates.
struct ChainCosts {
    task: usize,
    n: usize,
    /// `sum_before[r][j]`: current cost on `r` of layers `< j`.
    sum_before: Vec<Vec<i64>>,
    /// `max_before[r][j]` / `max_after[r][j]`: longest current layer on `r` among layers `< j` / `> j`.
    max_before: Vec<Vec<Time>>,
    max_after: Vec<Vec<Time>>,
    /// Current longest layer per resource.
    longest: Vec<Time>,
    /// `int8_before[j]`: accuracy cost of making layers `< j` int8 (zero where already int8).
    int8_before: Vec<f64>,
}

impl ChainCosts {
    fn new(ev: &Evaluator, task: usize) -> Self {
        let planned = &ev.plan.tasks[task].layers;
        let dnn = &ev.system.tasks[task].dnn;
        let (n, resources) = (planned.len(), ev.plan.resources);
        let mut sum_before = vec![vec![0i64; n + 1]; resources];
        let mut max_before = vec![vec![0; n + 1]; resources];
        let mut max_after = vec![vec![0; n + 1]; resources];
        let mut int8_before = vec![0.0; n + 1];
        for (j, layer) in planned.iter().enumerate() {
            for r in 0..resources {
                let here = if layer.resource == r { layer.wcet } else { 0 };
                sum_before[r][j + 1] = sum_before[r][j] + here as i64;
                max_before[r][j + 1] = max_before[r][j].max(here);
            }
            let added = if layer.mode.is_int8() { 0.0 } else { dnn.layers[j].budgeted_int8_cost() };
            int8_before[j + 1] = int8_before[j] + added;
        }
        for j in (0..n).rev() {
            for (r, after) in max_after.iter_mut().enumerate() {
                let next = if j + 1 < n && planned[j + 1].resource == r { planned[j + 1].wcet } else { 0 };
                after[j] = after[j + 1].max(next);
            }
        }
        let longest = (0..resources).map(|r| max_before[r][n]).collect();
        Self { task, n, sum_before, max_before, max_after, longest, int8_before }
    }

    fn int8_cost_added(&self, first: usize, last: usize) -> f64 {
        self.int8_before[last + 1] - self.int8_before[first]
    }

    /// Calls `f(first, last, effect)` for every single-layer, prefix and suffix block that
    /// `place` can take and that changes something.
    fn for_each_block(
        &self,
        ev: &Evaluator,
        choices: &[Vec<Placement>],
        place: Placement,
        mut f: impl FnMut(usize, usize, Effect),
    ) {
        let n = self.n;
        let places = &ev.allocation.tasks[self.task];
        let dnn = &ev.system.tasks[self.task].dnn;
        let platform = &ev.system.platform;
        let cost =
            |j: usize, prev: Option<Placement>, at: Placement| placed_cost(platform, dnn, j, prev, at, j + 1 == n);
        let allowed: Vec<bool> = choices.iter().map(|ps| ps.contains(&place)).collect();
        let prev = |j: usize| j.checked_sub(1).map(|p| places[p]);
        // Cost of layer j at `place` when its predecessor is also at `place`.
        let inner: Vec<Time> =
            (0..n).map(|j| if allowed[j] && j > 0 { cost(j, Some(place), place) } else { 0 }).collect();
        let mut emit = |first: usize, last: usize, block_sum: Time, block_max: Time| {
            if places[first..=last].iter().all(|p| *p == place) {
                return;
            }
            f(first, last, self.effect(ev, first, last, place, block_sum, block_max, &cost));
        };
        for j in (0..n).filter(|&j| allowed[j]) {
            let c = cost(j, prev(j), place);
            emit(j, j, c, c);
        }
        if allowed[0] {
            let first = cost(0, None, place);
            let (mut sum, mut max) = (first, first);
            for j in 1..n {
                if !allowed[j] {
                    break;
                }
                sum += inner[j];
                max = max.max(inner[j]);
                emit(0, j, sum, max);
            }
        }
        let (mut tail_sum, mut tail_max) = (0, 0);
        for j in (1..n).rev() {
            if !allowed[j] {
                break;
            }
            let first = cost(j, prev(j), place);
            if j < n - 1 {
                emit(j, n - 1, first + tail_sum, first.max(tail_max));
            }
            tail_sum += inner[j];
            tail_max = tail_max.max(inner[j]);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn effect(
        &self,
        ev: &Evaluator,
        first: usize,
        last: usize,
        place: Placement,
        block_sum: Time,
        block_max: Time,
        cost: &impl Fn(usize, Option<Placement>, Placement) -> Time,
    ) -> Effect {
        let places = &ev.allocation.tasks[self.task];
        let resources = self.sum_before.len();
        let end = (last + 1).min(self.n - 1); // last re-costed layer (the follower, if any)
        let mut delta: Vec<i64> =
            (0..resources).map(|r| -(self.sum_before[r][end + 1] - self.sum_before[r][first])).collect();
        delta[place.resource] += block_sum as i64;
        let mut longest: Vec<Time> =
            (0..resources).map(|r| self.max_before[r][first].max(self.max_after[r][end])).collect();
        longest[place.resource] = longest[place.resource].max(block_max);
        if last + 1 < self.n {
            let follower = cost(last + 1, Some(place), places[last + 1]);
            let r = places[last + 1].resource;
            delta[r] += follower as i64;
            longest[r] = longest[r].max(follower);
        }
        Effect { delta, longest }
    }
}

/// Phase 2: int8 layers back to fp32 while the set stays schedulable, costliest first; under a
/// `limit`, only layers not at their running placement (a running layer stays put).
fn recover_accuracy(ev: &mut Evaluator, choices: &[Vec<Vec<Placement>>], limit: Option<&MoveLimit>) {
    let system = ev.system;
    let mut int8: Vec<(usize, usize)> = ev
        .allocation
        .tasks
        .iter()
        .enumerate()
        .flat_map(|(i, ps)| ps.iter().enumerate().filter(|(_, p)| p.mode.is_int8()).map(move |(j, _)| (i, j)))
        .filter(|&(i, j)| limit.is_none_or(|l| l.is_free(&ev.allocation, i, j)))
        .collect();
    int8.sort_by(|a, b| {
        let cost = |&(i, j): &(usize, usize)| system.tasks[i].dnn.layers[j].int8_accuracy_cost;
        cost(b).total_cmp(&cost(a))
    });
    for (i, j) in int8 {
        let current = ev.allocation.tasks[i][j];
        let mut fp32: Vec<Placement> = choices[i][j].iter().filter(|p| !p.mode.is_int8()).copied().collect();
        // Same CPU first (no new transitions), then GPUs, then other CPUs.
        fp32.sort_by_key(|p| (p.resource != current.resource, p.mode != Mode::Gpu));
        for place in fp32 {
            let m = Move { task: i, first: j, last: j, place };
            if limit.is_some_and(|l| !l.allows(&ev.allocation, l.moved(&ev.allocation), &m)) {
                continue;
            }
            let a = ev.try_block(&m);
            if a.schedulable() {
                ev.apply(&m, a);
                break;
            }
        }
    }
}
