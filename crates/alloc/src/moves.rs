//! Counting and capping the layers a re-allocation moves away from where they run now.
//!
//! Admission (`crate::admission`) re-allocates a running system: a layer that keeps its
//! placement keeps running where it is, one that moves changes what the runtime does for its
//! task. [`MoveLimit`] lets the LaLaRAND search see the running placements and refuse moves past
//! a cap.

use crate::evaluator::Move;
use lalarand_model::{Allocation, Placement};

/// Where each task's layers run now, and how many of them a search may move.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveLimit {
    /// Per task of the system being searched: its running placements, or `None` for a task
    /// that is not running yet (a task being loaded), whose layers move freely.
    pub origin: Vec<Option<Vec<Placement>>>,
    /// The most layers of running tasks that may end up away from their running placement.
    pub max_moved: usize,
}

impl MoveLimit {
    /// Whether the search may move any layer of `task`.
    pub fn may_move_task(&self, task: usize) -> bool {
        self.max_moved > 0 || self.origin[task].is_none()
    }

    /// Layers of running tasks away from their running placement in `allocation`.
    pub fn moved(&self, allocation: &Allocation) -> usize {
        moved_layers(&self.origin, allocation).iter().sum()
    }

    /// Whether move `m` keeps the moved layers within the cap, `moved_now` being
    /// [`Self::moved`] of the allocation it applies to.
    pub fn allows(&self, allocation: &Allocation, moved_now: usize, m: &Move) -> bool {
        let Some(origin) = &self.origin[m.task] else { return true };
        let current = &allocation.tasks[m.task];
        let (mut added, mut removed) = (0, 0);
        for j in m.first..=m.last {
            let was_moved = current[j] != origin[j];
            let will_be_moved = m.place != origin[j];
            added += usize::from(will_be_moved && !was_moved);
            removed += usize::from(was_moved && !will_be_moved);
        }
        moved_now + added - removed <= self.max_moved
    }

    /// Whether layer `layer` of `task` already sits away from its running placement (or
    /// belongs to a task not running yet): accuracy recovery may move such layers without
    /// moving a running one.
    pub fn is_free(&self, allocation: &Allocation, task: usize, layer: usize) -> bool {
        self.origin[task].as_ref().is_none_or(|o| o[layer] != allocation.tasks[task][layer])
    }
}

/// Per task: how many of its layers sit away from `origin` (0 for a task with no origin).
pub fn moved_layers(origin: &[Option<Vec<Placement>>], allocation: &Allocation) -> Vec<usize> {
    origin
        .iter()
        .zip(&allocation.tasks)
        .map(|(o, now)| o.as_ref().map_or(0, |o| o.iter().zip(now).filter(|(a, b)| a != b).count()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lalarand_model::Mode;

    #[test]
    fn counts_and_caps_moved_layers() {
        let gpu = Placement { mode: Mode::Gpu, resource: 0 };
        let cpu = Placement { mode: Mode::CpuFp32, resource: 1 };
        let limit = MoveLimit { origin: vec![Some(vec![gpu, gpu, gpu]), None], max_moved: 2 };
        let mut a = Allocation { tasks: vec![vec![gpu, cpu, gpu], vec![cpu]] };
        assert_eq!(limit.moved(&a), 1);
        let two_more = Move { task: 0, first: 0, last: 2, place: cpu };
        assert!(!limit.allows(&a, 1, &two_more), "would move 3");
        let back = Move { task: 0, first: 1, last: 2, place: gpu };
        assert!(limit.allows(&a, 1, &back));
        assert!(limit.allows(&a, 1, &Move { task: 1, first: 0, last: 0, place: gpu }), "new task moves freely");
        assert!(limit.is_free(&a, 0, 1) && !limit.is_free(&a, 0, 0) && limit.is_free(&a, 1, 0));
        a.tasks[0] = vec![gpu; 3];
        assert_eq!(moved_layers(&limit.origin, &a), vec![0, 0]);
        let frozen = MoveLimit { max_moved: 0, ..limit };
        assert!(!frozen.may_move_task(0) && frozen.may_move_task(1));
    }
}
