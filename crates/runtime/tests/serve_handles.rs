//! How a sporadic job's result reaches its handle: published by the worker that ran its last
//! stage, its outputs read by whoever takes it (the waiting thread, the awaiting task, the
//! delivery thread for a completion callback); a dropped handle frees the job's state; every
//! counter stays exact, an outputs failure included.

mod common;
use common::{serial, system, Spec, MS};
use lalarand_model::{Allocation, ExecutionPlan, System};
use lalarand_runtime::serve::*;
use lalarand_runtime::{BusyTime, BusyWait, StageError, StageExecutor};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake};
use std::time::Duration;

/// Busy-wait stages whose job state counts its drops and whose `outputs` note the thread that
/// reads them (and fail while `fail_outputs` is set).
struct Observed {
    busy: BusyWait,
    alive: Arc<AtomicUsize>,
    readers: Arc<Mutex<Vec<Option<String>>>>,
    fail_outputs: Arc<AtomicBool>,
}

struct State {
    input: Input,
    alive: Arc<AtomicUsize>,
}

impl Drop for State {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

impl StageExecutor for Observed {
    type Job = State;

    fn input_spec(&self, task: usize) -> InputSpec {
        self.busy.input_spec(task)
    }

    fn start_job(&self, task: usize, job: u64, input: &Input) -> Result<State, StageError> {
        let input = self.busy.start_job(task, job, input)?;
        self.alive.fetch_add(1, Ordering::SeqCst);
        Ok(State { input, alive: self.alive.clone() })
    }

    fn run_stage(&self, task: usize, stage: usize, job: u64, state: &mut State) -> Result<(), StageError> {
        self.busy.run_stage(task, stage, job, &mut state.input)
    }

    fn outputs(&self, task: usize, state: State) -> Result<Vec<HostTensor>, StageError> {
        self.readers.lock().unwrap().push(std::thread::current().name().map(String::from));
        if self.fail_outputs.load(Ordering::SeqCst) {
            return Err(StageError("no host memory".into()));
        }
        self.busy.outputs(task, state.input.clone())
    }
}

struct Setup {
    server: Server<Observed>,
    alive: Arc<AtomicUsize>,
    readers: Arc<Mutex<Vec<Option<String>>>>,
    fail_outputs: Arc<AtomicBool>,
}

fn one_task() -> (System, Allocation) {
    system(1, 0, &[Spec { name: "req", period: 2 * MS, offset: 0, stages: &[(0, MS / 2), (0, MS / 2)] }])
}

fn start() -> Setup {
    let (sys, alloc) = one_task();
    let busy = BusyWait::from_plan(&ExecutionPlan::new(&sys, &alloc).unwrap(), &sys.platform, BusyTime::Wcet);
    let (alive, readers, fail_outputs) = (Arc::default(), Arc::default(), Arc::default());
    let exec = Observed {
        busy,
        alive: Arc::clone(&alive),
        readers: Arc::clone(&readers),
        fail_outputs: Arc::clone(&fail_outputs),
    };
    let config = ServeConfig { realtime: false, ..ServeConfig::default() };
    let server = Server::builder(&sys, &alloc, exec).config(config).start().unwrap();
    // The warm-up's jobs have no handles; their states are gone once it ended.
    Setup { server, alive, readers, fail_outputs }
}

fn input(v: f32) -> Input {
    Input::from_vec(vec![1, 3], vec![v, v + 1.0, v + 2.0]).unwrap()
}

/// Waits (at most 2 s) until `f` holds.
fn eventually(f: impl Fn() -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(2);
    while !f() {
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

#[test]
fn the_waiting_thread_reads_the_outputs_and_a_callback_the_delivery_thread() {
    let _turn = serial();
    let s = start();
    let r = s.server.submit("req", input(1.0)).unwrap().wait().unwrap();
    assert_eq!(r.outputs[0].data, vec![1.0, 2.0, 3.0]);
    let me = std::thread::current().name().map(String::from);
    assert_eq!(s.readers.lock().unwrap().last().cloned(), Some(me));
    std::thread::sleep(Duration::from_millis(3));
    let (tx, rx) = std::sync::mpsc::channel();
    s.server.submit("req", input(2.0)).unwrap().on_complete(move |r| tx.send(r.map(|r| r.outputs)).unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap().unwrap()[0].data, vec![2.0, 3.0, 4.0]);
    assert_eq!(s.readers.lock().unwrap().last().cloned(), Some(Some("lalarand-deliver".to_string())));
    let report = s.server.stop(StopPolicy::Drain).unwrap();
    assert!(report.every_job_accounted, "{report:?}");
    assert_eq!((report.stats.tasks[0].completed, report.stats.tasks[0].failed), (2, 0));
    assert_eq!(s.alive.load(Ordering::SeqCst), 0);
}

#[test]
fn dropped_handles_free_their_jobs_and_every_job_counts() {
    let _turn = serial();
    let s = start();
    // Dropped before its job ends: the delivery thread frees the state.
    drop(s.server.submit("req", input(1.0)).unwrap());
    std::thread::sleep(Duration::from_millis(3));
    // Kept past the job's end, never waited on: the state waits in the handle, freed with it.
    let kept = s.server.submit("req", input(2.0)).unwrap();
    assert!(eventually(|| kept.is_done()));
    assert!(eventually(|| s.alive.load(Ordering::SeqCst) == 1), "the kept handle holds its job's state");
    assert_eq!(s.server.stats().tasks[0].completed, 2);
    drop(kept);
    assert_eq!(s.alive.load(Ordering::SeqCst), 0);
    let report = s.server.stop(StopPolicy::Drain).unwrap();
    assert!(report.every_job_accounted, "{report:?}");
    let t = &report.stats.tasks[0];
    assert_eq!((t.released, t.completed, t.failed), (2, 2, 0));
}

#[test]
fn a_handle_can_be_awaited_and_outlives_its_server() {
    let _turn = serial();
    let s = start();
    let handle = s.server.submit("req", input(3.0)).unwrap();
    let r = block_on(handle.clone()).unwrap();
    assert_eq!(r.outputs[0].data, vec![3.0, 4.0, 5.0]);
    let e = handle.wait().unwrap_err();
    assert!(matches!(e, ServeError::AlreadyTaken { .. }), "{e}");
    // A result not yet taken when the server is stopped and dropped is still there.
    std::thread::sleep(Duration::from_millis(3));
    let late = s.server.submit("req", input(4.0)).unwrap();
    s.server.stop(StopPolicy::Drain).unwrap();
    drop(s.server);
    assert_eq!(late.wait().unwrap().outputs[0].data, vec![4.0, 5.0, 6.0]);
    assert_eq!(s.alive.load(Ordering::SeqCst), 0);
}

#[test]
fn outputs_that_cannot_be_read_fail_the_job_and_move_it_from_completed_to_failed() {
    let _turn = serial();
    let s = start();
    s.fail_outputs.store(true, Ordering::SeqCst);
    let e = s.server.infer("req", input(1.0)).unwrap_err().to_string();
    assert!(e.contains("reading the outputs: no host memory"), "{e}");
    let report = s.server.stop(StopPolicy::Drain).unwrap();
    assert!(report.every_job_accounted, "{report:?}");
    let t = &report.stats.tasks[0];
    assert_eq!((t.released, t.completed, t.failed), (1, 0, 1));
}

/// Polls `f` on this thread until it is ready, parked between polls.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_secs(2));
    }
}
