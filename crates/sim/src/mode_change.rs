//! Mode changes: tasks loaded and unloaded while the system runs, under the drain-then-switch
//! protocol of docs/analysis.md, section 5, applied exactly.
//!
//! A change requested at `t_r` stops the old mode's releases (a release due at `t_r` itself is
//! not made); the old mode's jobs in flight run on under the old plan; at `t_s`, the instant the
//! last of them completes (or `t_r` if none is in flight), the new plan takes effect. A task that
//! continues releases its first new-mode job at `max(t_s, last release + T)` (so its jobs stay at
//! least `T` apart), a loaded task at `t_s` plus its plan offset. A change requested while
//! another drains is queued: it starts at that change's `t_s`. Because the system is empty at
//! every `t_s`, a run is a sequence of runs of one mode each: mode `k` releases in
//! `[t_s(k), t_r(k+1))` and runs until its last job completes. Every job is recorded with the
//! bound of the mode it was released in.

use crate::engine::{Horizon, SimConfig, Simulator};
use crate::SimError;
use lalarand_analysis::mode_change::{continuing_release, drain_bound, drain_ends_by};
use lalarand_analysis::{analyze, Analysis};
use lalarand_model::{ExecutionPlan, Time};
use serde::Serialize;

/// One requested change: the mode to switch to.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeChange {
    pub requested: Time,
    /// The new mode: every task must be proven by the analysis.
    pub plan: ExecutionPlan,
    /// Per task of `plan`: the task of the previous mode it continues, `None` if loaded now.
    pub continues: Vec<Option<usize>>,
}

/// A job and the bound that held when it was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModeJob {
    /// 0 for the initial mode, `k` after the `k`-th change.
    pub mode: usize,
    /// Index in that mode's plan.
    pub task: usize,
    pub release: Time,
    /// `None` only if the job never completed (it always does under a proven mode).
    pub finish: Option<Time>,
    pub bound: Time,
}

impl ModeJob {
    /// Finished within the bound of its mode.
    pub fn within_bound(&self) -> bool {
        self.finish.is_some_and(|f| f - self.release <= self.bound)
    }
}

/// What one change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeRecord {
    pub requested: Time,
    /// When the protocol took it up: the request, or the switch of the change before it.
    pub started: Time,
    /// When the new mode took effect: every old-mode job had completed.
    pub switched: Time,
    /// Old-mode jobs still running at `started`.
    pub in_flight: usize,
    /// `drain_bound` of the old mode: `switched - started` may not exceed it.
    pub drain_bound: Time,
    /// `drain_ends_by` of the jobs in flight: `switched` may not exceed it.
    pub drain_ends_by: Time,
    /// (task of the new plan, its first release) for each loaded task.
    pub first_releases: Vec<(usize, Time)>,
}

impl ChangeRecord {
    /// The switch came no later than the protocol's bounds say.
    pub fn within_bounds(&self) -> bool {
        self.switched - self.started <= self.drain_bound && self.switched <= self.drain_ends_by
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeChangeRun {
    pub jobs: Vec<ModeJob>,
    pub changes: Vec<ChangeRecord>,
    /// The last completion.
    pub end: Time,
}

/// Runs `initial`, then each change in order at its request (queued behind a change still
/// draining), the last mode releasing jobs before `end`; every job runs to completion.
/// `config`'s horizon is not used; its execution model, releases and seed are.
pub fn simulate_mode_changes(
    initial: &ExecutionPlan,
    changes: &[ModeChange],
    config: &SimConfig,
    end: Time,
) -> Result<ModeChangeRun, SimError> {
    let plans: Vec<&ExecutionPlan> = std::iter::once(initial).chain(changes.iter().map(|c| &c.plan)).collect();
    let analyses: Vec<Analysis> = plans.iter().map(|p| analyze(p)).collect();
    for (k, (plan, analysis)) in plans.iter().zip(&analyses).enumerate() {
        if let Some(i) = analysis.tasks.iter().position(|t| !t.schedulable()) {
            return Err(SimError::InvalidPlan(format!("mode {k}: task {i} is not proven; only proven modes run")));
        }
        if k > 0 {
            let c = &changes[k - 1];
            let previous = plans[k - 1].tasks.len();
            if c.continues.len() != plan.tasks.len() || c.continues.iter().flatten().any(|&i| i >= previous) {
                return Err(SimError::InvalidPlan(format!(
                    "change {k}: `continues` must name, per task of the new plan, a task of the previous one or none"
                )));
            }
        }
    }
    let mut sim = Simulator::default();
    let mut run = ModeChangeRun { jobs: Vec::new(), changes: Vec::new(), end: 0 };
    let mut first_release: Vec<Time> = initial.tasks.iter().map(|t| t.offset).collect();
    let mut mode_start: Time = 0;
    for (k, plan) in plans.iter().enumerate() {
        let stop = changes.get(k).map_or(end, |c| c.requested).max(mode_start);
        let mut segment = (*plan).clone();
        for (t, &r) in segment.tasks.iter_mut().zip(&first_release) {
            t.offset = r;
        }
        let segment_config = SimConfig {
            horizon: Horizon::ReleasesBefore(stop),
            record_jobs: true,
            record_trace: false,
            seed: config.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ..*config
        };
        let result = sim.run(&segment, &segment_config)?;
        let bounds: Vec<Time> = analyses[k].tasks.iter().map(|t| t.bound.expect("proven")).collect();
        let mut last_release: Vec<Option<Time>> = vec![None; plan.tasks.len()];
        let mut switched = stop;
        let mut in_flight = Vec::new();
        for j in &result.jobs {
            last_release[j.task] = Some(j.release);
            let finish = j.finish.unwrap_or(Time::MAX);
            switched = switched.max(finish);
            if finish > stop {
                in_flight.push((j.task, j.release));
            }
            run.jobs.push(ModeJob {
                mode: k,
                task: j.task,
                release: j.release,
                finish: j.finish,
                bound: bounds[j.task],
            });
        }
        run.end = run.end.max(switched);
        let Some(change) = changes.get(k) else { break };
        let old = &analyses[k];
        first_release = change
            .continues
            .iter()
            .zip(&change.plan.tasks)
            .map(|(from, task)| match *from {
                Some(i) => continuing_release(switched, last_release[i], plan.tasks[i].period, first_release[i]),
                None => switched + task.offset,
            })
            .collect();
        run.changes.push(ChangeRecord {
            requested: change.requested,
            started: stop,
            switched,
            in_flight: in_flight.len(),
            drain_bound: drain_bound(old).expect("proven"),
            drain_ends_by: drain_ends_by(old, stop, in_flight).expect("proven"),
            first_releases: change
                .continues
                .iter()
                .enumerate()
                .filter(|(_, from)| from.is_none())
                .map(|(j, _)| (j, first_release[j]))
                .collect(),
        });
        mode_start = switched;
    }
    Ok(run)
}
