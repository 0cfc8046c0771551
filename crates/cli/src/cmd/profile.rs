//! `lalarand profile`: measure every stage of an ONNX model in every mode and write the
//! profile JSON the analysis reads.

use crate::report::print_json;
use crate::Verdict;
use anyhow::{bail, Context, Result};
use lalarand_engine::dataset::Dataset;
use lalarand_engine::profile::{calibration_inputs, partial_path, profile_shaped_to_file, ProfileOptions};
use lalarand_engine::{ExecConfig, StagedModel};
use lalarand_model::{time_to_us, DnnProfile, Mode};
use lalarand_onnx::fold::InputShape;
use lalarand_onnx::granularity::Granularity;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Profile an ONNX model stage by stage: per mode max, p99, mean and WCET (max x margin).
///
/// Every stage runs in every mode asked for (a mode that cannot run, e.g. gpu on a machine
/// without one, is left out with a warning), `--warmup` untimed then `--runs` timed times, on
/// the pinned cores. With `--dataset` (labeled CSV) every stage's `int8_accuracy_cost` is the
/// top-1 drop when it alone runs int8; without it but with `--calibration`, the cost is
/// measured without labels on those inputs (top-1 disagreement with fp32 for a classifier, else
/// 100 x (1 - cosine); the profile's `int8_cost_kind` says which). Ctrl-C stops cleanly: the stages measured so far go to
/// `<out stem>.partial.json`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand profile crates/engine/testdata/mnist_resnet.onnx \\\n      --dataset crates/engine/testdata/mnist_5k.csv.gz --train-per-class 400 \\\n      --runs 200 --warmup 20 --cores 0 --threads 1 --margin 1.2 --modes cpu-fp32,cpu-int8 \\\n      --out mnist_resnet.json\n\nExit codes: 0 written, 2 bad input, failure or interrupted (Ctrl-C; see the .partial.json)."
)]
pub struct Args {
    /// ONNX model (batch 1 or a symbolic batch; other symbolic dimensions need --input-shape).
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Fixes the shape of a model input: NAME=D1,D2,... (repeatable), e.g.
    /// `--input-shape images=1,3,640,640`. Needed where the model has symbolic dimensions
    /// (dynamic height and width); the shape computations they determine are then folded to
    /// constants. Recorded in the profile, so whatever runs the model for it uses the same.
    #[arg(long = "input-shape", value_name = "NAME=D1,D2,...")]
    pub input_shape: Vec<InputShape>,
    /// Calibration inputs: a NumPy `.npy` array of shape [n, ...input shape], a folder of
    /// images (png/jpg, resized to the input, scaled to [0, 1], channels first), a labeled CSV
    /// (`.csv`, `.csv.gz`, label ignored), or raw little-endian fp32 (whole batch-1 samples). Default: the training rows of
    /// `--dataset` (20 per class), else 16 seeded uniform [0,1) samples (fine for timing only).
    /// With several model inputs, the samples fill the first float input; the others get zeros
    /// (all-true for bool; docs/engine.md, "Several inputs and outputs").
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
    /// Labeled CSV dataset (features, then an integer label; values / 255): measures each
    /// stage's int8 accuracy cost on its test rows.
    #[arg(long, value_name = "FILE")]
    pub dataset: Option<PathBuf>,
    /// Rows of every class at the start of `--dataset` that are training rows; the rest test.
    #[arg(long, default_value_t = 400, requires = "dataset")]
    pub train_per_class: usize,
    /// Timed runs per stage and mode.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// With cold caches (the default): how many of the --runs start with evicted caches, at
    /// least. The first runs are cold until their max is stable (the last 10 did not raise it
    /// by over 2%), the rest warm: every eviction costs about 14 ms, more than most stage runs.
    /// --min-cold-runs equal to --runs evicts before every timed run.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_cold_runs: u64,
    /// Untimed runs before them.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Cores to pin to, comma-separated (the first runs the stages; further ones get ONNX
    /// Runtime's extra threads). Default: not pinned.
    #[arg(long, value_delimiter = ',', value_name = "CORE,...")]
    pub cores: Vec<usize>,
    /// Intra-op threads of every CPU session.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: u64,
    /// WCET = observed max x margin (>= 1).
    #[arg(long, default_value_t = 1.2, value_parser = parse_margin)]
    pub margin: f64,
    /// Time every run with the caches as the previous run left them. By default the caches are
    /// evicted before the first timed runs (see --min-cold-runs), so the WCET covers a stage
    /// that finds its input and weights out of cache, as in a run where other stages ran in
    /// between.
    #[arg(long)]
    pub warm_cache: bool,
    /// How coarse the stages are: `layer` (a conv with its norm and activation), `block` (layers
    /// merged up to the points where one tensor carries everything forward), or `auto` (layers
    /// merged where measuring shows the cut between them costs much: the stages then sum to
    /// within 10% of the whole model; docs/engine.md, "Granularity").
    #[arg(long, default_value = "layer", value_name = "layer|block|auto")]
    pub granularity: Granularity,
    /// Modes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "gpu,cpu-fp32,cpu-int8", value_parser = mode_parser())]
    pub modes: Vec<Mode>,
    /// Where to write the profile JSON.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn mode_parser() -> impl clap::builder::TypedValueParser<Value = Mode> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Mode::ALL.map(Mode::name)).map(|s| s.parse::<Mode>().expect("listed mode"))
}

fn parse_margin(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && v >= 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not a WCET margin >= 1 (WCET = observed max x margin)"))
    }
}

#[derive(Serialize)]
struct ProfileJson<'a> {
    model: &'a str,
    path: &'a Path,
    stages: usize,
    runs: u64,
    warmup: usize,
    margin: f64,
    /// Modes left out, as "stage: mode: why".
    skipped: &'a [String],
    /// The profile as written (`lalarand-profile/1`).
    profile: serde_json::Value,
}

pub fn run(args: Args) -> Result<Verdict> {
    // Registered first, so a Ctrl-C at any point stops cleanly rather than killing the process.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("cannot install the Ctrl-C handler")?;
    }
    if args.modes.is_empty() {
        bail!("--modes: give at least one of gpu, cpu-fp32, cpu-int8");
    }
    let mut modes = args.modes.clone();
    modes.sort();
    modes.dedup();
    for (flag, path) in [
        ("MODEL", Some(&args.model)),
        ("--calibration", args.calibration.as_ref()),
        ("--dataset", args.dataset.as_ref()),
    ] {
        if let Some(p) = path.filter(|p| !p.is_file()) {
            bail!("{flag} {}: no such file", p.display());
        }
    }
    if modes == [Mode::Gpu] && !lalarand_engine::stage::gpu_present() {
        bail!("--modes gpu: no NVIDIA GPU visible here; fix: add cpu-fp32 / cpu-int8, or profile on the board");
    }
    // A Ctrl-C during the set-up below (loading, reading the inputs) ends the run before the
    // engine starts; the engine checks the flag through its own set-up (calibration, accuracy).
    let stopped = || -> Result<()> {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted before the first stage was measured; nothing written");
        }
        Ok(())
    };
    let dataset = match &args.dataset {
        Some(p) => Some(Dataset::load_csv(p)?),
        None => None,
    };
    stopped()?;
    if let Some(out_dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !out_dir.is_dir() {
            bail!("{}: the folder {} does not exist", args.out.display(), out_dir.display());
        }
    }
    // The GPU runtime (which also runs the CPU modes) must be the first one this process loads.
    // (StagedModel::load_with below runs CPU sessions to check the cuts.)
    if modes.contains(&Mode::Gpu) {
        if let Err(why) = lalarand_engine::onnxruntime::load_gpu_first() {
            tracing::debug!("gpu runtime unavailable: {why}");
        }
    }
    stopped()?;
    let staged = StagedModel::load_with(&args.model, &args.input_shape)?;
    stopped()?;
    let inputs =
        calibration_inputs(&staged, args.calibration.as_deref(), dataset.as_ref(), args.train_per_class, &modes)?;
    stopped()?;
    let stages = staged.stage_count();
    drop(staged);
    let flag = stop.clone();
    let opts = ProfileOptions {
        runs: args.runs as usize,
        min_cold_runs: args.min_cold_runs as usize,
        warmup: args.warmup,
        margin: args.margin,
        cfg: ExecConfig { threads: args.threads as usize, cores: args.cores.clone(), ..ExecConfig::default() },
        modes,
        progress: !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        // `profile::stop_on_flag`, plus a debug line per check (the Ctrl-C test waits for it).
        stop: Some(Arc::new(move |done: usize| {
            tracing::debug!("{done} of {stages} stages measured");
            flag.load(Ordering::Relaxed)
        })),
        label_free_accuracy: dataset.is_none() && args.calibration.is_some(),
        accuracy: dataset.map(|d| (d, args.train_per_class)),
        cold_cache: !args.warm_cache,
        granularity: args.granularity,
    };
    let outcome = profile_shaped_to_file(&args.model, &args.input_shape, &inputs, &opts, &args.out).map_err(|e| {
        let partial = partial_path(&args.out);
        if !stop.load(Ordering::Relaxed) {
            return anyhow::Error::new(e);
        }
        // The engine names the partial file when it wrote one (an older file may lie there).
        let wrote = e.to_string().contains(&partial.display().to_string());
        match DnnProfile::load(&partial).ok().filter(|_| wrote) {
            Some(p) => anyhow::anyhow!(
                "interrupted: the {} stages measured so far (of {stages}) are in {}; nothing written at {}",
                p.layers.len(),
                partial.display(),
                args.out.display()
            ),
            None => anyhow::anyhow!("interrupted before the first stage was measured; nothing written ({e})"),
        }
    })?;
    let profile = DnnProfile::load(&outcome.path)
        .with_context(|| format!("the profile just written to {} does not load (a bug)", outcome.path.display()))?;
    if args.json {
        print_json(&ProfileJson {
            model: &profile.model,
            path: &outcome.path,
            stages: profile.layers.len(),
            runs: args.runs,
            warmup: args.warmup,
            margin: args.margin,
            skipped: &outcome.skipped,
            profile: serde_json::from_str(&profile.to_json())?,
        })?;
    } else {
        if let Some(choice) = &outcome.granularity {
            outln!("{}", choice.summary())?;
        }
        out!("{}", render(&profile))?;
        for s in &outcome.skipped {
            outln!("left out: {s}")?;
        }
        outln!("wrote {}", outcome.path.display())?;
    }
    Ok(Verdict::Done)
}

/// Per stage and mode: mean / max / WCET in µs, and the int8 accuracy cost.
fn render(p: &DnnProfile) -> String {
    use comfy_table::{presets, CellAlignment, Table};
    let modes: Vec<Mode> = Mode::ALL.into_iter().filter(|m| p.layers.iter().any(|l| l.mode(*m).is_some())).collect();
    let mut header = vec!["stage".to_string()];
    for m in &modes {
        header.push(format!("{m} mean/max/wcet µs"));
    }
    header.push("int8 cost pp".into());
    let mut table = Table::new();
    table.load_preset(presets::ASCII_MARKDOWN).set_header(header);
    for (j, l) in p.layers.iter().enumerate() {
        let mut row = vec![l.name.clone()];
        for &m in &modes {
            row.push(match l.mode(m) {
                Some(t) => match t.stats {
                    Some(s) => format!("{:.1} / {:.1} / {:.1}", s.mean_us, s.max_us, time_to_us(t.wcet)),
                    None => format!("- / - / {:.1}", time_to_us(t.wcet)),
                },
                None => "-".into(),
            });
        }
        // "n/m": not measured (neither --dataset nor --calibration), written as null; not a free 0.
        row.push(if p.int8_accuracy_known(j) { format!("{:.2}", l.int8_accuracy_cost) } else { "n/m".into() });
        table.add_row(row);
    }
    for i in 1..=modes.len() + 1 {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let totals: Vec<String> = modes.iter().map(|&m| format!("{m} {:.1} µs", time_to_us(p.total_wcet(m)))).collect();
    let unknown = if p.int8_accuracy_unknown.is_empty() {
        ""
    } else {
        "int8 cost n/m: not measured (give --dataset, labeled, or --calibration, your own inputs, to measure it)\n"
    };
    format!("{table}\n{unknown}{} stages of {}; total WCET: {}\n", p.layers.len(), p.model, totals.join(", "))
}
