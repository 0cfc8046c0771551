//! Bounds of the drain-then-switch mode-change protocol (docs/analysis.md, section 5).
//!
//! A change from a proven old mode to a proven new one is requested at `t_r`. From `t_r` on no
//! job is released under the old mode; the new mode (its allocation and its releases) takes
//! effect at `t_s`, the first instant at which every old-mode job has completed, so every
//! resource is idle. Old-mode jobs then run in a schedule of the old mode alone and new-mode
//! jobs in one of the new mode alone, and each meets its own mode's bound. What the protocol
//! costs is the wait `t_s - t_r`, which delays the new mode's first releases; this module
//! bounds it from the old mode's analysis.

use crate::Analysis;
use lalarand_model::Time;

/// The longest the drain after any request can take: the largest bound of the old mode
/// (`max_i R_i`), or `None` if the old mode is not proven. A job pending at `t_r` was released
/// before `t_r` and completes within its task's bound, so `t_s - t_r < max_i R_i`. With no
/// task at all the switch is immediate (0).
pub fn drain_bound(old: &Analysis) -> Option<Time> {
    old.tasks.iter().try_fold(0, |worst: Time, t| t.bound.map(|b| worst.max(b)))
}

/// The instant by which the drain of a request at `requested` ends, given the old-mode jobs
/// in flight then as `(task index, release)`: `max(requested, max_j (release_j + R_task_j))`.
/// `None` if a task named is not proven (or not in the analysis). This is what a running
/// system can announce to a loading client: its first release is at this instant or earlier.
pub fn drain_ends_by(
    old: &Analysis,
    requested: Time,
    in_flight: impl IntoIterator<Item = (usize, Time)>,
) -> Option<Time> {
    in_flight.into_iter().try_fold(requested, |end, (task, release)| {
        let bound = old.tasks.get(task)?.bound?;
        Some(end.max(release.saturating_add(bound)))
    })
}

/// Rule (P3): when a task that continues across a change releases its first new-mode job. At
/// the switch `switched`, or one period after its last old-mode release if that is later, so its
/// jobs stay at least a period apart; a task with no old-mode release yet keeps its first release
/// `planned` if that is later than the switch.
pub fn continuing_release(switched: Time, last_old_release: Option<Time>, period: Time, planned: Time) -> Time {
    switched.max(last_old_release.map_or(planned, |r| r.saturating_add(period)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskBound;

    fn analysis(bounds: &[Option<Time>]) -> Analysis {
        let tasks = bounds
            .iter()
            .map(|&bound| TaskBound { bound, job_level: bound, segment_level: bound, estimate: 0, deadline: 100 })
            .collect();
        Analysis { tasks, segment_ends: Vec::new() }
    }

    #[test]
    fn the_drain_is_bounded_by_the_largest_old_bound() {
        assert_eq!(drain_bound(&analysis(&[Some(30), Some(70), Some(10)])), Some(70));
        assert_eq!(drain_bound(&analysis(&[])), Some(0));
        assert_eq!(drain_bound(&analysis(&[Some(30), None])), None);
    }

    #[test]
    fn a_continuing_task_resumes_at_the_switch_or_a_period_after_its_last_release() {
        assert_eq!(continuing_release(14, Some(10), 10, 0), 20);
        assert_eq!(continuing_release(25, Some(10), 10, 0), 25, "held during the drain");
        assert_eq!(continuing_release(14, None, 10, 30), 30, "not released yet");
    }

    #[test]
    fn the_drain_ends_when_the_last_job_in_flight_is_due() {
        let a = analysis(&[Some(30), Some(70)]);
        assert_eq!(drain_ends_by(&a, 100, []), Some(100), "nothing in flight: at once");
        assert_eq!(drain_ends_by(&a, 100, [(0, 90), (1, 50)]), Some(120));
        assert_eq!(drain_ends_by(&a, 100, [(1, 40)]), Some(110));
        assert_eq!(drain_ends_by(&a, 100, [(2, 40)]), None, "no such task");
    }
}
