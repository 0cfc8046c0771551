//! Exact branch and bound over all layer-level allocations, under the same analysis.
//!
//! Depth-first over (task in priority order, layer in chain order) with placements tried
//! fastest first. A partial allocation is pruned when some task cannot meet its deadline
//! whatever the unassigned layers do: the analysis is monotone (adding a layer, or lengthening
//! one, never shrinks a bound; docs/analysis.md proves it), and appending a layer adds at least
//! that layer's cost to its task's bound, so `bound(partial) + sum of the remaining layers'
//! cheapest times > deadline` proves infeasibility. Two searches, each with
//! [`AllocOptions::node_limit`] nodes: existence (skipped when `lalarand` already schedules the
//! set), then the least accuracy cost (pruning on the incumbent's cost).
//!
//! [`Outcome::complete`] is `true` when schedulability was *decided*: a schedulable allocation
//! was found, or the first search proved none exists. Exponential in the worst case: meant for
//! small task sets, to measure how far `lalarand` is from the best possible.

use crate::search::all_placements;
use crate::{AllocError, AllocOptions, Allocator, Lalarand, Outcome};
use lalarand_analysis::{analyze_summaries, TaskSummary};
use lalarand_model::plan::{layer_cost_with, layer_wakeup};
use lalarand_model::{Allocation, ExecutionPlan, Placement, PlannedLayer, PlannedTask, System, Time};

pub struct Optimal;

impl Allocator for Optimal {
    fn name(&self) -> &'static str {
        "optimal"
    }

    fn allocate(&self, system: &System, options: &AllocOptions) -> Result<Outcome, AllocError> {
        let choices = all_placements(system, options)?;
        let heuristic = Lalarand.allocate(system, options)?;
        let mut search = Search::new(system, options, choices);
        search.evaluations = heuristic.evaluations;
        let mut best = heuristic.schedulable().then(|| heuristic.allocation.clone());
        let mut decided = best.is_some();
        if best.is_none() {
            search.incumbent_cost = f64::INFINITY;
            search.minimize_accuracy = false;
            best = search.run();
            decided = best.is_some() || !search.hit_limit;
        }
        if let Some(found) = &best {
            let cost = found.accuracy_cost(system);
            if cost > 0.0 {
                search.incumbent_cost = cost;
                search.minimize_accuracy = true;
                search.nodes = 0;
                search.hit_limit = false;
                if let Some(better) = search.run() {
                    best = Some(better);
                }
            }
        }
        let evaluations = search.evaluations;
        let mut outcome = match best {
            Some(a) => Outcome::evaluate(system, a, evaluations),
            None => Outcome { evaluations, ..heuristic },
        };
        outcome.complete = decided;
        Ok(outcome)
    }
}

struct Search<'a> {
    system: &'a System,
    budget: f64,
    node_limit: u64,
    choices: Vec<Vec<Vec<Placement>>>,
    /// Task indices, highest priority first.
    order: Vec<usize>,
    /// `remaining[i][j]`: cheapest possible total time of layers `j..` of task `i`.
    remaining: Vec<Vec<Time>>,
    places: Vec<Vec<Placement>>,
    plan: ExecutionPlan,
    summaries: Vec<TaskSummary>,
    incumbent_cost: f64,
    minimize_accuracy: bool,
    nodes: u64,
    hit_limit: bool,
    evaluations: u64,
}

impl<'a> Search<'a> {
    fn new(system: &'a System, options: &AllocOptions, mut choices: Vec<Vec<Vec<Placement>>>) -> Self {
        let remaining = choices
            .iter()
            .enumerate()
            .map(|(i, layers)| {
                let mut suffix = vec![0; layers.len() + 1];
                for j in (0..layers.len()).rev() {
                    let l = &system.tasks[i].dnn.layers[j];
                    let cheapest = layers[j].iter().filter_map(|p| l.wcet(p.mode)).min().unwrap_or(0);
                    suffix[j] = suffix[j + 1] + cheapest;
                }
                suffix
            })
            .collect();
        for (i, layers) in choices.iter_mut().enumerate() {
            for (j, ps) in layers.iter_mut().enumerate() {
                ps.sort_by_key(|p| system.tasks[i].dnn.layers[j].wcet(p.mode));
            }
        }
        let n = system.tasks.len();
        let plan = ExecutionPlan {
            resources: system.platform.resources.len(),
            tasks: system.tasks.iter().map(|t| PlannedTask::new(&system.platform, t, &[])).collect(),
        };
        let summaries = plan.tasks.iter().map(|t| TaskSummary::new(t, plan.resources)).collect();
        Self {
            system,
            budget: options.accuracy_budget,
            node_limit: options.node_limit,
            choices,
            order: system.by_priority(),
            remaining,
            places: vec![Vec::new(); n],
            plan,
            summaries,
            incumbent_cost: f64::INFINITY,
            minimize_accuracy: false,
            nodes: 0,
            hit_limit: false,
            evaluations: 0,
        }
    }

    fn run(&mut self) -> Option<Allocation> {
        for p in &mut self.places {
            p.clear();
        }
        for t in &mut self.plan.tasks {
            t.layers.clear();
        }
        for i in 0..self.summaries.len() {
            self.summaries[i] = TaskSummary::new(&self.plan.tasks[i], self.plan.resources);
        }
        // A task whose cheapest chain already misses its deadline: nothing to search.
        if self.order.iter().any(|&i| self.remaining[i][0] > self.system.tasks[i].deadline) {
            return None;
        }
        let mut found = None;
        self.descend(0, 0, 0.0, &mut found);
        found
    }

    /// Tries every placement of layer `layer` of the `rank`-th task; records improvements.
    fn descend(&mut self, rank: usize, layer: usize, cost: f64, found: &mut Option<Allocation>) -> bool {
        if self.nodes >= self.node_limit {
            self.hit_limit = true;
            return true;
        }
        let Some(&task) = self.order.get(rank) else {
            *found = Some(Allocation { tasks: self.places.clone() });
            self.incumbent_cost = cost;
            return !self.minimize_accuracy;
        };
        let layers = self.choices[task].len();
        for c in 0..self.choices[task][layer].len() {
            let place = self.choices[task][layer][c];
            let layer_profile = &self.system.tasks[task].dnn.layers[layer];
            let added = if place.mode.is_int8() { layer_profile.budgeted_int8_cost() } else { 0.0 };
            let new_cost = cost + added;
            if new_cost > self.budget + 1e-12 || (self.minimize_accuracy && new_cost >= self.incumbent_cost - 1e-12) {
                continue;
            }
            self.nodes += 1;
            self.push(task, place);
            let feasible = self.feasible(task, layer + 1);
            let stop = feasible && {
                let (next_rank, next_layer) = if layer + 1 == layers { (rank + 1, 0) } else { (rank, layer + 1) };
                self.descend(next_rank, next_layer, new_cost, found)
            };
            self.pop(task);
            if stop {
                return true;
            }
        }
        false
    }

    fn push(&mut self, task: usize, place: Placement) {
        self.places[task].push(place);
        let j = self.places[task].len() - 1;
        let dnn = &self.system.tasks[task].dnn;
        let is_last = j + 1 == dnn.layers.len();
        let wcet = layer_cost_with(&self.system.platform, dnn, &self.places[task], j, is_last);
        let wakeup = layer_wakeup(&self.system.platform, &self.places[task], j);
        self.plan.tasks[task].layers.push(PlannedLayer { resource: place.resource, mode: place.mode, wcet, wakeup });
        self.summaries[task] = TaskSummary::new(&self.plan.tasks[task], self.plan.resources);
    }

    fn pop(&mut self, task: usize) {
        self.places[task].pop();
        self.plan.tasks[task].layers.pop();
        self.summaries[task] = TaskSummary::new(&self.plan.tasks[task], self.plan.resources);
    }

    /// Can the partial allocation (task `task` assigned up to `next_layer`) still be completed
    /// into a schedulable one? `false` is a proof that it cannot.
    fn feasible(&mut self, task: usize, next_layer: usize) -> bool {
        self.evaluations += 1;
        let analysis = analyze_summaries(&self.plan, &self.summaries);
        self.order.iter().all(|&i| {
            let assigned = self.places[i].len();
            let rest = if i == task { self.remaining[i][next_layer] } else { self.remaining[i][assigned] };
            analysis.tasks[i].bound.is_some_and(|b| b + rest <= self.system.tasks[i].deadline)
        })
    }
}
