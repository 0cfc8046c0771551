//! `lalarand serve --listen ... --allow-load`: a server whose models clients load and unload
//! while it runs (the runtime's `ModeServer`, docs/runtime.md "Mode changes"), with busy-wait
//! stages (`--busy`, `BusyRepository`) or ONNX models (`EngineRepository`).

use super::serve::{render_report, start_front_end_with, Args, Memory, NetworkArgs, ServeJson};
use crate::Verdict;
use anyhow::{Context, Result};
use lalarand_alloc::admission::{AdmissionOptions, Proven};
use lalarand_model::{Allocation, System};
use lalarand_runtime::serve::modes::ModeServer;
use lalarand_runtime::serve::{ServeConfig, StopPolicy};
use lalarand_runtime::{StageExecutor, StopHandle};
use lalarand_server::Repository;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Admission control's options: `--budget` as the accuracy budget where given.
fn admission_options(args: &Args) -> AdmissionOptions {
    let mut options = AdmissionOptions::default();
    if let Some(budget) = args.budget {
        options.alloc.accuracy_budget = budget;
    }
    options
}

/// Serves `exec` (and the executor's name, for the report) on a `ModeServer` until Ctrl-C or
/// `--seconds`, its models loaded and unloaded by the repository `repository` makes; then
/// prints the last mode's report (statistics are totals across the changes).
#[allow(clippy::too_many_arguments)]
pub(super) fn serve_loadable<E: StageExecutor>(
    args: &Args,
    system: &System,
    alloc: &Allocation,
    (exec, executor): (E, &str),
    config: ServeConfig,
    stop: &StopHandle,
    network: NetworkArgs,
    repository: impl FnOnce(Arc<ModeServer<E>>) -> Arc<dyn Repository>,
) -> Result<Verdict> {
    let proven = Proven::new(system.clone(), alloc.clone())
        .with_context(|| format!("--allow-load: {}", args.allocation.display()))?;
    let server = Arc::new(
        ModeServer::start(proven, exec, config, admission_options(args))
            .with_context(|| args.allocation.display().to_string())?,
    );
    let front = start_front_end_with(
        &server.current(),
        server.clone(),
        Some(repository(server.clone())),
        system,
        network,
        args.allow_remote,
    )?;
    let started = Instant::now();
    let end = args.seconds.map(Duration::from_secs_f64);
    while !stop.is_stopped() && end.is_none_or(|e| started.elapsed() < e) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // No new requests; those in flight get their answers while the server drains.
    front.shutdown(Duration::from_secs(2));
    let report = server.stop(StopPolicy::Drain)?;
    if args.json {
        let json = ServeJson {
            executor,
            models: Vec::new(),
            sporadic: &[],
            report: &report,
            memory: Memory::default(),
            trace: None,
        };
        crate::report::print_json(&json)?;
    } else {
        out!("{}", render_report(&report, executor, &Memory::default()))?;
    }
    anyhow::ensure!(report.every_job_accounted, "some admitted jobs were not resolved");
    Ok(Verdict::of(report.stats.misses() == 0))
}
