//! A test-sized soak of the server (the 10-minute one: `cargo bench -p lalarand-runtime --bench
//! soak -- 600`, docs/evaluation.md, "Serving"), and its checks, each on an input made to fail.

mod common;
use common::soak::{memory_flat, unexplained, Lateness, SoakOutcome};
use lalarand_runtime::serve::{JobTiming, ServeReport, ServeStats, StopPolicy, TaskStats};
use lalarand_runtime::LatencyStats;

#[test]
fn four_tasks_served_every_job_accounted_memory_flat() {
    let _turn = common::serial();
    let o = common::soak::run(5.0, true);
    let s = &o.report.stats;
    eprintln!("{}", serde_json::to_string(&o.report).unwrap());
    eprintln!("rss {:?}", o.rss);
    eprintln!(
        "misses: {}, past their bound: {} ({} not covered by the machine's stalls), stalls {:?}",
        s.misses(),
        o.lateness.over_bound,
        o.lateness.unexplained,
        s.stalls
    );
    o.check_accounted().unwrap();
    let by = |name: &str| s.tasks.iter().find(|t| t.name == name).unwrap();
    assert!(by("cam").completed >= 200 && by("lidar").completed >= 80, "{s:?}");
    assert!(by("req").completed >= 300 && by("events").completed >= 100, "{s:?}");
    // Misses may happen on a shared host; every job past its bound must be the machine's doing.
    o.lateness.check().unwrap();
    // Resident memory after the first second stays within 5 %.
    memory_flat(&o.rss, 1.0, 5.0).unwrap();
}

fn timing(response: u64, bound: u64, stalled: u64) -> JobTiming {
    let deadline = 10_000;
    JobTiming {
        submitted: 0,
        release: 0,
        start: 0,
        finish: response,
        response,
        bound: Some(bound),
        deadline,
        met: response <= deadline,
        stalled,
    }
}

#[test]
fn lateness_the_stalls_do_not_cover_fails_the_check() {
    assert!(!unexplained(&timing(900, 1_000, 0)), "within its bound");
    assert!(!unexplained(&timing(1_500, 1_000, 600)), "past it by less than it stalled");
    let mut l = Lateness::default();
    l.note("a", &timing(1_500, 1_000, 600));
    l.note("a", &timing(800, 1_000, 0));
    assert_eq!((l.over_bound, l.unexplained), (1, 0));
    l.check().unwrap();
    // Past its bound (and deadline) by more than the machine stalled: the server's own.
    l.note("b", &timing(12_000, 1_000, 500));
    assert_eq!((l.over_bound, l.unexplained, l.unexplained_misses), (2, 1, 1));
    let e = l.check().unwrap_err();
    assert!(e.contains("1 of 2 jobs") && e.contains("\"b\""), "{e}");
}

#[test]
fn memory_that_grows_or_was_never_measured_fails_the_check() {
    assert_eq!(memory_flat(&[(0.0, 900), (1.0, 1_000), (2.0, 1_040)], 1.0, 5.0), Ok((0.0, 4.0)));
    assert!(memory_flat(&[(1.0, 1_000), (2.0, 1_100)], 1.0, 5.0).unwrap_err().contains("+10.00 %"));
    assert!(memory_flat(&[(1.0, 1_000), (2.0, 900)], 1.0, 5.0).is_err(), "a drop beyond the limit");
    // No samples, none after the warm-up, one only, or an unreadable size: no evidence, a failure.
    assert!(memory_flat(&[], 1.0, 5.0).is_err());
    assert!(memory_flat(&[(0.5, 1_000)], 1.0, 5.0).is_err());
    assert!(memory_flat(&[(1.0, 1_000)], 1.0, 5.0).is_err());
    assert!(memory_flat(&[(1.0, 0), (2.0, 0)], 1.0, 5.0).is_err());
}

#[test]
fn a_job_not_accounted_for_fails_the_check() {
    let task = |kind: &'static str, completed: u64| TaskStats {
        name: kind.into(),
        kind,
        released: completed,
        completed,
        failed: 0,
        aborted: 0,
        cancelled: 0,
        rejected: 0,
        skipped: 0,
        dropped: 0,
        misses: 0,
        in_flight: 0,
        results_dropped: 0,
        response_min: 0,
        response_mean: 0.0,
        response_p99: 0,
        response_max: 0,
        bound: None,
        deadline: 0,
        period: 0,
    };
    let stats = ServeStats {
        tasks: vec![task("sporadic", 3), task("periodic", 5)],
        dispatch_latency: LatencyStats::default(),
        handoff: LatencyStats::default(),
        release_jitter: LatencyStats::default(),
        overruns: 0,
        stalls: Default::default(),
        resource_busy: vec![0, 0],
        uptime: 0,
        realtime: true,
        stopped: true,
    };
    let outcome = |resolved_ok: u64| SoakOutcome {
        report: ServeReport { stats: stats.clone(), policy: StopPolicy::Drain, every_job_accounted: true },
        rss: Vec::new(),
        submitted: 3,
        resolved_ok,
        periodic_results: 5,
        periodic_errors: Vec::new(),
        schedulable: true,
        lateness: Lateness::default(),
        origin: 0,
    };
    outcome(3).check_accounted().unwrap();
    // A submission whose handle did not resolve with its result.
    let e = outcome(2).check_accounted().unwrap_err();
    assert!(e.contains("3 submitted, 2 resolved"), "{e}");
}
