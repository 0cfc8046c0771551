//! The release thread: periodic releases on absolute times (origin + offset + k * period, so
//! lateness never accumulates), with each job's input from its task's source, and the sporadic
//! submissions that waited for their legal release. A periodic task's callback source runs on
//! a thread of its own (`source_loop`).

use super::{lock, panic_text, Core, Ending, Job, Sink, RELEASE_FIFO};
use crate::config::RunHorizon;
use crate::executor::StageExecutor;
use crate::os;
use crate::serve::{Input, SourceFn, StalePolicy};
use lalarand_model::Time;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};

/// The release thread waits at most this long between looks at its state.
const POLL_NS: Time = 10_000_000;
/// Closer than this to a release, the release thread sleeps to it precisely
/// ([`os::sleep_until`]) instead of on its condition variable.
const PRECISE_NS: Time = 1_000_000;

/// A slot an application writes a periodic task's latest input into.
pub(crate) struct SlotInner {
    /// The latest input and its version (0: none yet).
    pub latest: Mutex<(Option<Input>, u64)>,
}

/// A callback source's state, shared with its thread.
pub(crate) struct CallbackShared {
    pub state: Mutex<CallbackState>,
    pub cv: Condvar,
}

#[derive(Default)]
pub(crate) struct CallbackState {
    /// The next call to make, for this job.
    pub want: Option<u64>,
    pub running: bool,
    pub result: Option<Result<Option<Input>, String>>,
    pub exit: bool,
}

/// Where a periodic task's inputs come from.
pub(crate) enum PeriodicSource {
    /// A latest-value slot the application writes.
    Slot(Arc<SlotInner>),
    /// A callback on a source thread.
    Callback(Arc<CallbackShared>),
    /// The same input for every job (a run: [`StageExecutor::run_input`]).
    Fixed(Input),
}

/// A periodic task, as the release thread sees it.
pub(crate) struct Periodic {
    pub task: usize,
    pub source: PeriodicSource,
    pub stale: StalePolicy,
    pub last_input: Option<Input>,
    /// Version of the slot's input the last release took.
    pub taken: u64,
    pub next_release: Time,
    /// Releases so far (skipped ones included).
    pub releases: u64,
}

impl Periodic {
    pub fn new(task: usize, source: PeriodicSource, stale: StalePolicy, offset: Time) -> Self {
        Self { task, source, stale, last_input: None, taken: 0, next_release: offset, releases: 0 }
    }

    /// Whether the task releases again before `horizon` (none: forever).
    fn more(&self, horizon: Option<RunHorizon>) -> bool {
        match horizon {
            None => true,
            Some(RunHorizon::Duration(d)) => self.next_release < d,
            Some(RunHorizon::Jobs(k)) => self.releases < k,
        }
    }
}

fn request(cb: &CallbackShared, job: u64) {
    let mut s = lock(&cb.state);
    if !s.running && s.want.is_none() {
        s.want = Some(job);
        cb.cv.notify_all();
    }
}

impl<E: StageExecutor, S: Sink<E>> Core<'_, E, S> {
    /// The release thread, on `cores`. Without a `horizon` (a server) it runs until
    /// [`Core::exit`]; with one (a run) it returns once every periodic task has released its
    /// last job before the horizon, or at a stop. `log` (the sink's, made before time 0) is
    /// returned.
    pub fn release_loop(
        &self,
        cores: &[usize],
        mut log: S::Log,
        mut periodic: Vec<Periodic>,
        horizon: Option<RunHorizon>,
    ) -> S::Log {
        if let Err(e) = os::pin_current_thread(cores) {
            tracing::warn!("cannot keep the release thread on cores {cores:?} ({e})");
        }
        os::set_timer_slack();
        self.fifo(RELEASE_FIFO);
        for p in &periodic {
            if let PeriodicSource::Callback(cb) = &p.source {
                request(cb, 0);
            }
        }
        // Before time 0 `now()` saturates at 0, which would release the jobs due at 0 early (a
        // run's time 0 is a lead time after its warm-up, so that every worker is parked).
        os::sleep_until(self.origin());
        loop {
            let stopping = self.stopping();
            if self.exit.load(Ordering::SeqCst) || (stopping && horizon.is_some()) {
                return log;
            }
            let now = self.now();
            // Due releases in time order; simultaneous ones highest priority first, the
            // same-instant rule of docs/analysis.md that the simulator follows: a worker woken by
            // the first push then finds the highest-priority job of the instant.
            let due_at = |p: &Periodic| !stopping && p.more(horizon) && p.next_release <= now;
            while let Some(p) = periodic
                .iter_mut()
                .filter(|p| due_at(p))
                .min_by_key(|p| (p.next_release, self.plan.tasks[p.task].priority, p.task))
            {
                let t = p.next_release;
                self.release_periodic(&mut log, p, t);
                p.releases += 1;
                p.next_release = t.saturating_add(self.plan.tasks[p.task].period);
            }
            let due: Vec<Job<E, S>> = {
                let mut d = lock(&self.delayed);
                let cancel = self.cancel.load(Ordering::SeqCst);
                let keys: Vec<(Time, u64)> = d.jobs.keys().take_while(|k| cancel || k.0 <= now).copied().collect();
                keys.into_iter().filter_map(|k| d.jobs.remove(&k)).collect()
            };
            for job in due {
                self.task(job.task).waiting -= 1;
                if self.cancel.load(Ordering::SeqCst) {
                    self.deliver(&mut log, job, now, Err(Ending::Cancelled));
                } else {
                    self.release(&mut log, job, &self.stalls.release);
                }
            }
            // Sleep to the next event (a submission that must wait wakes this thread).
            let d = lock(&self.delayed);
            let next_delayed = d.jobs.keys().next().map(|k| k.0);
            let next_periodic =
                if stopping { None } else { periodic.iter().filter(|p| p.more(horizon)).map(|p| p.next_release).min() };
            if horizon.is_some() && next_periodic.is_none() && next_delayed.is_none() {
                return log;
            }
            let next = next_delayed.into_iter().chain(next_periodic).min().unwrap_or(Time::MAX);
            let now = self.now();
            if next <= now || self.exit.load(Ordering::SeqCst) {
                continue;
            }
            if next - now <= PRECISE_NS {
                drop(d);
                os::sleep_until(self.origin() + next);
            } else {
                let wait = (next - now - PRECISE_NS / 2).min(POLL_NS);
                let _ = self.release_cv.wait_timeout(d, std::time::Duration::from_nanos(wait));
            }
        }
    }

    /// Periodic task `p`'s release at `t`: its input from its source (or, with nothing new, its
    /// stale policy), then admitted and released.
    fn release_periodic(&self, log: &mut S::Log, p: &mut Periodic, t: Time) {
        let i = p.task;
        self.sink.released(log, i, self.now().saturating_sub(t));
        let fresh: Option<Result<Input, String>> = match &p.source {
            PeriodicSource::Fixed(input) => Some(Ok(input.clone())),
            PeriodicSource::Slot(slot) => {
                let latest = lock(&slot.latest);
                match &latest.0 {
                    Some(input) if latest.1 != p.taken => {
                        p.taken = latest.1;
                        Some(Ok(input.clone()))
                    }
                    _ => None,
                }
            }
            PeriodicSource::Callback(cb) => {
                let r = lock(&cb.state).result.take();
                let k = self.task(i).next_job;
                request(cb, k + 1);
                match r {
                    Some(Ok(Some(input))) => Some(Ok(input)),
                    Some(Ok(None)) | None => None,
                    Some(Err(e)) => Some(Err(e)),
                }
            }
        };
        let fresh = fresh.map(|r| r.and_then(|input| self.specs[i].check(&input).map(|()| input)));
        let input = match fresh {
            Some(Ok(input)) => {
                if !matches!(p.source, PeriodicSource::Fixed(_)) {
                    p.last_input = Some(input.clone());
                }
                Ok(input)
            }
            Some(Err(e)) => Err(e),
            None => match (&p.last_input, p.stale) {
                (Some(last), StalePolicy::Reuse) => Ok(last.clone()),
                _ => {
                    self.sink.stale(i);
                    return;
                }
            },
        };
        let k = {
            let mut slot = self.task(i);
            let k = slot.next_job;
            slot.next_job += 1;
            slot.last_release = Some(t);
            k
        };
        self.admit(i);
        match input {
            Ok(input) => {
                let job = self.new_job(i, k, t, t, input, Some(self.sink.periodic_reply(i)));
                self.release(log, job, &self.stalls.release)
            }
            Err(error) => {
                let job = self.new_job(i, k, t, t, Input::zeros(vec![0]), Some(self.sink.periodic_reply(i)));
                let now = self.now();
                self.deliver(log, job, now, Err(Ending::Source(error)));
            }
        }
    }
}

/// A callback source's thread: calls the callback when the release thread asks.
pub(crate) fn source_loop(cb: &CallbackShared, f: &mut SourceFn) {
    loop {
        let job = {
            let mut s = lock(&cb.state);
            loop {
                if s.exit {
                    return;
                }
                if let Some(k) = s.want.take() {
                    s.running = true;
                    break k;
                }
                s = cb.cv.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        };
        let r = catch_unwind(AssertUnwindSafe(|| f(job)))
            .unwrap_or_else(|p| Err(format!("the source panicked: {}", panic_text(&p))));
        let mut s = lock(&cb.state);
        s.running = false;
        s.result = Some(r);
    }
}
