//! Live statistics: fixed-size histograms of atomics (workers and the release thread add to
//! them without a lock; a reader never pauses them) and per-task counters kept by the
//! delivery thread.

use crate::dispatch::{get, StallCounters};
use crate::report::LatencyStats;
use lalarand_model::Time;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two: a percentile is read as its bucket's upper edge, at most
/// 1/64 (1.6%) above the true value.
const SUB: usize = 64;
const SUB_BITS: u32 = 6;
/// Powers of two covered: values up to 2^44 ns (4.9 hours); larger ones land in the last bucket.
const POWERS: usize = 45;

/// A log-linear histogram of nanosecond values, updated with relaxed atomics. Constant memory
/// (23 KB), so a server that runs for days does not grow.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

fn bucket_of(v: Time) -> usize {
    if v < SUB as Time {
        return v as usize;
    }
    let power = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = ((v >> (power - SUB_BITS)) as usize) & (SUB - 1);
    (((power - SUB_BITS + 1) as usize) * SUB + sub).min(POWERS * SUB - 1)
}

/// The largest value of bucket `b`.
fn bucket_top(b: usize) -> Time {
    if b < SUB {
        return b as Time;
    }
    let power = (b / SUB) as u32 + SUB_BITS - 1;
    let sub = (b % SUB) as Time;
    let low = (1u64 << power) + (sub << (power - SUB_BITS));
    low + (1u64 << (power - SUB_BITS)) - 1
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            buckets: (0..POWERS * SUB).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }

    pub fn record(&self, v: Time) {
        self.buckets[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.min.fetch_min(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn min(&self) -> Time {
        match self.count() {
            0 => 0,
            _ => self.min.load(Ordering::Relaxed),
        }
    }

    pub fn max(&self) -> Time {
        self.max.load(Ordering::Relaxed)
    }

    pub fn mean(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.sum.load(Ordering::Relaxed) as f64 / n as f64,
        }
    }

    /// Nearest-rank percentile, as its bucket's upper edge (never above the max seen).
    pub fn percentile(&self, p: f64) -> Time {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let n: u64 = counts.iter().sum();
        if n == 0 {
            return 0;
        }
        let rank = ((p * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (b, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_top(b).min(self.max());
            }
        }
        self.max()
    }

    /// Adds every value `other` recorded (a mode change carries a task's histogram on).
    pub fn add(&self, other: &Histogram) {
        for (b, o) in self.buckets.iter().zip(other.buckets.iter()) {
            let n = o.load(Ordering::Relaxed);
            if n > 0 {
                b.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(other.count(), Ordering::Relaxed);
        self.sum.fetch_add(other.sum.load(Ordering::Relaxed), Ordering::Relaxed);
        self.min.fetch_min(other.min.load(Ordering::Relaxed), Ordering::Relaxed);
        self.max.fetch_max(other.max(), Ordering::Relaxed);
    }

    pub fn latency(&self) -> LatencyStats {
        LatencyStats {
            samples: self.count(),
            median: self.percentile(0.5),
            p99: self.percentile(0.99),
            max: self.max(),
        }
    }
}

/// Per-task counters; written by the server's threads, read by [`super::Server::stats`].
#[derive(Default)]
pub(crate) struct TaskCounters {
    pub released: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub aborted: AtomicU64,
    pub cancelled: AtomicU64,
    pub rejected: AtomicU64,
    pub skipped: AtomicU64,
    pub dropped: AtomicU64,
    pub misses: AtomicU64,
    pub results_dropped: AtomicU64,
}

impl TaskCounters {
    /// Adds `other`'s counts.
    pub fn add(&self, other: &TaskCounters) {
        let pairs = [
            (&self.released, &other.released),
            (&self.completed, &other.completed),
            (&self.failed, &other.failed),
            (&self.aborted, &other.aborted),
            (&self.cancelled, &other.cancelled),
            (&self.rejected, &other.rejected),
            (&self.skipped, &other.skipped),
            (&self.dropped, &other.dropped),
            (&self.misses, &other.misses),
            (&self.results_dropped, &other.results_dropped),
        ];
        for (mine, theirs) in pairs {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// The totals of a task that an earlier mode served and the current one does not (unloaded),
/// kept by a `ModeServer` so that a task loaded again under the same name continues them.
pub(crate) struct TaskTotals {
    pub counters: TaskCounters,
    pub responses: Histogram,
    /// The index its next job takes (job numbers continue too).
    pub next_job: u64,
}

impl TaskTotals {
    pub fn new() -> Self {
        Self { counters: TaskCounters::default(), responses: Histogram::new(), next_job: 0 }
    }

    pub fn add(&self, counters: &TaskCounters, responses: &Histogram) {
        self.counters.add(counters);
        self.responses.add(responses);
    }
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The machine's stalls so far: time past what the plan charges, in ns, summed over resources
/// (docs/runtime.md, "Stalls").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StallStats {
    /// Stage executions longer than their planned cost.
    pub stage_ns: Time,
    /// Hand-offs past what their stage's planned cost left for them: the server's own overrun,
    /// not the machine's, so not in any job's `stalled`.
    pub handoff_ns: Time,
    /// Worker wake-ups longer than the resource's `wakeup_overhead`.
    pub wakeup_ns: Time,
    /// Jobs queued by the release thread after their release (it woke late).
    pub release_ns: Time,
    /// Sporadic jobs queued by `submit` after their release (the caller's thread descheduled).
    pub submit_ns: Time,
}

/// One task's live statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskStats {
    pub name: String,
    /// `periodic` or `sporadic`.
    pub kind: &'static str,
    /// Jobs admitted (released or waiting for their legal release), including failed ones.
    pub released: u64,
    pub completed: u64,
    /// A stage or the input source failed.
    pub failed: u64,
    /// Ended past their deadline at a stage boundary ([`crate::LatePolicy::Abort`]).
    pub aborted: u64,
    /// Cancelled by stop.
    pub cancelled: u64,
    /// Sporadic submissions rejected (too early, or backlog full).
    pub rejected: u64,
    /// Periodic releases skipped: the source had nothing new ([`super::StalePolicy::Skip`], or
    /// no input yet).
    pub skipped: u64,
    /// Releases dropped because the task's backlog was full (overload).
    pub dropped: u64,
    /// Jobs that ended after their deadline (completed late, failed late, aborted).
    pub misses: u64,
    /// Admitted jobs not yet resolved.
    pub in_flight: u64,
    /// Periodic results dropped because nobody read them ([`super::ServeConfig::results_capacity`]).
    pub results_dropped: u64,
    /// Response times of completed jobs, ns (histogram: min, max and mean exact, p99 within 1.6%).
    pub response_min: Time,
    pub response_mean: f64,
    pub response_p99: Time,
    pub response_max: Time,
    /// The analysis' bound (`None`: no bound, forced).
    pub bound: Option<Time>,
    pub deadline: Time,
    /// Period, or minimum inter-arrival time of a sporadic task.
    pub period: Time,
}

/// The server's live statistics ([`super::Server::stats`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServeStats {
    pub tasks: Vec<TaskStats>,
    /// Stage queued on an idle resource -> stage started (first stages of sporadic jobs
    /// included: `submit` -> first stage start is this plus the submit call's own work).
    pub dispatch_latency: LatencyStats,
    /// Stage ended -> next stage queued or job handed to the delivery thread.
    pub handoff: LatencyStats,
    /// Periodic releases: actual - nominal.
    pub release_jitter: LatencyStats,
    /// Stage executions that ran past their planned time (the profile's WCET for the mode).
    pub overruns: u64,
    /// Time the machine spent outside the analysis' assumptions; a job's share is its
    /// [`super::JobTiming::stalled`].
    pub stalls: StallStats,
    /// Per resource (platform order), time its worker spent running stages, ns.
    pub resource_busy: Vec<Time>,
    /// Nanoseconds since the server's time 0.
    pub uptime: Time,
    /// Whether every worker and the release thread got SCHED_FIFO.
    pub realtime: bool,
    pub stopped: bool,
}

impl ServeStats {
    pub fn misses(&self) -> u64 {
        self.tasks.iter().map(|t| t.misses).sum()
    }
}

/// What [`super::Server::stop`] returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServeReport {
    pub stats: ServeStats,
    pub policy: super::StopPolicy,
    /// Every admitted job resolved: completed + failed + aborted + cancelled == released for
    /// every task (each handle and each periodic result was delivered).
    pub every_job_accounted: bool,
}

/// Counters and histograms of the whole server.
pub(crate) struct Stats {
    pub tasks: Vec<TaskCounters>,
    pub responses: Vec<Histogram>,
    pub dispatch: Histogram,
    pub handoff: Histogram,
    pub jitter: Histogram,
    /// Per task: admitted and not yet resolved.
    pub in_flight: Vec<AtomicU64>,
    /// Per resource, ns its worker ran stages.
    pub busy: Vec<AtomicU64>,
}

impl Stats {
    pub fn new(n: usize, resources: usize) -> Self {
        Self {
            tasks: (0..n).map(|_| TaskCounters::default()).collect(),
            responses: (0..n).map(|_| Histogram::new()).collect(),
            dispatch: Histogram::new(),
            handoff: Histogram::new(),
            jitter: Histogram::new(),
            in_flight: (0..n).map(|_| AtomicU64::new(0)).collect(),
            busy: (0..resources).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Adds task counts and responses to task `to`.
    pub fn add_task(&self, to: usize, counters: &TaskCounters, responses: &Histogram) {
        self.tasks[to].add(counters);
        self.responses[to].add(responses);
    }

    /// Adds `other`'s server-wide histograms and per-resource busy times (same platform).
    pub fn add_machine(&self, other: &Stats) {
        self.dispatch.add(&other.dispatch);
        self.handoff.add(&other.handoff);
        self.jitter.add(&other.jitter);
        for (mine, theirs) in self.busy.iter().zip(&other.busy) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// A snapshot; `info[i]` = (name, periodic, bound, deadline, period); `machine` = the
    /// core's stalls, stage overruns and whether every thread got SCHED_FIFO.
    pub fn snapshot(
        &self,
        info: &[(String, bool, Option<Time>, Time, Time)],
        machine: (&StallCounters, u64, bool),
        uptime: Time,
        stopped: bool,
    ) -> ServeStats {
        let (stalls, overruns, realtime) = machine;
        let tasks = info
            .iter()
            .enumerate()
            .map(|(i, (name, periodic, bound, deadline, period))| {
                let c = &self.tasks[i];
                let h = &self.responses[i];
                TaskStats {
                    name: name.clone(),
                    kind: if *periodic { "periodic" } else { "sporadic" },
                    released: get(&c.released),
                    completed: get(&c.completed),
                    failed: get(&c.failed),
                    aborted: get(&c.aborted),
                    cancelled: get(&c.cancelled),
                    rejected: get(&c.rejected),
                    skipped: get(&c.skipped),
                    dropped: get(&c.dropped),
                    misses: get(&c.misses),
                    in_flight: get(&self.in_flight[i]),
                    results_dropped: get(&c.results_dropped),
                    response_min: h.min(),
                    response_mean: h.mean(),
                    response_p99: h.percentile(0.99),
                    response_max: h.max(),
                    bound: *bound,
                    deadline: *deadline,
                    period: *period,
                }
            })
            .collect();
        ServeStats {
            tasks,
            dispatch_latency: self.dispatch.latency(),
            handoff: self.handoff.latency(),
            release_jitter: self.jitter.latency(),
            overruns,
            stalls: StallStats {
                stage_ns: get(&stalls.stage),
                handoff_ns: get(&stalls.handoff),
                wakeup_ns: get(&stalls.wakeup),
                release_ns: get(&stalls.release),
                submit_ns: get(&stalls.submit),
            },
            resource_busy: self.busy.iter().map(get).collect(),
            uptime,
            realtime,
            stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_within_their_resolution() {
        for v in [0u64, 1, 63, 64, 65, 127, 128, 1000, 12_345, 1_000_000, 987_654_321, 1 << 43] {
            let b = bucket_of(v);
            let top = bucket_top(b);
            assert!(top >= v, "{v}: bucket {b} tops at {top}");
            assert!((top - v) as f64 <= v as f64 / 64.0 + 1.0, "{v}: {top}");
            if b > 0 {
                assert!(bucket_top(b - 1) < v, "{v}");
            }
        }
    }

    #[test]
    fn percentiles_are_near_the_exact_ones() {
        let h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let l = h.latency();
        assert_eq!((l.samples, l.max, h.min()), (1000, 1_000_000, 1000));
        assert!((500_000..=508_000).contains(&l.median), "{l:?}");
        assert!((990_000..=1_000_000).contains(&l.p99), "{l:?}");
        assert!((h.mean() - 500_500.0).abs() < 1e-6);
        assert_eq!(Histogram::new().latency(), LatencyStats::default());
    }
}
