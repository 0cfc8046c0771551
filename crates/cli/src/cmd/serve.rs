//! `lalarand serve`: start a server (`lalarand_runtime::serve`) on an allocated task set and
//! feed it synthetic inputs (or the user's, `--inputs`; their outputs saved with `--outputs`)
//! until Ctrl-C or `--seconds`, printing live statistics; then stop
//! it (drain), and report every task's jobs and responses next to its bound, with the
//! process' resident memory over time (the soak).

use super::serve_loadable::serve_loadable;
use crate::engine_exec::{model_paths, EngineExecutor};
use crate::input::load_allocation;
use crate::report::print_json;
use crate::Verdict;
use anyhow::{bail, Context, Result};
use comfy_table::{presets, CellAlignment, Table};
use lalarand_model::{Platform, System, TaskSet, Time};
use lalarand_runtime::serve::{
    EarlyPolicy, Input, ServeConfig, ServeReport, Server, StalePolicy, StopPolicy, TensorSpec,
};
use lalarand_runtime::{BusyTime, BusyWait, StageExecutor, StopHandle};
use lalarand_server::{Catalog, FrontEnd, Listen};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serve an allocated task set until Ctrl-C: periodic tasks read a latest-value input slot,
/// sporadic ones get submissions as fast as their minimum inter-arrival time allows.
///
/// The server is the one applications embed (docs/runtime.md, "Serving"): one pinned worker
/// per resource, fixed-priority non-preemptive stages, SCHED_FIFO where allowed, refusing what
/// `lalarand run` refuses. Every task is periodic unless named in `--sporadic`; the inputs are
/// seeded synthetic tensors of each model's input shape (`--busy`: a 1-value tensor). Ctrl-C
/// (or the end of `--seconds`) stops it as `Server::stop(Drain)` does: no new jobs, every
/// admitted job resolved, every thread joined, the final report printed.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example (the MNIST classifier sporadic next to SqueezeNet periodic, 10 s):\n  lalarand serve --platform examples/e2e/platform.toml --tasks examples/e2e/taskset.toml \\\n      --allocation examples/e2e/allocation.toml --sporadic digits --seconds 10\nSoak (4 busy-wait tasks, 10 minutes): see docs/evaluation.md, \"Serving\".\n\nExit codes: 0 every job accounted for and no deadline missed, 1 a miss (or the allocation refused as unschedulable without --force), 2 bad input, a failed job or any other failure."
)]
pub struct Args {
    /// Platform TOML; cpu resources must list the `cores` their worker is pinned to.
    #[arg(long, value_name = "FILE")]
    pub platform: PathBuf,
    /// Task set TOML; profile paths inside it are relative to it.
    #[arg(long, value_name = "FILE")]
    pub tasks: PathBuf,
    /// Allocation TOML to serve.
    #[arg(long, value_name = "FILE")]
    pub allocation: PathBuf,
    /// ONNX models by task name or profile `model` name, comma-separated NAME=PATH (default:
    /// `<profile folder>/<profile model>.onnx`).
    #[arg(long, value_delimiter = ',', value_name = "NAME=MODEL", value_parser = crate::cmd::run::parse_model, conflicts_with = "busy")]
    pub models: Vec<(String, PathBuf)>,
    /// Check the allocation's int8 end to end before serving, on these inputs per task
    /// (comma-separated TASK=FILE, as `lalarand allocate --calibration`): each such task's
    /// stages chained in their allocated modes against fp32; over `--budget`, serving is refused.
    #[arg(long, value_delimiter = ',', value_name = "TASK=FILE", value_parser = super::parse_task_file, conflicts_with = "busy")]
    pub calibration: Vec<(String, PathBuf)>,
    /// With --calibration: the accuracy budget the measured cost must stay within, percentage
    /// points.
    #[arg(long, value_name = "PP", requires = "calibration", value_parser = super::parse_budget, allow_negative_numbers = true)]
    pub budget: Option<f64>,
    /// Feed these tasks your own inputs (comma-separated TASK=FILE: a `.npy` array, a folder of
    /// images, a CSV dataset or raw fp32, read as `lalarand profile --calibration` reads them):
    /// such a task is served sporadically, a client submitting its inputs in turn as fast as its
    /// period allows. Other tasks get a seeded synthetic input.
    #[arg(long, value_delimiter = ',', value_name = "TASK=FILE", value_parser = super::parse_task_file, conflicts_with_all = ["busy", "listen"])]
    pub inputs: Vec<(String, PathBuf)>,
    /// Save what the served jobs returned: the first 64 jobs of every task, one JSON line each
    /// (task, job, which of its --inputs it ran, release and response in ns, every output's
    /// name, dims, fp32 values and datatype).
    #[arg(long, value_name = "FILE", conflicts_with = "listen")]
    pub outputs: Option<PathBuf>,
    /// Busy-wait each stage for its planned cost instead of running the models.
    #[arg(long)]
    pub busy: bool,
    /// Tasks served as sporadic (comma-separated); the others are periodic.
    #[arg(long, value_delimiter = ',', value_name = "TASK,...")]
    pub sporadic: Vec<String>,
    /// A sporadic submission before the task's minimum inter-arrival time: `wait` for the
    /// earliest legal release, or `reject` it.
    #[arg(long, default_value = "wait", value_parser = ["wait", "reject"])]
    pub early: String,
    /// Stop after this many seconds (default: at Ctrl-C).
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    pub seconds: Option<f64>,
    /// Print a line of live statistics to stderr every this many seconds (0: never).
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = parse_interval)]
    pub stats_every: f64,
    /// Serve an allocation the analysis cannot bound (to observe the misses).
    #[arg(long)]
    pub force: bool,
    /// Run the workers at normal priority instead of SCHED_FIFO (where real-time priority is
    /// not allowed or not wanted). The bounds assume SCHED_FIFO: the report says it was off.
    #[arg(long)]
    pub no_realtime: bool,
    /// Keep the last this-many seconds of stage executions and write them as a Perfetto trace
    /// to `--trace` at the end.
    #[arg(long, value_name = "S", requires = "trace", value_parser = parse_seconds)]
    pub trace_seconds: Option<f64>,
    /// Where to write the trace (Chrome / Perfetto trace-event JSON).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Print the final report as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Serve every task (sporadic) to network clients over the Open Inference Protocol (KServe
    /// v2, what Triton's clients speak) instead of feeding it synthetic inputs: http://HOST:PORT,
    /// grpc://HOST:PORT, http+unix:///PATH, grpc+unix:///PATH (repeatable; port 0 picks one).
    /// Only 127.0.0.1 and Unix sockets unless --allow-remote. Prints `lalarand: listening on
    /// URL` per endpoint once serving (docs/runtime.md, "Network server").
    #[arg(long, value_name = "URL", conflicts_with = "sporadic")]
    pub listen: Vec<String>,
    /// Allow --listen addresses other machines can reach; needs --token-file.
    #[arg(long, requires = "listen")]
    pub allow_remote: bool,
    /// A bearer token (first line of FILE, at least 16 characters) every request must carry
    /// (`Authorization: Bearer TOKEN`); others are refused (HTTP 401, gRPC UNAUTHENTICATED).
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub token_file: Option<PathBuf>,
    /// Let clients load and unload models while serving: the KServe v2 model repository
    /// extension (POST /v2/repository/models/NAME/load with the task's profile, period_ms,
    /// deadline_ms and priority in its parameters, and model_path, the ONNX model on this
    /// machine, unless --busy; gRPC RepositoryModelLoad). Each change is decided by admission
    /// control and carried out by drain-then-switch (docs/runtime.md, "Mode changes"). Off by
    /// default.
    #[arg(long, requires = "listen")]
    pub allow_load: bool,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e6 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds (at most 1e6)")),
    }
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1e6).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds >= 0")),
    }
}

/// The process' resident memory over the run.
#[derive(Debug, Default, Serialize)]
pub(super) struct Memory {
    /// Resident set, KiB, sampled once a second: (seconds since serving started, KiB).
    samples: Vec<(f64, u64)>,
    /// After the first minute (runs longer than a minute): min and max against the sample at
    /// one minute, percent.
    drift_after_first_minute_pct: Option<(f64, f64)>,
}

#[derive(Serialize)]
pub(super) struct ServeJson<'a> {
    pub executor: &'a str,
    pub models: Vec<PathBuf>,
    pub sporadic: &'a [String],
    pub report: &'a ServeReport,
    pub memory: Memory,
    pub trace: Option<&'a std::path::Path>,
}

pub fn run(args: Args) -> Result<Verdict> {
    let platform = Platform::load(&args.platform)?;
    let system = System::new(platform, TaskSet::load(&args.tasks)?);
    let alloc = load_allocation(&args.allocation, &system)?;
    let names: Vec<&str> = system.tasks.iter().map(|t| t.name.as_str()).collect();
    if let Some(bad) = args.sporadic.iter().find(|s| !names.contains(&s.as_str())) {
        bail!("--sporadic {bad}: no task is called {bad:?} (tasks: {})", names.join(", "));
    }
    if let Some(dir) = args.trace.as_ref().and_then(|p| p.parent()).filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
    {
        bail!("--trace: the folder {} does not exist", dir.display());
    }
    let stop = StopHandle::new();
    // Registered before the models load, so a Ctrl-C during loading also ends cleanly.
    stop.on_ctrl_c().context("cannot install the Ctrl-C handler")?;
    let config = ServeConfig {
        force: args.force,
        realtime: !args.no_realtime,
        trace_window: args.trace_seconds.map(|s| (s * 1e9) as Time),
        early: if args.early == "reject" { EarlyPolicy::Reject } else { EarlyPolicy::Wait },
        ..ServeConfig::default()
    };
    let listen = args.listen.iter().map(|u| Listen::parse(u)).collect::<Result<Vec<_>, _>>()?;
    let auth = match &args.token_file {
        Some(f) => lalarand_server::auth::Auth::from_file(f)?,
        None => lalarand_server::auth::Auth::open(),
    };
    let mut network = (!listen.is_empty()).then(|| NetworkArgs { listen, auth, outputs: Vec::new() });
    if args.busy {
        let plan = lalarand_model::ExecutionPlan::new(&system, &alloc)?;
        let exec = BusyWait::from_plan(&plan, &system.platform, BusyTime::Wcet);
        if let Some(n) = &mut network {
            n.outputs = system.tasks.iter().map(|_| Catalog::busy_outputs()).collect();
        }
        if let Some(n) = network.take_if(|_| args.allow_load) {
            let repository = |server| Arc::new(lalarand_server::BusyRepository { server }) as _;
            return serve_loadable(&args, &system, &alloc, (exec, "busy"), config, &stop, n, repository);
        }
        let user_inputs = vec![None; system.tasks.len()];
        serve(&args, &system, &alloc, exec, config, Vec::new(), "busy", &stop, network, user_inputs)
    } else {
        let given: HashMap<String, PathBuf> = args.models.iter().cloned().collect();
        let known: Vec<&str> = system.tasks.iter().flat_map(|t| [t.name.as_str(), t.dnn.model.as_str()]).collect();
        if let Some(name) = given.keys().find(|n| !known.contains(&n.as_str())) {
            bail!("--models {name}=...: no task or profile model is called {name:?} (tasks: {})", names.join(", "));
        }
        let models = model_paths(&system, &args.tasks, &given)?;
        let checks = if args.calibration.is_empty() { None } else { Some(check_end_to_end(&args, &system, &alloc)?) };
        let exec = EngineExecutor::new(&system, &alloc, &models)?;
        if let Some(n) = &mut network {
            n.outputs = (0..system.tasks.len()).map(|i| exec.output_specs(i)).collect();
        }
        if let Some(n) = network.take_if(|_| args.allow_load) {
            // With --calibration, every load's admitted mode is measured too, on the running
            // tasks' inputs and the loaded one's `calibration_path`.
            let int8_check = checks.map(|checks| {
                lalarand_engine::checked_modes::CheckedModes::new(
                    args.budget.unwrap_or(lalarand_alloc::AllocOptions::default().accuracy_budget),
                    system.tasks.iter().zip(checks).filter_map(|(t, c)| Some((t.name.clone(), c?))),
                    crate::engine_repository::CHECK_WORDS,
                )
            });
            let repository = |server| Arc::new(crate::engine_repository::EngineRepository { server, int8_check }) as _;
            return serve_loadable(&args, &system, &alloc, (exec, "engine"), config, &stop, n, repository);
        }
        let user_inputs = super::serve_outputs::load_task_inputs(&system, &exec, &args.inputs)?;
        serve(&args, &system, &alloc, exec, config, models, "engine", &stop, network, user_inputs)
    }
}

/// `--calibration`: the allocation's measured end-to-end int8 cost against `--budget`, said on
/// stderr; over it, serving is refused. Returns each task's check (for the loads to come).
fn check_end_to_end(
    args: &Args,
    system: &System,
    alloc: &lalarand_model::Allocation,
) -> Result<Vec<Option<lalarand_engine::end_to_end::TaskCheck>>> {
    let checks = crate::end_to_end::task_checks(system, &args.tasks, &args.models, &args.calibration)?;
    let budget = args.budget.unwrap_or(lalarand_alloc::AllocOptions::default().accuracy_budget);
    let check = lalarand_engine::end_to_end::check_allocation(
        system,
        alloc,
        budget,
        &checks.iter().map(Option::as_ref).collect::<Vec<_>>(),
        &lalarand_engine::ExecConfig::default(),
    )
    .context("checking the allocation end to end")?;
    eprint!("lalarand: {}", crate::end_to_end::render(&check));
    if !check.within_budget {
        bail!(
            "{}: its int8 layers cost {:.3} pp measured end to end, over the budget of {budget} pp; fix: allocate with `lalarand allocate --budget {budget} --calibration ...`, which moves int8 stages back to fp32 until the measured cost is within, or raise --budget",
            args.allocation.display(),
            check.measured_pp
        );
    }
    Ok(checks)
}

/// A seeded input of the task's input shape.
fn synthetic(exec: &impl StageExecutor, task: usize, seed: u64) -> Input {
    let dims = exec.input_spec(task).example_dims();
    let n: usize = dims.iter().product();
    let data = lalarand_engine::profile::seeded_inputs(1, n, seed).pop().unwrap_or_default();
    Input::from_vec(dims, data).expect("sized to its dims")
}

/// `--listen`: the endpoints, the token, and what each task's model returns.
pub(super) struct NetworkArgs {
    listen: Vec<Listen>,
    auth: lalarand_server::auth::Auth,
    outputs: Vec<Vec<TensorSpec>>,
}

/// Starts the network front end on `server`, its threads on the cores no cpu resource owns, and
/// prints one line per endpoint.
fn start_front_end<E: StageExecutor>(
    server: &Arc<Server<E>>,
    system: &System,
    network: NetworkArgs,
    allow_remote: bool,
) -> Result<FrontEnd> {
    start_front_end_with(server, server.clone(), None, system, network, allow_remote)
}

/// [`start_front_end`] serving `backend` (with `repository`: the model repository extension).
pub(super) fn start_front_end_with<E: StageExecutor>(
    server: &Server<E>,
    backend: Arc<dyn lalarand_server::Backend>,
    repository: Option<Arc<dyn lalarand_server::Repository>>,
    system: &System,
    network: NetworkArgs,
    allow_remote: bool,
) -> Result<FrontEnd> {
    let owned: Vec<usize> = system.platform.resources.iter().flat_map(|r| r.cores.iter().copied()).collect();
    let spare: Vec<usize> =
        lalarand_runtime::os::available_cores().into_iter().filter(|c| !owned.contains(c)).collect();
    if spare.is_empty() {
        tracing::warn!("every core belongs to a cpu resource: the network threads share them with the workers");
    }
    let catalog = Catalog::of_server(server, network.outputs);
    let options = lalarand_server::Options {
        listen: network.listen,
        allow_remote,
        auth: network.auth,
        limits: lalarand_server::Limits::default(),
        threads: spare.len().clamp(1, 4),
        cores: spare,
    };
    let front = FrontEnd::start_with_repository(backend, catalog, options, repository)?;
    for url in front.endpoints() {
        eprintln!("lalarand: listening on {url}");
    }
    Ok(front)
}

#[allow(clippy::too_many_arguments)]
fn serve<E: StageExecutor>(
    args: &Args,
    system: &System,
    alloc: &lalarand_model::Allocation,
    exec: E,
    config: ServeConfig,
    models: Vec<PathBuf>,
    executor: &str,
    stop: &StopHandle,
    network: Option<NetworkArgs>,
    user_inputs: Vec<Option<Vec<Input>>>,
) -> Result<Verdict> {
    // Each task's inputs: the user's (`--inputs`), else one seeded synthetic input.
    let inputs: Vec<Vec<Input>> = user_inputs
        .into_iter()
        .enumerate()
        .map(|(i, given)| given.unwrap_or_else(|| vec![synthetic(&exec, i, 7 + i as u64)]))
        .collect();
    let given: Vec<bool> = system.tasks.iter().map(|t| args.inputs.iter().any(|(n, _)| n == &t.name)).collect();
    let log = args.outputs.as_deref().map(super::serve_outputs::OutputLog::create).transpose()?.map(Arc::new);
    let mut builder = Server::builder(system, alloc, exec).config(config);
    // With --listen every task is sporadic: its releases are the clients' requests. A task fed
    // --inputs is sporadic too: its client submits them in turn.
    let networked = network.is_some();
    let sporadic_tasks: Vec<bool> =
        system.tasks.iter().zip(&given).map(|(t, g)| networked || *g || args.sporadic.contains(&t.name)).collect();
    let sporadic = |name: &String| system.tasks.iter().position(|t| &t.name == name).is_some_and(|i| sporadic_tasks[i]);
    for t in &system.tasks {
        builder = if sporadic(&t.name) {
            builder.sporadic(&t.name, if args.early == "reject" { EarlyPolicy::Reject } else { EarlyPolicy::Wait })
        } else {
            builder.periodic_slot(&t.name, StalePolicy::Reuse)
        };
    }
    let server = match builder.start() {
        Ok(s) => Arc::new(s),
        Err(e @ lalarand_runtime::serve::ServeError::Start(lalarand_runtime::RuntimeError::Unschedulable { .. })) => {
            eprintln!("error: {}: {e} (here: --force)", args.allocation.display());
            return Ok(Verdict::Unschedulable);
        }
        Err(e) => return Err(e).with_context(|| args.allocation.display().to_string()),
    };
    let front = match network {
        Some(n) => Some(start_front_end(&server, system, n, args.allow_remote)?),
        None => None,
    };
    let mut collectors = Vec::new();
    for (t, task_inputs) in system.tasks.iter().zip(&inputs) {
        if !sporadic(&t.name) {
            server.input_slot(&t.name)?.put(task_inputs[0].clone())?;
            if let Some(log) = &log {
                // The periodic task's results, saved until its stream ends with the server.
                let (results, log) = (server.results(&t.name)?, log.clone());
                collectors.push(std::thread::spawn(move || {
                    while let Some(r) = results.recv() {
                        if let Ok(r) = r {
                            log.record(&r, 0);
                        }
                    }
                }));
            }
        }
    }
    // One client per sporadic task: submits, waits for the result, submits again (an early
    // submission waits for, or is rejected until, its legal release), its inputs in turn.
    let done = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for (t, task_inputs) in system.tasks.iter().zip(&inputs) {
        if front.is_some() || !sporadic(&t.name) {
            continue;
        }
        let (server, done, name) = (server.clone(), done.clone(), t.name.clone());
        let (task_inputs, log) = (task_inputs.clone(), log.clone());
        let period = Duration::from_nanos(t.period);
        clients.push(std::thread::spawn(move || {
            let mut next = 0;
            while !done.load(Ordering::SeqCst) {
                match server.submit(&name, task_inputs[next].clone()) {
                    Ok(h) => match h.wait() {
                        Ok(r) => {
                            if let Some(log) = &log {
                                log.record(&r, next);
                            }
                            next = (next + 1) % task_inputs.len();
                        }
                        Err(lalarand_runtime::serve::ServeError::TooEarly { .. }) => std::thread::sleep(period / 10),
                        Err(_) => {}
                    },
                    Err(_) => break, // stopped
                }
            }
        }));
    }
    let started = Instant::now();
    let end = args.seconds.map(Duration::from_secs_f64);
    let mut memory = Memory::default();
    let mut next_sample = Duration::ZERO;
    let mut next_stats = Duration::from_secs_f64(args.stats_every);
    while !stop.is_stopped() && end.is_none_or(|e| started.elapsed() < e) {
        std::thread::sleep(Duration::from_millis(20));
        let now = started.elapsed();
        if now >= next_sample {
            if let Some(kib) = lalarand_runtime::os::resident_kib() {
                memory.samples.push((now.as_secs_f64(), kib));
            }
            next_sample += Duration::from_secs(1);
        }
        if args.stats_every > 0.0 && now >= next_stats {
            let s = server.stats();
            let tasks: Vec<String> = s
                .tasks
                .iter()
                .map(|t| {
                    format!(
                        "{} {} jobs {} misses p99 {:.2} ms",
                        t.name,
                        t.completed,
                        t.misses,
                        t.response_p99 as f64 / 1e6
                    )
                })
                .collect();
            eprintln!("[{:.0} s] {}", now.as_secs_f64(), tasks.join("; "));
            next_stats += Duration::from_secs_f64(args.stats_every);
        }
    }
    done.store(true, Ordering::SeqCst);
    if let Some(front) = front {
        // No new requests; those in flight get their answers while the server drains.
        front.shutdown(Duration::from_secs(2));
    }
    let report = server.stop(StopPolicy::Drain)?;
    for c in clients.into_iter().chain(collectors) {
        let _ = c.join();
    }
    if let Some(at_minute) = memory.samples.iter().find(|(t, _)| *t >= 60.0).map(|&(_, k)| k as f64) {
        let later: Vec<f64> = memory.samples.iter().filter(|(t, _)| *t >= 60.0).map(|&(_, k)| k as f64).collect();
        let pct = |v: f64| 100.0 * (v - at_minute) / at_minute;
        let (lo, hi) = later.iter().fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        memory.drift_after_first_minute_pct = Some((pct(lo), pct(hi)));
    }
    let mut problems = Vec::new();
    if let (Some(path), Some(trace)) = (&args.trace, server.chrome_trace()) {
        if let Err(e) = std::fs::write(path, trace.to_string()) {
            problems.push(format!("{}: {e}", path.display()));
        }
    }
    if args.json {
        print_json(&ServeJson {
            executor,
            models,
            sporadic: &args.sporadic,
            report: &report,
            memory,
            trace: args.trace.as_deref(),
        })?;
    } else {
        out!("{}", render_report(&report, executor, &memory))?;
    }
    if let (Some(log), Some(path)) = (&log, &args.outputs) {
        match log.finish() {
            Ok(saved) => eprintln!("lalarand: {saved} jobs' outputs saved to {}", path.display()),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    let failed: u64 = report.stats.tasks.iter().map(|t| t.failed).sum();
    if failed > 0 {
        problems.push(format!("{failed} jobs failed (see the log)"));
    }
    if !report.every_job_accounted {
        problems.push("some admitted jobs were not resolved (a stage that never returned?)".into());
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(Verdict::of(report.stats.misses() == 0))
}

fn ms(t: Time) -> String {
    format!("{:.3}", t as f64 / 1e6)
}

pub(super) fn render_report(r: &ServeReport, executor: &str, memory: &Memory) -> String {
    let mut table = Table::new();
    table.load_preset(presets::ASCII_MARKDOWN).set_header(vec![
        "task", "kind", "jobs", "misses", "skipped", "rejected", "min ms", "mean ms", "p99 ms", "max ms", "bound ms",
    ]);
    for t in &r.stats.tasks {
        let other = t.failed + t.aborted + t.cancelled + t.dropped;
        let jobs =
            if other > 0 { format!("{} of {} released", t.completed, t.released) } else { t.completed.to_string() };
        table.add_row(vec![
            t.name.clone(),
            t.kind.to_string(),
            jobs,
            t.misses.to_string(),
            t.skipped.to_string(),
            t.rejected.to_string(),
            ms(t.response_min),
            format!("{:.3}", t.response_mean / 1e6),
            ms(t.response_p99),
            ms(t.response_max),
            t.bound.map_or("-".into(), ms),
        ]);
    }
    for i in 2..=10 {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let s = &r.stats;
    let us = |t: Time| format!("{:.1}", t as f64 / 1e3);
    let mut out = format!("{table}\n");
    for (name, l) in
        [("dispatch latency", &s.dispatch_latency), ("hand-off", &s.handoff), ("release jitter", &s.release_jitter)]
    {
        out.push_str(&format!(
            "{name}: median {} µs, p99 {} µs, max {} µs ({} samples)\n",
            us(l.median),
            us(l.p99),
            us(l.max),
            l.samples
        ));
    }
    if let (Some(first), Some(last)) = (memory.samples.first(), memory.samples.last()) {
        out.push_str(&format!(
            "resident memory: {} KiB at {:.0} s, {} KiB at {:.0} s",
            first.1, first.0, last.1, last.0
        ));
        if let Some((lo, hi)) = memory.drift_after_first_minute_pct {
            out.push_str(&format!(" (after the first minute: {lo:+.1} % .. {hi:+.1} %)"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "{executor} stages, {:.3} s served, {} stage overruns, SCHED_FIFO: {}, every job accounted for: {}\n",
        s.uptime as f64 / 1e9,
        s.overruns,
        if s.realtime { "yes" } else { "no (the bounds assume it)" },
        if r.every_job_accounted { "yes" } else { "NO" },
    ));
    let st = s.stalls;
    out.push_str(&format!(
        "the machine's stalls (time past what the plan charges; a job's share is in its timing): \
         stages {:.1} ms, wake-ups {:.1} ms, releases {:.1} ms, submits {:.1} ms\n",
        st.stage_ns as f64 / 1e6,
        st.wakeup_ns as f64 / 1e6,
        st.release_ns as f64 / 1e6,
        st.submit_ns as f64 / 1e6
    ));
    out
}
