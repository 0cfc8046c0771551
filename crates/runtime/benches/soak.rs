//! The serving soak (tests/common/soak.rs): 4 busy-wait tasks served for the given seconds
//! (default 20; the documented run: `cargo bench -p lalarand-runtime --bench soak -- 600`).
//! Prints the report, the resident memory after the first minute (or second, for short runs)
//! and whether every job was accounted for.

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
    let after = if seconds >= 120.0 { 60.0 } else { 1.0 };
    let (lo, hi) = o.drift_pct(after);
    let at = o.rss.iter().find(|(t, _)| *t >= after).map_or(0, |r| r.1);
    eprintln!(
        "{seconds} s: resident memory {at} KiB at {after} s, then {lo:+.2} % .. {hi:+.2} %; sporadic submitted {} resolved {}; \
         periodic results {} ({} errors: {:?}); every job accounted for: {}; schedulable: {}; misses: {}; dispatch p99 {:.1} us; SCHED_FIFO: {}",
        o.submitted,
        o.resolved_ok,
        o.periodic_results,
        o.periodic_errors.len(),
        o.periodic_errors.iter().take(3).collect::<Vec<_>>(),
        o.report.every_job_accounted,
        o.schedulable,
        s.misses(),
        s.dispatch_latency.p99 as f64 / 1e3,
        s.realtime
    );
}
