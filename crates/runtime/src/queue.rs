//! A resource's ready queue: a binary heap keyed (priority, release, task), smallest first,
//! with the Condvar its worker parks on.

use lalarand_model::Time;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard};

/// A job between stages. Owned by exactly one queue or worker at a time: its state (tensors)
/// moves with it, never copied.
#[derive(Debug)]
pub(crate) struct InFlight<J> {
    pub task: usize,
    pub job: u64,
    pub release: Time,
    pub deadline: Time,
    /// The next stage to run.
    pub stage: usize,
    /// Made by [`crate::StageExecutor::start_job`] on the worker of the first stage, just before
    /// it runs; `None` until then.
    pub state: Option<J>,
    /// A warm-up job, run before time 0 ([`crate::StageExecutor::warm_up`]), never recorded.
    pub warm_up: bool,
}

#[derive(Debug)]
pub(crate) struct Entry<J> {
    pub key: (u32, Time, usize),
    /// When it was queued.
    pub ready: Time,
    /// Queued while the worker was parked on an empty queue: its wait measures dispatch
    /// latency.
    pub woke_idle: bool,
    pub job: Box<InFlight<J>>,
}

impl<J> PartialEq for Entry<J> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<J> Eq for Entry<J> {}
impl<J> PartialOrd for Entry<J> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<J> Ord for Entry<J> {
    /// Reversed: the max-heap pops the smallest key (highest priority, then earliest release,
    /// then smallest task index: the simulator's rule).
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

#[derive(Debug)]
pub(crate) struct Inner<J> {
    pub heap: BinaryHeap<Entry<J>>,
    /// The worker is parked waiting for work.
    pub parked: bool,
    /// When the stage that woke the parked worker was queued (the server's worker takes it at
    /// its first pop after waking; `run` does not use it): the wake-up, measured once per wake
    /// whatever stage runs first.
    pub woken_by: Option<Time>,
}

#[derive(Debug)]
pub(crate) struct ResourceQueue<J> {
    inner: Mutex<Inner<J>>,
    pub cv: Condvar,
}

impl<J> ResourceQueue<J> {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner { heap: BinaryHeap::with_capacity(capacity), parked: false, woken_by: None }),
            cv: Condvar::new(),
        }
    }

    /// Locks the queue; a worker that panicked while holding it left a valid heap behind.
    pub fn lock(&self) -> MutexGuard<'_, Inner<J>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, job: Box<InFlight<J>>, priority: u32, now: Time) {
        let mut q = self.lock();
        let woke_idle = q.parked && q.heap.is_empty();
        if woke_idle && q.woken_by.is_none() {
            q.woken_by = Some(now);
        }
        q.heap.push(Entry { key: (priority, job.release, job.task), ready: now, woke_idle, job });
        drop(q);
        self.cv.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(task: usize, release: Time) -> Box<InFlight<()>> {
        Box::new(InFlight { task, job: 0, release, deadline: 0, stage: 0, state: None, warm_up: false })
    }

    #[test]
    fn a_wake_up_is_timed_from_the_stage_that_found_the_worker_parked() {
        let q = ResourceQueue::new(4);
        q.push(job(0, 0), 1, 5);
        assert_eq!(q.lock().woken_by, None, "the worker was not parked");
        q.lock().heap.clear();
        q.lock().parked = true;
        q.push(job(1, 0), 1, 10);
        q.push(job(2, 0), 0, 20);
        // The second push (higher priority, popped first) does not restart the wake-up.
        assert_eq!(q.lock().woken_by, Some(10));
    }

    #[test]
    fn pops_by_priority_then_release_then_task() {
        let q = ResourceQueue::new(4);
        q.push(job(0, 5), 1, 0);
        q.push(job(1, 9), 0, 0);
        q.push(job(2, 3), 1, 0);
        q.push(job(3, 3), 1, 0);
        let order: Vec<usize> = std::iter::from_fn(|| q.lock().heap.pop().map(|e| e.job.task)).collect();
        assert_eq!(order, vec![1, 2, 3, 0]);
    }
}
