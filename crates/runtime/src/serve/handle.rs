//! Where results reach the application: a [`JobHandle`] per sporadic submission, a
//! [`ResultStream`] per periodic task.

use super::types::{Admission, JobResult, ServeError};
use lalarand_model::Time;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

type Callback = Box<dyn FnOnce(Result<JobResult, ServeError>) + Send + 'static>;

/// A job that completed, its outputs not read yet: whoever takes the result reads them, on its
/// own thread ([`JobHandle::wait`], an awaiting task, [`JobHandle::on_complete`]).
pub(crate) trait Collect: Send {
    fn collect(self: Box<Self>) -> Result<JobResult, ServeError>;
}

/// Who waits for a pending result, besides threads blocked in `wait`.
enum Waiter {
    None,
    /// [`JobHandle::on_complete`]'s callback: the job goes through the delivery thread.
    Callback(Callback),
    /// A task awaiting the handle.
    Task(Waker),
}

enum Cell {
    Pending(Waiter),
    /// Completed; its outputs are read when the result is taken.
    Finished(Box<dyn Collect>),
    Ready(Result<JobResult, ServeError>),
    Taken,
}

struct State {
    cell: Cell,
    /// Threads blocked in `wait` (notified only when there are some: a notify is a system call).
    sleepers: usize,
}

/// The shared end of a handle, resolved exactly once by the server: published by the worker
/// that ran the job's last stage ([`Self::publish`]) or resolved by the delivery thread, a
/// stop or a rejection ([`Self::resolve`]).
pub(crate) struct Slot {
    state: Mutex<State>,
    cv: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Slot {
    pub fn new() -> Arc<Self> {
        Self::with(Cell::Pending(Waiter::None))
    }

    pub fn resolved(r: Result<JobResult, ServeError>) -> Arc<Self> {
        Self::with(Cell::Ready(r))
    }

    fn with(cell: Cell) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(State { cell, sleepers: 0 }), cv: Condvar::new() })
    }

    /// Delivers the result: to the completion callback if one is set (called here, on the
    /// delivery thread), else kept for `wait` or the awaiting task. A second resolve is ignored.
    pub fn resolve(&self, r: Result<JobResult, ServeError>) {
        let mut state = lock(&self.state);
        match std::mem::replace(&mut state.cell, Cell::Taken) {
            Cell::Pending(Waiter::Callback(f)) => {
                drop(state);
                // A panicking callback must not take the delivery thread down.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(r))).is_err() {
                    tracing::error!("a completion callback panicked");
                }
            }
            Cell::Pending(waiter) => {
                state.cell = Cell::Ready(r);
                self.wake(state, waiter);
            }
            other => state.cell = other,
        }
    }

    /// The worker's way for a job whose handle nobody registered a callback on: `finish` (the
    /// job's bookkeeping, constant work) runs under the slot's lock and its outcome is kept for
    /// the taker, who reads the outputs; the waiting thread or task is woken. Gives `done` back
    /// (and runs nothing) if a callback waits (the delivery thread runs it) or the slot was
    /// already resolved.
    pub fn publish<D>(&self, done: D, finish: impl FnOnce(D) -> Result<Box<dyn Collect>, ServeError>) -> Result<(), D> {
        let mut state = lock(&self.state);
        if !matches!(state.cell, Cell::Pending(Waiter::None | Waiter::Task(_))) {
            return Err(done);
        }
        let Cell::Pending(waiter) = std::mem::replace(
            &mut state.cell,
            match finish(done) {
                Ok(finished) => Cell::Finished(finished),
                Err(e) => Cell::Ready(Err(e)),
            },
        ) else {
            unreachable!("checked above")
        };
        self.wake(state, waiter);
        Ok(())
    }

    /// Whether a completed job's state is in it, not taken.
    pub fn holds_job(&self) -> bool {
        matches!(lock(&self.state).cell, Cell::Finished(_))
    }

    /// Wakes whoever waits for the result just stored (after unlocking).
    fn wake(&self, state: MutexGuard<'_, State>, waiter: Waiter) {
        let sleepers = state.sleepers > 0;
        drop(state);
        if sleepers {
            self.cv.notify_all();
        }
        if let Waiter::Task(w) = waiter {
            w.wake();
        }
    }
}

/// What taking a handle's result found.
enum Took {
    Result(Result<JobResult, ServeError>),
    /// A completed job, whose outputs the taker reads once the slot is unlocked.
    Finished(Box<dyn Collect>),
    Pending,
}

impl Took {
    /// The result, reading a completed job's outputs here; `None` while pending.
    fn result(self) -> Option<Result<JobResult, ServeError>> {
        match self {
            Took::Result(r) => Some(r),
            Took::Finished(finished) => Some(finished.collect()),
            Took::Pending => None,
        }
    }
}

impl State {
    /// Takes the result if it is there (a second taker finds it taken).
    fn take(&mut self, task: &str, job: u64) -> Took {
        match std::mem::replace(&mut self.cell, Cell::Taken) {
            Cell::Ready(r) => Took::Result(r),
            Cell::Finished(finished) => Took::Finished(finished),
            Cell::Taken => Took::Result(Err(ServeError::AlreadyTaken { task: task.into(), job })),
            Cell::Pending(Waiter::Callback(f)) => {
                self.cell = Cell::Pending(Waiter::Callback(f));
                Took::Result(Err(ServeError::AlreadyTaken { task: task.into(), job }))
            }
            pending @ Cell::Pending(_) => {
                self.cell = pending;
                Took::Pending
            }
        }
    }
}

/// A sporadic job's result, to wait for (blocking, with a timeout), to await (`handle.await`:
/// it is a [`Future`]) or to be called back with.
///
/// The result can be taken once: a second `wait` (or a `wait` after `on_complete`) returns
/// [`ServeError::AlreadyTaken`]. Every handle resolves: with the result, a stage's or the
/// stop's error, or at once for a rejected submission. Whoever takes a completed job's result
/// reads its outputs (the executor's `outputs`: the copy to the host) on its own thread, at its
/// own priority: the thread in `wait`, the awaiting task's, or (with `on_complete`) the
/// server's delivery thread. Dropping a handle is fine (the job runs and counts; its result is
/// discarded, its state freed by the delivery thread, or by the drop if the job had ended).
#[derive(Clone)]
pub struct JobHandle {
    pub(crate) task: String,
    pub(crate) job: u64,
    pub(crate) admission: Admission,
    pub(crate) slot: Arc<Slot>,
}

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("task", &self.task)
            .field("job", &self.job)
            .field("admission", &self.admission)
            .field("done", &self.is_done())
            .finish()
    }
}

impl JobHandle {
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The job's index within its task.
    pub fn job(&self) -> u64 {
        self.job
    }

    /// Released at once, delayed to its earliest legal release, or rejected.
    pub fn admission(&self) -> Admission {
        self.admission
    }

    /// Whether the result is there (or was taken).
    pub fn is_done(&self) -> bool {
        !matches!(lock(&self.slot.state).cell, Cell::Pending(_))
    }

    /// Blocks until the job resolves and takes its result (a completed job's outputs are read
    /// on this thread).
    pub fn wait(&self) -> Result<JobResult, ServeError> {
        self.wait_until(None)
    }

    /// [`Self::wait`] for at most `timeout`: [`ServeError::Timeout`] if it did not resolve (the
    /// handle can be waited on again).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<JobResult, ServeError> {
        self.wait_until(Some(Instant::now() + timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<JobResult, ServeError> {
        let started = Instant::now();
        let slot = &*self.slot;
        let mut state = lock(&slot.state);
        loop {
            match state.take(&self.task, self.job) {
                Took::Pending => {}
                took => {
                    drop(state);
                    return took.result().expect("not pending");
                }
            }
            // Counted under the lock a resolve needs: it notifies when there is a sleeper.
            state.sleepers += 1;
            state = match deadline {
                None => slot.cv.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        state.sleepers -= 1;
                        return Err(ServeError::Timeout {
                            task: self.task.clone(),
                            job: self.job,
                            waited: started.elapsed().as_nanos() as Time,
                        });
                    }
                    slot.cv.wait_timeout(state, d - now).unwrap_or_else(|e| e.into_inner()).0
                }
            };
            state.sleepers -= 1;
        }
    }

    /// Calls `f` with the result when the job resolves: on the server's delivery thread (see
    /// docs/runtime.md for what it may do), or here at once if it already has. Takes the
    /// result: a later `wait` returns [`ServeError::AlreadyTaken`], as does `f` if it was taken.
    pub fn on_complete(&self, f: impl FnOnce(Result<JobResult, ServeError>) + Send + 'static) {
        let mut state = lock(&self.slot.state);
        match std::mem::replace(&mut state.cell, Cell::Taken) {
            Cell::Pending(waiter @ (Waiter::None | Waiter::Task(_))) => {
                state.cell = Cell::Pending(Waiter::Callback(Box::new(f)));
                // A waiting thread or an awaiting task finds the result taken.
                self.slot.wake(state, waiter);
            }
            other => {
                state.cell = other;
                let took = state.take(&self.task, self.job);
                drop(state);
                f(took.result().expect("not pending"))
            }
        }
    }
}

/// `handle.await`: the result, taken as [`JobHandle::wait`] takes it (a completed job's
/// outputs are read by the awaiting task). The worker that ends the job wakes the task.
impl Future for JobHandle {
    type Output = Result<JobResult, ServeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.slot.state);
        match state.take(&self.task, self.job) {
            Took::Pending => {
                if let Cell::Pending(waiter) = &mut state.cell {
                    if !matches!(waiter, Waiter::Task(w) if w.will_wake(cx.waker())) {
                        *waiter = Waiter::Task(cx.waker().clone());
                    }
                }
                Poll::Pending
            }
            took => {
                drop(state);
                Poll::Ready(took.result().expect("not pending"))
            }
        }
    }
}

struct Ring {
    items: VecDeque<Result<JobResult, ServeError>>,
    closed: bool,
}

/// The results of a periodic task, oldest first, in a bounded queue: when it is full the
/// oldest is dropped (and counted), so a reader that falls behind costs no memory.
pub(crate) struct Stream {
    ring: Mutex<Ring>,
    cv: Condvar,
    capacity: usize,
}

impl Stream {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            ring: Mutex::new(Ring { items: VecDeque::with_capacity(capacity), closed: false }),
            cv: Condvar::new(),
            capacity: capacity.max(1),
        })
    }

    /// Adds a result; true if the oldest was dropped to make room.
    pub fn push(&self, r: Result<JobResult, ServeError>) -> bool {
        let mut ring = lock(&self.ring);
        let dropped = ring.items.len() >= self.capacity && ring.items.pop_front().is_some();
        ring.items.push_back(r);
        drop(ring);
        self.cv.notify_all();
        dropped
    }

    pub fn close(&self) {
        lock(&self.ring).closed = true;
        self.cv.notify_all();
    }
}

/// A periodic task's results ([`super::Server::results`]): each item is a job's result or its
/// error (a failed stage, a failed source, ...). Clones read the same queue (each result goes
/// to one reader).
#[derive(Clone)]
pub struct ResultStream {
    pub(crate) task: String,
    pub(crate) stream: Arc<Stream>,
}

impl std::fmt::Debug for ResultStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultStream").field("task", &self.task).finish()
    }
}

impl ResultStream {
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The next result without blocking, `None` if there is none now.
    pub fn try_recv(&self) -> Option<Result<JobResult, ServeError>> {
        lock(&self.stream.ring).items.pop_front()
    }

    /// The next result, waiting for it; `None` once the server stopped and every result was read.
    pub fn recv(&self) -> Option<Result<JobResult, ServeError>> {
        let mut ring = lock(&self.stream.ring);
        loop {
            if let Some(r) = ring.items.pop_front() {
                return Some(r);
            }
            if ring.closed {
                return None;
            }
            ring = self.stream.cv.wait(ring).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// [`Self::recv`] for at most `timeout` (`None` also when it ran out).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Result<JobResult, ServeError>> {
        let end = Instant::now() + timeout;
        let mut ring = lock(&self.stream.ring);
        loop {
            if let Some(r) = ring.items.pop_front() {
                return Some(r);
            }
            let now = Instant::now();
            if ring.closed || now >= end {
                return None;
            }
            ring = self.stream.cv.wait_timeout(ring, end - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Every result available now.
    pub fn drain(&self) -> Vec<Result<JobResult, ServeError>> {
        lock(&self.stream.ring).items.drain(..).collect()
    }
}
