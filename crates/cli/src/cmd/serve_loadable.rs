//! `lalarand serve --listen ... --allow-load`: a server whose models clients load and unload
//! while it runs (the runtime's `ModeServer`, docs/runtime.md "Mode changes"), with busy-wait
//! stages (`--busy`, `BusyRepository`) or ONNX models (`EngineRepository`).

use super::serve::{render_report, Args, Memory};
use crate::Verdict;
use anyhow::{Context, Result};
use lalarand_alloc::admission::{AdmissionOptions, Proven};
use lalarand_runtime::serve::modes::ModeServer;
use lalarand_runtime::serve::{ServeConfig, StopPolicy};
use lalarand_runtime::{StageExecutor, StopHandle};
use lalarand_server::FrontEnd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serves `proven` until Ctrl-C or `--seconds`, then prints the last mode's report.
pub(super) fn serve_loadable<E: StageExecutor>(
    args: &Args,
    proven: Proven,
    exec: E,
    executor: &str,
    config: ServeConfig,
    stop: &StopHandle,
    front_end: impl FnOnce(Arc<ModeServer<E>>) -> Result<FrontEnd>,
) -> Result<Verdict> {
    let server = Arc::new(
        ModeServer::start(proven, exec, config, AdmissionOptions::default())
            .with_context(|| args.allocation.display().to_string())?,
    );
    let front = front_end(server.clone())?;
    let started = Instant::now();
    let end = args.seconds.map(Duration::from_secs_f64);
    while !stop.is_stopped() && end.is_none_or(|e| started.elapsed() < e) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // No new requests; those in flight get their answers while the server drains.
    front.shutdown(Duration::from_secs(2));
    let report = server.stop(StopPolicy::Drain)?;
    out!("{}", render_report(&report, executor, &Memory::default()))?;
    anyhow::ensure!(report.every_job_accounted, "some admitted jobs were not resolved");
    Ok(Verdict::of(report.stats.misses() == 0))
}
