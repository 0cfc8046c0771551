//! LaLaRAND's allocator: layer-level, quantization-aware, accuracy-aware.
//!
//! After Kang et al., "LaLaRAND: Flexible Layer-by-Layer CPU/GPU Scheduling for Real-Time DNN
//! Tasks" (RTSS 2021): one resource per *layer*, CPU-friendly int8 to narrow the CPU/GPU gap,
//! and accuracy recovered once timing is met. The search (docs/analysis.md, "The lalarand
//! allocator"):
//!
//! 1. **Schedulability.** From a start allocation, repeat: take the highest-priority task the
//!    analysis cannot schedule (its fate decides the lower ones'); list the single-layer moves
//!    that can shorten its bound — its own layers, higher-priority layers on the resources it
//!    visits (interference), lower-priority layers that block it there — rank them by a cheap
//!    estimate of the bound they save, analyze them best-first in batches, and apply the best
//!    move that improves the lexicographic score (unschedulable tasks, total deadline
//!    overshoot). int8 modes are offered only while the accuracy budget allows. Stops when
//!    schedulable or when no move improves. Starts: the fastest-fp32 allocation (usually all on
//!    the GPU), then the DART and task-level allocations, so the result never schedules less
//!    than those baselines.
//! 2. **Accuracy recovery.** int8 layers, costliest first, are moved back to an fp32 mode (same
//!    CPU, then a GPU, then other CPUs) whenever the set stays schedulable.
//!
//! Cost: each step analyzes at most every candidate move once (O(layers x placements)
//! analyses, each O(n^2 x resources x iterations)); in practice the first batch improves.

use crate::evaluator::{Evaluator, Move, Score};
use crate::search::all_placements;
use crate::{AllocError, AllocOptions, Allocator, Dart, Outcome, TaskLevel};
use lalarand_model::plan::layer_cost;
use lalarand_model::{Allocation, Mode, Placement, System, Time};

pub struct Lalarand;

/// Analyses per batch of best-first candidates.
const BATCH: usize = 12;

/// Batches tried per step before giving up on the step: the estimate ranks well enough that
/// improving moves sit near the top, and a full scan of a 10-task set's moves costs ~40 ms.
fn max_batches() -> usize {
    std::env::var("LALARAND_MAX_BATCHES").ok().and_then(|v| v.parse().ok()).unwrap_or(usize::MAX)
}

impl Allocator for Lalarand {
    fn name(&self) -> &'static str {
        "lalarand"
    }

    fn allocate(&self, system: &System, options: &AllocOptions) -> Result<Outcome, AllocError> {
        let choices = all_placements(system, options)?;
        let mut evaluations = 0;
        let mut best: Option<(Score, Evaluator)> = None;
        let fp32 = AllocOptions { allow_int8: false, ..*options };
        let starts = [
            Some(fastest_fp32(system, &choices)),
            start_from(Dart, system, &fp32),
            start_from(TaskLevel, system, options),
        ];
        for start in starts.into_iter().flatten() {
            let mut ev = Evaluator::new(system, start);
            let score = make_schedulable(&mut ev, &choices, options);
            evaluations += ev.evaluations;
            let done = score.unschedulable == 0;
            if best.as_ref().is_none_or(|(s, _)| score.better_than(s)) {
                best = Some((score, ev));
            }
            if done {
                break;
            }
        }
        let (score, mut ev) = best.expect("at least one start");
        if score.unschedulable == 0 {
            recover_accuracy(&mut ev, &choices);
        }
        evaluations += ev.evaluations;
        Ok(Outcome::evaluate(system, ev.allocation, evaluations))
    }
}

fn start_from(policy: impl Allocator, system: &System, options: &AllocOptions) -> Option<Allocation> {
    policy.allocate(system, options).ok().map(|o| o.allocation)
}

/// Each layer in its fastest fp32 placement (ties: the first listed, i.e. the GPU).
fn fastest_fp32(system: &System, choices: &[Vec<Vec<Placement>>]) -> Allocation {
    let tasks = choices
        .iter()
        .enumerate()
        .map(|(i, layers)| {
            layers
                .iter()
                .enumerate()
                .map(|(j, ps)| {
                    let layer = &system.tasks[i].dnn.layers[j];
                    let fp32 = ps.iter().filter(|p| !p.mode.is_int8());
                    let any = ps.iter();
                    let pick =
                        |it: &mut dyn Iterator<Item = &Placement>| it.min_by_key(|p| layer.wcet(p.mode)).copied();
                    pick(&mut fp32.into_iter()).or_else(|| pick(&mut any.into_iter())).expect("non-empty placements")
                })
                .collect()
        })
        .collect();
    Allocation { tasks }
}

/// Phase 1: greedy best-improvement over layer-block moves, guided by the first failing task.
fn make_schedulable(ev: &mut Evaluator, choices: &[Vec<Vec<Placement>>], options: &AllocOptions) -> Score {
    let total_layers: usize = choices.iter().map(Vec::len).sum();
    let mut score = Score::of(&ev.current);
    for _ in 0..4 * total_layers {
        let by_priority = ev.system.by_priority();
        let Some(&focus) = by_priority.iter().find(|&&i| !ev.current.tasks[i].schedulable()) else {
            break;
        };
        let budget_left = options.accuracy_budget - ev.accuracy_cost();
        let mut candidates = candidate_moves(ev, choices, focus, budget_left);
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut improved: Option<(Score, Move, lalarand_analysis::Analysis)> = None;
        for batch in candidates.chunks(BATCH).take(max_batches()) {
            for &(_, m) in batch {
                let a = ev.try_block(&m);
                let s = Score::of(&a);
                if s.better_than(improved.as_ref().map_or(&score, |(s, ..)| s)) {
                    improved = Some((s, m, a));
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
/// or suffix covering the chain moves the whole task).
fn candidate_moves(
    ev: &Evaluator,
    choices: &[Vec<Vec<Placement>>],
    focus: usize,
    budget_left: f64,
) -> Vec<(f64, Move)> {
    let system = ev.system;
    let focus_summary = &ev.summaries[focus];
    let focus_priority = system.tasks[focus].priority;
    let focus_deadline = system.tasks[focus].deadline;
    let resources = ev.plan.resources;
    let visits = |r: usize| focus_summary.on_resource[r] > 0;
    let mut out = Vec::new();
    for (k, layers) in choices.iter().enumerate() {
        let task = &system.tasks[k];
        let n = layers.len();
        let jobs_in_window = focus_deadline.div_ceil(task.period) as f64;
        // Longest lower-priority layer per resource from tasks other than `k`.
        let others_longest: Vec<Time> = (0..resources)
            .map(|r| {
                (0..system.tasks.len())
                    .filter(|&o| o != k && system.tasks[o].priority > focus_priority)
                    .map(|o| ev.summaries[o].longest_layer[r])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut distinct: Vec<Placement> = layers.iter().flatten().copied().collect();
        distinct.sort_by_key(|p| (p.mode, p.resource));
        distinct.dedup();
        for place in distinct {
            let mut blocks: Vec<(usize, usize)> = (0..n).map(|j| (j, j)).collect();
            blocks.extend((1..n).map(|j| (0, j)));
            blocks.extend((1..n).map(|j| (j, n - 1)));
            for (first, last) in blocks {
                let current = &ev.allocation.tasks[k][first..=last];
                if current.iter().all(|p| *p == place) || !(first..=last).all(|j| layers[j].contains(&place)) {
                    continue;
                }
                if place.mode.is_int8() {
                    let added: f64 = (first..=last)
                        .filter(|&j| !ev.allocation.tasks[k][j].mode.is_int8())
                        .map(|j| task.dnn.layers[j].int8_accuracy_cost.max(0.0))
                        .sum();
                    if added > budget_left + 1e-12 {
                        continue;
                    }
                }
                let m = Move { task: k, first, last, place };
                let (delta, longest) = effect(ev, &m);
                let saving = if k == focus {
                    -delta.iter().sum::<i64>() as f64
                } else if task.priority < focus_priority {
                    -(0..resources).filter(|&r| visits(r)).map(|r| delta[r]).sum::<i64>() as f64 * jobs_in_window
                } else {
                    (0..resources)
                        .filter(|&r| visits(r))
                        .map(|r| {
                            let before = others_longest[r].max(ev.summaries[k].longest_layer[r]);
                            before as f64 - others_longest[r].max(longest[r]) as f64
                        })
                        .sum::<f64>()
                };
                if saving > 0.0 || k == focus {
                    out.push((saving, m));
                }
            }
        }
    }
    out
}

/// Per-resource change of the moved task's total cost, and its new longest layer per resource.
fn effect(ev: &Evaluator, m: &Move) -> (Vec<i64>, Vec<Time>) {
    let resources = ev.plan.resources;
    let dnn = &ev.system.tasks[m.task].dnn;
    let mut places = ev.allocation.tasks[m.task].clone();
    places[m.first..=m.last].fill(m.place);
    let planned = &ev.plan.tasks[m.task].layers;
    let mut delta = vec![0i64; resources];
    let mut longest = vec![0; resources];
    let recosted = m.first..=(m.last + 1).min(places.len() - 1);
    for (j, layer) in planned.iter().enumerate() {
        let (resource, cost) = if recosted.contains(&j) {
            delta[layer.resource] -= layer.wcet as i64;
            let c = layer_cost(&ev.system.platform, dnn, &places, j);
            delta[places[j].resource] += c as i64;
            (places[j].resource, c)
        } else {
            (layer.resource, layer.wcet)
        };
        longest[resource] = longest[resource].max(cost);
    }
    (delta, longest)
}

/// Phase 2: int8 layers back to fp32 while the set stays schedulable, costliest first.
fn recover_accuracy(ev: &mut Evaluator, choices: &[Vec<Vec<Placement>>]) {
    let system = ev.system;
    let mut int8: Vec<(usize, usize)> = ev
        .allocation
        .tasks
        .iter()
        .enumerate()
        .flat_map(|(i, ps)| ps.iter().enumerate().filter(|(_, p)| p.mode.is_int8()).map(move |(j, _)| (i, j)))
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
            let a = ev.try_block(&m);
            if a.schedulable() {
                ev.apply(&m, a);
                break;
            }
        }
    }
}
