//! `lalarand demo`: from ONNX models to a proven, running schedule on this machine.
//!
//! Three zoo models (random weights) and a trained MNIST digit classifier (embedded, with its
//! labeled data) are written and profiled here; a task set is built from the measured profiles
//! with periods that the vanilla allocation (`gpu-only`: every layer on the accelerator in fp32)
//! cannot be proven to meet but `lalarand` can; every policy is compared, and the `lalarand`
//! allocation runs with ONNX inference under the real-time runtime. `--quick` is the offline
//! flavour on the built-in artifact system ([`quick`]).
//!
//! The steps, one file each: [`platform`] (what this machine offers), [`models`] (write and
//! profile the models), [`periods`] (the task set the comparison needs), [`policies`] (every
//! policy's allocation and the table), [`live`] (the run with inference and its trace) and
//! [`plots`].

mod checked;
mod live;
mod models;
mod periods;
mod platform;
pub mod plots;
mod policies;
mod quick;

use super::simulate::run_simulation;
use crate::files::{example_files, write_all};
use crate::Verdict;
use anyhow::Result;
use indicatif::ProgressBar;
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_model::{time_to_ms, ExecutionPlan};
use lalarand_sim::{Horizon, SimConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Run the demo: ONNX models profiled, allocated, proven and run on this machine.
///
/// Writes three zoo models (squeezenet1_1, mobilenet_v2, yolov3_tiny; random weights) and a
/// trained MNIST digit classifier with its labeled data (built into the binary), profiles them
/// here (cpu-fp32 and cpu-int8, gpu where there is one; the digit classifier's int8 accuracy
/// costs measured on its test rows; the zoo models' are unknown, random weights, so their layers
/// are not offered int8: an unknown cost is not a free one), picks periods that the vanilla
/// `gpu-only` allocation cannot be proven to meet, allocates with every policy, checks the
/// `lalarand` allocation's int8 end to end on the calibration inputs, runs it with
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

pub fn run(args: Args) -> Result<Verdict> {
    if args.quick {
        return quick::run(&args.out, args.json);
    }
    if args.full {
        tracing::info!("--full: the full demo is the default now");
    }
    let wall = Instant::now();
    let here = platform::choose()?;
    let models_dir = args.out.join("models");
    std::fs::create_dir_all(&models_dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create the folder: {e}", args.out.display()))?;
    outln!("demo: {} models written, profiled and run here; files in {}", models::TASKS.len(), args.out.display())?;
    outln!("{}", here.describe())?;

    // 1. Models and profiles.
    let profiled = models::write_and_profile(&models_dir, &here)?;
    // 2. Periods from the profiles.
    let options = AllocOptions { node_limit: 100_000, ..AllocOptions::default() };
    let system = periods::choose(&here, &profiled, &options, &models_dir)?;
    // 3. Every policy.
    let (rows, _) = policies::allocate_all(&system, &options)?;
    outln!("\nevery policy, accuracy budget {} pp; {}:", options.accuracy_budget, policies::accuracy_note(&system))?;
    outln!("{}\n", policies::policy_table(&rows, system.tasks.len()))?;
    // 4. The lalarand allocation, its int8 checked end to end on the calibration inputs.
    let lalarand = checked::lalarand(&system, &options, &profiled)?;
    out!("the lalarand allocation, {}", crate::end_to_end::render(&lalarand.check))?;
    let alloc = lalarand.outcome.allocation;
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

    // 5. Run the lalarand allocation with inference.
    let run = live::run(&here, &system, &alloc, &profiled.models, args.seconds, &args.out, window)?;
    files.extend(run.files);
    files.extend(plots::write_plots(&args.out, &system, &rows, &run.report.tasks, args.seconds)?);
    outln!(
        "\nfiles (trace.json opens in https://ui.perfetto.dev; gantt.svg: the run's first {:.0} ms, gantt-simulated.svg: the same window at WCETs;\nbounds.svg: every policy's bound / deadline per task; responses.svg: the run's responses next to the bounds):",
        time_to_ms(window)
    )?;
    for f in &files {
        outln!("  {}", f.display())?;
    }
    outln!("\ndemo took {:.1} s; everything is in {}", wall.elapsed().as_secs_f64(), args.out.display())?;
    live::verdict(&run.report)
}
