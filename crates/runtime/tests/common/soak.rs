//! The serving soak: 4 busy-wait tasks (two periodic: a slot and a callback source; two
//! sporadic, submitted with random gaps around their minimum inter-arrival time, early ones
//! waiting for their legal release) on two cpu resources, for a given time. Shared by the
//! test (seconds) and the bench `soak` (the documented 10-minute run).
#![allow(dead_code)]

use super::{system, Spec, MS};
use lalarand_model::ExecutionPlan;
use lalarand_runtime::os;
use lalarand_runtime::serve::*;
use lalarand_runtime::{BusyTime, BusyWait};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct SoakOutcome {
    pub report: ServeReport,
    /// Resident memory, (seconds since start, KiB), once a second.
    pub rss: Vec<(f64, u64)>,
    /// Sporadic submissions admitted, and their handles that resolved with a result.
    pub submitted: u64,
    pub resolved_ok: u64,
    /// Periodic results read from the streams, and those that were errors (first few kept).
    pub periodic_results: u64,
    pub periodic_errors: Vec<String>,
    pub schedulable: bool,
    /// Completed jobs past their bound, explained by the machine's stalls or not.
    pub lateness: Lateness,
    /// CLOCK_MONOTONIC (ns) at the server's time 0: `origin + timing.release` is the release on
    /// the system clock.
    pub origin: u64,
}

pub const MAX_OVER_BOUND: usize = 200;

/// Whether a job responded past its task's bound by more than the machine stalled while it was
/// in flight (`JobTiming::stalled`, which leaves the server's own hand-offs out): lateness the
/// machine does not explain, the server's own.
pub fn unexplained(t: &JobTiming) -> bool {
    t.bound.is_some_and(|b| t.response > b && t.response - b > t.stalled)
}

/// The completed jobs past their bound.
#[derive(Debug, Default)]
pub struct Lateness {
    pub over_bound: u64,
    /// Of those, past it by more than their `stalled` ([`unexplained`]), and of these, past
    /// their deadline.
    pub unexplained: u64,
    pub unexplained_misses: u64,
    /// The first [`MAX_OVER_BOUND`] past their bound, and of the unexplained, with their timing,
    /// to find what ran during them (a scheduler trace on CLOCK_MONOTONIC).
    pub over_bound_jobs: Vec<(String, JobTiming)>,
    pub unexplained_jobs: Vec<(String, JobTiming)>,
}

impl Lateness {
    pub fn note(&mut self, task: &str, t: &JobTiming) {
        if t.bound.is_none_or(|b| t.response <= b) {
            return;
        }
        self.over_bound += 1;
        if self.over_bound_jobs.len() < MAX_OVER_BOUND {
            self.over_bound_jobs.push((task.to_string(), *t));
        }
        if unexplained(t) {
            self.unexplained += 1;
            self.unexplained_misses += u64::from(!t.met);
            if self.unexplained_jobs.len() < MAX_OVER_BOUND {
                self.unexplained_jobs.push((task.to_string(), *t));
            }
        }
    }

    /// A shared host stalls the server's threads (VM steal, a kernel busy in other processes:
    /// docs/runtime.md, "Stalls"), so a job may miss its bound, or its deadline; the claim is
    /// that the machine's stalls explain every such job.
    pub fn check(&self) -> Result<(), String> {
        match self.unexplained {
            0 => Ok(()),
            n => Err(format!(
                "{n} of {} jobs past their bound ({} past their deadline) are past it by more than the machine \
                 stalled while they ran: the server's own lateness; first: {:?}",
                self.over_bound,
                self.unexplained_misses,
                self.unexplained_jobs.first()
            )),
        }
    }
}

/// Resident memory from `after` seconds on stays within `limit_pct` percent of the sample at
/// `after`; returns the (min, max) drift. Fails without a sample at or past `after` and another
/// after it, or with a base of 0 KiB (nothing measured is no evidence).
pub fn memory_flat(rss: &[(f64, u64)], after: f64, limit_pct: f64) -> Result<(f64, f64), String> {
    let later: Vec<u64> = rss.iter().filter(|(t, _)| *t >= after).map(|&(_, k)| k).collect();
    let base = match later.first() {
        Some(&base) if base > 0 && later.len() >= 2 => base as f64,
        _ => return Err(format!("no resident memory measured from {after} s on: {rss:?}")),
    };
    let drift = later.iter().map(|&k| 100.0 * (k as f64 - base) / base);
    let (lo, hi) = drift.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo >= -limit_pct && hi <= limit_pct {
        Ok((lo, hi))
    } else {
        Err(format!("resident memory after {after} s drifted {lo:+.2} % .. {hi:+.2} % (limit {limit_pct} %): {rss:?}"))
    }
}

impl SoakOutcome {
    /// Every admitted job resolved exactly once and delivered: each sporadic submission with its
    /// result, each periodic result read; none failed, was cancelled or dropped.
    pub fn check_accounted(&self) -> Result<(), String> {
        let s = &self.report.stats;
        let completed = |kind: &str| s.tasks.iter().filter(|t| t.kind == kind).map(|t| t.completed).sum::<u64>();
        let problems: Vec<String> = [
            (!self.report.every_job_accounted, "not every job was accounted for".to_string()),
            (!self.schedulable, "the task set is not schedulable".into()),
            (
                self.resolved_ok != self.submitted || completed("sporadic") != self.submitted,
                format!(
                    "{} submitted, {} resolved with their result, {} completed",
                    self.submitted,
                    self.resolved_ok,
                    completed("sporadic")
                ),
            ),
            (
                completed("periodic") != self.periodic_results || !self.periodic_errors.is_empty(),
                format!(
                    "{} periodic jobs completed, {} results read, errors {:?}",
                    completed("periodic"),
                    self.periodic_results,
                    self.periodic_errors
                ),
            ),
            (
                s.tasks.iter().any(|t| t.failed + t.cancelled + t.dropped + t.results_dropped > 0),
                "jobs failed, were cancelled or dropped".into(),
            ),
        ]
        .into_iter()
        .filter_map(|(bad, why)| bad.then_some(why))
        .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {:?}", problems.join("; "), self.report))
        }
    }
}

pub fn run(seconds: f64, realtime: bool) -> SoakOutcome {
    let (sys, alloc) = system(
        2,
        50_000,
        &[
            Spec { name: "req", period: 10 * MS, offset: 0, stages: &[(0, MS / 2)] },
            Spec { name: "cam", period: 20 * MS, offset: 0, stages: &[(0, MS), (1, MS)] },
            Spec { name: "events", period: 30 * MS, offset: 0, stages: &[(0, MS), (1, MS / 2)] },
            Spec { name: "lidar", period: 50 * MS, offset: 5 * MS, stages: &[(1, 2 * MS)] },
        ],
    );
    let exec = BusyWait::from_plan(&ExecutionPlan::new(&sys, &alloc).unwrap(), &sys.platform, BusyTime::Wcet);
    let frame = |v: f32| Input::from_vec(vec![1, 4], vec![v; 4]).unwrap();
    let config = ServeConfig { realtime, trace_window: Some(2_000 * MS), ..ServeConfig::default() };
    let server = Server::builder(&sys, &alloc, exec)
        .config(config)
        .periodic_slot("cam", StalePolicy::Reuse)
        .periodic_callback("lidar", move |job| Ok(Some(frame(job as f32))), StalePolicy::Reuse)
        .start()
        .unwrap();
    let schedulable = server.runtime().analysis().schedulable();
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let submitted = Arc::new(AtomicU64::new(0));
    let resolved = Arc::new(AtomicU64::new(0));
    let origin = os::monotonic_ns() - server.now();
    let lateness = Arc::new(Mutex::new(Lateness::default()));
    let note = {
        let lateness = lateness.clone();
        move |r: &JobResult| lateness.lock().unwrap().note(&r.task, &r.timing)
    };
    let mut threads = Vec::new();
    for (task, period) in [("req", 10 * MS), ("events", 30 * MS)] {
        let (server, stop, submitted, resolved) = (server.clone(), stop.clone(), submitted.clone(), resolved.clone());
        let note = note.clone();
        threads.push(std::thread::spawn(move || {
            let mut seed = period;
            let mut pending: VecDeque<JobHandle> = VecDeque::new();
            let mut k = 0u64;
            while !stop.load(Ordering::SeqCst) {
                // Gaps uniform in [0.8, 1.4] x the period: some early (they wait), most not.
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let gap = period as f64 * (0.8 + 0.6 * ((seed >> 11) as f64 / (1u64 << 53) as f64));
                std::thread::sleep(Duration::from_nanos(gap as u64));
                let input = Input::from_vec(vec![1, 2], vec![k as f32, 1.0]).unwrap();
                match server.submit(task, input) {
                    Ok(h) => {
                        submitted.fetch_add(1, Ordering::SeqCst);
                        pending.push_back(h);
                    }
                    Err(ServeError::Stopped { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
                k += 1;
                while pending.len() > 8 {
                    let h = pending.pop_front().unwrap();
                    let want = h.job();
                    if let Ok(r) = h.wait().inspect(&note) {
                        if r.job == want {
                            resolved.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }
            for h in pending {
                if h.wait().inspect(&note).is_ok() {
                    resolved.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let slot = server.input_slot("cam").unwrap();
    let cam = server.results("cam").unwrap();
    let lidar = server.results("lidar").unwrap();
    let start = Instant::now();
    let mut rss = Vec::new();
    let mut periodic_results = 0u64;
    let mut periodic_errors = Vec::new();
    let read = |r: Result<JobResult, ServeError>, errors: &mut Vec<String>| match r {
        Ok(r) => note(&r),
        Err(e) => errors.push(format!("{:.3} s: {e}", start.elapsed().as_secs_f64())),
    };
    let mut frame_no = 0f32;
    while start.elapsed().as_secs_f64() < seconds {
        // A camera that delivers about every period, and a reader of both streams.
        slot.put(Input::from_vec(vec![1, 4], vec![frame_no; 4]).unwrap()).unwrap();
        frame_no += 1.0;
        for r in cam.drain().into_iter().chain(lidar.drain()) {
            read(r, &mut periodic_errors);
            periodic_results += 1;
        }
        let t = start.elapsed().as_secs_f64();
        if rss.last().is_none_or(|&(last, _)| t - last >= 1.0) {
            rss.push((t, os::resident_kib().unwrap_or(0)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    let report = server.stop(StopPolicy::Drain).unwrap();
    for t in threads {
        t.join().unwrap();
    }
    for r in cam.drain().into_iter().chain(lidar.drain()) {
        read(r, &mut periodic_errors);
        periodic_results += 1;
    }
    let lateness = std::mem::take(&mut *lateness.lock().unwrap());
    SoakOutcome {
        report,
        rss,
        submitted: submitted.load(Ordering::SeqCst),
        resolved_ok: resolved.load(Ordering::SeqCst),
        periodic_results,
        periodic_errors,
        schedulable,
        lateness,
        origin,
    }
}
