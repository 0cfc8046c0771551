//! Stall accounting: the time the machine spent outside what the analysis assumes of it.

use lalarand_model::Time;
use std::sync::atomic::{AtomicU64, Ordering};

/// Time the machine spent outside what the analysis assumes of it, summed over every resource
/// and the release path: what the bounds do not cover. Each part is the excess over what the
/// plan charges, so a machine that keeps to its platform file adds nothing. The hand-offs' own
/// excess is counted apart: it is the runtime's work, so it explains no job's lateness.
#[derive(Default)]
pub(crate) struct StallCounters {
    /// Stage executions past their planned cost less the wake-up charge.
    pub stage: AtomicU64,
    /// Hand-offs (stage end -> next stage queued) past what the stage's planned cost left for
    /// them: the runtime's own overrun, not in [`Self::total`].
    pub handoff: AtomicU64,
    /// Woken workers that started later than their resource's `wakeup_overhead` after the stage
    /// that woke them was queued.
    pub wakeup: AtomicU64,
    /// Jobs queued (or put in their task's backlog) by the release thread after their release:
    /// it woke late, or waited for a lock.
    pub release: AtomicU64,
    /// Sporadic jobs queued by `submit` after their release (taken inside `submit`): the
    /// application's thread descheduled, or waiting for a lock, in between.
    pub submit: AtomicU64,
}

pub(crate) fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl StallCounters {
    pub fn add(&self, part: &AtomicU64, ns: Time) {
        if ns > 0 {
            part.fetch_add(ns, Ordering::Relaxed);
        }
    }

    /// Adds `other`'s stalls (a mode change carries them on, before any job is in flight).
    pub fn add_all(&self, other: &StallCounters) {
        for (mine, theirs) in [
            (&self.stage, &other.stage),
            (&self.handoff, &other.handoff),
            (&self.wakeup, &other.wakeup),
            (&self.release, &other.release),
            (&self.submit, &other.submit),
        ] {
            self.add(mine, get(theirs));
        }
    }

    /// Every stall of the machine so far (the hand-offs' excess left out), ns; a job's
    /// `stalled` is the growth of this while it is in flight.
    pub fn total(&self) -> Time {
        get(&self.stage) + get(&self.wakeup) + get(&self.release) + get(&self.submit)
    }
}
