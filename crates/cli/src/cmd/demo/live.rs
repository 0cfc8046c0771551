//! The demo's run of the lalarand allocation with ONNX inference under the real-time runtime,
//! its trace and Gantt chart, and the verdict on it.

use super::platform::Here;
use crate::cmd::run::{render, write_gantt};
use crate::engine_exec::EngineExecutor;
use crate::files::write_atomic_with;
use crate::Verdict;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use lalarand_model::{us_to_time, Allocation, System, Time};
use lalarand_runtime::{os, RunConfig, RunHorizon, RunReport, Runtime, TaskReport};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A finished run: its report, and the trace and Gantt chart written.
pub(super) struct LiveRun {
    pub report: RunReport,
    pub files: Vec<PathBuf>,
}

/// Runs `alloc` of `system` with the models at `models` for `seconds`, prints the responses
/// next to the bounds, and writes `trace.json` and `gantt.svg` (its first `window`) in `out`.
pub(super) fn run(
    here: &Here,
    system: &System,
    alloc: &Allocation,
    models: &[PathBuf],
    seconds: f64,
    out: &Path,
    window: Time,
) -> Result<LiveRun> {
    // Profiling pinned this thread to the cpu core; the runtime's threads inherit its mask, so
    // it gets every core back first.
    os::pin_current_thread(&here.cores).map_err(|e| anyhow::anyhow!("cannot unpin the main thread: {e}"))?;
    let config = RunConfig { horizon: RunHorizon::Duration(us_to_time(seconds * 1e6)), ..RunConfig::default() };
    let runtime = Runtime::new(system, alloc, config).context("the runtime refused the lalarand allocation")?;
    runtime.stop_handle().on_ctrl_c().context("cannot install the Ctrl-C handler")?;
    let spinner = ProgressBar::new_spinner().with_message("loading the models in their allocated modes");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let exec = EngineExecutor::new(system, alloc, models)?;
    spinner.finish_and_clear();
    let bar = ProgressBar::new(seconds.ceil() as u64).with_style(ProgressStyle::with_template(
        "{spinner} running the lalarand allocation [{bar:20}] {pos}/{len} s",
    )?);
    let done = std::sync::atomic::AtomicBool::new(false);
    let outcome = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                bar.set_position((bar.elapsed().as_secs_f64() as u64).min(bar.length().unwrap_or(0)));
                bar.tick();
            }
        });
        let outcome = runtime.run(&exec);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        outcome
    })?;
    bar.finish_and_clear();
    let report = &outcome.report;
    outln!("the lalarand allocation run for {} s with ONNX inference, observed next to the bounds:", seconds)?;
    out!("{}", render(report, "engine", &system.platform))?;

    let spinner = ProgressBar::new_spinner().with_message("writing the trace and the Gantt chart");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let trace = out.join("trace.json");
    write_atomic_with(&trace, |tmp| outcome.write_chrome_trace(&runtime, tmp))?;
    let gantt = out.join("gantt.svg");
    write_gantt(&outcome, &runtime, &gantt, Some((0, window)))?;
    spinner.finish_and_clear();
    Ok(LiveRun { report: outcome.report, files: vec![trace, gantt] })
}

/// Done where every stage ran and every response was within its bound.
pub(super) fn verdict(report: &RunReport) -> Result<Verdict> {
    if let Some(f) = report.failures.first() {
        bail!(
            "{} stage runs failed; first: task {:?} stage {}: {}",
            report.failures.len(),
            f.task_name,
            f.stage,
            f.error
        );
    }
    let clean = report.tasks.iter().all(|t: &TaskReport| {
        matches!(t.verdict, lalarand_runtime::Verdict::WithinBound | lalarand_runtime::Verdict::MetDeadlines)
    });
    Ok(Verdict::of(clean))
}
