//! Overload, failing stages and stops: the run goes on, ends, and reports everything.

mod common;
use common::{serial, system, timed, untimed, Spec, MS};
use lalarand_runtime::serve::{HostTensor, Input, InputSpec};
use lalarand_runtime::{
    BusyTime, BusyWait, JobOutcome, LatePolicy, OverrunPolicy, RunConfig, RunHorizon, RunReport, Runtime, StageError,
    StageExecutor, Verdict,
};
use std::time::{Duration, Instant};

/// One resource, utilization 1.4: "low" cannot keep up.
fn overloaded() -> Vec<Spec<'static>> {
    vec![
        Spec { name: "high", period: 10 * MS, offset: 0, stages: &[(0, 4 * MS)] },
        Spec {
            name: "low",
            period: 20 * MS,
            offset: MS,
            stages: &[(0, 5 * MS), (0, 5 * MS), (0, 5 * MS), (0, 5 * MS)],
        },
    ]
}

/// Every release is accounted for: started jobs end one way or another, the rest were skipped
/// or dropped.
fn assert_accounted(report: &RunReport) {
    for t in &report.tasks {
        let started = t.completed + t.aborted + t.failed + t.unfinished;
        assert_eq!(t.released, started + t.skipped + t.dropped, "{t:?}");
    }
}

#[test]
fn overload_is_refused_unless_forced_then_runs_to_the_end_under_every_policy() {
    let _turn = serial();
    let (sys, alloc) = system(1, 0, &overloaded());
    let refused = Runtime::new(&sys, &alloc, RunConfig::default()).unwrap_err();
    assert!(refused.to_string().contains("\"low\""), "{refused}");

    for (late, overrun) in [
        (LatePolicy::Continue, OverrunPolicy::Queue),
        (LatePolicy::Continue, OverrunPolicy::Skip),
        (LatePolicy::Abort, OverrunPolicy::Queue),
        (LatePolicy::Abort, OverrunPolicy::Skip),
    ] {
        let config =
            RunConfig { late, overrun, max_backlog: 2, force: true, ..untimed(RunHorizon::Duration(300 * MS)) };
        let rt = Runtime::new(&sys, &alloc, config).unwrap();
        let started = Instant::now();
        let report = rt.run(&rt.busy_wait(BusyTime::Wcet)).unwrap().report;
        assert!(started.elapsed() < Duration::from_secs(5), "{late:?}/{overrun:?} took {:?}", started.elapsed());
        assert_accounted(&report);
        let (high, low) = (&report.tasks[0], &report.tasks[1]);
        assert!(high.released >= 25 && high.completed > 0, "{high:?}");
        assert_eq!(low.verdict, Verdict::DeadlineMissed, "{late:?}/{overrun:?}: {low:?}");
        assert!(report.max_backlog_seen <= 2);
        match (late, overrun) {
            (LatePolicy::Abort, _) => assert!(low.aborted > 0, "{low:?}"),
            (_, OverrunPolicy::Skip) => assert!(low.skipped > 0, "{low:?}"),
            (_, OverrunPolicy::Queue) => assert!(low.dropped + low.unfinished > 0, "{low:?}"),
        }
        serde_json::to_string(&report).unwrap();
    }
}

/// Fails stage 1 of job 2 of task 0 and panics in stage 0 of job 1 of task 1.
struct Faulty(BusyWait);

impl StageExecutor for Faulty {
    type Job = Vec<u8>;

    fn input_spec(&self, task: usize) -> InputSpec {
        self.0.input_spec(task)
    }

    fn start_job(&self, _task: usize, job: u64, _input: &Input) -> Result<Vec<u8>, StageError> {
        Ok(vec![job as u8; 16])
    }

    fn run_stage(&self, task: usize, stage: usize, job: u64, state: &mut Vec<u8>) -> Result<(), StageError> {
        assert!(state.iter().all(|&b| b == job as u8), "a job's state travels with it");
        match (task, stage, job) {
            (0, 1, 2) => Err(StageError("out of memory".into())),
            (1, 0, 1) => panic!("kernel crashed"),
            _ => {
                self.0.spin(task, stage, job);
                Ok(())
            }
        }
    }

    fn outputs(&self, _task: usize, _state: Vec<u8>) -> Result<Vec<HostTensor>, StageError> {
        Ok(Vec::new())
    }
}

#[test]
fn a_failing_stage_fails_its_job_only() {
    let _turn = serial();
    let specs = [
        Spec { name: "x", period: 20 * MS, offset: 0, stages: &[(0, 2 * MS), (1, 2 * MS)] },
        Spec { name: "y", period: 30 * MS, offset: 5 * MS, stages: &[(1, 3 * MS), (0, 2 * MS)] },
    ];
    let (sys, alloc) = system(2, 0, &specs);
    let rt = Runtime::new(&sys, &alloc, untimed(RunHorizon::Jobs(5))).unwrap();
    // The default hook symbolizes a backtrace (RUST_BACKTRACE), which takes longer than the
    // run; the panic is expected, so keep it quiet and quick.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = rt.run(&Faulty(rt.busy_wait(BusyTime::Wcet)));
    std::panic::set_hook(hook);
    let out = out.unwrap();
    let r = &out.report;
    assert_accounted(r);
    let failures: Vec<_> = r.failures.iter().map(|f| (f.task_name.as_str(), f.job, f.stage)).collect();
    assert_eq!(failures, vec![("x", 2, 1), ("y", 1, 0)], "{:#?}", out.trace.jobs);
    assert!(r.failures[0].error.contains("out of memory") && r.failures[1].error.contains("kernel crashed"));
    for t in &r.tasks {
        assert_eq!((t.released, t.completed, t.failed), (5, 4, 1), "{t:?}");
        assert_eq!(t.verdict, Verdict::StageFailed);
    }
    let failed = out.trace.jobs.iter().find(|j| (j.task, j.job) == (0, 2)).unwrap();
    assert!(matches!(failed.outcome, JobOutcome::Failed { stage: 1, .. }));
}

#[test]
fn a_stop_ends_a_long_run_promptly_with_what_was_measured() {
    let _turn = serial();
    let specs = [Spec { name: "s", period: 5 * MS, offset: 0, stages: &[(0, MS)] }];
    let (sys, alloc) = system(1, 0, &specs);
    let config = untimed(RunHorizon::Duration(600_000 * MS));
    let rt = Runtime::new(&sys, &alloc, config).unwrap();
    let stop = rt.stop_handle();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        stop.stop();
    });
    let started = Instant::now();
    let out = rt.run(&rt.busy_wait(BusyTime::Wcet)).unwrap();
    stopper.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "stopping took {:?}", started.elapsed());
    let t = &out.report.tasks[0];
    assert!(out.report.stopped);
    assert!(t.completed >= 5 && t.released <= 1_000, "{t:?}");
    assert_accounted(&out.report);
}

#[test]
fn releases_follow_the_absolute_schedule() {
    let _turn = serial();
    let specs = [Spec { name: "p", period: 2 * MS, offset: 3 * MS, stages: &[(0, 200_000)] }];
    let (sys, alloc) = system(1, 0, &specs);
    let rt = Runtime::new(&sys, &alloc, timed(RunHorizon::Jobs(100))).unwrap();
    let out = rt.run(&rt.busy_wait(BusyTime::Wcet)).unwrap();
    // Every job keeps its nominal release: a stall of the machine (a loaded CI host can stop
    // the process for tens of ms) may make the overrun policy skip releases, but never shifts
    // the ones that follow.
    let jobs = &out.trace.jobs;
    assert!(jobs.len() >= 50, "{jobs:?}");
    for (j, next) in jobs.iter().zip(jobs.iter().skip(1)) {
        assert!(next.job > j.job, "{jobs:?}");
    }
    for j in jobs {
        assert_eq!(j.release, 3 * MS + j.job * 2 * MS, "{jobs:?}");
    }
    // No stage starts before its release, and the last is not behind by a drift of periods.
    let slots = &out.trace.resources[0];
    assert_eq!(slots.len(), jobs.len());
    let release_of = |job: u64| jobs.iter().find(|j| j.job == job).expect("recorded job").release;
    for s in slots {
        assert!(s.start >= release_of(s.job), "{s:?} started before its release");
    }
    let last = slots.last().unwrap();
    assert!(last.start - release_of(last.job) < 20 * MS, "{last:?}");
    assert_eq!(out.report.release_jitter.samples, 100, "every release is timed, kept or dropped");
}
