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

    /// Applies a move, re-costing the moved layers and every layer that reads them (the one
    /// after them, and any later one the profile's `reads_layers` names; the current analysis
    /// is then stale: callers use [`Evaluator::apply`]).
    fn set_block(&mut self, m: &Move) {
        let task = m.task;
        for p in &mut self.allocation.tasks[task][m.first..=m.last] {
            *p = m.place;
        }
        self.recost(task, m.first, self.last_reader(task, m.first, m.last));
    }

    /// Restores layers `first..` of `task` to `saved`.
    fn restore(&mut self, task: usize, first: usize, saved: &[Placement]) {
        self.allocation.tasks[task][first..first + saved.len()].copy_from_slice(saved);
        let last = first + saved.len() - 1;
        self.recost(task, first, self.last_reader(task, first, last));
    }

    /// The last layer whose cost depends on the placement of layers `first..=last`.
    fn last_reader(&self, task: usize, first: usize, last: usize) -> usize {
        let dnn = &self.system.tasks[task].dnn;
        dnn.layer_sources
            .range(last + 1..)
            .filter(|(_, read)| read.layers.iter().any(|k| (first..=last).contains(k)))
            .map(|(&j, _)| j)
            .fold(last + 1, usize::max)
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

#[cfg(test)]
mod tests {
    use super::*;
    use lalarand_model::examples::chain_profile;
    use lalarand_model::{
        LayerProfile, LayerSources, Mode, ModeTiming, Platform, PriorityPolicy, Task, TaskSet, Transitions,
    };
    use std::sync::Arc;

    /// A moved layer re-costs every layer that reads it: here the last layer (a residual add)
    /// reads layer 0 as well as its predecessor, so moving layer 0 to int8 changes its cost.
    #[test]
    fn a_move_re_costs_every_reader_of_the_moved_layers() {
        let layer = |name: &str| LayerProfile {
            name: name.into(),
            modes: [
                Some(ModeTiming::from_wcet(100)),
                Some(ModeTiming::from_wcet(1_000)),
                Some(ModeTiming::from_wcet(400)),
            ],
            int8_accuracy_cost: 0.0,
            transitions: Transitions { copy_in: 10, quantize_in: 3, dequantize_in: 2 },
        };
        let mut dnn = chain_profile("m", &[layer("a"), layer("b"), layer("c"), layer("add")]);
        dnn.layer_sources.insert(3, LayerSources { layers: vec![0, 2], graph_input: false });
        let task = Task::new("t", 1_000_000, Arc::new(dnn));
        let system = System::new(Platform::default_cpu_gpu(), TaskSet::new(vec![task], PriorityPolicy::RateMonotonic));
        let fp32 = Placement { mode: Mode::CpuFp32, resource: 1 };
        let mut ev = Evaluator::new(&system, Allocation { tasks: vec![vec![fp32; 4]] });
        let full = |ev: &Evaluator| {
            let plan = ExecutionPlan::new_unchecked(&system, &ev.allocation);
            plan.tasks[0].layers.iter().map(|l| l.wcet).collect::<Vec<_>>()
        };
        let incremental = |ev: &Evaluator| ev.plan.tasks[0].layers.iter().map(|l| l.wcet).collect::<Vec<_>>();
        let m = Move { task: 0, first: 0, last: 0, place: Placement { mode: Mode::CpuInt8, resource: 1 } };
        let analysis = ev.try_block(&m);
        assert_eq!(incremental(&ev), full(&ev), "restored");
        ev.apply(&m, analysis);
        assert_eq!(incremental(&ev), full(&ev), "after the move");
        assert_eq!(incremental(&ev)[3], 1_002, "the add dequantizes layer 0's output");
    }
}
