//! Incremental evaluation of single-layer moves: the allocators' inner loop.
//!
//! Keeps an allocation, its execution plan and per-task analysis summaries in step, so that a
//! move of one layer re-costs two layers and re-summarizes one task before the analysis runs.

use lalarand_analysis::{analyze_after_change_if_better, analyze_summaries, Analysis, Score, TaskSummary};
use lalarand_model::plan::layer_cost;
use lalarand_model::{Allocation, ExecutionPlan, Placement, System};

pub struct Evaluator<'a> {
    pub system: &'a System,
    pub allocation: Allocation,
    pub plan: ExecutionPlan,
    pub summaries: Vec<TaskSummary>,
    /// The analysis of the current allocation.
    pub current: Analysis,
    pub evaluations: u64,
}

/// Layers `first..=last` of task `task` to `place`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub task: usize,
    pub first: usize,
    pub last: usize,
    pub place: Placement,
}

impl<'a> Evaluator<'a> {
    pub fn new(system: &'a System, allocation: Allocation) -> Self {
        let plan = ExecutionPlan::new_unchecked(system, &allocation);
        let summaries: Vec<TaskSummary> = plan.tasks.iter().map(|t| TaskSummary::new(t, plan.resources)).collect();
        let current = analyze_summaries(&plan, &summaries);
        Self { system, allocation, plan, summaries, current, evaluations: 1 }
    }

    /// Applies a move and keeps its analysis as the current one.
    pub fn apply(&mut self, m: &Move, analysis: Analysis) {
        self.set_block(m);
        self.current = analysis;
    }

    /// Applies a move, re-costing the moved layers and the one after them (the current
    /// analysis is then stale: callers use [`Evaluator::apply`]).
    fn set_block(&mut self, m: &Move) {
        let task = m.task;
        for p in &mut self.allocation.tasks[task][m.first..=m.last] {
            *p = m.place;
        }
        self.recost(task, m.first, m.last + 1);
    }

    /// Restores layers `first..` of `task` to `saved`.
    fn restore(&mut self, task: usize, first: usize, saved: &[Placement]) {
        self.allocation.tasks[task][first..first + saved.len()].copy_from_slice(saved);
        self.recost(task, first, first + saved.len());
    }

    fn recost(&mut self, task: usize, first: usize, last: usize) {
        let places = &self.allocation.tasks[task];
        let dnn = &self.system.tasks[task].dnn;
        let planned = &mut self.plan.tasks[task].layers;
        for j in first..=last.min(places.len() - 1) {
            planned[j].resource = places[j].resource;
            planned[j].mode = places[j].mode;
            planned[j].wcet = layer_cost(&self.system.platform, dnn, places, j);
        }
        self.summaries[task] = TaskSummary::new(&self.plan.tasks[task], self.plan.resources);
    }

    /// The analysis after move `m`, leaving the state as it was.
    pub fn try_block(&mut self, m: &Move) -> Analysis {
        self.try_block_if_better(m, None).expect("no cutoff")
    }

    /// [`Evaluator::try_block`], or `None` as soon as the move cannot score better than `cutoff`.
    pub fn try_block_if_better(&mut self, m: &Move, cutoff: Option<Score>) -> Option<Analysis> {
        let saved: Vec<Placement> = self.allocation.tasks[m.task][m.first..=m.last].to_vec();
        let before = self.summaries[m.task].clone();
        self.set_block(m);
        self.evaluations += 1;
        let analysis =
            analyze_after_change_if_better(&self.plan, &self.summaries, m.task, &before, &self.current, cutoff);
        self.restore(m.task, m.first, &saved);
        analysis
    }

    pub fn accuracy_cost(&self) -> f64 {
        self.allocation.accuracy_cost(self.system)
    }
}
