//! `lalarand verify`: do the stages compute what the model computes? The chained stages in
//! every mode next to the whole fp32 model, on the same inputs.

use crate::report::print_json;
use crate::Verdict;
use anyhow::{bail, Context, Result};
use lalarand_engine::accuracy::{verify, ModeVerdict};
use lalarand_engine::dataset::Dataset;
use lalarand_engine::profile::seeded_inputs;
use lalarand_engine::{ExecConfig, StagedModel};
use lalarand_model::Mode;
use lalarand_onnx::fold::InputShape;
use lalarand_onnx::quantize::CalibrationMethod;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Runs the model's stages chained (cpu-fp32; all-int8, every stage the int8 build check
/// offers in cpu-int8; gpu where there is one) and the whole model in fp32 on the same inputs,
/// and prints per mode the max abs difference and the cosine similarity to the whole model.
///
/// Thresholds (docs/engine.md, "int8 safety"): cpu-fp32 max abs diff <= 1e-4 x the output's
/// largest magnitude (at least 1e-2), gpu 1e-3 x, cpu-int8 cosine >= 0.99 (of the deviations from
/// the fp32 mean where the output hardly depends on the input, and for a classifier also at most
/// 1% of the samples with another top-1 class). Inputs: seeded uniform [0, 1)
/// samples (int8 calibrated on other seeded samples), or with `--dataset` test rows of a
/// labeled CSV (int8 calibrated on 20 training rows of every class, as `lalarand accuracy`).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand zoo squeezenet1_1 --seed 1 --out squeezenet1_1.onnx && lalarand verify squeezenet1_1.onnx\n  lalarand verify crates/engine/testdata/mnist_resnet.onnx --dataset crates/engine/testdata/mnist_5k.csv.gz --json\n\nExit codes: 0 every mode within its threshold, 1 some mode is not, 2 bad input."
)]
pub struct Args {
    /// ONNX model.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Fixes the shape of a model input: NAME=D1,D2,... (repeatable), as `lalarand profile`
    /// takes it; needed where the model has symbolic dimensions (dynamic height and width).
    #[arg(long = "input-shape", value_name = "NAME=D1,D2,...")]
    pub input_shape: Vec<InputShape>,
    /// Labeled CSV dataset (`.csv`, `.csv.gz`) to take the inputs from instead of seeded ones.
    #[arg(long, value_name = "FILE", conflicts_with = "inputs")]
    pub dataset: Option<PathBuf>,
    /// Your own inputs, unlabeled, as `lalarand profile --calibration` reads them: a NumPy
    /// `.npy` array, a folder of images, a CSV dataset's rows, or raw little-endian fp32
    /// samples of the model's input shape, back to back. Every other sample calibrates int8, the rest are compared on (one sample: both).
    #[arg(long, value_name = "FILE")]
    pub inputs: Option<PathBuf>,
    /// With `--dataset`: rows of every class at the start that are training rows (calibration).
    #[arg(long, default_value_t = 400, requires = "dataset")]
    pub train_per_class: usize,
    /// Inputs to compare on (spread over the test rows with `--dataset`).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub samples: u64,
    /// Seed of the synthetic inputs (without `--dataset`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Modes to chain, comma-separated; default: cpu-fp32, cpu-int8, and gpu where there is one.
    #[arg(long, value_delimiter = ',', value_parser = mode_parser())]
    pub modes: Vec<Mode>,
    /// Print the result as JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

fn mode_parser() -> impl clap::builder::TypedValueParser<Value = Mode> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Mode::ALL.map(Mode::name)).map(|s| s.parse::<Mode>().expect("listed mode"))
}

/// Synthetic calibration samples for int8 without `--dataset`.
const CALIBRATION_SAMPLES: usize = 16;

#[derive(Serialize)]
struct VerifyJson<'a> {
    model: &'a Path,
    /// `seeded`, or the `--dataset` or `--inputs` file.
    inputs: String,
    samples: usize,
    stages: usize,
    modes: Vec<ModeJson>,
    /// Modes asked for that cannot run here, with why.
    skipped: Vec<String>,
    passed: bool,
}

#[derive(Serialize)]
struct ModeJson {
    mode: String,
    stages_in_mode: usize,
    /// Stages that ran fp32 instead (cpu-int8), with why.
    not_in_mode: Vec<NotInMode>,
    max_abs_diff: f64,
    output_scale: f64,
    cosine: f64,
    relative_error: f64,
    /// Classifier outputs: percent of samples whose top-1 class is the whole model's.
    top1_agreement: Option<f64>,
    /// Where the output hardly depends on the input: the cosine of the deviations from the
    /// fp32 mean, which cpu-int8 is judged by instead.
    centered_cosine: Option<f64>,
    threshold: String,
    passed: bool,
    /// What the numbers cannot show, or why it failed beyond them.
    notes: Vec<String>,
}

#[derive(Serialize)]
struct NotInMode {
    stage: String,
    why: String,
}

impl From<&ModeVerdict> for ModeJson {
    fn from(v: &ModeVerdict) -> Self {
        Self {
            mode: v.mode.to_string(),
            stages_in_mode: v.stages_in_mode,
            not_in_mode: v.not_in_mode.iter().map(|(s, w)| NotInMode { stage: s.clone(), why: w.clone() }).collect(),
            max_abs_diff: v.max_abs_diff,
            output_scale: v.output_scale,
            cosine: v.cosine,
            relative_error: v.relative_error,
            top1_agreement: v.top1_agreement,
            centered_cosine: v.centered_cosine,
            threshold: v.threshold.clone(),
            passed: v.passed,
            notes: v.notes.clone(),
        }
    }
}

type Samples = Vec<(Vec<usize>, Vec<f32>)>;

pub fn run(args: Args) -> Result<Verdict> {
    if !args.model.is_file() {
        bail!("MODEL {}: no such file", args.model.display());
    }
    let mut modes =
        if args.modes.is_empty() { vec![Mode::Gpu, Mode::CpuFp32, Mode::CpuInt8] } else { args.modes.clone() };
    modes.sort();
    modes.dedup();
    let mut skipped = Vec::new();
    if modes.contains(&Mode::Gpu) {
        // The GPU runtime (which also runs the CPU modes) must be the first one this process loads.
        let problem = lalarand_engine::onnxruntime::load_gpu_first().err();
        if let Some(why) = problem {
            if !args.modes.is_empty() {
                tracing::warn!("gpu left out: {why}");
            }
            skipped.push(format!("gpu: {why}"));
            modes.retain(|m| *m != Mode::Gpu);
        }
    }
    if modes.is_empty() {
        bail!("--modes: nothing to verify here ({}); fix: add cpu-fp32 or cpu-int8", skipped.join("; "));
    }
    let staged = StagedModel::load_with(&args.model, &args.input_shape)?;
    let (inputs, calibration, source) = match (&args.dataset, &args.inputs) {
        (Some(path), _) => dataset_inputs(&staged, path, args.train_per_class, args.samples as usize)?,
        (None, Some(path)) => own_inputs(&staged, path, args.samples as usize)?,
        (None, None) => {
            let dims = staged.input_shape(1);
            let per: usize = dims.iter().product();
            let with_dims = |xs: Vec<Vec<f32>>| xs.into_iter().map(|x| (dims.clone(), x)).collect::<Samples>();
            let inputs = with_dims(seeded_inputs(args.samples as usize, per, args.seed));
            // Calibration and comparison on different samples of the same distribution.
            let calibration = with_dims(seeded_inputs(CALIBRATION_SAMPLES, per, args.seed.wrapping_add(0x5eed)));
            (inputs, calibration, "seeded".to_string())
        }
    };
    let verdicts =
        verify(&staged, &modes, &inputs, &calibration, CalibrationMethod::Percentile(99.99), &ExecConfig::default())
            .with_context(|| format!("verifying {}", args.model.display()))?;
    // A cpu-int8 chain with no int8 stage is the fp32 chain again: it verified nothing about
    // int8, so it is reported as not verified (with why), not as "ok".
    let (verdicts, no_int8): (Vec<ModeVerdict>, Vec<ModeVerdict>) =
        verdicts.into_iter().partition(|v| v.mode != Mode::CpuInt8 || v.stages_in_mode > 0);
    for v in &no_int8 {
        let why = v
            .not_in_mode
            .first()
            .map_or("no stage was quantized".to_string(), |(stage, why)| format!("{stage}: {why}"));
        skipped.push(format!("cpu-int8: no stage runs in int8 ({why})"));
    }
    if verdicts.is_empty() {
        bail!("--modes: nothing verified ({}); fix: add cpu-fp32", skipped.join("; "));
    }
    let passed = verdicts.iter().all(|v| v.passed);
    if args.json {
        print_json(&VerifyJson {
            model: &args.model,
            inputs: source,
            samples: inputs.len(),
            stages: staged.stage_count(),
            modes: verdicts.iter().map(ModeJson::from).collect(),
            skipped,
            passed,
        })?;
    } else {
        let from = match (&args.dataset, &args.inputs) {
            (Some(_), _) => format!("rows of {source}"),
            (None, Some(_)) => format!("inputs of {source}"),
            (None, None) => format!("{source} inputs"),
        };
        outln!(
            "{}: {} stages chained vs the whole model in fp32, on {} {from}",
            staged.name,
            staged.stage_count(),
            inputs.len()
        )?;
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
        table.set_header(["mode", "stages in mode", "max abs diff", "output scale", "cosine", "threshold", "verdict"]);
        for v in &verdicts {
            table.add_row([
                v.mode.to_string(),
                format!("{}/{}", v.stages_in_mode, staged.stage_count()),
                format!("{:.3e}", v.max_abs_diff),
                format!("{:.3e}", v.output_scale),
                format!("{:.6}", v.cosine),
                v.threshold.clone(),
                if v.passed { "ok" } else { "FAILED" }.to_string(),
            ]);
        }
        outln!("{table}")?;
        for v in &verdicts {
            for (stage, why) in &v.not_in_mode {
                outln!("{}: stage {stage} ran fp32: {why}", v.mode)?;
            }
            if let (Mode::CpuInt8, Some(agree)) = (v.mode, v.top1_agreement) {
                outln!("{}: top-1 class the whole model's on {agree:.1}% of the samples", v.mode)?;
            }
            for note in &v.notes {
                outln!("{}: {note}", v.mode)?;
            }
        }
        for s in &skipped {
            outln!("not verified: {s}")?;
        }
    }
    Ok(Verdict::of(passed))
}

/// Comparison inputs spread over the test rows, calibration rows (20 per class) from the
/// training rows.
/// `--inputs`: the file's samples, every other one for calibration and the rest (at most
/// `samples`) to compare on; a single sample does both.
fn own_inputs(staged: &StagedModel, path: &Path, samples: usize) -> Result<(Samples, Samples, String)> {
    if !path.is_file() {
        bail!("--inputs {}: no such file", path.display());
    }
    let all =
        lalarand_engine::profile::load_inputs(path, staged).with_context(|| format!("--inputs {}", path.display()))?;
    let dims = staged.input_shape(1);
    let with_dims = |xs: Vec<&Vec<f32>>| xs.into_iter().map(|x| (dims.clone(), x.clone())).collect::<Samples>();
    let (calibration, compared): (Vec<_>, Vec<_>) = if all.len() == 1 {
        (vec![&all[0]], vec![&all[0]])
    } else {
        let (even, odd): (Vec<_>, Vec<_>) = all.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        (even.into_iter().map(|(_, x)| x).collect(), odd.into_iter().map(|(_, x)| x).take(samples).collect())
    };
    Ok((with_dims(compared), with_dims(calibration), path.display().to_string()))
}

fn dataset_inputs(
    staged: &StagedModel,
    path: &Path,
    train_per_class: usize,
    samples: usize,
) -> Result<(Samples, Samples, String)> {
    if !path.is_file() {
        bail!("--dataset {}: no such file", path.display());
    }
    let data = Dataset::load_csv(path)?;
    let (train, test) = data.split_per_class(train_per_class);
    if test.is_empty() || train.is_empty() {
        bail!(
            "{}: {} training and {} test rows with --train-per-class {train_per_class}; fix: a value that leaves both",
            path.display(),
            train.len(),
            test.len()
        );
    }
    let dims = staged.input_shape(1);
    let step = (test.len() / samples).max(1);
    let one = |row: usize| data.batch(&[row], &dims[1..]);
    let inputs = test.iter().step_by(step).take(samples).map(|&r| one(r)).collect::<Result<Samples, _>>()?;
    let calibration = data.take_per_class(&train, 20).into_iter().map(one).collect::<Result<Samples, _>>()?;
    Ok((inputs, calibration, path.display().to_string()))
}
