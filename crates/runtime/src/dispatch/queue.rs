//! A resource's ready queue: a binary heap keyed (priority, release, task), smallest first,
//! with the Condvar its worker parks on.

use lalarand_model::Time;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Debug)]
pub(crate) struct Entry<J> {
    pub key: (u32, Time, usize),
    /// When it was queued.
    pub ready: Time,
    /// Queued while the worker was parked on an empty queue: its wait measures dispatch
    /// latency.
    pub woke_idle: bool,
    pub job: J,
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
    /// When the stage that woke the parked worker was queued (the worker takes it at its first
    /// pop after waking): the wake-up, measured once per wake whatever stage runs first.
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

    /// Queues `job` under `key` = (priority, release, task), ready since `now`.
    pub fn push(&self, job: J, key: (u32, Time, usize), now: Time) {
        let mut q = self.lock();
        let woke_idle = q.parked && q.heap.is_empty();
        if woke_idle && q.woken_by.is_none() {
            q.woken_by = Some(now);
        }
        q.heap.push(Entry { key, ready: now, woke_idle, job });
        drop(q);
        self.cv.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(q: &ResourceQueue<usize>, task: usize, release: Time, priority: u32, now: Time) {
        q.push(task, (priority, release, task), now);
    }

    #[test]
    fn a_wake_up_is_timed_from_the_stage_that_found_the_worker_parked() {
        let q = ResourceQueue::new(4);
        push(&q, 0, 0, 1, 5);
        assert_eq!(q.lock().woken_by, None, "the worker was not parked");
        q.lock().heap.clear();
        q.lock().parked = true;
        push(&q, 1, 0, 1, 10);
        push(&q, 2, 0, 0, 20);
        // The second push (higher priority, popped first) does not restart the wake-up.
        assert_eq!(q.lock().woken_by, Some(10));
    }

    #[test]
    fn pops_by_priority_then_release_then_task() {
        let q = ResourceQueue::new(4);
        push(&q, 0, 5, 1, 0);
        push(&q, 1, 9, 0, 0);
        push(&q, 2, 3, 1, 0);
        push(&q, 3, 3, 1, 0);
        let order: Vec<usize> = std::iter::from_fn(|| q.lock().heap.pop().map(|e| e.job)).collect();
        assert_eq!(order, vec![1, 2, 3, 0]);
    }
}
