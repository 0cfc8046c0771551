//! Response-time analysis for layer-level scheduling (derivation: docs/analysis.md).
//!
//! Model: each resource runs one layer at a time, non-preemptively, picking the ready layer of
//! highest fixed priority. A job of task *i* is a chain of layers; each layer is queued on its
//! resource the instant its predecessor completes. For every task the analysis computes two
//! sound upper bounds on any job's response time and keeps the smaller:
//!
//! * **job-level**: all waiting happens in `[release, start of last layer)`, and is caused by
//!   higher-priority work on the resources the task visits, or by one lower-priority layer per
//!   *arrival* of the task on a resource (non-preemptive blocking);
//! * **segment-level**: the same argument per maximal run of consecutive layers on one
//!   resource, summed over runs.
//!
//! Higher-priority work on a resource is bounded with the carry-in workload of a task whose
//! every job executes `C_k^r` on that resource somewhere inside `[release, release + R_k]`:
//! `(floor((w + R_k - C_k^r) / T_k) + 1) * C_k^r` in any closed window of length `w` (jitter `R_k - C_k^r`;
//! the sound way to model dynamic self-suspension, Chen et al. 2019), or, where smaller, the sum
//! of the same bound per segment of `τ_k` on that resource with the segment's own jitter: its
//! end's bound (Theorem 2's prefix sum) less its cost (docs/analysis.md, Lemma 3'). A task is deemed
//! schedulable only if its bound is at most its deadline and every higher-priority task is
//! schedulable (otherwise no `R_k` is known); deadlines are constrained (`D <= T`), so a job
//! finishes before its task's next release and jobs of one task never overlap.

use lalarand_model::{time::Time, ExecutionPlan};
use serde::Serialize;

pub mod mode_change;
pub mod report;
mod summary;
use summary::summarize;
pub use summary::TaskSummary;

/// The analysis of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TaskBound {
    /// The response-time bound if it is at most the deadline; `None` otherwise.
    pub bound: Option<Time>,
    /// The job-level and segment-level bounds (each `None` if it exceeded the deadline).
    pub job_level: Option<Time>,
    pub segment_level: Option<Time>,
    /// For guidance when unschedulable: the point where the iteration crossed the deadline
    /// (with unschedulable higher-priority tasks assumed to respond at their deadline). A
    /// lower bound on no real quantity, only a measure of "how far over".
    pub estimate: Time,
    pub deadline: Time,
}

impl TaskBound {
    pub fn schedulable(&self) -> bool {
        self.bound.is_some()
    }

    /// `bound / deadline`, or `estimate / deadline` when unschedulable.
    pub fn normalized(&self) -> f64 {
        self.bound.unwrap_or(self.estimate) as f64 / self.deadline as f64
    }
}

/// The analysis of a task set, one entry per task of the plan (same order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Analysis {
    pub tasks: Vec<TaskBound>,
    /// Per segment, tasks in priority order and each task's segments in chain order: a bound
    /// on the time from a job's release to the end of that segment (Theorem 2's prefix sums;
    /// `Time::MAX` where none was found). Lower-priority tasks' carry-in jitter per segment
    /// comes from it (Lemma 3'), and `analyze_after_change` reuses it with the bounds.
    #[serde(skip)]
    segment_ends: Vec<Time>,
}

impl Analysis {
    pub fn schedulable(&self) -> bool {
        self.tasks.iter().all(TaskBound::schedulable)
    }

    pub fn unschedulable_count(&self) -> usize {
        self.tasks.iter().filter(|t| !t.schedulable()).count()
    }

    /// The largest `bound / deadline` over tasks (estimates for unschedulable ones).
    pub fn max_normalized(&self) -> f64 {
        self.tasks.iter().map(TaskBound::normalized).fold(0.0, f64::max)
    }
}

/// How far a task set is from schedulable, lexicographically: unschedulable tasks, then the
/// total overshoot `sum of max(0, bound / deadline - 1)` (estimates for unschedulable tasks).
/// Both parts only grow as tasks are added, which lets a search abandon an analysis early.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
pub struct Score {
    pub unschedulable: usize,
    pub overshoot: f64,
}

impl Score {
    pub const ZERO: Score = Score { unschedulable: 0, overshoot: 0.0 };

    /// Strictly better, ignoring floating-point noise in the overshoot.
    pub fn better_than(&self, other: &Score) -> bool {
        self.unschedulable < other.unschedulable
            || (self.unschedulable == other.unschedulable && self.overshoot < other.overshoot - 1e-12)
    }

    fn add(&mut self, task: &TaskBound) {
        self.unschedulable += usize::from(!task.schedulable());
        self.overshoot += (task.normalized() - 1.0).max(0.0);
    }
}

impl Analysis {
    pub fn score(&self) -> Score {
        let mut s = Score::ZERO;
        self.tasks.iter().for_each(|t| s.add(t));
        s
    }
}

/// Analyzes a plan. Cost: O(n^2 * resources * iterations) after an O(layers) summary.
pub fn analyze(plan: &ExecutionPlan) -> Analysis {
    let summaries = summarize(plan);
    analyze_summaries(plan, &summaries)
}

/// The same analysis over precomputed summaries (allocators that edit one task at a time
/// re-summarize only that task).
pub fn analyze_summaries(plan: &ExecutionPlan, summaries: &[TaskSummary]) -> Analysis {
    let order = priority_order(plan);
    let blocking = summary::blocking_per_resource(plan, |i| &summaries[i].longest_layer, &order);
    analyze_core(plan, summaries, &order, &blocking, None, None).expect("no cutoff")
}

/// The analysis after only task `changed` changed (its summary was `before`, `previous` the
/// analysis then): a higher-priority task depends on lower ones only through blocking, so
/// where its blocking is unchanged its bound is reused. Same result as [`analyze_summaries`].
pub fn analyze_after_change(
    plan: &ExecutionPlan,
    summaries: &[TaskSummary],
    changed: usize,
    before: &TaskSummary,
    previous: &Analysis,
) -> Analysis {
    analyze_after_change_if_better(plan, summaries, changed, before, previous, None).expect("no cutoff")
}

/// [`analyze_after_change`], abandoned (`None`) as soon as the result provably cannot score
/// strictly better than `cutoff`.
pub fn analyze_after_change_if_better(
    plan: &ExecutionPlan,
    summaries: &[TaskSummary],
    changed: usize,
    before: &TaskSummary,
    previous: &Analysis,
    cutoff: Option<Score>,
) -> Option<Analysis> {
    let order = priority_order(plan);
    let blocking = summary::blocking_per_resource(plan, |i| &summaries[i].longest_layer, &order);
    let old_blocking = summary::blocking_per_resource(
        plan,
        |i| if i == changed { &before.longest_layer } else { &summaries[i].longest_layer },
        &order,
    );
    let changed_priority = plan.tasks[changed].priority;
    let reusable =
        |rank: usize, i: usize| plan.tasks[i].priority < changed_priority && blocking[rank] == old_blocking[rank];
    analyze_core(plan, summaries, &order, &blocking, Some((previous, &reusable)), cutoff)
}

/// A previous analysis, and which tasks (rank, index) keep their bounds from it.
type Reuse<'a> = (&'a Analysis, &'a dyn Fn(usize, usize) -> bool);

fn priority_order(plan: &ExecutionPlan) -> Vec<usize> {
    let mut order: Vec<usize> = (0..plan.tasks.len()).collect();
    order.sort_by_key(|&i| plan.tasks[i].priority);
    order
}

fn analyze_core(
    plan: &ExecutionPlan,
    summaries: &[TaskSummary],
    order: &[usize],
    blocking: &[Vec<Time>],
    reuse: Option<Reuse>,
    cutoff: Option<Score>,
) -> Option<Analysis> {
    let n = plan.tasks.len();
    let mut score = Score::ZERO;
    // Partial scores only grow: once one cannot beat the cutoff, the full one cannot either.
    let hopeless = |s: &Score| {
        cutoff.is_some_and(|c| {
            s.unschedulable > c.unschedulable
                || (s.unschedulable == c.unschedulable && s.overshoot >= c.overshoot - 1e-12)
        })
    };

    let mut results: Vec<Option<TaskBound>> = vec![None; n];
    // Higher-priority tasks analyzed so far: (index, response used for jitter, where its
    // segments' ends start in `segment_ends`).
    let mut higher: Vec<(usize, Time, usize)> = Vec::with_capacity(n);
    let mut segment_ends: Vec<Time> = Vec::with_capacity(order.iter().map(|&i| summaries[i].segments.len()).sum());
    let mut all_higher_schedulable = true;
    for (rank, &i) in order.iter().enumerate() {
        let task = &plan.tasks[i];
        let ends_at = segment_ends.len();
        let segments = summaries[i].segments.len();
        if let Some((previous, _)) = reuse.filter(|(_, reusable)| reusable(rank, i)) {
            // Every task before the changed one has the summary it had, so its segments sit
            // at the same place in `previous.segment_ends`.
            let known = previous.tasks[i];
            segment_ends.extend_from_slice(&previous.segment_ends[ends_at..ends_at + segments]);
            all_higher_schedulable &= known.bound.is_some();
            higher.push((i, known.bound.unwrap_or(task.deadline), ends_at));
            results[i] = Some(known);
            score.add(&known);
            if hopeless(&score) {
                return None;
            }
            continue;
        }
        let s = &summaries[i];
        let block = &blocking[rank];
        // A bound beyond the period would let jobs of one task overlap, which the analysis
        // does not model; task sets guarantee D <= T, hand-built plans may not.
        let limit = task.deadline.min(task.period);
        let interference = |w: Time, r: usize| -> Time {
            higher
                .iter()
                .map(|&(k, rk, ends_at)| {
                    let c = summaries[k].on_resource[r];
                    if c == 0 {
                        return 0;
                    }
                    let period = plan.tasks[k].period;
                    // Lemma 3: all of τ_k's work on r inside [release, release + R_k].
                    let whole = carry_in(w, rk.saturating_sub(c), period, c);
                    // Lemma 3': each segment on r inside [release, its end's bound].
                    let per_segment = summaries[k]
                        .segments
                        .iter()
                        .zip(&segment_ends[ends_at..])
                        .filter(|(seg, _)| seg.resource == r)
                        .map(|(seg, &end)| {
                            let cost = seg.before_last + seg.last;
                            carry_in(w, end.min(rk).saturating_sub(cost), period, cost)
                        })
                        .fold(0, Time::saturating_add);
                    whole.min(per_segment)
                })
                .fold(0, Time::saturating_add)
        };

        // Job-level: w = sum of all but the last layer + blocking per arrival + interference.
        let job_base: Time =
            s.total - s.last + s.visited.iter().map(|&(r, arrivals)| arrivals as Time * block[r]).sum::<Time>();
        let job = fixed_point(job_base, s.last, limit, |w| {
            s.visited.iter().map(|&(r, _)| interference(w, r)).fold(0, Time::saturating_add)
        });

        // Segment-level: each run on one resource separately, summed; the running sums bound
        // each segment's end for lower-priority tasks' jitter.
        let mut seg_total: Time = 0;
        let mut seg_ok = true;
        let mut ends = Vec::with_capacity(segments);
        for seg in &s.segments {
            let budget = limit.saturating_sub(seg_total);
            match fixed_point(block[seg.resource].saturating_add(seg.before_last), seg.last, budget, |w| {
                interference(w, seg.resource)
            }) {
                Ok(r) => {
                    seg_total += r;
                    ends.push(seg_total);
                }
                Err(reached) => {
                    seg_total = seg_total.saturating_add(reached);
                    seg_ok = false;
                    break;
                }
            }
        }
        ends.resize(segments, Time::MAX);
        segment_ends.extend_from_slice(&ends);
        let segment = if seg_ok && seg_total <= limit { Ok(seg_total) } else { Err(seg_total.max(limit + 1)) };

        let (job_level, segment_level) = if all_higher_schedulable { (job.ok(), segment.ok()) } else { (None, None) };
        let best = match (job_level, segment_level) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let estimate = job.unwrap_or_else(|e| e).min(segment.unwrap_or_else(|e| e));
        let bound = best;
        all_higher_schedulable &= bound.is_some();
        let result = TaskBound { bound, job_level, segment_level, estimate, deadline: task.deadline };
        results[i] = Some(result);
        score.add(&result);
        if hopeless(&score) {
            return None;
        }
        // Jitter for lower-priority tasks: the bound, or the deadline as a stand-in for guidance.
        higher.push((i, bound.unwrap_or(task.deadline), ends_at));
    }
    let tasks = results.into_iter().map(|r| r.expect("every task analyzed")).collect();
    Some(Analysis { tasks, segment_ends })
}

/// The most a task with period `period` executes of `cost` (each job inside a window of
/// jitter `jitter`) in a closed window of length `w`: releases in `[t - jitter, t + w]` count,
/// since a higher-priority layer ready at the very instant the waiting layer could start wins
/// the resource. Saturating: absurd inputs must not wrap.
fn carry_in(w: Time, jitter: Time, period: Time, cost: Time) -> Time {
    (w.saturating_add(jitter) / period + 1).saturating_mul(cost)
}

/// Least fixed point of `w = base + f(w)` (f non-decreasing), plus `last`; `Err(value)` once
/// `w + last` exceeds `limit`.
fn fixed_point(base: Time, last: Time, limit: Time, f: impl Fn(Time) -> Time) -> Result<Time, Time> {
    let mut w = base;
    loop {
        if w.saturating_add(last) > limit {
            return Err(w.saturating_add(last));
        }
        let next = base.saturating_add(f(w));
        if next == w {
            return Ok(w.saturating_add(last));
        }
        w = next;
    }
}

#[cfg(test)]
mod tests;
