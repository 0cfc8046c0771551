//! The server's [`Sink`]: live statistics, the trace ring, the hand-over of a finished job to
//! its handle, and the delivery thread (outputs to the host for result streams and completion
//! callbacks, which it runs).
//!
//! A job whose reply is a handle that someone holds, with no completion callback, does not go
//! through the delivery thread: the worker that ran its last stage counts it and publishes it to
//! the handle ([`Slot::publish`], constant work: a few atomics, a lock, a wake-up), and the
//! thread that takes the result reads the outputs ([`Finished`]). Everything else (streams,
//! callbacks, dropped handles, whose state must be freed off the worker) goes to the delivery
//! thread, one hop later.

use super::handle::{Collect, Slot, Stream};
use super::stats::{inc, Stats};
use super::types::*;
use crate::dispatch::{lock, panic_text, Core, Done, Ending, Sink};
use crate::executor::{StageError, StageExecutor};
use crate::os;
use lalarand_model::StageSlot;
use lalarand_model::Time;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// SCHED_FIFO priority of the delivery thread (workers run at 2 and above).
const DELIVERY_FIFO: i32 = 1;

/// Where a job's result goes.
pub(crate) enum Reply {
    Handle(Arc<Slot>),
    Stream,
}

pub(crate) enum Msg<J> {
    Done(Box<Done<J, Reply>>),
    /// A handle dropped just as its job was published to it: freed here, not on the worker.
    Free(Arc<Slot>),
    Exit,
}

/// The server's dispatch core.
pub(crate) type ServeCore<E> = Core<'static, E, ServeSink<E>>;

pub(crate) struct ServeSink<E: StageExecutor> {
    pub names: Vec<String>,
    pub bounds: Vec<Option<Time>>,
    pub streams: Vec<Option<Arc<Stream>>>,
    pub done: Mutex<Sender<Msg<E::Job>>>,
    pub stats: Stats,
    pub trace: Option<Vec<Mutex<VecDeque<StageSlot>>>>,
    pub trace_window: Time,
    pub trace_max_slots: usize,
    pub max_backlog: usize,
    /// The core this sink is part of (set once it is shared): a published job's taker reads
    /// the outputs through it.
    pub core: OnceLock<Weak<ServeCore<E>>>,
}

impl<E: StageExecutor> Sink<E> for ServeSink<E> {
    type Reply = Reply;
    type Log = ();

    fn log(&self, _worker: Option<usize>) {}

    fn periodic_reply(&self, _task: usize) -> Reply {
        Reply::Stream
    }

    fn admitted(&self, task: usize) {
        inc(&self.stats.tasks[task].released);
        self.stats.in_flight[task].fetch_add(1, Ordering::SeqCst);
    }

    fn released(&self, _log: &mut (), _task: usize, jitter: Time) {
        self.stats.jitter.record(jitter);
    }

    fn stale(&self, task: usize) {
        inc(&self.stats.tasks[task].skipped);
    }

    fn dispatched(&self, _log: &mut (), latency: Time) {
        self.stats.dispatch.record(latency);
    }

    fn stage_ran(&self, _log: &mut (), resource: usize, slot: StageSlot) {
        self.stats.busy[resource].fetch_add(slot.end - slot.start, Ordering::Relaxed);
        if let Some(trace) = &self.trace {
            let mut ring = lock(&trace[resource]);
            ring.push_back(slot);
            while ring.len() > self.trace_max_slots
                || ring.front().is_some_and(|s| s.end.saturating_add(self.trace_window) < slot.end)
            {
                ring.pop_front();
            }
        }
    }

    fn handed_off(&self, _log: &mut (), ns: Time) {
        self.stats.handoff.record(ns);
    }

    /// Publishes the job to its handle, or sends it to the delivery thread (its state with it:
    /// the outputs are read there).
    fn ended(&self, _log: &mut (), done: Done<E::Job, Reply>) -> Option<E::Job> {
        if matches!(done.outcome, Err(Ending::Dropped | Ending::Skipped)) {
            inc(&self.stats.tasks[done.task].dropped);
        }
        let Err(done) = self.publish(done) else { return None };
        // The receiver lives until every other thread has ended.
        let _ = lock(&self.done).send(Msg::Done(Box::new(done)));
        None
    }
}

/// A completed job published to its handle: the taker reads its outputs.
struct Finished<E: StageExecutor> {
    core: Arc<ServeCore<E>>,
    task: usize,
    job: u64,
    timing: JobTiming,
    state: E::Job,
}

impl<E: StageExecutor> Collect for Finished<E> {
    fn collect(self: Box<Self>) -> Result<JobResult, ServeError> {
        let Finished { core, task, job, timing, state } = *self;
        let sink = &core.sink;
        match core.read_outputs(task, job, state) {
            Ok(outputs) => Ok(JobResult { task: sink.names[task].clone(), task_index: task, job, outputs, timing }),
            Err(e) => {
                // Counted as completed when its last stage ended; it failed after all.
                let c = &sink.stats.tasks[task];
                c.completed.fetch_sub(1, Ordering::Relaxed);
                inc(&c.failed);
                Err(e)
            }
        }
    }
}

impl<E: StageExecutor> ServeCore<E> {
    /// The executor's outputs of a completed job (a panic or an error fails it).
    fn read_outputs(&self, task: usize, job: u64, state: E::Job) -> Result<Vec<HostTensor>, ServeError> {
        catch_unwind(AssertUnwindSafe(|| self.exec.outputs(task, state)))
            .unwrap_or_else(|p| Err(StageError(format!("panicked: {}", panic_text(&p)))))
            .map_err(|e| ServeError::Failed {
                task: self.sink.names[task].clone(),
                job,
                stage: self.plan.tasks[task].layers.len().saturating_sub(1),
                error: format!("reading the outputs: {}", e.0),
            })
    }
}

impl<E: StageExecutor> ServeSink<E> {
    /// Why a job ended, as the application reads it.
    fn error(&self, task: usize, job: u64, ending: Ending) -> ServeError {
        let task = self.names[task].clone();
        match ending {
            Ending::Failed { stage, error } => ServeError::Failed { task, job, stage, error },
            Ending::Aborted { stage } => ServeError::Aborted { task, job, stage },
            Ending::Cancelled => ServeError::Cancelled { task, job },
            // The server's overrun policy is to queue: a release is never skipped, only dropped.
            Ending::Dropped | Ending::Skipped => ServeError::Backlog { task, waiting: self.max_backlog },
            Ending::Source(error) => ServeError::Source { task, job, error },
        }
    }

    /// The job's timing.
    fn timing(&self, done: &Done<E::Job, Reply>) -> JobTiming {
        let late = done.finish > done.deadline;
        JobTiming {
            submitted: done.submitted,
            release: done.release,
            start: done.start.unwrap_or(done.finish),
            finish: done.finish,
            // A job cancelled before its (delayed) release ends before it: no response.
            response: done.finish.saturating_sub(done.release),
            bound: self.bounds[done.task],
            deadline: done.deadline,
            met: !late,
            stalled: done.stalled,
        }
    }

    /// Counts an ended job of `task`: completed (its response recorded) or why not.
    fn count(&self, task: usize, timing: &JobTiming, outcome: Result<(), &ServeError>) {
        let c = &self.stats.tasks[task];
        let late = !timing.met;
        match outcome {
            Ok(()) => {
                inc(&c.completed);
                self.stats.responses[task].record(timing.response);
                if late {
                    inc(&c.misses);
                }
            }
            Err(ServeError::Cancelled { .. }) => inc(&c.cancelled),
            // Counted as dropped when the backlog refused it.
            Err(ServeError::Backlog { .. }) => {}
            Err(ServeError::Aborted { .. }) => {
                inc(&c.aborted);
                inc(&c.misses);
            }
            Err(_) => {
                inc(&c.failed);
                if late {
                    inc(&c.misses);
                }
            }
        }
    }

    /// Counts a job whose handle is held and has no callback and publishes it there (see the
    /// module doc); gives it back for the delivery thread otherwise.
    fn publish(&self, mut done: Done<E::Job, Reply>) -> Result<(), Done<E::Job, Reply>> {
        let slot = match done.reply.take() {
            Some(Reply::Handle(slot)) => slot,
            other => {
                done.reply = other;
                return Err(done);
            }
        };
        let back = |mut done: Done<E::Job, Reply>, slot: Arc<Slot>| {
            done.reply = Some(Reply::Handle(slot));
            done
        };
        // Nobody holds the handle (no one can clone it any more): the job's state is freed on
        // the delivery thread, not on this worker.
        let core = match self.core.get().and_then(Weak::upgrade) {
            Some(core) if Arc::strong_count(&slot) > 1 => core,
            _ => return Err(back(done, slot)),
        };
        let published = slot.publish(done, |done| {
            let timing = self.timing(&done);
            let (task, job) = (done.task, done.job);
            let finished = match done.outcome {
                Ok(state) => {
                    self.count(task, &timing, Ok(()));
                    Ok(Box::new(Finished { core, task, job, timing, state }) as Box<dyn Collect>)
                }
                Err(ending) => {
                    let e = self.error(task, job, ending);
                    self.count(task, &timing, Err(&e));
                    Err(e)
                }
            };
            self.stats.in_flight[task].fetch_sub(1, Ordering::SeqCst);
            finished
        });
        if let Err(done) = published {
            return Err(back(done, slot));
        }
        // The handle was dropped meanwhile with the job's state in it (the usual last holder,
        // a taker, leaves nothing to free here).
        if Arc::strong_count(&slot) == 1 && slot.holds_job() {
            let _ = lock(&self.done).send(Msg::Free(slot));
        }
        Ok(())
    }
}

/// The delivery thread: moves outputs to the host, resolves handles, fills result streams and
/// keeps the statistics. It runs the application's completion callbacks.
pub(crate) fn delivery_loop<E: StageExecutor>(core: &ServeCore<E>, rx: Receiver<Msg<E::Job>>) {
    // Below every worker (they run at 2 and up) but above the machine's normal threads: a worker
    // handing a job over may wait on the channel's lock while this thread holds it, and under
    // the normal scheduler it would wait for a time slice among every other process.
    if core.config.realtime {
        os::set_fifo(DELIVERY_FIFO);
    }
    let sink = &core.sink;
    loop {
        let done = match rx.recv() {
            Ok(Msg::Done(done)) => done,
            Ok(Msg::Free(slot)) => {
                drop(slot);
                continue;
            }
            Ok(Msg::Exit) | Err(_) => return,
        };
        let timing = sink.timing(&done);
        let Done { task: i, job, reply, outcome, .. } = *done;
        let outcome = outcome.map_err(|e| sink.error(i, job, e)).and_then(|state| core.read_outputs(i, job, state));
        sink.count(i, &timing, outcome.as_ref().map(|_| ()));
        let c = &sink.stats.tasks[i];
        let result =
            outcome.map(|outputs| JobResult { task: sink.names[i].clone(), task_index: i, job, outputs, timing });
        match reply {
            Some(Reply::Handle(slot)) => slot.resolve(result),
            Some(Reply::Stream) => {
                if let Some(s) = &sink.streams[i] {
                    if s.push(result) {
                        inc(&c.results_dropped);
                    }
                }
            }
            None => {}
        }
        sink.stats.in_flight[i].fetch_sub(1, Ordering::SeqCst);
    }
}
