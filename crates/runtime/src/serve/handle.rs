//! Where results reach the application: a [`JobHandle`] per sporadic submission, a
//! [`ResultStream`] per periodic task.

use super::types::{Admission, JobResult, ServeError};
use lalarand_model::Time;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

type Callback = Box<dyn FnOnce(Result<JobResult, ServeError>) + Send + 'static>;

enum Cell {
    Pending(Option<Callback>),
    Ready(Result<JobResult, ServeError>),
    Taken,
}

/// The shared end of a handle, resolved exactly once by the server.
pub(crate) struct Slot {
    cell: Mutex<Cell>,
    cv: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Slot {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { cell: Mutex::new(Cell::Pending(None)), cv: Condvar::new() })
    }

    pub fn resolved(r: Result<JobResult, ServeError>) -> Arc<Self> {
        Arc::new(Self { cell: Mutex::new(Cell::Ready(r)), cv: Condvar::new() })
    }

    /// Delivers the result: to the completion callback if one is set (called here, on the
    /// delivery thread), else kept for `wait`. A second resolve is ignored.
    pub fn resolve(&self, r: Result<JobResult, ServeError>) {
        let mut cell = lock(&self.cell);
        match std::mem::replace(&mut *cell, Cell::Taken) {
            Cell::Pending(Some(f)) => {
                drop(cell);
                // A panicking callback must not take the delivery thread down.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(r))).is_err() {
                    tracing::error!("a completion callback panicked");
                }
            }
            Cell::Pending(None) => {
                *cell = Cell::Ready(r);
                drop(cell);
                self.cv.notify_all();
            }
            other => *cell = other,
        }
    }
}

/// A sporadic job's result, to wait for (blocking, with a timeout) or to be called back with.
///
/// The result can be taken once: a second `wait` (or a `wait` after `on_complete`) returns
/// [`ServeError::AlreadyTaken`]. Every handle resolves: with the result, a stage's or the
/// stop's error, or at once for a rejected submission. Dropping a handle is fine (the job runs
/// and counts; its result is discarded).
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
        !matches!(*lock(&self.slot.cell), Cell::Pending(_))
    }

    /// Blocks until the job resolves and takes its result.
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
        let mut cell = lock(&self.slot.cell);
        loop {
            match &*cell {
                Cell::Ready(_) => {
                    let Cell::Ready(r) = std::mem::replace(&mut *cell, Cell::Taken) else { unreachable!() };
                    return r;
                }
                Cell::Taken | Cell::Pending(Some(_)) => {
                    return Err(ServeError::AlreadyTaken { task: self.task.clone(), job: self.job })
                }
                Cell::Pending(None) => {}
            }
            cell = match deadline {
                None => self.slot.cv.wait(cell).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(ServeError::Timeout {
                            task: self.task.clone(),
                            job: self.job,
                            waited: started.elapsed().as_nanos() as Time,
                        });
                    }
                    self.slot.cv.wait_timeout(cell, d - now).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
    }

    /// Calls `f` with the result when the job resolves: on the server's delivery thread (see
    /// docs/runtime.md for what it may do), or here at once if it already has. Takes the
    /// result: a later `wait` returns [`ServeError::AlreadyTaken`], as does `f` if it was taken.
    pub fn on_complete(&self, f: impl FnOnce(Result<JobResult, ServeError>) + Send + 'static) {
        let mut cell = lock(&self.slot.cell);
        match std::mem::replace(&mut *cell, Cell::Taken) {
            Cell::Pending(None) => *cell = Cell::Pending(Some(Box::new(f))),
            Cell::Ready(r) => {
                drop(cell);
                f(r)
            }
            other @ (Cell::Pending(Some(_)) | Cell::Taken) => {
                *cell = other;
                drop(cell);
                f(Err(ServeError::AlreadyTaken { task: self.task.clone(), job: self.job }))
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
