//! The server's [`Sink`]: live statistics, the trace ring, and the delivery thread (outputs to
//! the host, handles, result streams), which runs the application's completion callbacks.

use super::handle::{Slot, Stream};
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
use std::sync::{Arc, Mutex};

/// SCHED_FIFO priority of the delivery thread (workers run at 2 and above).
const DELIVERY_FIFO: i32 = 1;

/// Where a job's result goes.
pub(crate) enum Reply {
    Handle(Arc<Slot>),
    Stream,
}

pub(crate) enum Msg<J> {
    Done(Box<Done<J, Reply>>),
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

    /// Sends the job to the delivery thread (its state with it: the outputs are read there).
    fn ended(&self, _log: &mut (), done: Done<E::Job, Reply>) -> Option<E::Job> {
        if matches!(done.outcome, Err(Ending::Dropped | Ending::Skipped)) {
            inc(&self.stats.tasks[done.task].dropped);
        }
        // The receiver lives until every other thread has ended.
        let _ = lock(&self.done).send(Msg::Done(Box::new(done)));
        None
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
    while let Ok(Msg::Done(done)) = rx.recv() {
        let Done { task: i, job, reply, submitted, release, deadline, start, finish, stalled, outcome } = *done;
        let name = &sink.names[i];
        let c = &sink.stats.tasks[i];
        let outcome = outcome.map_err(|e| sink.error(i, job, e)).and_then(|state| {
            catch_unwind(AssertUnwindSafe(|| core.exec.outputs(i, state)))
                .unwrap_or_else(|p| Err(StageError(format!("panicked: {}", panic_text(&p)))))
                .map_err(|e| ServeError::Failed {
                    task: name.clone(),
                    job,
                    stage: core.plan.tasks[i].layers.len().saturating_sub(1),
                    error: format!("reading the outputs: {}", e.0),
                })
        });
        let late = finish > deadline;
        let result = match outcome {
            Ok(outputs) => {
                inc(&c.completed);
                let response = finish - release;
                sink.stats.responses[i].record(response);
                if late {
                    inc(&c.misses);
                }
                Ok(JobResult {
                    task: name.clone(),
                    task_index: i,
                    job,
                    outputs,
                    timing: JobTiming {
                        submitted,
                        release,
                        start: start.unwrap_or(finish),
                        finish,
                        response,
                        bound: sink.bounds[i],
                        deadline,
                        met: !late,
                        stalled,
                    },
                })
            }
            Err(e) => {
                match &e {
                    ServeError::Cancelled { .. } => inc(&c.cancelled),
                    // Counted as dropped when the backlog refused it.
                    ServeError::Backlog { .. } => {}
                    ServeError::Aborted { .. } => {
                        inc(&c.aborted);
                        inc(&c.misses);
                    }
                    _ => {
                        inc(&c.failed);
                        if late {
                            inc(&c.misses);
                        }
                    }
                }
                Err(e)
            }
        };
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
