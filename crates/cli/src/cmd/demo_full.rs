//! `lalarand demo --full`: from ONNX models to a proven, running schedule on this machine.
//!
//! Three zoo models are written and profiled here, a task set is built from the measured
//! profiles with periods that the vanilla allocation (every layer on the accelerator in fp32)
//! cannot be proven to meet but `lalarand` can, every policy is compared, and the `lalarand`
//! allocation runs with ONNX inference under the real-time runtime.

use super::demo::{allocate_all, policy_table, Args};
use super::run::{render, write_via_temp};
use super::simulate::run_simulation;
use crate::engine_exec::EngineExecutor;
use crate::files::{example_files, write_all, write_atomic_bytes};
use crate::Verdict;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_analysis::{analyze, Analysis};
use lalarand_engine::profile::{profile_to_file, synthetic_inputs, ProfileOptions};
use lalarand_engine::{ExecConfig, StagedModel};
use lalarand_model::{
    time_to_ms, us_to_time, Allocation, ExecutionPlan, Mode, Placement, Platform, PriorityPolicy, Resource,
    ResourceKind, System, Task, TaskSet, Time,
};
use lalarand_onnx::zoo::{self, Architecture};
use lalarand_runtime::{os, RunConfig, RunHorizon, Runtime, TaskReport};
use lalarand_sim::{Horizon, SimConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The models, shortest period first.
const MODELS: [(&str, Architecture); 3] = [
    ("classifier", Architecture::SqueezeNet1_1),
    ("features", Architecture::MobileNetV2),
    ("detector", Architecture::YoloV3Tiny),
];
/// Period ratios of the tasks (rate-monotonic priorities follow them).
const PERIOD_RATIOS: [f64; 3] = [1.0, 1.5, 2.0];
/// Timed and untimed runs per stage and mode while profiling, and the WCET margin (small runs
/// on a shared machine: a generous margin).
const RUNS: usize = 10;
const WARMUP: usize = 2;
const MARGIN: f64 = 1.5;
/// The runtime's own cost per dispatched stage, charged in the analysis (as examples/e2e).
const DISPATCH_OVERHEAD_US: f64 = 120.0;

pub fn run(args: &Args) -> Result<Verdict> {
    let wall = Instant::now();
    let cores = os::available_cores();
    // The GPU runtime (which also runs the CPU modes) must be the first one this process loads
    // (docs/engine.md); where it does not load, the demo runs on the stand-in platform.
    let gpu = lalarand_engine::stage::gpu_present()
        && match lalarand_engine::runtime::environment(lalarand_engine::runtime::Flavor::Gpu) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("a GPU is present but its runtime does not load ({e}); using two cpu resources");
                false
            }
        };
    if !gpu && cores.len() < 2 {
        bail!("demo --full needs a GPU or two usable cores (this process may use {cores:?})");
    }
    // The platform: a real GPU next to one CPU core, or two one-core cpu resources where the
    // second stands in for the accelerator.
    let mut cpu = Resource::new("cpu", ResourceKind::Cpu);
    cpu.cores = vec![cores[0]];
    let accel = if gpu {
        Resource::new("gpu", ResourceKind::Gpu)
    } else {
        let mut r = Resource::new("accel", ResourceKind::Cpu);
        r.cores = vec![cores[1]];
        r
    };
    let mut platform = Platform { resources: vec![cpu, accel] };
    for r in &mut platform.resources {
        r.dispatch_overhead = us_to_time(DISPATCH_OVERHEAD_US);
    }
    let accel_id = 1;
    let vanilla_mode = if gpu { Mode::Gpu } else { Mode::CpuFp32 };
    let modes = if gpu { vec![Mode::Gpu, Mode::CpuFp32, Mode::CpuInt8] } else { vec![Mode::CpuFp32, Mode::CpuInt8] };

    std::fs::create_dir_all(args.out.join("models"))
        .with_context(|| format!("{}: cannot create the folder", args.out.display()))?;
    outln!("demo --full: {} models written, profiled and run here, in {}", MODELS.len(), args.out.display())?;
    if gpu {
        outln!("platform: gpu + cpu (core {})", cores[0])?;
    } else {
        outln!(
            "platform: no GPU here, so two one-core cpu resources: `cpu` (core {}) and `accel` (core {}) standing in for CPU + accelerator",
            cores[0],
            cores[1]
        )?;
    }

    // 1. Models and profiles.
    let bar = ProgressBar::new(MODELS.len() as u64)
        .with_style(ProgressStyle::with_template("{spinner} models [{bar:20}] {pos}/{len} {msg}")?);
    bar.enable_steady_tick(Duration::from_millis(100));
    let mut models = Vec::new();
    let mut profiles = Vec::new();
    for (_, arch) in MODELS {
        let path = args.out.join("models").join(format!("{}.onnx", arch.name()));
        bar.set_message(format!("zoo {}", arch.name()));
        write_atomic_bytes(&path, &lalarand_onnx::encode_model(&zoo::build(arch, 1)))?;
        bar.set_message(format!(
            "profiling {} ({})",
            arch.name(),
            modes.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
        ));
        let inputs = synthetic_inputs(&StagedModel::load(&path)?, 4);
        let opts = ProfileOptions {
            runs: RUNS,
            warmup: WARMUP,
            margin: MARGIN,
            cfg: ExecConfig { threads: 1, cores: vec![cores[0]], ..ExecConfig::default() },
            modes: modes.clone(),
            progress: false,
            stop: None,
            accuracy: None,
        };
        let json = args.out.join("models").join(format!("{}.json", arch.name()));
        let outcome =
            profile_to_file(&path, &inputs, &opts, &json).with_context(|| format!("profiling {}", path.display()))?;
        profiles.push(Arc::new(outcome.profile));
        models.push(path);
        bar.inc(1);
    }
    bar.finish_and_clear();
    for (p, path) in profiles.iter().zip(&models) {
        outln!(
            "  {:<14} {:>3} stages, total WCET {}  ({})",
            p.model,
            p.layers.len(),
            modes
                .iter()
                .map(|&m| format!("{} {:.1} ms", m.name(), time_to_ms(p.total_wcet(m))))
                .collect::<Vec<_>>()
                .join(", "),
            path.display()
        )?;
    }

    if let Some(p) = profiles.iter().find(|p| p.layers.iter().any(|l| l.wcet(vanilla_mode).is_none())) {
        bail!("{}: some stages have no {} timing, so there is no vanilla allocation to compare with (see the warnings above)", p.model, vanilla_mode.name());
    }

    // 2. Periods from the profiles: the largest scale at which the vanilla allocation is not
    // proven and lalarand is.
    let options = AllocOptions { node_limit: 100_000, ..AllocOptions::default() };
    let fp32: Time = profiles
        .iter()
        .map(|p| p.total_wcet(vanilla_mode) + p.layers.len() as Time * us_to_time(DISPATCH_OVERHEAD_US))
        .sum();
    let build = |scale: f64| {
        let tasks = MODELS
            .iter()
            .zip(&profiles)
            .zip(PERIOD_RATIOS)
            .map(|(((name, _), p), r)| Task::new(*name, (fp32 as f64 * scale * r).round() as Time, p.clone()))
            .collect();
        System::new(platform.clone(), TaskSet::new(tasks, PriorityPolicy::RateMonotonic))
    };
    let vanilla_of = |system: &System| Allocation {
        tasks: system
            .tasks
            .iter()
            .map(|t| vec![Placement { mode: vanilla_mode, resource: accel_id }; t.dnn.layers.len()])
            .collect(),
    };
    let spinner = ProgressBar::new_spinner().with_message("choosing periods");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let mut chosen = None;
    let mut scale = 2.0;
    while scale > 0.05 {
        let system = build(scale);
        let vanilla = analyze(&ExecutionPlan::new(&system, &vanilla_of(&system))?);
        if !vanilla.schedulable() {
            if Policy::Lalarand.allocate(&system, &options)?.schedulable() {
                chosen = Some((system, vanilla));
            }
            break;
        }
        scale *= 0.9;
    }
    spinner.finish_and_clear();
    let Some((system, vanilla)) = chosen else {
        bail!(
            "no periods found at which the vanilla allocation fails and lalarand is proven (profiles in {})",
            args.out.join("models").display()
        );
    };
    outln!(
        "\ntask set (rate monotonic; periods {:.3} x the summed {} WCETs x {PERIOD_RATIOS:?}):",
        scale,
        vanilla_mode.name()
    )?;
    for t in &system.tasks {
        outln!("  {:<10} {:<14} period {:.1} ms", t.name, t.dnn.model, time_to_ms(t.period))?;
    }
    outln!(
        "vanilla (every layer {} on {}): {}",
        vanilla_mode.name(),
        system.platform.resources[accel_id].name,
        verdict(&vanilla)
    )?;

    // 3. Every policy.
    let (rows, lalarand) = allocate_all(&system, &options)?;
    outln!(
        "\nevery policy (random weights: int8 accuracy costs are not measured, 0):\n{}\n",
        policy_table(&rows, system.tasks.len())
    )?;
    let alloc = lalarand.allocation;
    let mut files = write_all(&args.out, &example_files(&system, &alloc, Policy::Lalarand.name()))?;
    // The worst case the bounds cover, for comparison with the run's Gantt chart: the
    // simulator at WCETs over the same window.
    let window = 2 * system.tasks.iter().map(|t| t.period).max().unwrap_or(0);
    let plan = ExecutionPlan::new(&system, &alloc)?;
    let sim_gantt = args.out.join("gantt-simulated.svg");
    let sim_config = SimConfig { horizon: Horizon::Until(window), ..SimConfig::default() };
    let simulation = run_simulation(&system, &plan, &sim_config, Some(&sim_gantt))?;
    files.push(sim_gantt);
    outln!(
        "simulated at worst-case execution times for {:.0} ms, next to the bounds:\n{}",
        time_to_ms(window),
        simulation.render()
    )?;

    // 4. Run the lalarand allocation with inference. Profiling pinned this thread to the cpu
    // core; the runtime's threads inherit its mask, so it gets every core back first.
    os::pin_current_thread(&cores).map_err(|e| anyhow::anyhow!("cannot unpin the main thread: {e}"))?;
    let config = RunConfig { horizon: RunHorizon::Duration(us_to_time(args.seconds * 1e6)), ..RunConfig::default() };
    let runtime = Runtime::new(&system, &alloc, config).context("the runtime refused the lalarand allocation")?;
    runtime.stop_handle().on_ctrl_c().context("cannot install the Ctrl-C handler")?;
    let spinner = ProgressBar::new_spinner().with_message("loading the models");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let exec = EngineExecutor::new(&system, &alloc, &models)?;
    spinner.finish_and_clear();
    let bar = ProgressBar::new(args.seconds.ceil() as u64).with_style(ProgressStyle::with_template(
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
    outln!("the lalarand allocation run for {} s with ONNX inference, observed next to the bounds:", args.seconds)?;
    out!("{}", render(report, "engine"))?;

    let mut written = files;
    let trace = args.out.join("trace.json");
    write_via_temp(&trace, |tmp| outcome.write_chrome_trace(&runtime, tmp))?;
    written.push(trace);
    let gantt = args.out.join("gantt.svg");
    write_via_temp(&gantt, |tmp| outcome.write_gantt(&runtime, tmp, Some((0, window))))?;
    written.push(gantt);
    outln!(
        "\nfiles (trace.json opens in https://ui.perfetto.dev; gantt.svg: the first {:.0} ms):",
        time_to_ms(window)
    )?;
    for f in &written {
        outln!("  {}", f.display())?;
    }
    outln!("demo --full took {:.1} s", wall.elapsed().as_secs_f64())?;
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

fn verdict(a: &Analysis) -> String {
    if a.schedulable() {
        "proven".into()
    } else {
        format!("not proven ({} of {} tasks unbounded)", a.unschedulable_count(), a.tasks.len())
    }
}
