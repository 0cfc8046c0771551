//! The event loop. Buffers live in a [`Simulator`] so that campaigns running many plans do
//! not allocate per plan, let alone per event.

use crate::exec::ExecutionTimeModel;
use crate::record::{SimResult, TaskStats, Trace};
use crate::SimError;
use lalarand_model::{ExecutionPlan, Time};
use lalarand_model::{JobOutcome, JobRecord, StageSlot};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Horizon {
    /// `max offset + 2 hyperperiods`, at most `max offset + AUTO_MAX_PERIODS * max period`
    /// (random periods can have astronomically long hyperperiods).
    #[default]
    Auto,
    /// Release jobs before this time, complete layers up to it, then stop.
    Until(Time),
    /// Release this many jobs of every task and run until all of them finish.
    Jobs(u64),
    /// Release jobs before this time, then run until all of them finish (a mode's share of a
    /// mode-change run: its releases stop at the request, its jobs drain).
    ReleasesBefore(Time),
}

/// Cap of [`Horizon::Auto`], in multiples of the longest period.
pub const AUTO_MAX_PERIODS: u64 = 100;

/// When jobs are released.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Releases {
    /// Every `T` after the offset.
    #[default]
    Periodic,
    /// Sporadic: consecutive releases at least `T` apart. Each gap is `T` with probability 1/2,
    /// else `T` plus a uniform extra in `[0, max_extra * T]` (drawn from the run's seed).
    Sporadic { max_extra: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    pub horizon: Horizon,
    pub execution: ExecutionTimeModel,
    pub releases: Releases,
    /// Seeds the execution-time draws (ChaCha8).
    pub seed: u64,
    /// Keep a [`JobRecord`] per job.
    pub record_jobs: bool,
    /// Keep the per-resource [`Trace`].
    pub record_trace: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            horizon: Horizon::Auto,
            execution: ExecutionTimeModel::Wcet,
            releases: Releases::Periodic,
            seed: 0,
            record_jobs: true,
            record_trace: true,
        }
    }
}

/// Simulates `plan` once (see [`Simulator`] to reuse buffers across many plans).
pub fn simulate(plan: &ExecutionPlan, config: &SimConfig) -> Result<SimResult, SimError> {
    Simulator::default().run(plan, config)
}

/// Ready-queue key: the smallest runs first.
type ReadyKey = (u32, Time, u32, u32); // (priority, release, task, live-job slot)

#[derive(Debug, Clone, Copy)]
struct LiveJob {
    task: u32,
    layer: u32,
    job: u64,
    release: Time,
    /// Index into the job records, when kept.
    record: usize,
}

/// What a resource's worker is doing between events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Worker {
    /// Parked on an empty queue: the next layer queued wakes it, which takes up to that
    /// layer's wake-up overhead.
    Asleep,
    /// Waking up; at the wake event it starts the highest-priority layer queued by then.
    Waking,
    /// Awake with nothing running (it just completed a layer, or woke): it starts its queue's
    /// head at once, or parks if the queue is empty once the instant is settled.
    Idle,
    /// Running the layer of this live-job slot.
    Running(u32),
}

/// Salts that keep the per-instance draws of execution, wake-up and release gap apart.
const DRAW_EXECUTION: u64 = 1;
const DRAW_WAKEUP: u64 = 2;
const DRAW_RELEASE: u64 = 3;

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random stream of one drawn quantity, keyed by what it is for (task, job, layer, salt),
/// so the draws do not depend on the order events are processed in (the same-instant rule,
/// docs/analysis.md, makes everything else order-independent).
fn draw_rng(seed: u64, salt: u64, task: u32, job: u64, layer: u32) -> ChaCha8Rng {
    let key = splitmix64(seed ^ splitmix64(salt ^ splitmix64(job ^ ((task as u64) << 32 | layer as u64))));
    ChaCha8Rng::seed_from_u64(key)
}

/// Reusable simulation state.
#[derive(Debug, Default)]
pub struct Simulator {
    /// (time, event): event `< resources` is a completion on that resource, `< 2 * resources`
    /// the end of resource `event - resources`' wake-up, else the release of task
    /// `event - 2 * resources`.
    events: BinaryHeap<Reverse<(Time, u32)>>,
    ready: Vec<BinaryHeap<Reverse<ReadyKey>>>,
    workers: Vec<Worker>,
    live: Vec<LiveJob>,
    free: Vec<u32>,
    next_job: Vec<u64>,
}

fn validate(plan: &ExecutionPlan, config: &SimConfig) -> Result<(), SimError> {
    for (i, t) in plan.tasks.iter().enumerate() {
        if t.period == 0 {
            return Err(SimError::InvalidPlan(format!("task {i} has period 0")));
        }
        if let Some((j, l)) = t.layers.iter().enumerate().find(|(_, l)| l.resource >= plan.resources) {
            return Err(SimError::InvalidPlan(format!(
                "task {i} layer {j} runs on resource {} but the plan has {}",
                l.resource, plan.resources
            )));
        }
    }
    if plan.tasks.len() + 2 * plan.resources >= u32::MAX as usize / 2 {
        return Err(SimError::InvalidPlan("too many tasks".into()));
    }
    if let Releases::Sporadic { max_extra } = config.releases {
        if !(max_extra.is_finite() && max_extra >= 0.0) {
            return Err(SimError::InvalidConfig(format!("sporadic max_extra {max_extra} is not a number >= 0")));
        }
    }
    config.execution.validate().map_err(SimError::InvalidConfig)
}

impl Simulator {
    pub fn run(&mut self, plan: &ExecutionPlan, config: &SimConfig) -> Result<SimResult, SimError> {
        validate(plan, config)?;
        let n = plan.tasks.len();
        let m = plan.resources;
        let hyper = plan.hyperperiod();
        let (end, job_limit) = match config.horizon {
            Horizon::Until(t) => (t, u64::MAX),
            Horizon::Jobs(k) => (Time::MAX, k),
            Horizon::ReleasesBefore(_) => (Time::MAX, u64::MAX),
            Horizon::Auto => {
                let max_offset = plan.tasks.iter().map(|t| t.offset).max().unwrap_or(0);
                let max_period = plan.tasks.iter().map(|t| t.period).max().unwrap_or(0);
                let cap = max_period.saturating_mul(AUTO_MAX_PERIODS);
                let span = hyper.and_then(|h| h.checked_mul(2)).map_or(cap, |h2| h2.min(cap));
                (max_offset.saturating_add(span), u64::MAX)
            }
        };
        // Releases happen strictly before this instant.
        let release_end = match config.horizon {
            Horizon::ReleasesBefore(t) => t,
            _ => end,
        };

        self.events.clear();
        self.ready.iter_mut().for_each(BinaryHeap::clear);
        self.ready.resize_with(m, BinaryHeap::new);
        self.workers.clear();
        self.workers.resize(m, Worker::Asleep);
        self.live.clear();
        self.free.clear();
        self.next_job.clear();
        self.next_job.resize(n, 0);
        let mut stats = vec![TaskStats::EMPTY; n];
        let mut sums = vec![0u128; n];
        let mut jobs: Vec<JobRecord> = Vec::new();
        let mut trace = config.record_trace.then(|| Trace { resources: vec![Vec::new(); m] });

        for (i, t) in plan.tasks.iter().enumerate() {
            if job_limit > 0 && t.offset < release_end {
                self.events.push(Reverse((t.offset, (2 * m + i) as u32)));
            }
        }

        let mut now: Time = 0;
        while let Some(&Reverse((t, _))) = self.events.peek() {
            if t > end {
                break;
            }
            now = t;
            while let Some(&Reverse((t2, ev))) = self.events.peek() {
                if t2 != now {
                    break;
                }
                self.events.pop();
                let ev = ev as usize;
                if ev < m {
                    let Worker::Running(slot) = self.workers[ev] else { unreachable!("completion of a running layer") };
                    self.workers[ev] = Worker::Idle;
                    self.advance(plan, slot, now, &mut stats, &mut sums, &mut jobs);
                } else if ev < 2 * m {
                    self.workers[ev - m] = Worker::Idle;
                } else {
                    self.release(
                        plan,
                        ev - 2 * m,
                        now,
                        release_end,
                        job_limit,
                        config,
                        &mut stats,
                        &mut sums,
                        &mut jobs,
                    );
                }
            }
            // Same-instant rule (docs/analysis.md, "Same-instant events"): zero-cost layers at the
            // head of awake idle or parked resources' queues complete on the spot, one at a time,
            // highest priority first over all resources, each one's successor queued before the
            // next is chosen. So the outcome does not depend on the order of the resources.
            loop {
                let mut best: Option<(ReadyKey, usize)> = None;
                for r in 0..m {
                    let Some(&Reverse(key)) = self.ready[r].peek() else { continue };
                    let layer = &plan.tasks[key.2 as usize].layers[self.live[key.3 as usize].layer as usize];
                    // An awake worker runs a layer's cost less its wake-up; a parked one must
                    // wake first unless the whole cost is 0.
                    let cost = match self.workers[r] {
                        Worker::Idle => layer.execution(),
                        Worker::Asleep => layer.wcet,
                        Worker::Waking | Worker::Running(_) => continue,
                    };
                    if cost == 0 && best.is_none_or(|(b, _)| key < b) {
                        best = Some((key, r));
                    }
                }
                let Some(((_, _, task, slot), r)) = best else { break };
                self.ready[r].pop();
                let job = self.live[slot as usize];
                if let Some(trace) = &mut trace {
                    let slot = StageSlot {
                        task: task as usize,
                        job: job.job,
                        stage: job.layer as usize,
                        start: now,
                        end: now,
                    };
                    trace.resources[r].push(slot);
                }
                self.advance(plan, slot, now, &mut stats, &mut sums, &mut jobs);
            }
            // No positive-cost layer starts at the end: the run covers completions up to `end`
            // only, so a job unfinished then finishes strictly later.
            if now == end {
                continue;
            }
            for r in 0..m {
                match self.workers[r] {
                    Worker::Running(_) | Worker::Waking => continue,
                    Worker::Asleep | Worker::Idle if self.ready[r].is_empty() => {
                        self.workers[r] = Worker::Asleep;
                        continue;
                    }
                    Worker::Asleep => {
                        // Woken by what was queued: it starts the highest-priority layer queued
                        // by the end of the wake-up, up to the head's wake-up overhead from now.
                        let Some(&Reverse((_, _, task, slot))) = self.ready[r].peek() else { continue };
                        let job = self.live[slot as usize];
                        let wakeup = plan.tasks[task as usize].layers[job.layer as usize].wakeup;
                        let mut rng = draw_rng(config.seed, DRAW_WAKEUP, task, job.job, job.layer);
                        let gap = config.execution.draw_gap(wakeup, &mut rng);
                        if gap > 0 {
                            self.workers[r] = Worker::Waking;
                            self.events.push(Reverse((now + gap, (m + r) as u32)));
                            continue;
                        }
                    }
                    Worker::Idle => {}
                }
                let Some(Reverse((_, _, task, slot))) = self.ready[r].pop() else { continue };
                let job = self.live[slot as usize];
                // The wake-up inside the cost is paid only by waking (above); a layer started
                // by an awake worker runs its execution alone.
                let execution = plan.tasks[task as usize].layers[job.layer as usize].execution();
                let mut rng = draw_rng(config.seed, DRAW_EXECUTION, task, job.job, job.layer);
                let finish = now + config.execution.draw(execution, &mut rng);
                self.workers[r] = Worker::Running(slot);
                self.events.push(Reverse((finish, r as u32)));
                if let Some(trace) = &mut trace {
                    trace.resources[r].push(StageSlot {
                        task: task as usize,
                        job: job.job,
                        stage: job.layer as usize,
                        start: now,
                        end: finish.min(end),
                    });
                }
            }
        }
        let end = if end == Time::MAX { now } else { end };

        // Jobs still in flight (not on the free list) are unfinished.
        let mut is_free = vec![false; self.live.len()];
        self.free.iter().for_each(|&s| is_free[s as usize] = true);
        for (_, job) in self.live.iter().enumerate().filter(|&(s, _)| !is_free[s]) {
            let task = &plan.tasks[job.task as usize];
            let s = &mut stats[job.task as usize];
            let age = end - job.release;
            s.oldest_incomplete = Some(s.oldest_incomplete.map_or(age, |a| a.max(age)));
            s.misses += (end >= job.release + task.deadline) as u64;
        }
        for (s, sum) in stats.iter_mut().zip(&sums) {
            if s.completed == 0 {
                s.min_response = 0;
            } else {
                s.mean_response = *sum as f64 / s.completed as f64;
            }
        }
        Ok(SimResult { end, jobs, tasks: stats, trace, hyperperiod: hyper })
    }

    #[allow(clippy::too_many_arguments)]
    fn release(
        &mut self,
        plan: &ExecutionPlan,
        i: usize,
        now: Time,
        release_end: Time,
        job_limit: u64,
        config: &SimConfig,
        stats: &mut [TaskStats],
        sums: &mut [u128],
        jobs: &mut Vec<JobRecord>,
    ) {
        let task = &plan.tasks[i];
        let k = self.next_job[i];
        self.next_job[i] += 1;
        stats[i].jobs += 1;
        let record = jobs.len();
        if config.record_jobs {
            jobs.push(JobRecord {
                task: i,
                job: k,
                release: now,
                deadline: now + task.deadline,
                finish: None,
                outcome: JobOutcome::Unfinished,
            });
        }
        let live = LiveJob { task: i as u32, layer: 0, job: k, release: now, record };
        let slot = match self.free.pop() {
            Some(s) => {
                self.live[s as usize] = live;
                s
            }
            None => {
                self.live.push(live);
                (self.live.len() - 1) as u32
            }
        };
        if task.layers.is_empty() {
            self.finish(plan, slot, now, stats, sums, jobs);
        } else {
            self.ready[task.layers[0].resource].push(Reverse((task.priority, now, i as u32, slot)));
        }
        let gap = match config.releases {
            Releases::Periodic => task.period,
            Releases::Sporadic { max_extra } => {
                let mut rng = draw_rng(config.seed, DRAW_RELEASE, i as u32, k, 0);
                let extra = if rng.gen_bool(0.5) { 0.0 } else { rng.gen_range(0.0..=max_extra) };
                task.period.saturating_add((extra * task.period as f64) as Time)
            }
        };
        if let Some(next) = now.checked_add(gap) {
            if next < release_end && k + 1 < job_limit {
                self.events.push(Reverse((next, (2 * plan.resources + i) as u32)));
            }
        }
    }

    /// The job in `slot` completed its current layer at `now`.
    fn advance(
        &mut self,
        plan: &ExecutionPlan,
        slot: u32,
        now: Time,
        stats: &mut [TaskStats],
        sums: &mut [u128],
        jobs: &mut [JobRecord],
    ) {
        let job = &mut self.live[slot as usize];
        job.layer += 1;
        let task = &plan.tasks[job.task as usize];
        match task.layers.get(job.layer as usize) {
            Some(next) => self.ready[next.resource].push(Reverse((task.priority, job.release, job.task, slot))),
            None => self.finish(plan, slot, now, stats, sums, jobs),
        }
    }

    fn finish(
        &mut self,
        plan: &ExecutionPlan,
        slot: u32,
        now: Time,
        stats: &mut [TaskStats],
        sums: &mut [u128],
        jobs: &mut [JobRecord],
    ) {
        let job = self.live[slot as usize];
        let i = job.task as usize;
        let response = now - job.release;
        let missed = response > plan.tasks[i].deadline;
        let s = &mut stats[i];
        s.completed += 1;
        s.misses += missed as u64;
        s.min_response = s.min_response.min(response);
        s.max_response = s.max_response.max(response);
        sums[i] += response as u128;
        if let Some(r) = jobs.get_mut(job.record).filter(|r| r.task == i && r.job == job.job) {
            r.finish = Some(now);
            r.outcome = JobOutcome::Completed;
        }
        self.free.push(slot);
    }
}
