//! The serving soak (tests/common/soak.rs): 4 busy-wait tasks served for the given seconds
//! (default 20; the documented run: `cargo bench -p lalarand-runtime --bench soak -- 600`).
//! Prints the report, the resident memory after the first minute (or second, for short runs)
//! and whether every job was accounted for, then checks what it claims (every job accounted
//! for, resident memory within 5 % after that first minute, every job past its bound covered by
//! the machine's stalls) and exits with status 1 naming each claim that is false.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let seconds: f64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20.0);
    let o = common::soak::run(seconds, true);
    let s = &o.report.stats;
    for t in &s.tasks {
        eprintln!(
            "{:7} {:8} {:6} jobs, {} misses, {} dropped, {} skipped, response p99 {:.2} ms max {:.2} ms, bound {:.2} ms",
            t.name,
            t.kind,
            t.completed,
            t.misses,
            t.dropped,
            t.skipped,
            t.response_p99 as f64 / 1e6,
            t.response_max as f64 / 1e6,
            t.bound.unwrap_or(0) as f64 / 1e6
        );
    }
    // The jobs past their bound, on CLOCK_MONOTONIC (seconds), to look up in a scheduler trace
    // (`perf sched record -k CLOCK_MONOTONIC`).
    let late = &o.lateness;
    for (task, t) in late.over_bound_jobs.iter().chain(&late.unexplained_jobs) {
        eprintln!(
            "over bound: {task:7} released {:.6} started {:.6} finished {:.6} (monotonic s): response {:.2} ms, bound {:.2} ms, machine stalled {:.2} ms{}",
            (o.origin + t.release) as f64 / 1e9,
            (o.origin + t.start) as f64 / 1e9,
            (o.origin + t.finish) as f64 / 1e9,
            t.response as f64 / 1e6,
            t.bound.unwrap_or(0) as f64 / 1e6,
            t.stalled as f64 / 1e6,
            if common::soak::unexplained(t) { " UNEXPLAINED" } else { "" }
        );
    }
    let st = s.stalls;
    eprintln!(
        "past their bound: {} jobs, {} of them by more than the machine stalled while they ran ({} past their deadline); \
         machine stalls: stages {:.1} ms, wake-ups {:.1} ms, releases {:.1} ms, submits {:.1} ms; \
         hand-offs past their plan (the server's own): {:.1} ms",
        late.over_bound,
        late.unexplained,
        late.unexplained_misses,
        st.stage_ns as f64 / 1e6,
        st.wakeup_ns as f64 / 1e6,
        st.release_ns as f64 / 1e6,
        st.submit_ns as f64 / 1e6,
        st.handoff_ns as f64 / 1e6
    );
    let after = if seconds >= 120.0 { 60.0 } else { 1.0 };
    let memory = common::soak::memory_flat(&o.rss, after, 5.0);
    let (lo, hi) = memory.clone().unwrap_or((f64::NAN, f64::NAN));
    let at = o.rss.iter().find(|(t, _)| *t >= after).map_or(0, |r| r.1);
    eprintln!(
        "{seconds} s: resident memory {at} KiB at {after} s, then {lo:+.2} % .. {hi:+.2} %; sporadic submitted {} resolved {}; \
         periodic results {} ({} errors: {:?}); every job accounted for: {}; schedulable: {}; misses: {}; dispatch p99 {:.1} us max {:.1} us; \
         release jitter p99 {:.1} us max {:.1} us; stages past their WCET: {}; SCHED_FIFO: {}",
        o.submitted,
        o.resolved_ok,
        o.periodic_results,
        o.periodic_errors.len(),
        o.periodic_errors.iter().take(3).collect::<Vec<_>>(),
        o.report.every_job_accounted,
        o.schedulable,
        s.misses(),
        s.dispatch_latency.p99 as f64 / 1e3,
        s.dispatch_latency.max as f64 / 1e3,
        s.release_jitter.p99 as f64 / 1e3,
        s.release_jitter.max as f64 / 1e3,
        s.overruns,
        s.realtime
    );
    let failed: Vec<String> =
        [o.check_accounted(), late.check(), memory.map(|_| ())].into_iter().filter_map(Result::err).collect();
    for f in &failed {
        eprintln!("FAILED: {f}");
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
