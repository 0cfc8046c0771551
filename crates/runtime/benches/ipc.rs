//! One process or one per DNN: the cost of handing a stage over, measured side by side.
//!
//! The LaLaRAND artifact ran a scheduler daemon and one process per DNN, talking over named
//! pipes: per layer, the daemon tells the DNN's process to run it and the process answers when
//! it is done. lalarand runs every task in one process, and a stage is handed over by pushing
//! the job's box onto a resource's queue (a heap under a `Mutex`, a `Condvar` the worker parks
//! on, notified after unlocking: `crates/runtime/src/queue.rs`, whose types are private; the
//! queue below is a copy of that mechanism).
//!
//! Both variants time the same round trip with an empty stage: the scheduler side hands stage
//! `k` over and waits for "done". In-process: the bench thread pushes the job onto the worker's
//! queue, the worker pops it, pushes it back onto the bench thread's queue. Named pipes: the bench
//! (the daemon) writes the stage number into one FIFO, a child process (this binary re-executed
//! with `LALARAND_IPC_BENCH_CHILD` set) reads it and writes the answer into a second FIFO, the
//! daemon reads it. Each variant runs with the two sides on two cores (the runtime's case: the
//! worker of another resource) and on one core, pinned, under SCHED_FIFO where granted (the
//! runtime asks for it; the other side one priority lower, as a worker is below the release
//! thread). The bench holds SCHED_FIFO at most half of the time, pausing as long as it measured,
//! so that it never exhausts the real-time bandwidth of a core.
//!
//! After criterion's figures (mean per round trip), 20,000 round trips per variant, each timed on
//! its own and interleaved in blocks of 1,000 so that machine load hits both alike, give the median
//! and p99 and the ratio pipes / in-process.
//!
//! CARGO_TARGET_DIR=target/rt cargo bench -p lalarand-runtime --bench ipc

use criterion::Criterion;
use lalarand_runtime::os;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "LALARAND_IPC_BENCH_CHILD";
const CORE_ENV: &str = "LALARAND_IPC_BENCH_CORE";
/// SCHED_FIFO priorities: the side that hands stages over above the side that runs them.
const SCHED_FIFO_PRIO: i32 = 80;
const PEER_FIFO_PRIO: i32 = 79;
/// The stage number that ends the in-process worker.
const STOP: u64 = u64::MAX;
const SAMPLES: usize = 20_000;
const BLOCK: usize = 1_000;

// ---- In-process: the runtime's hand-off, as crates/runtime/src/queue.rs does it. ----

/// A job between stages (the runtime's `InFlight`, state `()`): boxed, moved, never copied.
struct Job {
    task: usize,
    release: u64,
    stage: u64,
}

struct Entry {
    key: (u32, u64, usize),
    #[allow(dead_code)] // the runtime keeps it for the dispatch latency
    ready: u64,
    #[allow(dead_code)]
    woke_idle: bool,
    job: Box<Job>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

struct Inner {
    heap: BinaryHeap<Entry>,
    parked: bool,
}

struct Queue {
    inner: Mutex<Inner>,
    cv: Condvar,
}

impl Queue {
    fn new() -> Self {
        Self { inner: Mutex::new(Inner { heap: BinaryHeap::with_capacity(8), parked: false }), cv: Condvar::new() }
    }

    fn push(&self, job: Box<Job>) {
        let now = os::monotonic_ns();
        let mut q = self.inner.lock().unwrap();
        let woke_idle = q.parked && q.heap.is_empty();
        q.heap.push(Entry { key: (0, job.release, job.task), ready: now, woke_idle, job });
        drop(q);
        self.cv.notify_one();
    }

    fn pop(&self) -> Box<Job> {
        let mut q = self.inner.lock().unwrap();
        loop {
            if let Some(e) = q.heap.pop() {
                return e.job;
            }
            q.parked = true;
            q = self.cv.wait(q).unwrap();
            q.parked = false;
        }
    }
}

/// The bench thread and one worker thread, each with its queue.
struct InProcess {
    to_worker: Arc<Queue>,
    to_sched: Arc<Queue>,
    job: Option<Box<Job>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    fn start(core: usize) -> Self {
        let (to_worker, to_sched) = (Arc::new(Queue::new()), Arc::new(Queue::new()));
        let (tw, ts) = (to_worker.clone(), to_sched.clone());
        let worker = std::thread::spawn(move || {
            peer_setup(core);
            loop {
                let mut job = tw.pop();
                if job.stage == STOP {
                    return;
                }
                job.stage += 1; // the stage: nothing
                ts.push(job);
            }
        });
        Self { to_worker, to_sched, job: Some(Box::new(Job { task: 0, release: 0, stage: 0 })), worker: Some(worker) }
    }

    fn round_trip(&mut self, stage: u64) {
        let mut job = self.job.take().expect("the job is back");
        job.stage = stage;
        self.to_worker.push(job);
        self.job = Some(self.to_sched.pop());
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.to_worker.push(Box::new(Job { task: 0, release: 0, stage: STOP }));
        if let Some(w) = self.worker.take() {
            w.join().unwrap();
        }
    }
}

// ---- Across processes: the artifact's daemon and DNN process, a FIFO each way. ----

struct Pipes {
    /// `None` once closed, which ends the child (EOF).
    to_child: Option<File>,
    from_child: File,
    child: Child,
    _dir: tempfile::TempDir,
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        panic!("mkfifo {}: {}", path.display(), std::io::Error::last_os_error());
    }
}

impl Pipes {
    fn start(core: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (down, up) = (dir.path().join("to-dnn"), dir.path().join("to-daemon"));
        mkfifo(&down);
        mkfifo(&up);
        let child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, dir.path())
            .env(CORE_ENV, core.to_string())
            .spawn()
            .expect("re-executing the bench binary");
        // Opening a FIFO blocks until the other end opens it: same order on both sides.
        let to_child = OpenOptions::new().write(true).open(&down).unwrap();
        let from_child = OpenOptions::new().read(true).open(&up).unwrap();
        Self { to_child: Some(to_child), from_child, child, _dir: dir }
    }

    fn round_trip(&mut self, stage: u64) {
        self.to_child.as_mut().expect("open").write_all(&stage.to_le_bytes()).unwrap();
        let mut done = [0u8; 8];
        self.from_child.read_exact(&mut done).unwrap();
        debug_assert_eq!(u64::from_le_bytes(done), stage + 1);
    }
}

impl Drop for Pipes {
    fn drop(&mut self) {
        // Closing the daemon's write end ends the child (EOF).
        self.to_child = None;
        let _ = self.child.wait();
    }
}

/// The DNN process: run the stage it is told to (nothing), answer, until EOF.
fn child(dir: &Path) {
    let core = std::env::var(CORE_ENV).ok().and_then(|c| c.parse().ok()).unwrap_or(0);
    peer_setup(core);
    let mut from_daemon = OpenOptions::new().read(true).open(dir.join("to-dnn")).unwrap();
    let mut to_daemon = OpenOptions::new().write(true).open(dir.join("to-daemon")).unwrap();
    let mut buf = [0u8; 8];
    while from_daemon.read_exact(&mut buf).is_ok() {
        let stage = u64::from_le_bytes(buf);
        to_daemon.write_all(&(stage + 1).to_le_bytes()).unwrap();
    }
}

// ---- Scheduling of the two sides. ----

fn peer_setup(core: usize) {
    os::pin_current_thread(&[core]).unwrap();
    os::set_timer_slack();
    os::set_fifo(PEER_FIFO_PRIO);
}

/// Runs `f` on the calling thread pinned to `core` under SCHED_FIFO, then restores the thread's
/// affinity and policy (criterion's analysis must not run under SCHED_FIFO) and sleeps as long
/// as `f` ran: on one core the ping-pong keeps the core busy under SCHED_FIFO, and without the
/// pause it would use up the core's real-time bandwidth (950 ms of each second) and get every
/// SCHED_FIFO thread on it throttled, other processes' included (it did, once).
fn as_scheduler<T>(core: usize, f: impl FnOnce() -> T) -> (T, bool) {
    let cores = os::available_cores();
    os::pin_current_thread(&[core]).unwrap();
    let fifo = os::set_fifo(SCHED_FIFO_PRIO);
    let t0 = Instant::now();
    let out = f();
    let ran = t0.elapsed();
    // SAFETY: plain syscalls on the calling thread.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_OTHER, &param);
    }
    os::pin_current_thread(&cores).unwrap();
    std::thread::sleep(ran);
    (out, fifo)
}

#[derive(Clone, Copy)]
struct Placement {
    name: &'static str,
    sched: usize,
    peer: usize,
}

fn placements() -> Vec<Placement> {
    let cores = os::available_cores();
    let (first, last) = (cores[0], cores[cores.len() - 1]);
    let mut v = vec![Placement { name: "one core", sched: first, peer: first }];
    if last != first {
        v.insert(0, Placement { name: "two cores", sched: first, peer: last });
    }
    v
}

fn bench(c: &mut Criterion) {
    for p in placements() {
        let mut group = c.benchmark_group(format!("stage round trip, {}", p.name));
        group.sample_size(20).warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_secs(1));
        let mut inproc = InProcess::start(p.peer);
        group.bench_function("in-process queue", |b| {
            b.iter_custom(|iters| {
                as_scheduler(p.sched, || {
                    let t0 = Instant::now();
                    for k in 0..iters {
                        inproc.round_trip(k);
                    }
                    t0.elapsed()
                })
                .0
            })
        });
        drop(inproc);
        let mut pipes = Pipes::start(p.peer);
        group.bench_function("named pipes, child process", |b| {
            b.iter_custom(|iters| {
                as_scheduler(p.sched, || {
                    let t0 = Instant::now();
                    for k in 0..iters {
                        pipes.round_trip(k);
                    }
                    t0.elapsed()
                })
                .0
            })
        });
        drop(pipes);
        group.finish();
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Each round trip timed on its own, the two variants interleaved in blocks.
fn summary() {
    for p in placements() {
        let mut inproc = InProcess::start(p.peer);
        let mut pipes = Pipes::start(p.peer);
        let (mut a, mut b) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
        let mut fifo = true;
        for k in 0..(SAMPLES / BLOCK) as u64 {
            fifo &= as_scheduler(p.sched, || {
                for s in 0..BLOCK as u64 {
                    let t0 = os::monotonic_ns();
                    inproc.round_trip(k * BLOCK as u64 + s);
                    a.push(os::monotonic_ns() - t0);
                }
                for s in 0..BLOCK as u64 {
                    let t0 = os::monotonic_ns();
                    pipes.round_trip(k * BLOCK as u64 + s);
                    b.push(os::monotonic_ns() - t0);
                }
            })
            .1;
        }
        drop((inproc, pipes));
        a.sort_unstable();
        b.sort_unstable();
        let us = |v: u64| v as f64 / 1e3;
        let (ma, mb) = (percentile(&a, 0.5), percentile(&b, 0.5));
        eprintln!(
            "stage round trip, {} (cores {} and {}), {} each, SCHED_FIFO: {fifo}:\n  \
             in-process queue:  median {:.2} us, p99 {:.2} us, max {:.1} us\n  \
             named pipes:       median {:.2} us, p99 {:.2} us, max {:.1} us\n  \
             ratio pipes / in-process: median {:.2}x, p99 {:.2}x",
            p.name,
            p.sched,
            p.peer,
            a.len(),
            us(ma),
            us(percentile(&a, 0.99)),
            us(a[a.len() - 1]),
            us(mb),
            us(percentile(&b, 0.99)),
            us(b[b.len() - 1]),
            mb as f64 / ma.max(1) as f64,
            percentile(&b, 0.99) as f64 / percentile(&a, 0.99).max(1) as f64,
        );
    }
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return child(&PathBuf::from(dir));
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    summary();
}
