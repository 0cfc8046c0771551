//! `lalarand accuracy`: top-1 of a model with some stages int8, next to fp32, on a labeled
//! dataset.

use crate::input::{load_allocation, SystemArgs};
use crate::report::print_json;
use crate::Verdict;
use anyhow::{bail, Context, Result};
use lalarand_engine::accuracy::{evaluate, evaluate_with_int8, modes_with_int8, Calibration};
use lalarand_engine::calibration::profiled_int8_stages;
use lalarand_engine::dataset::Dataset;
use lalarand_engine::{ExecConfig, StagedModel};
use lalarand_model::{DnnProfile, Mode};
use lalarand_onnx::fold::InputShape;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Top-1 accuracy with the chosen stages int8, next to all-fp32, on a dataset's test rows.
///
/// The stages that run int8 come from `--int8` (all, none, or stage names) or from an
/// allocation: the `cpu-int8` layers of `--task` (profile layer names are the model's stage
/// names, as `lalarand profile` writes them). gpu stages count as fp32. The int8 stages are
/// the profiled ones where the profile (`--profile`, or the task's with `--allocation`) saved
/// its calibration (checked by digest, as serving does); otherwise they are calibrated on 20
/// training rows of every class (percentile 99.99). The output says which.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand accuracy crates/engine/testdata/mnist_resnet.onnx \\\n      --dataset crates/engine/testdata/mnist_5k.csv.gz --int8 all\n  lalarand accuracy crates/engine/testdata/mnist_resnet.onnx \\\n      --dataset crates/engine/testdata/mnist_5k.csv.gz --platform examples/mnist/platform.toml \\\n      --tasks examples/mnist/taskset.toml --allocation examples/mnist/allocation-budget-0.5.toml --task digits\n\nExit codes: 0 measured, 2 bad input."
)]
pub struct Args {
    /// ONNX model.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Fixes the shape of a model input: NAME=D1,D2,... (repeatable), as `lalarand profile`
    /// takes it. Default: the profile's recorded shapes (`--profile`, or the task's with
    /// `--allocation`), else the model's own.
    #[arg(long = "input-shape", value_name = "NAME=D1,D2,...")]
    pub input_shape: Vec<InputShape>,
    /// Profile JSON of the model (`lalarand profile`): its saved int8 calibration builds the
    /// int8 stages, so the accuracy measured is that of the profiled stages.
    #[arg(long, value_name = "FILE", conflicts_with = "allocation")]
    pub profile: Option<PathBuf>,
    /// Labeled CSV dataset (`.csv` or `.csv.gz`): features, then an integer label; values / 255.
    #[arg(long, value_name = "FILE")]
    pub dataset: PathBuf,
    /// Rows of every class at the start of the dataset that are training rows (calibration);
    /// the rest are the test rows measured.
    #[arg(long, default_value_t = 400)]
    pub train_per_class: usize,
    /// Stages that run int8: `all`, `none`, or stage names, comma-separated.
    #[arg(long, value_name = "all|none|STAGE,...", conflicts_with = "allocation", default_value = "all")]
    pub int8: String,
    /// Allocation TOML: the `cpu-int8` layers of `--task` run int8 (needs `--tasks`).
    #[arg(long, value_name = "FILE", requires_all = ["task", "tasks"])]
    pub allocation: Option<PathBuf>,
    /// Platform TOML of the allocation; default: one `gpu` and one `cpu`.
    #[arg(long, value_name = "FILE", requires = "allocation")]
    pub platform: Option<PathBuf>,
    /// Task set TOML of the allocation.
    #[arg(long, value_name = "FILE", requires = "allocation")]
    pub tasks: Option<PathBuf>,
    /// The task of the allocation that runs this model.
    #[arg(long, value_name = "NAME", requires = "allocation")]
    pub task: Option<String>,
    /// Intra-op threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: u64,
    /// Print the result as JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct AccuracyJson<'a> {
    model: &'a Path,
    dataset: &'a Path,
    /// Test rows measured.
    samples: usize,
    train_per_class: usize,
    stages: usize,
    fp32_top1: f64,
    /// Top-1 with `int8_stages` int8.
    top1: f64,
    /// `fp32_top1 - top1`, percentage points.
    drop_pp: f64,
    int8_stages: &'a [String],
    /// With an allocation: the sum of its int8 layers' `int8_accuracy_cost` (what the
    /// allocator budgeted), percentage points.
    predicted_drop_pp: Option<f64>,
    /// With an allocation: its int8 layers whose profile has no accuracy cost (`null`,
    /// profiled without a dataset); they count as 0 in `predicted_drop_pp`.
    int8_layers_unknown_cost: Option<usize>,
    /// Where the int8 stages' calibration came from, in words (`null` without int8 stages).
    int8_calibration: Option<&'a str>,
}

pub fn run(args: Args) -> Result<Verdict> {
    for (flag, path) in [("MODEL", &args.model), ("--dataset", &args.dataset)] {
        if !path.is_file() {
            bail!("{flag} {}: no such file", path.display());
        }
    }
    let data = Dataset::load_csv(&args.dataset)?;
    let (int8_names, predicted, unknown, profile) = match &args.allocation {
        Some(path) => {
            let (names, cost, unknown, layers, dnn) = allocation_int8(&args, path)?;
            let origin = format!("task {:?}'s profile", args.task.as_deref().unwrap_or_default());
            (Some((names, layers)), Some(cost), Some(unknown), Some((dnn, origin)))
        }
        None => {
            let profile = match &args.profile {
                Some(path) => {
                    let dnn = DnnProfile::load(path).context("--profile")?;
                    warn_if_other_model(&dnn, &args.model, &format!("profile {}", path.display()));
                    Some((dnn, path.display().to_string()))
                }
                None => None,
            };
            (None, None, None, profile)
        }
    };
    let staged = match (&profile, args.input_shape.is_empty()) {
        (Some((dnn, _)), true) => StagedModel::load_for_profile(&args.model, dnn)?,
        _ => StagedModel::load_with(&args.model, &args.input_shape)?,
    };
    let names: Vec<String> = match int8_names {
        Some((n, layers)) => {
            if layers != staged.stage_count() {
                bail!(
                    "task {:?}'s profile has {layers} layers but {} has {} stages ({}); fix: re-run `lalarand profile` on this model",
                    args.task.as_deref().unwrap_or_default(),
                    args.model.display(),
                    staged.stage_count(),
                    staged.stage_names().join(", ")
                );
            }
            n
        }
        None => match args.int8.trim() {
            "all" => staged.stage_names().iter().map(|s| s.to_string()).collect(),
            "none" | "" => Vec::new(),
            list => list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        },
    };
    let modes = modes_with_int8(&staged, &names).context("--int8 / --allocation")?;
    let (train, test) = data.split_per_class(args.train_per_class);
    if test.is_empty() {
        bail!(
            "{}: no test rows: every class has at most {} rows, all of them training rows (--train-per-class)",
            args.dataset.display(),
            args.train_per_class
        );
    }
    let saved = profile.as_ref().and_then(|(dnn, origin)| dnn.calibration.as_ref().map(|c| (dnn, origin, c)));
    let any_int8 = modes.contains(&Mode::CpuInt8);
    if any_int8 && saved.is_none() && train.is_empty() {
        bail!("{}: no training rows to calibrate int8 on (--train-per-class 0)", args.dataset.display());
    }
    let cfg = ExecConfig { threads: args.threads as usize, ..ExecConfig::default() };
    let (r, calibration) = match saved {
        Some((dnn, origin, cal)) if any_int8 => {
            // Serving's check and refusal: the int8 stages are the profiled ones or none.
            let int8 = profiled_int8_stages(&staged, dnn, args.task.as_deref().unwrap_or(&dnn.model))?;
            let r = evaluate_with_int8(&staged, &modes, &data, args.train_per_class, &int8, &cfg)?;
            (
                r,
                Some(format!(
                    "saved in {origin} ({}, {} samples; same int8 stages as profiled)",
                    cal.method, cal.samples
                )),
            )
        }
        _ => {
            let c = Calibration::default();
            let r = evaluate(&staged, &modes, &data, args.train_per_class, &c, &cfg)?;
            let what = any_int8.then(|| {
                let anew = format!(
                    "calibrated anew on {} training rows (up to {} of every class, {})",
                    data.take_per_class(&train, c.per_class).len(),
                    c.per_class,
                    lalarand_engine::calibration::method_name(c.method)
                );
                match &profile {
                    Some((_, origin)) => format!("{anew}: {origin} has no saved calibration"),
                    None => anew,
                }
            });
            (r, what)
        }
    };
    let drop = r.fp32_top1 - r.top1 + 0.0;
    if args.json {
        print_json(&AccuracyJson {
            model: &args.model,
            dataset: &args.dataset,
            samples: r.samples,
            train_per_class: args.train_per_class,
            stages: staged.stage_count(),
            fp32_top1: r.fp32_top1,
            top1: r.top1,
            drop_pp: drop,
            int8_stages: &r.int8_stages,
            predicted_drop_pp: predicted,
            int8_layers_unknown_cost: unknown,
            int8_calibration: calibration.as_deref(),
        })?;
    } else {
        outln!("{} on {} test rows of {}", staged.name, r.samples, args.dataset.display())?;
        outln!("fp32 top-1: {:.2} %", r.fp32_top1)?;
        outln!(
            "top-1 with {}/{} stages int8: {:.2} % (drop {:.2} pp{})",
            r.int8_stages.len(),
            staged.stage_count(),
            r.top1,
            drop,
            match (predicted, unknown) {
                (Some(p), Some(k)) if k > 0 => {
                    format!(", allocation's budgeted cost {p:.2} pp with {k} int8 layers not measured, counted as 0")
                }
                (Some(p), _) => format!(", allocation's budgeted cost {p:.2} pp"),
                _ => String::new(),
            }
        )?;
        if !r.int8_stages.is_empty() {
            outln!("int8 stages: {}", r.int8_stages.join(", "))?;
        }
        if let Some(c) = &calibration {
            outln!("int8 calibration: {c}")?;
        }
    }
    Ok(Verdict::Done)
}

/// The `cpu-int8` layer names of `--task` in `--allocation`, the sum of their profile costs,
/// how many of them have no known cost (counted as 0), the profile's layer count and the profile.
fn allocation_int8(args: &Args, path: &Path) -> Result<(Vec<String>, f64, usize, usize, DnnProfile)> {
    let (Some(tasks), Some(task)) = (&args.tasks, &args.task) else {
        bail!("--allocation needs --tasks and --task");
    };
    let system = SystemArgs { platform: args.platform.clone(), tasks: tasks.clone() }.load()?;
    let alloc = load_allocation(path, &system)?;
    let Some(i) = system.tasks.iter().position(|t| &t.name == task) else {
        let known: Vec<&str> = system.tasks.iter().map(|t| t.name.as_str()).collect();
        bail!("{}: no task named {task:?}; its tasks are {}", tasks.display(), known.join(", "));
    };
    let dnn = &system.tasks[i].dnn;
    warn_if_other_model(dnn, &args.model, &format!("task {task:?}'s profile"));
    let names =
        dnn.layers.iter().zip(&alloc.tasks[i]).filter(|(_, p)| p.mode.is_int8()).map(|(l, _)| l.name.clone()).collect();
    let cost = alloc.task_accuracy_costs(&system)[i];
    let unknown = alloc.task_unknown_accuracy_layers(&system)[i];
    Ok((names, cost + 0.0, unknown, dnn.layers.len(), DnnProfile::clone(dnn)))
}

/// Warns when `profile` records another model file than `model` (its `model_sha256`).
fn warn_if_other_model(profile: &DnnProfile, model: &Path, what: &str) {
    if let (Some(sha), Ok(actual)) = (&profile.model_sha256, lalarand_engine::profile::sha256_file(model)) {
        if *sha != actual {
            tracing::warn!("{what} was measured on another file than {} (model_sha256 differs)", model.display());
        }
    }
}
