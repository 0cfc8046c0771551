//! `lalarand demo`: from ONNX models to a proven, running schedule on this machine.
//!
//! Three zoo models (random weights) and a trained MNIST digit classifier (embedded, with its
//! labeled data) are written and profiled here; a task set is built from the measured profiles
//! with periods that the vanilla allocation (`gpu-only`: every layer on the accelerator in fp32)
//! cannot be proven to meet but `lalarand` can; every policy is compared, and the `lalarand`
//! allocation runs with ONNX inference under the real-time runtime. `--quick` is the offline
//! flavour on the built-in artifact system (demo_quick.rs).

use super::demo_plots::{self, Observed, PolicyBars, TaskRatio};
use super::run::{render, write_gantt, write_via_temp};
use super::simulate::run_simulation;
use crate::engine_exec::EngineExecutor;
use crate::files::{example_files, write_all, write_atomic_bytes};
use crate::Verdict;
use anyhow::{bail, Context, Result};
use comfy_table::{presets, CellAlignment, Table};
use indicatif::{ProgressBar, ProgressStyle};
use lalarand_alloc::{AllocOptions, Outcome, Policy};
use lalarand_analysis::Analysis;
use lalarand_engine::dataset::Dataset;
use lalarand_engine::profile::{profile_to_file, synthetic_inputs, ProfileOptions};
use lalarand_engine::{ExecConfig, StagedModel};
use lalarand_experiments::generate::reference_wcet;
use lalarand_model::{
    time_to_ms, us_to_time, DnnProfile, ExecutionPlan, Mode, Placement, Platform, PriorityPolicy, Resource,
    ResourceKind, System, Task, TaskSet, Time,
};
use lalarand_onnx::zoo::{self, Architecture};
use lalarand_runtime::{os, RunConfig, RunHorizon, Runtime, TaskReport};
use lalarand_sim::{Horizon, SimConfig};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run the demo: ONNX models profiled, allocated, proven and run on this machine.
///
/// Writes three zoo models (squeezenet1_1, mobilenet_v2, yolov3_tiny; random weights) and a
/// trained MNIST digit classifier with its labeled data (built into the binary), profiles them
/// here (cpu-fp32 and cpu-int8, gpu where there is one; the digit classifier's int8 accuracy
/// costs measured on its test rows), picks periods that the vanilla `gpu-only` allocation
/// cannot be proven to meet, allocates with every policy, runs the `lalarand` allocation with
/// ONNX inference for `--seconds` and prints the observed response times next to the bounds.
/// The files, Gantt charts, a Perfetto trace and plots go to `--out`. Without a GPU the
/// platform is two one-core cpu resources, the second standing in for the accelerator. Needs
/// ONNX Runtime (fetched with pip on first use) and a GPU or two cores; about a minute.
///
/// `--quick` is the offline flavour: the built-in system (four DNNs from the LaLaRAND
/// artifact, one GPU, one CPU) allocated with every policy and simulated, in about a second.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand demo --out out/demo\n  lalarand demo --quick --out out/quick\n  lalarand analyze --platform out/demo/platform.toml --tasks out/demo/taskset.toml \\\n      --allocation out/demo/allocation.toml\n\nExit codes: 0 done (every run response within its bound), 1 a response over its bound or a miss, 2 failure."
)]
pub struct Args {
    /// Folder for the demo's files (created if missing; its files are replaced).
    #[arg(long, value_name = "DIR", default_value = "out/demo")]
    pub out: PathBuf,
    /// The fast, offline flavour: the built-in artifact system allocated with every policy and
    /// simulated (no ONNX Runtime, about a second).
    #[arg(long)]
    pub quick: bool,
    /// With --quick: print the result as JSON on stdout.
    #[arg(long, requires = "quick")]
    pub json: bool,
    /// How long the run of the lalarand allocation lasts, seconds.
    #[arg(long, default_value_t = 20.0, conflicts_with = "quick", value_parser = parse_seconds)]
    pub seconds: f64,
    /// What the demo does now by default; kept so that `demo --full` from older notes still
    /// runs.
    #[arg(long, hide = true, conflicts_with = "quick")]
    pub full: bool,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (1.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: give 1 to 3600 seconds")),
    }
}

/// Where a task's model comes from.
#[derive(Clone, Copy)]
enum Source {
    /// A zoo model: torchvision's structure, seeded random weights, so its int8 accuracy costs
    /// cannot be measured.
    Zoo(Architecture),
    /// The trained MNIST classifier built into the binary, with its labeled dataset.
    Digits,
}

/// The tasks, shortest period first; `ratio` scales the period (rate-monotonic priorities follow).
const TASKS: [(&str, Source, f64); 4] = [
    ("digits", Source::Digits, 0.5),
    ("classifier", Source::Zoo(Architecture::SqueezeNet1_1), 1.0),
    ("features", Source::Zoo(Architecture::MobileNetV2), 1.5),
    ("detector", Source::Zoo(Architecture::YoloV3Tiny), 2.0),
];
/// crates/engine/testdata's trained digit classifier and its labeled data (5000 MNIST rows),
/// built in so that an installed binary needs no source tree.
const DIGITS_MODEL: &[u8] = include_bytes!("../../../engine/testdata/mnist_resnet.onnx");
const DIGITS_DATA: &[u8] = include_bytes!("../../../engine/testdata/mnist_5k.csv.gz");
/// The first rows of every class train (int8 calibrates on some of them); the rest test, and
/// measure each stage's int8 accuracy cost (as `lalarand profile --train-per-class 400`).
const TRAIN_PER_CLASS: usize = 400;
const CALIBRATION_PER_CLASS: usize = 20;
/// Timed and untimed runs per stage and mode while profiling, how many of the timed ones start
/// cold at least (docs/engine.md, "How many timed runs"), and the WCET margin (small runs on a
/// shared machine: a generous margin).
const RUNS: usize = 20;
const MIN_COLD_RUNS: usize = 10;
const WARMUP: usize = 2;
const MARGIN: f64 = 1.5;
/// The runtime's own costs, charged in the analysis (docs/runtime.md, "Overheads"): per stage
/// (the hand-off, p99 5.2 µs in a 20 s demo run on the idle 2-core build machine) and per
/// wake-up of a sleeping worker (p99 0.86 to 1.07 ms there, max 1.6 ms: this machine's idle
/// cores are slow to wake), with room for a busier machine.
const DISPATCH_OVERHEAD_US: f64 = 20.0;
const WAKEUP_OVERHEAD_US: f64 = 2000.0;

pub fn run(args: Args) -> Result<Verdict> {
    if args.quick {
        return super::demo_quick::run(&args);
    }
    if args.full {
        tracing::info!("--full: the full demo is the default now");
    }
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
        bail!("the demo needs a GPU or two usable cores (this process may use {cores:?}); `lalarand demo --quick` needs neither");
    }
    // The platform: a real GPU next to one CPU core, or two one-core cpu resources where the
    // second stands in for the accelerator (the gpu-based baselines use it in cpu-fp32).
    let mut cpu = Resource::new("cpu", ResourceKind::Cpu);
    cpu.cores = vec![cores[0]];
    let accel = if gpu {
        Resource::new("gpu", ResourceKind::Gpu)
    } else {
        let mut r = Resource::new("accel", ResourceKind::Cpu);
        r.cores = vec![cores[1]];
        r.accelerator = true;
        r
    };
    let mut platform = Platform { resources: vec![cpu, accel] };
    for r in &mut platform.resources {
        r.dispatch_overhead = us_to_time(DISPATCH_OVERHEAD_US);
        r.wakeup_overhead = us_to_time(WAKEUP_OVERHEAD_US);
    }
    let (accel_id, vanilla_mode) = platform.accelerator().context("the demo platform has an accelerator")?;
    let modes = if gpu { vec![Mode::Gpu, Mode::CpuFp32, Mode::CpuInt8] } else { vec![Mode::CpuFp32, Mode::CpuInt8] };

    let models_dir = args.out.join("models");
    std::fs::create_dir_all(&models_dir)
        .with_context(|| format!("{}: cannot create the folder", args.out.display()))?;
    outln!("demo: {} models written, profiled and run here; files in {}", TASKS.len(), args.out.display())?;
    if gpu {
        outln!("platform: gpu + cpu (core {})", cores[0])?;
    } else {
        outln!(
            "platform: no GPU here, so two one-core cpu resources: `cpu` (core {}) and `accel` (core {}, accelerator = true) standing in for CPU + accelerator",
            cores[0],
            cores[1]
        )?;
    }

    // 1. Models and profiles.
    let mut models = Vec::new();
    let mut profiles = Vec::new();
    let mut test_rows = 0;
    for (k, &(_, source, _)) in TASKS.iter().enumerate() {
        let bar = ProgressBar::new(1)
            .with_style(ProgressStyle::with_template("{spinner} model {prefix} [{bar:20}] {pos}/{len} stages {msg}")?);
        bar.set_prefix(format!("{}/{}", k + 1, TASKS.len()));
        bar.enable_steady_tick(Duration::from_millis(100));
        let (path, inputs, accuracy, stages) = match source {
            Source::Zoo(arch) => {
                bar.set_message(format!("writing zoo {}", arch.name()));
                let path = models_dir.join(format!("{}.onnx", arch.name()));
                write_atomic_bytes(&path, &lalarand_onnx::encode_model(&zoo::build(arch, 1)))?;
                let staged = StagedModel::load(&path)?;
                (path, synthetic_inputs(&staged, 4), None, staged.stage_count())
            }
            Source::Digits => {
                bar.set_message("writing the digit classifier and its dataset");
                let path = models_dir.join("mnist_resnet.onnx");
                write_atomic_bytes(&path, DIGITS_MODEL)?;
                let csv = models_dir.join("mnist_5k.csv.gz");
                write_atomic_bytes(&csv, DIGITS_DATA)?;
                let data = Dataset::load_csv(&csv)?;
                let (train, test) = data.split_per_class(TRAIN_PER_CLASS);
                test_rows = test.len();
                let staged = StagedModel::load(&path)?;
                let dims = staged.input_shape(1);
                let (_, all) = data.batch(&data.take_per_class(&train, CALIBRATION_PER_CLASS), &dims[1..])?;
                let inputs = all.chunks(dims.iter().product()).map(<[f32]>::to_vec).collect();
                (path, inputs, Some((data, TRAIN_PER_CLASS)), staged.stage_count())
            }
        };
        let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        bar.set_length(stages as u64);
        bar.set_message(match &accuracy {
            Some(_) => format!(
                "{name}: calibrating int8, each stage's int8 accuracy cost on {test_rows} test rows, then timing"
            ),
            None => format!("{name}: calibrating int8, then timing"),
        });
        let (stage_bar, timing) = (bar.clone(), format!("{name}: timing {}", names(&modes)));
        let opts = ProfileOptions {
            runs: RUNS,
            min_cold_runs: MIN_COLD_RUNS,
            warmup: WARMUP,
            margin: MARGIN,
            cfg: ExecConfig { threads: 1, cores: vec![cores[0]], ..ExecConfig::default() },
            modes: modes.clone(),
            progress: false,
            // Asked between the set-up steps and before every measurement: the stage progress.
            stop: Some(Arc::new(move |done: usize| {
                if done > 0 {
                    stage_bar.set_position(done as u64);
                    stage_bar.set_message(timing.clone());
                }
                false
            })),
            accuracy,
            label_free_accuracy: false,
            cold_cache: true,
            granularity: lalarand_onnx::granularity::Granularity::Layer,
        };
        let json = models_dir.join(format!("{name}.json"));
        let outcome =
            profile_to_file(&path, &inputs, &opts, &json).with_context(|| format!("profiling {}", path.display()))?;
        bar.finish_and_clear();
        profiles.push(Arc::new(outcome.profile));
        models.push(path);
    }
    for ((p, path), &(_, source, _)) in profiles.iter().zip(&models).zip(&TASKS) {
        // The profile says which costs are known; the source says why.
        let unknown = p.int8_accuracy_unknown.iter().filter(|&&j| j < p.layers.len()).count();
        let cost = match (unknown, source) {
            (0, _) => format!(
                "int8 cost per stage measured on {test_rows} test rows: max {:.2} pp",
                p.layers.iter().map(|l| l.int8_accuracy_cost).fold(0.0, f64::max)
            ),
            (n, Source::Zoo(_)) => format!("int8 cost of {n} stages not measured (random weights)"),
            (n, Source::Digits) => format!("int8 cost of {n} stages not measured"),
        };
        outln!(
            "  {:<14} {:>3} stages, total WCET {}; {cost}  ({})",
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

    // 2. Periods from the profiles. Shrinking from twice the summed vanilla WCETs: the first
    // scale at which the vanilla allocation is not proven and lalarand is; from there on, while
    // lalarand stays proven, the first scale at which lalarand without int8 is not proven
    // either, so that the demo shows what both layer-level placement and quantization buy.
    // Without such a scale the first one is kept.
    let options = AllocOptions { node_limit: 100_000, ..AllocOptions::default() };
    // The vanilla framework's cost of each model, overheads included, as the sweep's
    // utilization axis charges it.
    let vanilla_place = Placement { mode: vanilla_mode, resource: accel_id };
    let fp32: Time = profiles
        .iter()
        .map(|p| {
            reference_wcet(&platform, p, vanilla_place).with_context(|| {
                format!("{}: some stages have no {} timing, so there is no vanilla allocation to compare with (see the warnings above)", p.model, vanilla_mode.name())
            })
        })
        .sum::<Result<Time>>()?;
    let build = |scale: f64| system_at(&platform, &profiles, fp32 as f64 * scale);
    let spinner = ProgressBar::new_spinner().with_message("choosing periods");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let proven = |policy: Policy, system: &System| -> Result<bool> {
        Ok(policy.allocate(system, &options).with_context(|| format!("policy {policy}"))?.schedulable())
    };
    let mut first = None;
    let mut needs_int8 = None;
    let mut scale = 2.0;
    while scale > 0.05 {
        spinner.set_message(format!("choosing periods: {scale:.3} x the summed {} WCETs", vanilla_mode.name()));
        let system = build(scale);
        let vanilla = Policy::GpuOnly.allocate(&system, &options).context("policy gpu-only")?;
        if first.is_none() && vanilla.schedulable() {
            scale *= 0.9;
            continue;
        }
        if !proven(Policy::Lalarand, &system)? {
            break;
        }
        let fp32_proven = proven(Policy::LalarandFp32, &system)?;
        let candidate = (scale, system, vanilla);
        if !fp32_proven {
            needs_int8 = Some(candidate);
            break;
        }
        first.get_or_insert(candidate);
        scale *= 0.9;
    }
    spinner.finish_and_clear();
    let Some((scale, system, vanilla)) = needs_int8.or(first) else {
        bail!(
            "no periods found at which the vanilla (gpu-only) allocation fails and lalarand is proven (profiles in {})",
            models_dir.display()
        );
    };
    let ratios: Vec<f64> = TASKS.iter().map(|t| t.2).collect();
    outln!(
        "\ntask set (rate monotonic; periods {:.3} x the summed {} WCETs x {ratios:?}):",
        scale,
        vanilla_mode.name()
    )?;
    for t in &system.tasks {
        outln!("  {:<10} {:<14} period {:.1} ms", t.name, t.dnn.model, time_to_ms(t.period))?;
    }
    outln!(
        "vanilla (gpu-only, every layer {} on {}): {}",
        vanilla_mode.name(),
        system.platform.resources[accel_id].name,
        verdict(&vanilla.analysis)
    )?;

    // 3. Every policy.
    let (rows, lalarand) = allocate_all(&system, &options)?;
    outln!("\nevery policy, accuracy budget {} pp; {}:", options.accuracy_budget, accuracy_note(&system))?;
    outln!("{}\n", policy_table(&rows, system.tasks.len()))?;
    let alloc = lalarand.allocation;
    let mut files = write_all(&args.out, &example_files(&system, &alloc, Policy::Lalarand.name()))?;
    // The worst case the bounds cover, for comparison with the run's Gantt chart: the
    // simulator at WCETs over the same window.
    let window = 2 * system.tasks.iter().map(|t| t.period).max().unwrap_or(0);
    let plan = ExecutionPlan::new(&system, &alloc)?;
    let sim_gantt = args.out.join("gantt-simulated.svg");
    let sim_config = SimConfig { horizon: Horizon::Until(window), ..SimConfig::default() };
    let spinner = ProgressBar::new_spinner().with_message("simulating the lalarand allocation at WCETs");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let simulation = run_simulation(&system, &plan, &sim_config, Some(&sim_gantt))?;
    spinner.finish_and_clear();
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
    let spinner = ProgressBar::new_spinner().with_message("loading the models in their allocated modes");
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
    out!("{}", render(report, "engine", &system.platform))?;

    let spinner = ProgressBar::new_spinner().with_message("writing the trace, the Gantt chart and the plots");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let trace = args.out.join("trace.json");
    write_via_temp(&trace, |tmp| Ok(outcome.write_chrome_trace(&runtime, tmp)?))?;
    files.push(trace);
    let gantt = args.out.join("gantt.svg");
    write_gantt(&outcome, &runtime, &gantt, Some((0, window)))?;
    files.push(gantt);
    files.extend(write_plots(&args.out, &system, &rows, &report.tasks, args.seconds)?);
    spinner.finish_and_clear();
    outln!(
        "\nfiles (trace.json opens in https://ui.perfetto.dev; gantt.svg: the run's first {:.0} ms, gantt-simulated.svg: the same window at WCETs;\nbounds.svg: every policy's bound / deadline per task; responses.svg: the run's responses next to the bounds):",
        time_to_ms(window)
    )?;
    for f in &files {
        outln!("  {}", f.display())?;
    }
    outln!("\ndemo took {:.1} s; everything is in {}", wall.elapsed().as_secs_f64(), args.out.display())?;
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

/// The demo's task set on `platform`, with every period `unit x` its task's ratio.
fn system_at(platform: &Platform, profiles: &[Arc<DnnProfile>], unit: f64) -> System {
    let tasks = TASKS
        .iter()
        .zip(profiles)
        .map(|(&(name, _, ratio), p)| Task::new(name, (unit * ratio).round() as Time, p.clone()))
        .collect();
    System::new(platform.clone(), TaskSet::new(tasks, PriorityPolicy::RateMonotonic))
}

/// Which tasks' int8 accuracy costs are measured, for the policy table's header.
fn accuracy_note(system: &System) -> String {
    let (mut measured, mut unknown) = (Vec::new(), Vec::new());
    for t in &system.tasks {
        let list = if t.dnn.int8_accuracy_unknown.is_empty() { &mut measured } else { &mut unknown };
        list.push(format!("{} ({})", t.name, t.dnn.model));
    }
    let mut note = String::from("int8 accuracy costs");
    if !measured.is_empty() {
        note += &format!(" measured for {}", measured.join(", "));
    }
    if !unknown.is_empty() {
        note += &format!(
            "{}not measured for {} (random weights): their int8 layers count 0 pp and show as \"unknown cost\", and a cost that includes any reads \">=\"",
            if measured.is_empty() { " " } else { "; " },
            unknown.join(", ")
        );
    }
    note
}

fn names(modes: &[Mode]) -> String {
    modes.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

fn verdict(a: &Analysis) -> String {
    if a.schedulable() {
        "proven".into()
    } else {
        format!("not proven ({} of {} tasks unbounded)", a.unschedulable_count(), a.tasks.len())
    }
}

/// bounds.svg and responses.svg in `out`; returns their paths.
fn write_plots(
    out: &Path,
    system: &System,
    rows: &[PolicyRow],
    run: &[TaskReport],
    seconds: f64,
) -> Result<Vec<PathBuf>> {
    let tasks: Vec<String> = system.tasks.iter().map(|t| t.name.clone()).collect();
    let policies: Vec<PolicyBars> = rows
        .iter()
        .map(|r| PolicyBars {
            name: r.policy.name().to_string(),
            tasks: r.analysis.as_ref().map(|a| {
                a.tasks.iter().map(|t| TaskRatio { normalized: t.normalized(), proven: t.schedulable() }).collect()
            }),
        })
        .collect();
    let bounds = out.join("bounds.svg");
    demo_plots::write_bounds_svg(&bounds, &tasks, &policies)?;
    let observed: Vec<Observed> = run
        .iter()
        .map(|t| Observed {
            name: t.name.clone(),
            completed: t.completed,
            min_ms: time_to_ms(t.response_min),
            mean_ms: t.response_mean / 1e6,
            p99_ms: time_to_ms(t.response_p99),
            max_ms: time_to_ms(t.response_max),
            bound_ms: t.bound.map(time_to_ms),
            deadline_ms: time_to_ms(t.deadline),
        })
        .collect();
    let responses = out.join("responses.svg");
    demo_plots::write_responses_svg(
        &responses,
        &format!("Responses of the lalarand allocation over a {seconds} s run, next to the bounds"),
        &observed,
    )?;
    Ok(vec![bounds, responses])
}

#[derive(Serialize)]
pub(super) struct PolicyRow {
    policy: Policy,
    /// Set when the policy could not produce an allocation at all.
    error: Option<String>,
    schedulable: bool,
    tasks_proven: usize,
    /// Largest bound / deadline (estimates for unproven tasks).
    max_normalized_response: Option<f64>,
    accuracy_cost_pp: Option<f64>,
    int8_layers: Option<usize>,
    /// Of those, the layers whose accuracy cost is not known (counted as 0 in the cost).
    int8_layers_unknown_cost: Option<usize>,
    evaluations: u64,
    complete: bool,
    seconds: f64,
    /// The allocation's analysis, for the plots.
    #[serde(skip)]
    analysis: Option<Analysis>,
}

/// Allocates `system` with every policy, with a progress bar: one row per policy, and the
/// `lalarand` outcome.
pub(super) fn allocate_all(system: &System, options: &AllocOptions) -> Result<(Vec<PolicyRow>, Outcome)> {
    let bar = ProgressBar::new(Policy::ALL.len() as u64)
        .with_style(ProgressStyle::with_template("{spinner} allocating [{bar:20}] {pos}/{len} {msg}")?);
    bar.enable_steady_tick(Duration::from_millis(100));
    let mut rows = Vec::new();
    let mut lalarand: Option<Outcome> = None;
    for policy in Policy::ALL {
        bar.set_message(policy.name());
        let start = Instant::now();
        let result = policy.allocate(system, options);
        let seconds = start.elapsed().as_secs_f64();
        tracing::info!(%policy, seconds, "allocated");
        rows.push(match &result {
            Ok(o) => PolicyRow {
                policy,
                error: None,
                schedulable: o.schedulable(),
                tasks_proven: o.analysis.tasks.len() - o.analysis.unschedulable_count(),
                max_normalized_response: Some(o.analysis.max_normalized()),
                accuracy_cost_pp: Some(o.allocation.accuracy_cost(system) + 0.0),
                int8_layers: Some(o.allocation.int8_layers()),
                int8_layers_unknown_cost: Some(o.allocation.unknown_accuracy_layers(system)),
                evaluations: o.evaluations,
                complete: o.complete,
                seconds,
                analysis: Some(o.analysis.clone()),
            },
            Err(e) => PolicyRow {
                policy,
                error: Some(e.to_string()),
                schedulable: false,
                tasks_proven: 0,
                max_normalized_response: None,
                accuracy_cost_pp: None,
                int8_layers: None,
                int8_layers_unknown_cost: None,
                evaluations: 0,
                complete: true,
                seconds,
                analysis: None,
            },
        });
        if policy == Policy::Lalarand {
            lalarand = Some(result.context("policy lalarand")?);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    Ok((rows, lalarand.expect("Policy::ALL lists lalarand")))
}

pub(super) fn policy_table(rows: &[PolicyRow], tasks: usize) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::ASCII_MARKDOWN).set_header(vec![
        "policy",
        "schedulable",
        "tasks proven",
        "max bound/D",
        "acc. cost pp",
        "int8 layers",
        "analyses",
        "time s",
    ]);
    for r in rows {
        let verdict = match (&r.error, r.schedulable) {
            (Some(e), _) => format!("error: {e}"),
            (None, true) => "yes".into(),
            (None, false) if !r.complete => "no (search stopped at its node limit)".into(),
            (None, false) => "no".into(),
        };
        table.add_row(vec![
            r.policy.to_string(),
            verdict,
            format!("{}/{tasks}", r.tasks_proven),
            r.max_normalized_response.map_or("-".into(), |v| format!("{v:.3}")),
            // ">=": some int8 layer's cost is not known and counts as 0 (as `analyze`).
            match (r.accuracy_cost_pp, r.int8_layers_unknown_cost) {
                (Some(v), Some(u)) if u > 0 => format!(">= {v:.3}"),
                (Some(v), _) => format!("{v:.3}"),
                (None, _) => "-".into(),
            },
            match (r.int8_layers, r.int8_layers_unknown_cost) {
                (Some(n), Some(u)) if u > 0 => format!("{n} ({u} unknown cost)"),
                (Some(n), _) => n.to_string(),
                (None, _) => "-".into(),
            },
            r.evaluations.to_string(),
            format!("{:.3}", r.seconds),
        ]);
    }
    for i in 2..=7 {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}
