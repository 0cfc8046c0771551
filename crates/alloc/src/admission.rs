//! Admission control: tasks join and leave a running, proven system.
//!
//! A load is admitted only if the analysis proves the new task set under a new allocation within
//! the accuracy budget; a rejected load names the tasks that would miss and by how much, and
//! changes nothing (the caller keeps its [`Proven`]). The re-allocation keeps running tasks where
//! they are as far as it can: first only the new task is placed (no running layer moves), then
//! LaLaRAND seeded with the running allocation may move up to
//! [`AdmissionOptions::max_moved_layers`] running layers, and only with no cap a fresh LaLaRAND
//! allocation is tried. An unload is always admitted: the remaining tasks keep their placements,
//! and their bounds cannot grow (docs/analysis.md, section 5, Lemma 5).
//!
//! The change itself follows the drain-then-switch protocol of docs/analysis.md, section 5: the
//! new (system, allocation) takes effect once the old mode's jobs in flight have drained, at
//! most [`Admitted::drain_bound`] after the request
//! ([`lalarand_analysis::mode_change::drain_ends_by`] gives the instant from the jobs in flight).

use crate::lalarand::{fastest_fp32, search_within};
use crate::moves::{moved_layers, MoveLimit};
use crate::search::all_placements;
use crate::{AllocError, AllocOptions, Allocator, Lalarand, Outcome};
use lalarand_analysis::mode_change::drain_bound;
use lalarand_analysis::{analyze, Analysis};
use lalarand_model::{time_to_ms, Allocation, ExecutionPlan, Platform, System, Task, Time};
use serde::Serialize;

/// A system with an allocation the analysis proves: what a running server holds. Built only
/// through [`Proven::new`] or admission, so it is always proven.
#[derive(Debug, Clone, PartialEq)]
pub struct Proven {
    system: System,
    allocation: Allocation,
    analysis: Analysis,
}

impl Proven {
    /// Checks that `allocation` fits `system` and that every task is proven.
    pub fn new(system: System, allocation: Allocation) -> Result<Self, AdmissionError> {
        allocation.validate(&system).map_err(|e| AdmissionError::NotProven { problem: e.to_string() })?;
        let analysis = analyze(&ExecutionPlan::new_unchecked(&system, &allocation));
        let unproven: Vec<&str> = system
            .tasks
            .iter()
            .zip(&analysis.tasks)
            .filter(|(_, b)| !b.schedulable())
            .map(|(t, _)| t.name.as_str())
            .collect();
        if !unproven.is_empty() {
            return Err(AdmissionError::NotProven {
                problem: format!("the analysis does not prove task(s) {unproven:?}"),
            });
        }
        Ok(Self { system, allocation, analysis })
    }

    /// No task yet: a server started before any model registered.
    pub fn empty(platform: Platform) -> Self {
        let system = System { platform, tasks: Vec::new() };
        let allocation = Allocation { tasks: Vec::new() };
        let analysis = analyze(&ExecutionPlan::new_unchecked(&system, &allocation));
        Self { system, allocation, analysis }
    }

    pub fn system(&self) -> &System {
        &self.system
    }

    pub fn allocation(&self) -> &Allocation {
        &self.allocation
    }

    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }

    /// Every task's response-time bound, in the system's task order.
    pub fn bounds(&self) -> Vec<Time> {
        self.analysis.tasks.iter().map(|t| t.bound.expect("proven")).collect()
    }

    /// The longest a change away from this system waits for its jobs in flight to drain.
    pub fn drain_bound(&self) -> Time {
        drain_bound(&self.analysis).expect("proven")
    }

    pub fn into_parts(self) -> (System, Allocation, Analysis) {
        (self.system, self.allocation, self.analysis)
    }
}

/// Where a loaded task goes among the running tasks' priorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadPriority {
    /// Just above the highest-priority running task with a longer period (ties: below the
    /// running tasks).
    RateMonotonic,
    /// The same by relative deadline.
    DeadlineMonotonic,
    /// This rank, 0 the highest, at most the number of running tasks; running tasks at or
    /// below it move down one.
    Rank(u32),
}

/// A task to load: its name, profile, period and deadline are those of `task` (its `priority`
/// and `offset` are ignored: `priority` decides the rank, the protocol the first release).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadRequest {
    pub task: Task,
    pub priority: LoadPriority,
}

/// What a load may do to the running tasks (default: the default allocation options, no cap).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct AdmissionOptions {
    pub alloc: AllocOptions,
    /// The most layers of running tasks the re-allocation may move: `Some(0)` never moves a
    /// running layer; `None` also allows a fresh allocation when a seeded one fails.
    pub max_moved_layers: Option<usize>,
}

/// How much of one running task the change moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskMoves {
    pub task: String,
    /// Layers whose placement (mode or resource) changes.
    pub moved_layers: usize,
    pub layers: usize,
}

/// An admitted change: the new proven system, what moved, and how long the switch may wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub proven: Proven,
    /// Per task running before and after the change, in the new system's order.
    pub moves: Vec<TaskMoves>,
    /// The longest the switch waits after the request for the old mode's jobs to drain
    /// (the old mode's largest bound); a loaded task's first release is at most this late.
    pub drain_bound: Time,
    /// Analyses run to decide.
    pub evaluations: u64,
}

impl Admitted {
    pub fn moved_layers(&self) -> usize {
        self.moves.iter().map(|m| m.moved_layers).sum()
    }
}

/// A task that would miss its deadline under the best allocation found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Miss {
    pub task: String,
    /// Where the analysis' iteration crossed the deadline (`TaskBound::estimate`).
    pub response_estimate: Time,
    pub deadline: Time,
}

impl Miss {
    /// By how much: `response_estimate - deadline`.
    pub fn over(&self) -> Time {
        self.response_estimate.saturating_sub(self.deadline)
    }
}

/// Why a load was rejected: the tasks that would miss (highest priority first; the first is
/// the cause, the others may follow from it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub task: String,
    pub misses: Vec<Miss>,
    /// Tasks not proven only because a higher-priority task is not.
    pub unproven: Vec<String>,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "load of task {:?} rejected, nothing changed: no allocation found proves it; ", self.task)?;
        let misses: Vec<String> = self
            .misses
            .iter()
            .map(|m| {
                format!(
                    "task {:?} would miss its {:.3} ms deadline by {:.3} ms",
                    m.task,
                    time_to_ms(m.deadline),
                    time_to_ms(m.over())
                )
            })
            .collect();
        write!(f, "{}", misses.join(", "))?;
        if !self.unproven.is_empty() {
            write!(f, " (and {:?} not proven behind it)", self.unproven)?;
        }
        write!(f, "; fix: a longer period, a faster profile, a lower priority, or unload a task first")
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdmissionError {
    #[error("a task named {name:?} is already running; fix: pick another name, or unload it first")]
    NameTaken { name: String },
    #[error("no running task named {name:?} (running: {running:?}); fix: unload one of those")]
    UnknownTask { name: String, running: Vec<String> },
    #[error("load request field {field}: {problem}; fix: {fix}")]
    InvalidRequest { field: &'static str, problem: String, fix: &'static str },
    #[error("loading {task:?} needs {needed:.3} points of int8 accuracy cost (layers with no fp32 placement) on top of the running {running:.3}, over the budget of {budget:.3}; fix: raise the accuracy budget, or profile fp32 modes for its layers")]
    AccuracyBudget { task: String, needed: f64, running: f64, budget: f64 },
    #[error("the running system is not proven: {problem}; fix: start from an allocation `lalarand analyze` proves")]
    NotProven { problem: String },
    #[error(transparent)]
    Alloc(#[from] AllocError),
    #[error("{0}")]
    Rejected(Rejection),
}

/// Decides a load: `Ok` with the new proven system, or why not. `running` is not changed.
pub fn admit_load(
    running: &Proven,
    request: LoadRequest,
    options: &AdmissionOptions,
) -> Result<Admitted, AdmissionError> {
    let LoadRequest { mut task, priority } = request;
    check_request(running, &task, priority, options)?;
    // The new task's layers of unknown int8 cost, as `Policy::allocate` offers them; the
    // running tasks keep the modes they were admitted with.
    if let std::borrow::Cow::Owned(dnn) = task.dnn.with_unknown_int8_costs(options.alloc.assume_int8_cost) {
        task.dnn = std::sync::Arc::new(dnn);
    }
    let name = task.name.clone();
    let system = with_task(&running.system, task, priority);
    let budget = options.alloc.accuracy_budget;
    let running_cost = running.allocation.accuracy_cost(&running.system);
    let needed = int8_cost_needed(&system, system.tasks.len() - 1, &options.alloc);
    if running_cost + needed > budget + crate::ACCURACY_EPS {
        return Err(AdmissionError::AccuracyBudget { task: name, needed, running: running_cost, budget });
    }
    let choices = all_placements(&system, &options.alloc)?;
    let mut origin: Vec<Option<Vec<_>>> = running.allocation.tasks.iter().cloned().map(Some).collect();
    origin.push(None);
    let mut start = running.allocation.clone();
    start.tasks.push(fastest_fp32(&system, &choices).tasks.pop().expect("the new task"));

    let admissible =
        |o: &Outcome| o.schedulable() && o.allocation.accuracy_cost(&system) <= budget + crate::ACCURACY_EPS;
    let mut attempts = Attempts::default();
    // Cheapest change first: only the new task moves.
    let frozen = MoveLimit { origin: origin.clone(), max_moved: 0 };
    let outcome = search_within(&system, start, &options.alloc, &frozen)?;
    let mut found = attempts.keep(outcome, admissible);
    if found.is_none() && options.max_moved_layers != Some(0) {
        let seeded_start = attempts.best_allocation().clone();
        let limit = MoveLimit { origin: origin.clone(), max_moved: options.max_moved_layers.unwrap_or(usize::MAX) };
        let outcome = search_within(&system, seeded_start, &options.alloc, &limit)?;
        found = attempts.keep(outcome, admissible);
    }
    if found.is_none() && options.max_moved_layers.is_none() {
        found = attempts.keep(Lalarand.allocate(&system, &options.alloc)?, admissible);
    }
    let evaluations = attempts.evaluations;
    match found {
        Some(outcome) => {
            let moved = moved_layers(&origin, &outcome.allocation);
            let proven = Proven { system, allocation: outcome.allocation, analysis: outcome.analysis };
            let moves = task_moves(&proven, &moved, |i| origin[i].is_some());
            Ok(Admitted { moves, drain_bound: running.drain_bound(), proven, evaluations })
        }
        None => Err(AdmissionError::Rejected(rejection(name, &system, &attempts.best_analysis()))),
    }
}

/// Unloads task `name`: always admitted when it exists. The remaining tasks keep their
/// placements and relative priorities, so no bound grows (docs/analysis.md, Lemma 5).
pub fn admit_unload(running: &Proven, name: &str) -> Result<Admitted, AdmissionError> {
    let Some(index) = running.system.tasks.iter().position(|t| t.name == name) else {
        return Err(AdmissionError::UnknownTask {
            name: name.to_string(),
            running: running.system.tasks.iter().map(|t| t.name.clone()).collect(),
        });
    };
    let mut system = running.system.clone();
    let removed = system.tasks.remove(index);
    for t in &mut system.tasks {
        if t.priority > removed.priority {
            t.priority -= 1;
        }
    }
    let mut allocation = running.allocation.clone();
    allocation.tasks.remove(index);
    let analysis = analyze(&ExecutionPlan::new_unchecked(&system, &allocation));
    debug_assert!(
        analysis
            .tasks
            .iter()
            .zip(running.analysis.tasks.iter().enumerate().filter(|&(i, _)| i != index))
            .all(|(new, (_, old))| new.bound.is_some_and(|b| b <= old.bound.expect("proven"))),
        "Lemma 5: an unload never raises a bound"
    );
    let proven = Proven { system, allocation, analysis };
    let moves = task_moves(&proven, &vec![0; proven.system.tasks.len()], |_| true);
    Ok(Admitted { moves, drain_bound: running.drain_bound(), proven, evaluations: 1 })
}

fn check_request(
    running: &Proven,
    task: &Task,
    priority: LoadPriority,
    options: &AdmissionOptions,
) -> Result<(), AdmissionError> {
    let invalid = |field, problem: String, fix| Err(AdmissionError::InvalidRequest { field, problem, fix });
    if task.name.trim().is_empty() {
        return invalid("name", "empty".into(), "name the task, e.g. \"parking\"");
    }
    if running.system.tasks.iter().any(|t| t.name == task.name) {
        return Err(AdmissionError::NameTaken { name: task.name.clone() });
    }
    if task.period == 0 {
        return invalid("period", "0".into(), "give a period > 0");
    }
    if task.deadline == 0 || task.deadline > task.period {
        return invalid(
            "deadline",
            format!("{} ns for a period of {} ns", task.deadline, task.period),
            "give a deadline > 0 and <= the period (constrained deadlines)",
        );
    }
    if task.dnn.layers.is_empty() {
        return invalid("profile", format!("model {:?} has no layers", task.dnn.model), "profile the model first");
    }
    if let LoadPriority::Rank(r) = priority {
        if r as usize > running.system.tasks.len() {
            return invalid(
                "priority",
                format!("rank {r} with {} tasks running", running.system.tasks.len()),
                "give a rank from 0 (highest) to the number of running tasks",
            );
        }
    }
    let budget = options.alloc.accuracy_budget;
    if !(budget.is_finite() && budget >= 0.0) {
        return invalid("accuracy_budget", format!("{budget}"), "give a budget >= 0 percentage points");
    }
    if let Some(pp) = options.alloc.assume_int8_cost.filter(|pp| !(pp.is_finite() && *pp >= 0.0)) {
        return invalid("assume_int8_cost", format!("{pp}"), "give a cost >= 0 percentage points, or none");
    }
    Ok(())
}

/// `running` with `task` added last, at the rank `priority` gives it; running tasks keep their
/// relative order.
fn with_task(running: &System, mut task: Task, priority: LoadPriority) -> System {
    let by_priority = running.by_priority();
    let first_after = |key: &dyn Fn(&Task) -> Time| {
        by_priority.iter().position(|&i| key(&running.tasks[i]) > key(&task)).unwrap_or(by_priority.len()) as u32
    };
    let rank = match priority {
        LoadPriority::RateMonotonic => first_after(&|t| t.period),
        LoadPriority::DeadlineMonotonic => first_after(&|t| t.deadline),
        LoadPriority::Rank(r) => r,
    };
    let mut system = running.clone();
    for t in &mut system.tasks {
        if t.priority >= rank {
            t.priority += 1;
        }
    }
    task.priority = rank;
    task.offset = 0;
    system.tasks.push(task);
    system
}

/// The least int8 accuracy cost task `index` must spend: its layers that have no fp32 mode on
/// this platform (their cheapest placement is then int8).
fn int8_cost_needed(system: &System, index: usize, options: &AllocOptions) -> f64 {
    if !options.allow_int8 {
        return 0.0;
    }
    let platform = &system.platform;
    system.tasks[index]
        .dnn
        .layers
        .iter()
        .filter(|l| !l.available_modes().any(|m| !m.is_int8() && platform.of_kind(m.kind()).next().is_some()))
        .map(|l| l.budgeted_int8_cost())
        .sum()
}

fn task_moves(proven: &Proven, moved: &[usize], was_running: impl Fn(usize) -> bool) -> Vec<TaskMoves> {
    proven
        .system
        .tasks
        .iter()
        .enumerate()
        .filter(|&(i, _)| was_running(i))
        .map(|(i, t)| TaskMoves { task: t.name.clone(), moved_layers: moved[i], layers: t.dnn.layers.len() })
        .collect()
}

fn rejection(task: String, system: &System, analysis: &Analysis) -> Rejection {
    let mut misses = Vec::new();
    let mut unproven = Vec::new();
    for i in system.by_priority() {
        let bound = &analysis.tasks[i];
        if bound.schedulable() {
            continue;
        }
        let name = system.tasks[i].name.clone();
        if bound.estimate > bound.deadline {
            misses.push(Miss { task: name, response_estimate: bound.estimate, deadline: bound.deadline });
        } else {
            unproven.push(name);
        }
    }
    Rejection { task, misses, unproven }
}

/// The searches a load tried: the best unadmitted outcome so far, and the analyses they ran.
#[derive(Default)]
struct Attempts {
    best: Option<Outcome>,
    evaluations: u64,
}

impl Attempts {
    /// `Some(outcome)` if it is admissible, else keeps it if it is the best so far.
    fn keep(&mut self, outcome: Outcome, admissible: impl Fn(&Outcome) -> bool) -> Option<Outcome> {
        self.evaluations += outcome.evaluations;
        if admissible(&outcome) {
            return Some(outcome);
        }
        if self.best.as_ref().is_none_or(|b| outcome.analysis.score().better_than(&b.analysis.score())) {
            self.best = Some(outcome);
        }
        None
    }

    fn best_allocation(&self) -> &Allocation {
        &self.best.as_ref().expect("a search ran").allocation
    }

    fn best_analysis(&self) -> Analysis {
        self.best.as_ref().expect("a search ran").analysis.clone()
    }
}

#[cfg(test)]
mod tests;
