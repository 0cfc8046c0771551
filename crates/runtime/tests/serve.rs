//! The server with busy-wait stages: sporadic and periodic jobs, the minimum inter-arrival
//! time, results and timing, statistics, stop, and bad input.

mod common;
use common::{serial, system, Spec, MS};
use lalarand_model::{Allocation, ExecutionPlan, System};
use lalarand_runtime::serve::*;
use lalarand_runtime::{BusyTime, BusyWait, StageError, StageExecutor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn busy(sys: &System, alloc: &Allocation) -> BusyWait {
    BusyWait::from_plan(&ExecutionPlan::new(sys, alloc).unwrap(), &sys.platform, BusyTime::Wcet)
}

/// No SCHED_FIFO (these tests check behaviour, not timing), no warm-up needed.
fn untimed() -> ServeConfig {
    ServeConfig { realtime: false, ..ServeConfig::default() }
}

fn two_tasks() -> (System, Allocation) {
    system(
        2,
        0,
        &[
            Spec { name: "cam", period: 20 * MS, offset: 0, stages: &[(0, MS), (1, MS)] },
            Spec { name: "req", period: 10 * MS, offset: 0, stages: &[(1, MS)] },
        ],
    )
}

fn input(v: f32) -> Input {
    Input::from_vec(vec![1, 3], vec![v, v + 1.0, v + 2.0]).unwrap()
}

#[test]
fn sporadic_jobs_return_their_own_input_with_timing() {
    let _turn = serial();
    let (sys, alloc) = two_tasks();
    let server = Server::builder(&sys, &alloc, busy(&sys, &alloc)).config(untimed()).start().unwrap();
    let h = server.submit("req", input(1.0)).unwrap();
    assert!(matches!(h.admission(), Admission::Released { .. }), "{:?}", h.admission());
    let r = h.wait().unwrap();
    assert_eq!((r.task.as_str(), r.task_index, r.job), ("req", 1, 0));
    assert_eq!(r.outputs, vec![HostTensor { name: "output".into(), dims: vec![1, 3], data: vec![1.0, 2.0, 3.0] }]);
    let t = r.timing;
    assert!(t.submitted <= t.release && t.release <= t.start && t.start < t.finish, "{t:?}");
    assert_eq!(t.response, t.finish - t.release);
    assert_eq!(t.deadline, t.release + 10 * MS);
    assert!(t.response >= MS && t.met && t.bound.is_some(), "{t:?}");
    // Waited twice: a clear error, the server goes on.
    let e = h.wait().unwrap_err().to_string();
    assert!(e.contains("\"req\"") && e.contains("already taken"), "{e}");
    std::thread::sleep(Duration::from_millis(11));
    assert_eq!(server.infer("req", input(5.0)).unwrap().outputs[0].data, vec![5.0, 6.0, 7.0]);
    let report = server.stop(StopPolicy::Drain).unwrap();
    assert!(report.every_job_accounted, "{report:?}");
    let req = &report.stats.tasks[1];
    assert_eq!((req.released, req.completed, req.misses), (2, 2, 0));
    assert!(req.response_min >= MS && req.response_max >= req.response_min);
    // After stop: submit fails naming the task; stop again returns the same report.
    let e = server.submit("req", input(0.0)).unwrap_err().to_string();
    assert!(e.contains("\"req\"") && e.contains("stopped"), "{e}");
    assert_eq!(server.stop(StopPolicy::Cancel).unwrap(), report);
}

#[test]
fn time_past_the_plan_is_counted_as_the_machines_stall_and_covers_the_lateness() {
    let _turn = serial();
    let (sys, alloc) = two_tasks();
    // `req`'s one stage (1 ms in the plan) spins 6 ms: as if the machine took the core away.
    let exec = BusyWait::new(vec![vec![MS, MS], vec![6 * MS]], BusyTime::Wcet);
    let server = Server::builder(&sys, &alloc, exec).config(untimed()).start().unwrap();
    let t = server.infer("req", input(1.0)).unwrap().timing;
    let bound = t.bound.unwrap();
    assert!(t.response > bound + 3 * MS, "{t:?}");
    // The job's own 5 ms past the plan are in its `stalled`, which covers how far it is past
    // its bound: late by the machine, not by the server.
    assert!(t.stalled >= 5 * MS && t.response - bound <= t.stalled, "{t:?}");
    let stalls = server.stats().stalls;
    assert!(stalls.stage_ns >= 5 * MS, "{stalls:?}");
    // A job that keeps to its plan adds no stage stall.
    let exec = BusyWait::new(vec![vec![MS, MS], vec![MS / 2]], BusyTime::Wcet);
    drop(server);
    let server = Server::builder(&sys, &alloc, exec).config(untimed()).start().unwrap();
    server.infer("req", input(1.0)).unwrap();
    assert_eq!(server.stop(StopPolicy::Drain).unwrap().stats.stalls.stage_ns, 0);
}

#[test]
fn early_submissions_wait_for_their_legal_release_or_are_rejected() {
    let _turn = serial();
    let (sys, alloc) = two_tasks();
    let server = Server::builder(&sys, &alloc, busy(&sys, &alloc))
        .config(untimed())
        .sporadic("req", EarlyPolicy::Wait)
        .sporadic("cam", EarlyPolicy::Reject)
        .start()
        .unwrap();
    // Wait: three at once are released a period apart.
    let hs: Vec<JobHandle> = (0..3).map(|k| server.submit("req", input(k as f32)).unwrap()).collect();
    let timings: Vec<_> = hs.iter().map(|h| h.wait().unwrap().timing).collect();
    let releases: Vec<_> = timings.iter().map(|t| t.release).collect();
    // Measured from the job's own submit, so a VM stall between the submits cannot fail it.
    let delayed_to_its_release = matches!(hs[1].admission(), Admission::Delayed { by, release } if release == releases[1] && by <= release - timings[1].submitted && by > 0);
    assert!(delayed_to_its_release, "{:?} {:?}", hs[1].admission(), timings[1]);
    assert!(releases.windows(2).all(|w| w[1] - w[0] == 10 * MS), "{releases:?}");
    for h in &hs {
        if let Admission::Delayed { release, .. } = h.admission() {
            assert!(releases.contains(&release));
        }
    }
    // Reject: the second at once is rejected, the handle says so and resolves with the error.
    let first = server.submit("cam", input(0.0)).unwrap();
    let second = server.submit("cam", input(0.0)).unwrap();
    assert!(matches!(second.admission(), Admission::Rejected { .. }));
    let e = second.wait().unwrap_err();
    assert!(matches!(e, ServeError::TooEarly { .. }) && e.to_string().contains("\"cam\""), "{e}");
    first.wait().unwrap();
    let stats = server.stats();
    assert_eq!((stats.tasks[0].rejected, stats.tasks[0].completed, stats.tasks[1].completed), (1, 1, 3));
    assert!(server.stop(StopPolicy::Drain).unwrap().every_job_accounted);
}

#[test]
fn periodic_tasks_read_their_slot_and_results_stream() {
    let _turn = serial();
    let (sys, alloc) = two_tasks();
    let server = Server::builder(&sys, &alloc, busy(&sys, &alloc))
        .config(untimed())
        .periodic_slot("cam", StalePolicy::Skip)
        .start()
        .unwrap();
    let slot = server.input_slot("cam").unwrap();
    let results = server.results("cam").unwrap();
    // Nothing written yet: releases are skipped and counted.
    std::thread::sleep(Duration::from_millis(50));
    assert!(server.stats().tasks[0].skipped >= 2);
    assert!(results.try_recv().is_none());
    slot.put(input(7.0)).unwrap();
    let r = results.recv_timeout(Duration::from_secs(2)).unwrap().unwrap();
    assert_eq!(r.outputs[0].data, vec![7.0, 8.0, 9.0]);
    assert_eq!(r.timing.release % (20 * MS), 0, "periodic releases are on the period grid: {:?}", r.timing);
    // Bad input to the slot: refused, naming the task.
    let e = server.submit("cam", input(0.0)).unwrap_err().to_string();
    assert!(e.contains("\"cam\"") && e.contains("periodic"), "{e}");
    let e = server.results("req").unwrap_err().to_string();
    assert!(e.contains("\"req\"") && e.contains("sporadic"), "{e}");
    let report = server.stop(StopPolicy::Drain).unwrap();
    assert!(report.every_job_accounted, "{report:?}");
    assert!(results.recv().is_none() || results.recv().is_none(), "the stream closes at stop");
}

#[test]
fn callback_sources_fail_jobs_not_the_server() {
    let _turn = serial();
    let (sys, alloc) = two_tasks();
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let server = Server::builder(&sys, &alloc, busy(&sys, &alloc))
        .config(untimed())
        .periodic_callback(
            "cam",
            move |job| {
                let n = c.fetch_add(1, Ordering::SeqCst);
                match n % 3 {
                    0 => Ok(Some(input(job as f32))),
                    1 => Err(format!("camera unplugged (call {n})")),
                    _ => Ok(None),
                }
            },
            StalePolicy::Reuse,
        )
        .start()
        .unwrap();
    let results = server.results("cam").unwrap();
    std::thread::sleep(Duration::from_millis(250));
    // The sporadic task is served meanwhile.
    server.infer("req", input(1.0)).unwrap();
    let report = server.stop(StopPolicy::Drain).unwrap();
    let got = results.drain();
    let ok = got.iter().filter(|r| r.is_ok()).count();
    let source_errors: Vec<String> = got
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|e| matches!(e, ServeError::Source { .. }))
        .map(|e| e.to_string())
        .collect();
    assert!(ok >= 2 && !source_errors.is_empty(), "{got:?}");
    assert!(source_errors[0].contains("\"cam\"") && source_errors[0].contains("camera unplugged"));
    let cam = &report.stats.tasks[0];
    assert_eq!(cam.failed as usize, source_errors.len());
    assert!(report.every_job_accounted && calls.load(Ordering::SeqCst) >= 5, "{report:?}");
}

/// Busy-wait stages with an input shape, and a stage that fails on a negative input.
struct Checked(BusyWait);

impl StageExecutor for Checked {
    type Job = Input;
    fn input_spec(&self, _task: usize) -> InputSpec {
        InputSpec::single("x", vec![None, Some(3)])
    }
    fn start_job(&self, task: usize, job: u64, input: &Input) -> Result<Input, StageError> {
        self.0.start_job(task, job, input)
    }
    fn run_stage(&self, task: usize, stage: usize, job: u64, state: &mut Input) -> Result<(), StageError> {
        if state.data()[0] < 0.0 {
            return Err(StageError(format!("negative input at stage {stage}")));
        }
        self.0.run_stage(task, stage, job, state)
    }
    fn outputs(&self, task: usize, state: Input) -> Result<Vec<HostTensor>, StageError> {
        self.0.outputs(task, state)
    }
}

#[test]
fn bad_input_is_refused_by_name_and_the_server_goes_on() {
    let _turn = serial();
    let (sys, alloc) = two_tasks();
    let server = Server::builder(&sys, &alloc, Checked(busy(&sys, &alloc))).config(untimed()).start().unwrap();
    let e = server.submit("req", Input::from_vec(vec![3], vec![0.0; 3]).unwrap()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ServeError::Input { .. }), "{e}");
    assert!(text.contains("\"req\"") && text.contains("[3]") && text.contains("[*, 3]"), "{text}");
    let e = server.submit("radar", input(0.0)).unwrap_err().to_string();
    assert!(e.contains("\"radar\"") && e.contains("cam, req"), "{e}");
    assert!(Input::from_vec(vec![2, 3], vec![0.0; 5]).unwrap_err().contains("5 values"));
    // A failing stage fails its job only.
    let e = server.infer("req", input(-1.0)).unwrap_err();
    assert!(matches!(e, ServeError::Failed { stage: 0, .. }) && e.to_string().contains("negative input"), "{e}");
    std::thread::sleep(Duration::from_millis(11));
    assert_eq!(server.infer("req", input(2.0)).unwrap().outputs[0].data[0], 2.0);
    assert_eq!(server.infer("cam", input(3.0)).unwrap().outputs[0].data[0], 3.0);
    let report = server.stop(StopPolicy::Drain).unwrap();
    assert_eq!((report.stats.tasks[1].failed, report.stats.tasks[1].completed), (1, 1));
    assert!(report.every_job_accounted);
}

#[test]
fn stop_resolves_every_pending_handle() {
    let _turn = serial();
    let (sys, alloc) = two_tasks();
    let server = Server::builder(&sys, &alloc, busy(&sys, &alloc)).config(untimed()).start().unwrap();
    let done = Arc::new(Mutex::new(Vec::new()));
    let hs: Vec<JobHandle> = (0..4).map(|k| server.submit("req", input(k as f32)).unwrap()).collect();
    let d = done.clone();
    hs[3].on_complete(move |r| d.lock().unwrap().push(r.map(|r| r.job)));
    let report = server.stop(StopPolicy::Cancel).unwrap();
    assert!(report.every_job_accounted, "{report:?}");
    let results: Vec<_> = hs[..3].iter().map(|h| h.wait_timeout(Duration::from_secs(1))).collect();
    // The first may have run; the ones waiting for their release are cancelled.
    assert!(results[1..].iter().all(|r| matches!(r, Err(ServeError::Cancelled { .. }))), "{results:?}");
    assert!(matches!(done.lock().unwrap().as_slice(), [Err(ServeError::Cancelled { .. })]));
    let req = &report.stats.tasks[1];
    assert_eq!(req.released, req.completed + req.cancelled);
    assert!(req.cancelled >= 3);
}

#[test]
fn drain_runs_waiting_jobs_and_stats_are_live() {
    let _turn = serial();
    let (sys, alloc) = two_tasks();
    let config = ServeConfig { trace_window: Some(1_000 * MS), ..untimed() };
    let server = Server::builder(&sys, &alloc, busy(&sys, &alloc)).config(config).start().unwrap();
    let hs: Vec<JobHandle> = (0..3).map(|k| server.submit("req", input(k as f32)).unwrap()).collect();
    let live = server.stats();
    assert_eq!(live.tasks[1].released, 3);
    assert!(serde_json::to_string(&live).unwrap().contains("\"dispatch_latency\""));
    let report = server.stop(StopPolicy::Drain).unwrap();
    assert!(hs.iter().all(|h| h.wait().is_ok()));
    assert_eq!(report.stats.tasks[1].completed, 3);
    let trace = server.chrome_trace().unwrap();
    let stages = trace["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "X").count();
    assert!(stages >= 3, "{trace}");
}

#[test]
fn an_unschedulable_allocation_is_refused_unless_forced() {
    let (sys, alloc) = system(1, 0, &[Spec { name: "big", period: 2 * MS, offset: 0, stages: &[(0, 3 * MS)] }]);
    let e = Server::builder(&sys, &alloc, busy(&sys, &alloc)).config(untimed()).start().err().unwrap();
    assert!(e.to_string().contains("unschedulable"), "{e}");
    let forced = ServeConfig { force: true, ..untimed() };
    let e = Server::builder(&sys, &alloc, busy(&sys, &alloc))
        .config(forced)
        .sporadic("nope", EarlyPolicy::Wait)
        .start()
        .err()
        .unwrap();
    assert!(e.to_string().contains("\"nope\""), "{e}");
}
