//! A simulation's per-task results next to the analysis' bounds: what `lalarand simulate`
//! prints and the Python package's `System.simulate` returns, built in one place.

use crate::SimResult;
use lalarand_analysis::Analysis;
use lalarand_model::{System, Time};
use serde::Serialize;

/// One task in the simulator, next to its bound.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimTaskReport {
    pub name: String,
    pub jobs: u64,
    pub completed: u64,
    pub misses: u64,
    /// Over completed jobs; `None` when none completed.
    pub min_response_ns: Option<Time>,
    pub mean_response_ns: Option<f64>,
    pub max_response_ns: Option<Time>,
    /// Age at the end of the run of the oldest unfinished job, if any.
    pub oldest_incomplete_ns: Option<Time>,
    /// The analysis bound; `None` when the analysis proved none.
    pub bound_ns: Option<Time>,
    /// Some job responded later than the proven bound (an analysis bug: please report it).
    pub exceeds_bound: bool,
}

/// A simulation's result, task by task, with the bounds it is checked against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// The run covered [0, end_ns].
    pub end_ns: Time,
    pub hyperperiod_ns: Option<Time>,
    pub misses: u64,
    pub tasks: Vec<SimTaskReport>,
}

impl SimReport {
    /// `result` of simulating `system`'s plan, next to `bounds` (the analysis of that plan).
    pub fn new(system: &System, result: &SimResult, bounds: &Analysis) -> Self {
        let tasks = system
            .tasks
            .iter()
            .zip(&result.tasks)
            .zip(&bounds.tasks)
            .map(|((t, s), b)| {
                let done = s.completed > 0;
                SimTaskReport {
                    name: t.name.clone(),
                    jobs: s.jobs,
                    completed: s.completed,
                    misses: s.misses,
                    min_response_ns: done.then_some(s.min_response),
                    mean_response_ns: done.then_some(s.mean_response),
                    max_response_ns: done.then_some(s.max_response),
                    oldest_incomplete_ns: s.oldest_incomplete,
                    bound_ns: b.bound,
                    exceeds_bound: b.bound.is_some_and(|r| s.exceeds(r)),
                }
            })
            .collect();
        Self { end_ns: result.end, hyperperiod_ns: result.hyperperiod, misses: result.misses(), tasks }
    }

    /// No deadline missed and no response past its bound.
    pub fn clean(&self) -> bool {
        self.misses == 0 && !self.tasks.iter().any(|t| t.exceeds_bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{simulate, SimConfig};
    use lalarand_model::{examples, Allocation, ExecutionPlan, Mode};

    #[test]
    fn one_row_per_task_with_its_bound() {
        let system = examples::demo_system();
        let alloc = Allocation::uniform(&system, Mode::Gpu).unwrap();
        let plan = ExecutionPlan::new(&system, &alloc).unwrap();
        let bounds = lalarand_analysis::analyze(&plan);
        let result = simulate(&plan, &SimConfig::default()).unwrap();
        let report = SimReport::new(&system, &result, &bounds);
        assert_eq!(report.tasks.len(), system.tasks.len());
        for ((row, task), b) in report.tasks.iter().zip(&system.tasks).zip(&bounds.tasks) {
            assert_eq!((&row.name, row.bound_ns), (&task.name, b.bound));
            assert!(!row.exceeds_bound, "{row:?}");
        }
        assert_eq!(report.clean(), report.misses == 0);
        // A made-up response past its bound makes the report unclean.
        let mut late = report.clone();
        late.tasks[0].exceeds_bound = true;
        assert!(!late.clean());
    }
}
