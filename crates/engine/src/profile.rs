//! The profiler: every stage in every available mode, after warm-up, on pinned cores, written
//! as the `lalarand-profile/1` JSON the timing core reads.
//!
//! WCET = observed max x margin (`wcet_margin` in the file). Transitions are measured with
//! one-node QuantizeLinear / DequantizeLinear models of the tensor's shape (with the NHWC
//! layout change of int8 feature maps), and `copy_in`/`copy_out` (gpu stages only) as a
//! host -> GPU -> host round trip of the stage's inputs. A mode that fails
//! for a stage is left out with a warning. On an error or a stop request, the stages measured
//! so far are written to `<out stem>.partial.json` and the error says so.

use crate::accuracy;
use crate::dataset::Dataset;
use crate::error::{EngineError, Result};
use crate::quant::{calibrate_until, check_stages_until, conversion_model, quantize_stages_until, Int8Stages};
use crate::stage::{gpu_present, pin_current_thread, ExecConfig, StageRunner, Tensors};
use crate::staged::{Pipeline, StagedModel};
use lalarand_model::{
    us_to_time, DnnProfile, LayerProfile, Mode, ModeTiming, OutputTransitions, Time, TimingStats, Transitions,
};
use lalarand_onnx::fold::InputShape;
use lalarand_onnx::granularity::Granularity;
use lalarand_onnx::quantize::{CalibrationMethod, QParams};
use ort::value::DynValue;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Profiling inputs the label-free int8 costs are measured on, at most (each stage alone int8
/// runs the whole model on every one of them).
pub const LABEL_FREE_SAMPLES: usize = 100;

/// See [`ProfileOptions::stop`].
pub type StopFn = Arc<dyn Fn(usize) -> bool + Send + Sync>;

/// A [`StopFn`] that stops once `flag` is set.
pub fn stop_on_flag(flag: Arc<AtomicBool>) -> StopFn {
    Arc::new(move |_| flag.load(Ordering::Relaxed))
}

#[derive(Clone)]
pub struct ProfileOptions {
    /// Timed runs per stage and mode (after `warmup` untimed ones).
    pub runs: usize,
    /// With `cold_cache`: how many of the `runs` start with evicted caches, at least; the first
    /// runs are cold until their max is stable ([`ColdRuns`]), the rest warm. `runs` here makes
    /// every timed run cold.
    pub min_cold_runs: usize,
    pub warmup: usize,
    /// WCET = observed max x margin; >= 1.
    pub margin: f64,
    pub cfg: ExecConfig,
    /// Modes to measure; a mode that cannot run here (gpu without a GPU) is left out with a warning.
    pub modes: Vec<Mode>,
    /// Show an indicatif progress bar.
    pub progress: bool,
    /// Asked before every measurement with the number of stages done, and with 0 during the
    /// set-up (before loading the model, before the fp32 reference run, before every int8
    /// calibration batch, every stage's quantization and every batch of the accuracy
    /// measurement); `true` stops the run (a Ctrl-C handler sets a flag that this reads, see
    /// [`stop_on_flag`]).
    pub stop: Option<StopFn>,
    /// Labeled data for `int8_accuracy_cost`, with the number of training rows per class that
    /// precede the test rows of each class. Without it every layer's cost is written as `null`
    /// (not known).
    pub accuracy: Option<(Dataset, usize)>,
    /// Without `accuracy`: measure every stage's int8 cost without labels on the (up to
    /// [`LABEL_FREE_SAMPLES`]) profiling inputs ([`accuracy::label_free_costs_until`]; the
    /// profile's `int8_cost_kind` says which measure). Only meaningful with real inputs, not
    /// [`synthetic_inputs`].
    pub label_free_accuracy: bool,
    /// Evict the caches before the first timed runs (see [`CacheEvictor`], [`ColdRuns`]), so
    /// the WCET covers a stage that finds its input and weights out of cache, as it does in a
    /// run where other stages ran in between. Without it a stage is timed with what its previous run left in
    /// cache: a demo run measured yolov3_tiny's memory-bound maxpool stages at 3x their
    /// warm-cache means, above their WCETs (docs/engine.md, "Profiler").
    pub cold_cache: bool,
    /// How coarse the profiled stages are (`--granularity`; [`crate::granularity`]); the
    /// profile records the grouping (`stage_grouping`).
    pub granularity: Granularity,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        Self {
            runs: 100,
            min_cold_runs: ColdRuns::MIN_RUNS,
            warmup: 10,
            margin: 1.2,
            cfg: ExecConfig::default(),
            modes: Mode::ALL.to_vec(),
            progress: true,
            stop: None,
            accuracy: None,
            label_free_accuracy: false,
            cold_cache: true,
            granularity: Granularity::Layer,
        }
    }
}

/// Statistics of a set of samples, in microseconds.
pub fn stats(samples_us: &[f64]) -> TimingStats {
    let mut s = samples_us.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    // Nearest-rank 99th percentile.
    let p99 = if n == 0 { 0.0 } else { s[((0.99 * n as f64).ceil() as usize).clamp(1, n) - 1] };
    TimingStats {
        max_us: s.last().copied().unwrap_or(0.0),
        p99_us: p99,
        mean_us: if n == 0 { 0.0 } else { s.iter().sum::<f64>() / n as f64 },
        samples: n as u64,
    }
}

fn wcet(s: &TimingStats, margin: f64) -> Time {
    // Rounded up, so the WCET is never below max x margin.
    us_to_time((s.max_us * margin * 1000.0).ceil() / 1000.0)
}

/// The caches of the core the profiler runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// Its private data caches together (levels 1 and 2).
    pub private_bytes: usize,
    /// The largest cache it reports (the shared last level; on a VM, often the host's).
    pub largest_bytes: usize,
}

impl CacheSizes {
    const FALLBACK_PRIVATE: usize = 1 << 20;
    const FALLBACK_LARGEST: usize = 32 << 20;

    /// From `/sys/devices/system/cpu/cpu0/cache` (1 MiB private and 32 MiB shared where it
    /// reports nothing).
    pub fn of_this_machine() -> Self {
        let caches = reported_caches();
        let private: usize = caches.iter().filter(|c| c.0 <= 2 && c.1 != "Instruction").map(|c| c.2).sum();
        let largest = caches.iter().map(|c| c.2).max();
        Self {
            private_bytes: if private == 0 { Self::FALLBACK_PRIVATE } else { private },
            largest_bytes: largest.unwrap_or(Self::FALLBACK_LARGEST),
        }
    }
}

/// The share of a last-level cache one core is assumed to find its data in, when the machine
/// reports a larger one: a VM reports the host's whole shared cache (480 MiB on one cloud
/// machine), of which a vCPU competes for a slice with every other tenant.
pub const LAST_LEVEL_SHARE: usize = 32 << 20;

/// Bytes [`CacheEvictor`] reads before every cold timed run of a stage of a model whose stages
/// together touch `model_working_set` bytes (weights, and tensors in and out): twice what a
/// stage can find in cache in a run, that is, twice the larger of that working set (the other
/// stages of the model run between two runs of a stage) and the caches one core really has
/// (its private ones plus [`LAST_LEVEL_SHARE`]); never more than twice the largest cache
/// reported, nor 512 MiB. Twice the reported last level alone made `lalarand demo` take 245 s
/// instead of about 50 on a VM that reports 480 MiB. On this machine (32 MiB reported) it is
/// the same 64 MiB as before: sizing it from a stage's own and its neighbours' working sets (a
/// few MiB) could not be shown to keep WCETs honest (docs/evaluation.md, "Profiling fast on
/// any machine").
pub fn eviction_bytes(model_working_set: usize, caches: &CacheSizes) -> usize {
    let core = caches.private_bytes + LAST_LEVEL_SHARE;
    (2 * model_working_set.max(core)).min(2 * caches.largest_bytes).min(CacheEvictor::MAX_BYTES)
}

/// Evicts caches by reading one byte per cache line of a buffer, before the clock of a timed
/// run starts. Reads displace lines as writes do, without writing the buffer back to memory
/// (1.4x faster than writing on this machine: 14 against 21 ms per 64 MiB under load).
pub struct CacheEvictor {
    buffer: Vec<u8>,
}

impl CacheEvictor {
    const MAX_BYTES: usize = 512 << 20;
    const LINE: usize = 64;

    /// An evictor of the whole hierarchy: twice the largest cache the machine reports.
    pub fn new() -> Self {
        Self::with_capacity(2 * CacheSizes::of_this_machine().largest_bytes)
    }

    /// An evictor that writes `bytes` (at most 512 MiB; see [`eviction_bytes`]).
    pub fn with_capacity(bytes: usize) -> Self {
        // Written once, so that every page is backed by memory of its own.
        Self { buffer: vec![1; bytes.clamp(Self::LINE, Self::MAX_BYTES)] }
    }

    /// What [`Self::evict`] writes.
    pub fn bytes(&self) -> usize {
        self.buffer.len()
    }

    pub fn evict(&mut self) {
        let sum = self.buffer.iter().step_by(Self::LINE).fold(0u8, |s, b| s.wrapping_add(std::hint::black_box(*b)));
        std::hint::black_box(sum);
    }
}

impl Default for CacheEvictor {
    fn default() -> Self {
        Self::new()
    }
}

/// (level, type, bytes) of every cache in `/sys/devices/system/cpu/cpu0/cache/index*`.
fn reported_caches() -> Vec<(u32, String, usize)> {
    let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache") else { return Vec::new() };
    let read = |p: &Path, f: &str| std::fs::read_to_string(p.join(f)).ok().map(|s| s.trim().to_string());
    dir.filter_map(|e| {
        let p = e.ok()?.path();
        let level = read(&p, "level")?.parse().ok()?;
        let ty = read(&p, "type").unwrap_or_default();
        Some((level, ty, parse_size(&read(&p, "size")?)?))
    })
    .collect()
}

/// "32768K" -> 32 MiB.
fn parse_size(s: &str) -> Option<usize> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: usize = digits.parse().ok()?;
    Some(match unit {
        "K" => n << 10,
        "M" => n << 20,
        "G" => n << 30,
        _ => n,
    })
}

/// Bytes every stage touches in a run: the initializers its nodes read and its input and
/// output tensors (fp32 sizes; an int8 stage touches less).
pub fn stage_working_sets(staged: &StagedModel) -> Vec<usize> {
    let graph = staged.model.graph.as_ref().expect("a staged model has a graph");
    let init_bytes: std::collections::HashMap<&str, usize> = graph
        .initializer
        .iter()
        .map(|t| (t.name(), lalarand_onnx::tensor::element_count(&t.dims) as usize * elem_size(t.data_type())))
        .collect();
    staged
        .partition
        .stages
        .iter()
        .map(|s| {
            let mut seen = BTreeSet::new();
            let weights: usize = s
                .nodes
                .iter()
                .flat_map(|&n| graph.node[n].input.iter())
                .filter(|t| seen.insert(t.as_str()))
                .filter_map(|t| init_bytes.get(t.as_str()))
                .sum();
            let tensors: usize = s
                .inputs
                .iter()
                .chain(&s.outputs)
                .filter_map(|t| staged.types.get(t))
                .map(|ti| {
                    ti.dims.iter().map(|d| d.unwrap_or(1).max(0) as usize).product::<usize>() * elem_size(ti.elem_type)
                })
                .sum();
            weights + tensors
        })
        .collect()
}

/// What each of the first `n` stages reads (the profile's `reads_layers` / `reads_input`),
/// where it is more than the chain rule's predecessor: a residual add reading an earlier
/// stage's output, a head reading an earlier feature map. The plan charges a conversion when
/// any of them is in another representation (`lalarand_model::plan`).
pub fn layer_sources(
    staged: &StagedModel,
    n: usize,
) -> std::collections::BTreeMap<usize, lalarand_model::LayerSources> {
    let stages = &staged.partition.stages;
    let producer = |t: &str| stages.iter().position(|s| s.outputs.iter().any(|o| o == t));
    let mut sources = std::collections::BTreeMap::new();
    for (j, stage) in stages.iter().enumerate().take(n) {
        let mut read = lalarand_model::LayerSources::default();
        for t in &stage.inputs {
            match producer(t).filter(|&k| k < j) {
                Some(k) if !read.layers.contains(&k) => read.layers.push(k),
                Some(_) => {}
                None => read.graph_input = true,
            }
        }
        read.layers.sort_unstable();
        let chain = match j.checked_sub(1) {
            Some(prev) => read.layers == [prev] && !read.graph_input,
            None => read.layers.is_empty() && read.graph_input,
        };
        if !chain {
            sources.insert(j, read);
        }
    }
    sources
}

/// Bytes per element of an ONNX element type (4 where unknown).
fn elem_size(elem_type: i32) -> usize {
    match elem_type {
        2 | 3 | 9 => 1,
        5 | 4 | 10 | 16 => 2,
        7 | 11 | 13 => 8,
        _ => 4,
    }
}

/// How often a measurement asks whether to stop: a stage timed many times (or with caches to
/// evict before each run) can take minutes, and a Ctrl-C must not wait for it.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// How many of a stage's timed runs start with evicted caches: the first ones, at least `min`,
/// at most `max`, and in between until their max is stable: the last `stable` did not raise it
/// above `1 + tolerance` times the max of the cold runs before them. The timed runs after them
/// start with what the previous run left in cache.
///
/// Why: an eviction (14 ms per 64 MiB here) costs more than most stage runs, and evicting
/// before each of 100 runs per stage and mode made a zoo ResNet-18 take 71 s to profile. Cold
/// runs are what make a stage slower than warm ones, and once more of them stop raising their
/// max they only cost; a stage whose cold times keep rising (noise, a slow start) gets more.
/// The warm runs are cheap and still catch what is not about caches (an interrupt, a
/// preemption), back to back, with no eviction between them for it to land in instead. The
/// WCET is the max of all timed runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColdRuns {
    pub min: usize,
    pub max: usize,
    pub stable: usize,
    /// A rise of the max by at most this fraction counts as stable (well inside a 1.2 margin).
    pub tolerance: f64,
}

impl ColdRuns {
    /// The default floor of [`ProfileOptions::min_cold_runs`].
    pub const MIN_RUNS: usize = 10;
    /// Cold runs that must not raise their max for it to count as stable.
    pub const STABLE_RUNS: usize = 10;
    pub const TOLERANCE: f64 = 0.02;

    /// `min` to `max` cold runs, stable over [`Self::STABLE_RUNS`] within [`Self::TOLERANCE`].
    pub fn new(min: usize, max: usize) -> Self {
        Self { min, max, stable: Self::STABLE_RUNS, tolerance: Self::TOLERANCE }
    }

    /// How the profile's `source` says it: "all", or "the first 11 to 100 (...)".
    pub fn describe(&self) -> String {
        let least = self.min.max(self.stable + 1);
        if least >= self.max {
            return "all".into();
        }
        format!(
            "the first {least} to {} (until the last {} did not raise their max by over {:.1}%)",
            self.max,
            self.stable,
            self.tolerance * 100.0
        )
    }

    /// Whether the cold runs so far (`samples`, in order) are enough.
    pub fn enough(&self, samples: &[f64]) -> bool {
        let n = samples.len();
        if n >= self.max {
            return true;
        }
        // A stable max needs runs before the last `stable` ones to compare with.
        if n < self.min || n <= self.stable {
            return false;
        }
        let (before, last) = samples.split_at(n - self.stable);
        let max_before = before.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        last.iter().all(|&s| s <= max_before * (1.0 + self.tolerance))
    }
}

/// Runs `f` `warmup` times, then `runs` times timed, and returns the timed durations in
/// microseconds; with `cold`, the caches are evicted before the first timed runs until
/// [`ColdRuns::enough`]. `stop` is asked every [`STOP_POLL`]; `true` abandons the measurement.
fn measure(
    warmup: usize,
    runs: usize,
    mut cold: Option<(ColdRuns, &mut CacheEvictor)>,
    stop: &dyn Fn() -> bool,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    let mut asked = Instant::now();
    let mut check = || {
        if asked.elapsed() < STOP_POLL {
            return Ok(());
        }
        asked = Instant::now();
        match stop() {
            true => Err(EngineError::Interrupted("stop requested while a stage was being timed".into())),
            false => Ok(()),
        }
    };
    for _ in 0..warmup {
        check()?;
        f()?;
    }
    let mut out = Vec::with_capacity(runs.min(1 << 16));
    for _ in 0..runs {
        check()?;
        // Cold runs come first, so `out` holds only cold ones until they are enough.
        if cold.as_ref().is_some_and(|(c, _)| c.enough(&out)) {
            cold = None;
        }
        if let Some((_, e)) = cold.as_mut() {
            e.evict();
        }
        let t = Instant::now();
        f()?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(out)
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads profiling inputs: a raw little-endian fp32 file (`.bin`, `.f32`: whole samples of the
/// model input, batch 1) or a labeled CSV dataset (`.csv`, `.csv.gz`, label column ignored).
pub fn load_inputs(path: &Path, staged: &StagedModel) -> Result<Vec<Vec<f32>>> {
    let dims = staged.input_shape(1);
    let per: usize = dims.iter().product();
    let name = path.to_string_lossy();
    if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        let d = Dataset::load_csv(path)?;
        let rows: Vec<usize> = (0..d.len()).collect();
        let (_, all) = d.batch(&rows, &dims[1..])?;
        return Ok(all.chunks(per).map(<[f32]>::to_vec).collect());
    }
    let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
    if bytes.is_empty() || bytes.len() % (4 * per) != 0 {
        return Err(EngineError::tensor(
            format!("calibration inputs {}", path.display()),
            &staged.input_name,
            format!(
                "{} bytes is not a whole number of fp32 samples of shape {dims:?} ({} bytes each)",
                bytes.len(),
                4 * per
            ),
        ));
    }
    let values: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(values.chunks(per).map(<[f32]>::to_vec).collect())
}

/// Samples drawn when neither calibration inputs nor a dataset give real inputs.
pub const SYNTHETIC_SAMPLES: usize = 16;
/// Training rows of every class that calibrate int8 when only a dataset is given (as
/// `lalarand accuracy`).
pub const CALIBRATION_PER_CLASS: usize = 20;

/// The inputs a profile run times and calibrates int8 with (`lalarand profile` and the Python
/// package's `profile`): the `calibration` file ([`load_inputs`]) if given, else
/// [`CALIBRATION_PER_CLASS`] training rows of every class of `dataset` (the first
/// `train_per_class` rows of each class are its training rows), else [`SYNTHETIC_SAMPLES`]
/// synthetic inputs, which are fine for timing only (a warning when `modes` has int8).
pub fn calibration_inputs(
    staged: &StagedModel,
    calibration: Option<&Path>,
    dataset: Option<&Dataset>,
    train_per_class: usize,
    modes: &[Mode],
) -> Result<Vec<Vec<f32>>> {
    match (calibration, dataset) {
        (Some(p), _) => load_inputs(p, staged),
        (None, Some(d)) => {
            let (train, _) = d.split_per_class(train_per_class);
            let rows = d.take_per_class(&train, CALIBRATION_PER_CLASS);
            let dims = staged.input_shape(1);
            let (_, all) = d.batch(&rows, &dims[1..])?;
            Ok(all.chunks(dims.iter().product()).map(<[f32]>::to_vec).collect())
        }
        (None, None) => {
            if modes.contains(&Mode::CpuInt8) {
                tracing::warn!(
                    "no calibration inputs or dataset: int8 is calibrated on {SYNTHETIC_SAMPLES} synthetic inputs (good for timing only)"
                );
            }
            Ok(synthetic_inputs(staged, SYNTHETIC_SAMPLES))
        }
    }
}

/// Inputs drawn uniformly from [0, 1) with a fixed seed, for models without calibration data.
pub fn synthetic_inputs(staged: &StagedModel, count: usize) -> Vec<Vec<f32>> {
    let per: usize = staged.input_shape(1).iter().product();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..count)
        .map(|_| {
            (0..per)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect()
        })
        .collect()
}

/// `count` inputs of `per` values in [0, 1) from a linear congruential stream seeded with
/// `seed`: reproducible inputs for tests and benches whose only need is "some image".
pub fn seeded_inputs(count: usize, per: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed;
    (0..count)
        .map(|_| {
            (0..per)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (s >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect()
        })
        .collect()
}

/// Loads the GPU runtime when gpu mode is asked for; why it cannot run, if it cannot.
fn gpu_runtime(opts: &ProfileOptions) -> Option<String> {
    if !opts.modes.contains(&Mode::Gpu) {
        return None;
    }
    if !gpu_present() {
        return Some("no NVIDIA GPU visible".into());
    }
    crate::runtime::environment(crate::runtime::Flavor::Gpu).err().map(|e| e.to_string())
}

/// What a profile run produced.
#[derive(Debug, Clone)]
pub struct ProfileOutcome {
    pub profile: DnnProfile,
    pub path: PathBuf,
    /// Modes left out, as "stage: mode: why".
    pub skipped: Vec<String>,
    /// The stages `--granularity` chose (`None` at `layer`).
    pub granularity: Option<crate::granularity::Choice>,
}

/// Where a partial profile goes: `p.json` -> `p.partial.json`.
pub fn partial_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "profile".into());
    out.with_file_name(format!("{stem}.partial.json"))
}

/// Profiles the model at `model_path` with `inputs` (samples of batch 1; the first is timed,
/// all calibrate int8) and writes the profile to `out`.
pub fn profile_to_file(
    model_path: &Path,
    inputs: &[Vec<f32>],
    opts: &ProfileOptions,
    out: &Path,
) -> Result<ProfileOutcome> {
    profile_shaped_to_file(model_path, &[], inputs, opts, out)
}

/// [`profile_to_file`] with the model's inputs fixed at `shapes` (`--input-shape`; see
/// [`StagedModel::load_with`]); the profile records them (`input_shapes`).
pub fn profile_shaped_to_file(
    model_path: &Path,
    shapes: &[InputShape],
    inputs: &[Vec<f32>],
    opts: &ProfileOptions,
    out: &Path,
) -> Result<ProfileOutcome> {
    let before = |what: &str| match &opts.stop {
        Some(f) if f(0) => Err(EngineError::Interrupted(format!(
            "stop requested before {what}; no stage was measured, nothing written"
        ))),
        _ => Ok(()),
    };
    before("loading the model")?;
    // The GPU runtime (which also runs the CPU modes) must be the first one this process loads.
    let gpu_problem = gpu_runtime(opts);
    let loading = Instant::now();
    let staged = StagedModel::load_with(model_path, shapes)?;
    let sha = sha256_file(model_path)?;
    tracing::info!("{}: loaded and partitioned in {:.1} s", model_path.display(), loading.elapsed().as_secs_f64());
    let choosing = Instant::now();
    let (staged, choice) = match inputs.first() {
        Some(x)
            if opts.granularity != Granularity::Layer && x.len() == staged.input_shape(1).iter().product::<usize>() =>
        {
            before("choosing the stages")?;
            pin_current_thread(&opts.cfg.cores)?;
            let stop = || opts.stop.as_ref().is_some_and(|f| f(0));
            let (regrouped, choice) = crate::granularity::apply(&staged, opts.granularity, &opts.cfg, x, &stop)?;
            tracing::info!("{} (in {:.1} s)", choice.summary(), choosing.elapsed().as_secs_f64());
            (regrouped, Some(choice))
        }
        _ => (staged, None),
    };
    let mut p = Profiler::new(&staged, opts, sha);
    p.grouping = choice
        .as_ref()
        .map(|c| lalarand_model::StageGrouping { granularity: c.granularity.to_string(), groups: c.groups.clone() });
    if let Some(why) = gpu_problem {
        tracing::warn!("gpu mode left out of the profile: {why}");
        p.skipped.push(format!("all stages: gpu: {why}"));
        p.no_gpu = true;
    }
    match p.run(inputs) {
        Ok(()) => {
            let profile = p.profile(None);
            write(out, &profile)?;
            Ok(ProfileOutcome { profile, path: out.to_path_buf(), skipped: p.skipped, granularity: choice })
        }
        Err(e) if p.layers.is_empty() => Err(e),
        Err(e) => {
            let partial = partial_path(out);
            let profile = p.profile(Some(&e.to_string()));
            write(&partial, &profile)?;
            let kept = format!(
                "the {} stages measured so far (of {}) are in {}",
                profile.layers.len(),
                staged.stage_count(),
                partial.display()
            );
            Err(match e {
                EngineError::Interrupted(why) => EngineError::Interrupted(format!("{why}; {kept}")),
                // A failure is not an interruption: its own message, then what was kept.
                other => EngineError::graph(format!("profiling {}", model_path.display()), format!("{other}; {kept}")),
            })
        }
    }
}

/// Writes next to `path` and renames into place, so an existing profile is never left half
/// overwritten by a run that fails while writing.
fn write(path: &Path, p: &DnnProfile) -> Result<()> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(".tmp");
    let staging = std::path::PathBuf::from(staging);
    std::fs::write(&staging, p.to_json() + "\n").map_err(|e| EngineError::io(&staging, e))?;
    std::fs::rename(&staging, path).map_err(|e| EngineError::io(path, e))
}

/// Where a profile's time went: seconds per phase, summed over the phases of one name.
struct Phases {
    last: Instant,
    spent: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    fn new() -> Self {
        Self { last: Instant::now(), spent: Vec::new() }
    }

    /// Charges the time since the last call to `phase`.
    fn end(&mut self, phase: &'static str) {
        let now = Instant::now();
        let took = now - self.last;
        self.last = now;
        match self.spent.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, t)) => *t += took,
            None => self.spent.push((phase, took)),
        }
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: f64 = self.spent.iter().map(|(_, t)| t.as_secs_f64()).sum();
        write!(f, "{total:.1} s")?;
        for (p, t) in &self.spent {
            write!(f, ", {p} {:.1} s", t.as_secs_f64())?;
        }
        Ok(())
    }
}

/// Profiling state; `layers` grows stage by stage so that an interrupted run keeps them.
struct Profiler<'a> {
    staged: &'a StagedModel,
    opts: &'a ProfileOptions,
    sha: String,
    layers: Vec<LayerProfile>,
    output: OutputTransitions,
    skipped: Vec<String>,
    /// gpu was asked for but cannot run (see `skipped`).
    no_gpu: bool,
    /// Indices of `layers` without a measured int8 accuracy cost (no dataset, or no int8 model).
    accuracy_unknown: BTreeSet<usize>,
    /// With [`ProfileOptions::cold_cache`].
    evictor: Option<std::cell::RefCell<CacheEvictor>>,
    /// The calibration of the int8 stages, once made.
    calibration: Option<lalarand_model::Int8Calibration>,
    /// Before a timed transition (quantize, dequantize): the private caches only. A transition
    /// converts the tensor the stage before it has just written, on this core or another one,
    /// so in a run it finds that tensor in the shared last level at least.
    transition_evictor: Option<std::cell::RefCell<CacheEvictor>>,
    /// What the measured `int8_accuracy_cost`s are.
    cost_kind: lalarand_model::Int8CostKind,
    /// The int8 build check's figure and notes, by layer index.
    int8_notes: std::collections::BTreeMap<usize, lalarand_model::Int8Note>,
    /// How the layers group the model's layer stages (`--granularity` other than `layer`).
    grouping: Option<lalarand_model::StageGrouping>,
}

impl<'a> Profiler<'a> {
    fn new(staged: &'a StagedModel, opts: &'a ProfileOptions, sha: String) -> Self {
        Self {
            staged,
            opts,
            sha,
            layers: Vec::new(),
            output: OutputTransitions::default(),
            skipped: Vec::new(),
            no_gpu: false,
            accuracy_unknown: BTreeSet::new(),
            evictor: opts.cold_cache.then(|| {
                let model: usize = stage_working_sets(staged).iter().sum();
                let bytes = eviction_bytes(model, &CacheSizes::of_this_machine());
                std::cell::RefCell::new(CacheEvictor::with_capacity(bytes))
            }),
            transition_evictor: opts.cold_cache.then(|| {
                let private = CacheSizes::of_this_machine().private_bytes;
                std::cell::RefCell::new(CacheEvictor::with_capacity(2 * private))
            }),
            calibration: None,
            int8_notes: Default::default(),
            cost_kind: Default::default(),
            grouping: None,
        }
    }

    /// [`measure`] of a transition, with its eviction (`transition_evictor`).
    fn measure_transition(&self, f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
        let mut evictor = self.transition_evictor.as_ref().map(|e| e.borrow_mut());
        let cold = evictor.as_deref_mut().map(|e| (self.cold_runs(), e));
        measure(self.opts.warmup, self.opts.runs, cold, &|| self.stop_requested(), f)
    }

    /// [`measure`] with this profile's cache eviction.
    fn measure(&self, f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
        let mut evictor = self.evictor.as_ref().map(|e| e.borrow_mut());
        let cold = evictor.as_deref_mut().map(|e| (self.cold_runs(), e));
        measure(self.opts.warmup, self.opts.runs, cold, &|| self.stop_requested(), f)
    }

    fn cold_runs(&self) -> ColdRuns {
        ColdRuns::new(self.opts.min_cold_runs, self.opts.runs)
    }

    fn profile(&self, partial: Option<&str>) -> DnnProfile {
        let (flavor, lib) = crate::runtime::loaded().map_or(("none".into(), String::new()), |(f, p)| {
            (format!("{f:?}").to_lowercase(), p.display().to_string())
        });
        let mut source = format!(
            "lalarand profile: onnxruntime {} ({flavor}, {lib}), threads={}, cores={:?}, {} runs after {} warm-up, {}, batch 1, cpu: {}",
            crate::runtime::ORT_VERSION,
            self.opts.cfg.threads,
            self.opts.cfg.cores,
            self.opts.runs,
            self.opts.warmup,
            match &self.evictor {
                Some(e) => format!(
                    "caches evicted before {} timed runs ({} MiB read; {} KiB before a transition)",
                    self.cold_runs().describe(),
                    e.borrow().bytes() >> 20,
                    self.transition_evictor.as_ref().map_or(0, |t| t.borrow().bytes() >> 10)
                ),
                None => "warm caches".into(),
            },
            cpu_model()
        );
        if let Some(why) = partial {
            source = format!(
                "PARTIAL ({} of {} stages; stopped: {why}); {source}",
                self.layers.len(),
                self.staged.stage_count()
            );
        }
        DnnProfile {
            model: self.staged.name.clone(),
            source,
            wcet_margin: Some(self.opts.margin),
            model_sha256: Some(self.sha.clone()),
            layers: self.layers.clone(),
            output: self.output,
            int8_accuracy_unknown: self.accuracy_unknown.clone(),
            calibration: self.calibration.clone(),
            input_shapes: self.staged.input_shapes.iter().map(|s| (s.name.clone(), s.dims.clone())).collect(),
            int8_notes: self.int8_notes.clone(),
            int8_cost_kind: self.cost_kind,
            // A partial profile has fewer layers than groups: it records none.
            stage_grouping: self.grouping.clone().filter(|g| g.groups.len() == self.layers.len()),
            layer_sources: layer_sources(self.staged, self.layers.len()),
        }
    }

    fn check_stop(&self) -> Result<()> {
        match self.stop_requested() {
            true => Err(EngineError::Interrupted("stop requested".into())),
            false => Ok(()),
        }
    }

    /// Whether [`ProfileOptions::stop`] asks to stop, given the stages measured so far.
    fn stop_requested(&self) -> bool {
        self.opts.stop.as_ref().is_some_and(|f| f(self.layers.len()))
    }

    /// [`Self::check_stop`] in the set-up, naming the step it stopped before.
    fn check_stop_before(&self, what: &str) -> Result<()> {
        if self.stop_requested() {
            return Err(EngineError::Interrupted(format!("stop requested before {what}; no stage was measured")));
        }
        Ok(())
    }

    fn run(&mut self, inputs: &[Vec<f32>]) -> Result<()> {
        let (staged, opts) = (self.staged, self.opts);
        if !opts.margin.is_finite() || opts.margin < 1.0 {
            return Err(EngineError::tensor("profile options", "(margin)", format!("{} is below 1", opts.margin)));
        }
        if opts.runs == 0 {
            return Err(EngineError::tensor("profile options", "(runs)", "at least one timed run is needed"));
        }
        let dims = staged.input_shape(1);
        let per: usize = dims.iter().product();
        let Some(first) = inputs.first() else {
            return Err(EngineError::tensor("profiling", &staged.input_name, "no inputs given"));
        };
        for (k, x) in inputs.iter().enumerate() {
            if x.len() != per {
                return Err(EngineError::tensor(
                    format!("calibration input {k}"),
                    &staged.input_name,
                    format!("{} values, but the model input {dims:?} has {per}", x.len()),
                ));
            }
        }
        pin_current_thread(&opts.cfg.cores)?;
        let cfg = &opts.cfg;

        let mut modes = opts.modes.clone();
        if self.no_gpu {
            modes.retain(|m| *m != Mode::Gpu);
        }

        // Every boundary tensor of one fp32 run: the inputs each stage is timed with.
        self.check_stop_before("the fp32 reference run")?;
        let fp32_modes = vec![Mode::CpuFp32; staged.stage_count()];
        let mut phases = Phases::new();
        let reference = Pipeline::new(staged, &fp32_modes, None, cfg)?;
        let tensors = reference.run_all(&dims, first.clone())?;
        phases.end("fp32 reference");

        let int8 = if modes.contains(&Mode::CpuInt8) {
            // Calibration batches: up to 32 samples where the batch is symbolic, else the fixed batch.
            let per_batch = staged.input_dims.first().copied().flatten().map_or(32, |b| b as usize);
            let batches: Vec<(Vec<usize>, Vec<f32>)> = inputs
                .chunks(per_batch)
                .filter(|c| staged.input_dims.first().copied().flatten().is_none() || c.len() == per_batch)
                .map(|c| {
                    let mut d = dims.clone();
                    d[0] = c.len();
                    (d, c.concat())
                })
                .collect();
            let mut stop = || self.stop_requested();
            let method = CalibrationMethod::Percentile(99.99);
            let ranges = calibrate_until(staged, &batches, method, &mut stop)?;
            phases.end("int8 calibration");
            let mut int8 = quantize_stages_until(staged, &ranges, &mut stop)?;
            phases.end("int8 build");
            // Saved with the profile: runs and servers rebuild these very stages
            // (crate::calibration). Recorded before the check, which only takes stages away
            // (a refused stage has no cpu-int8 mode in the profile, so no allocation runs it).
            let samples = batches.iter().map(|(d, _)| d[0]).sum();
            let calibration = crate::calibration::record(&ranges, method, samples, &int8);
            check_stages_until(staged, &mut int8, &batches, &mut stop)?;
            phases.end("int8 check");
            self.calibration = Some(calibration);
            int8
        } else {
            Int8Stages::default()
        };
        let costs = match &opts.accuracy {
            Some((data, train_per_class)) if modes.contains(&Mode::CpuInt8) => {
                let (_, test) = data.split_per_class(*train_per_class);
                accuracy::int8_costs_until(staged, &int8, data, &test, cfg, &mut || self.stop_requested())?
            }
            None if opts.label_free_accuracy && modes.contains(&Mode::CpuInt8) => {
                let samples: Vec<(Vec<usize>, Vec<f32>)> =
                    inputs.iter().take(LABEL_FREE_SAMPLES).map(|x| (dims.clone(), x.clone())).collect();
                let (kind, costs) =
                    accuracy::label_free_costs_until(staged, &int8, &samples, cfg, &mut || self.stop_requested())?;
                self.cost_kind = kind;
                costs
            }
            _ => vec![None; staged.stage_count()],
        };
        phases.end("int8 costs");

        let bar = if opts.progress {
            indicatif::ProgressBar::new((staged.stage_count() * modes.len()) as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} stage-modes {msg}").expect("valid template"),
        );
        for (i, stage) in staged.partition.stages.iter().enumerate() {
            let mut layer = LayerProfile {
                name: stage.name.clone(),
                modes: [None; 3],
                // Not known (written as null) without a dataset: 0 here is not "free".
                int8_accuracy_cost: costs[i].unwrap_or(0.0),
                transitions: Transitions::default(),
            };
            if costs[i].is_none() {
                self.accuracy_unknown.insert(i);
            }
            let note = lalarand_model::Int8Note { cosine: int8.check(i).map(|c| c.cosine), note: int8.note(i) };
            if note != lalarand_model::Int8Note::default() {
                self.int8_notes.insert(i, note);
            }
            for &mode in &modes {
                self.check_stop()?;
                bar.set_message(format!("{} {mode}", stage.name));
                let timed = self.time_stage(i, mode, &int8, &tensors);
                phases.end(mode.name());
                match timed {
                    Ok(s) => {
                        layer.modes[mode.index()] = Some(ModeTiming { wcet: wcet(&s, opts.margin), stats: Some(s) })
                    }
                    Err(e @ EngineError::Interrupted(_)) => return Err(e),
                    Err(e) => {
                        tracing::warn!("stage {:?}: {mode} left out: {e}", stage.name);
                        self.skipped.push(format!("{}: {mode}: {e}", stage.name));
                    }
                }
                bar.inc(1);
            }
            if layer.available_modes().next().is_none() {
                return Err(self.no_mode_error(i));
            }
            layer.transitions = self.transitions(i, &int8, &tensors, layer.modes[Mode::CpuInt8.index()].is_some())?;
            if layer.modes[Mode::Gpu.index()].is_some() {
                layer.transitions.copy_in = self.time_gpu_copy(&stage.inputs, &tensors)?;
            }
            phases.end("transitions");
            self.layers.push(layer);
        }
        bar.finish_and_clear();
        if self.layers.last().is_some_and(|l| l.modes[Mode::Gpu.index()].is_some()) {
            self.output.copy_out = self.time_gpu_copy(std::slice::from_ref(&staged.output_name), &tensors)?;
        }
        self.output.dequantize_out = match int8.stages.last().and_then(|s| s.as_ref().ok()) {
            Some(q) => match q.outputs.get(&staged.output_name).copied().flatten() {
                Some(qp) => self.time_conversion(&staged.output_name, qp, false, &tensors)?,
                None => 0,
            },
            None => 0,
        };
        phases.end("transitions");
        tracing::info!("profiled {}: {}", staged.name, phases);
        Ok(())
    }

    /// Why stage `i` cannot be profiled: what every mode said, and the fix.
    fn no_mode_error(&self, i: usize) -> EngineError {
        let staged = self.staged;
        let stage = &staged.partition.stages[i];
        let prefix = format!("{}: ", stage.name);
        let why: Vec<&str> = self.skipped.iter().filter_map(|s| s.strip_prefix(&prefix)).collect();
        let not_float: Vec<String> = stage
            .inputs
            .iter()
            .filter(|t| staged.types.get(*t).is_some_and(|ti| ti.elem_type != 1))
            .map(|t| format!("`{t}`"))
            .collect();
        let graph = staged.model.graph.as_ref().expect("a staged model has a graph");
        let ops: Vec<String> = stage.nodes.iter().map(|&n| graph.node[n].op_type().to_string()).collect();
        let fix = if not_float.is_empty() {
            format!(
                "check that ONNX Runtime {} runs the model as a whole; if it does, the cut around this stage ({}) is at fault: report it",
                crate::runtime::ORT_VERSION,
                ops.join(", ")
            )
        } else {
            format!(
                "it reads the non-float tensors {}, computed from tensor shapes: fix every symbolic input dimension with --input-shape so that lalarand folds them to constants",
                not_float.join(", ")
            )
        };
        EngineError::Unsupported {
            stage: stage.name.clone(),
            mode: "every mode".into(),
            problem: format!("no mode can run it ({}); fix: {fix}", why.join("; ")),
        }
    }

    /// Times stage `i` in `mode` on its inputs from `tensors` (fp32, quantized where the int8
    /// model reads uint8; the conversion is not part of the stage's time).
    fn time_stage(&self, i: usize, mode: Mode, int8: &Int8Stages, tensors: &Tensors) -> Result<TimingStats> {
        let (staged, opts) = (self.staged, self.opts);
        let stage = &staged.partition.stages[i];
        let mut runner = match mode {
            Mode::CpuInt8 => {
                let q = int8.stages.get(i).ok_or_else(|| EngineError::Unsupported {
                    stage: stage.name.clone(),
                    mode: mode.to_string(),
                    problem: "not quantized".into(),
                })?;
                let q = q.as_ref().map_err(|e| EngineError::Unsupported {
                    stage: stage.name.clone(),
                    mode: mode.to_string(),
                    problem: e.clone(),
                })?;
                StageRunner::new(&stage.name, mode, &q.bytes, &opts.cfg)?
            }
            _ => StageRunner::new(&stage.name, mode, staged.stage_fp32(i), &opts.cfg)?,
        };
        let mut inputs = Tensors::new();
        for t in &stage.inputs {
            let v = tensors.get(t).ok_or_else(|| EngineError::tensor("profiling", t, "missing from the fp32 run"))?;
            let q =
                (mode == Mode::CpuInt8).then(|| int8.get(i).and_then(|s| s.inputs.get(t).copied().flatten())).flatten();
            let v = match q {
                Some(q) => convert(staged, t, q, true, v, &opts.cfg)?,
                None => copy_of(v, t)?,
            };
            inputs.insert(t.clone(), v);
        }
        let samples = self.measure(|| runner.run_with(|n| inputs.get(n)).map(drop))?;
        Ok(stats(&samples))
    }

    /// quantize_in: fp32 -> uint8 of the inputs the int8 model reads as uint8; dequantize_in:
    /// uint8 -> fp32 of inputs an int8 producer writes as uint8 (what an fp32 stage then pays).
    fn transitions(&self, i: usize, int8: &Int8Stages, tensors: &Tensors, has_int8: bool) -> Result<Transitions> {
        let staged = self.staged;
        let stage = &staged.partition.stages[i];
        let mut tr = Transitions::default();
        for t in &stage.inputs {
            if has_int8 {
                if let Some(q) = int8.get(i).and_then(|s| s.inputs.get(t).copied().flatten()) {
                    tr.quantize_in += self.time_conversion(t, q, true, tensors)?;
                }
            }
            let written_u8 = (0..i).find_map(|j| int8.get(j).and_then(|s| s.outputs.get(t).copied().flatten()));
            if let Some(q) = written_u8 {
                tr.dequantize_in += self.time_conversion(t, q, false, tensors)?;
            }
        }
        Ok(tr)
    }

    /// WCET of converting tensor `t` (fp32 value in `tensors`) to or from uint8.
    fn time_conversion(&self, t: &str, q: QParams, to_u8: bool, tensors: &Tensors) -> Result<Time> {
        let (staged, opts) = (self.staged, self.opts);
        let v = tensors.get(t).ok_or_else(|| EngineError::tensor("profiling", t, "missing from the fp32 run"))?;
        let input = if to_u8 { copy_of(v, t)? } else { convert(staged, t, q, true, v, &opts.cfg)? };
        let bytes = conversion_model(staged, t, q, to_u8)?;
        let what = if to_u8 { "quantize" } else { "dequantize" };
        let mut runner = StageRunner::new(&format!("{what} {t}"), Mode::CpuFp32, &bytes, &opts.cfg)?;
        let samples = self.measure_transition(|| runner.run_with(|_| Some(&input)).map(drop))?;
        Ok(wcet(&stats(&samples), opts.margin))
    }
}

impl Profiler<'_> {
    /// WCET of moving `names` to the GPU and back: a CUDA session of Identity nodes, host
    /// tensors in and out. A round trip, so an upper bound on the one-way copy it stands for.
    fn time_gpu_copy(&self, names: &[String], tensors: &Tensors) -> Result<Time> {
        use lalarand_onnx::builder::GraphBuilder;
        use lalarand_onnx::proto::tensor_proto::DataType;
        let (staged, opts) = (self.staged, self.opts);
        let mut b = GraphBuilder::new("copy");
        let mut inputs = Vec::new();
        for (k, n) in names.iter().enumerate() {
            let info =
                staged.types.get(n).ok_or_else(|| EngineError::tensor("profiling", n, "not a stage boundary"))?;
            let dims: Vec<i64> = info.dims.iter().map(|d| d.unwrap_or(1)).collect();
            let (x, y) = (format!("x{k}"), format!("y{k}"));
            b.input(&x, DataType::Float, &dims);
            b.node("Identity", &format!("copy{k}"), &[&x], &[&y], vec![]);
            b.output(&y, DataType::Float, &dims);
            let v = tensors.get(n).ok_or_else(|| EngineError::tensor("profiling", n, "missing from the fp32 run"))?;
            inputs.push((x, copy_of(v, n)?));
        }
        let bytes = lalarand_onnx::encode_model(&b.finish());
        let mut runner = StageRunner::new("(gpu copy)", Mode::Gpu, &bytes, &opts.cfg)?;
        let samples =
            self.measure(|| runner.run_with(|n| inputs.iter().find(|(x, _)| x == n).map(|(_, v)| v)).map(drop))?;
        Ok(wcet(&stats(&samples), opts.margin))
    }
}

/// A private copy of a tensor value named `name` (inputs of timed runs must not alias the
/// reference run), of any element type a stage boundary carries.
fn copy_of(v: &DynValue, name: &str) -> Result<DynValue> {
    use ort::value::{PrimitiveTensorElementType, Tensor};
    fn copy<T: PrimitiveTensorElementType + Clone + std::fmt::Debug + 'static>(
        v: &DynValue,
    ) -> Option<std::result::Result<DynValue, ort::Error>> {
        let (shape, data) = v.try_extract_tensor::<T>().ok()?;
        Some(Tensor::from_array((shape.to_vec(), data.to_vec())).map(|t| t.into_dyn()))
    }
    let copied = copy::<f32>(v)
        .or_else(|| copy::<i64>(v))
        .or_else(|| copy::<i32>(v))
        .or_else(|| copy::<u8>(v))
        .or_else(|| copy::<i8>(v))
        .or_else(|| copy::<bool>(v))
        .or_else(|| copy::<f64>(v));
    match copied {
        Some(r) => r.map_err(|e| EngineError::Ort { context: format!("copying tensor {name:?}"), error: e }),
        None => Err(EngineError::tensor(
            "profiling",
            name,
            format!("its element type ({:?}) cannot cross a stage boundary here", v.dtype()),
        )),
    }
}

/// Converts fp32 `v` (tensor `t`) to uint8 with `q`, untimed.
fn convert(staged: &StagedModel, t: &str, q: QParams, to_u8: bool, v: &DynValue, cfg: &ExecConfig) -> Result<DynValue> {
    let bytes = conversion_model(staged, t, q, to_u8)?;
    let mut r = StageRunner::new("convert", Mode::CpuFp32, &bytes, cfg)?;
    Ok(r.run_with(|_| Some(v))?.pop().expect("one output").1)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_wcet() {
        let s = stats(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!((s.max_us, s.p99_us, s.mean_us, s.samples), (10.0, 10.0, 4.0, 4));
        assert_eq!(wcet(&s, 1.2), us_to_time(12.0));
        let many: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(stats(&many).p99_us, 198.0);
    }

    /// A VM that reports the host's 480 MiB last level: a small model writes twice a core's
    /// caches (66 MiB), a large one twice its working set, never 960 MiB; where the reported
    /// last level is real (32 MiB here) it is twice that, as before.
    #[test]
    fn eviction_follows_the_working_set_not_the_reported_last_level() {
        let vm = CacheSizes { private_bytes: 1 << 20, largest_bytes: 480 << 20 };
        assert_eq!(eviction_bytes(2 << 20, &vm), 66 << 20);
        assert_eq!(eviction_bytes(100 << 20, &vm), 200 << 20);
        assert_eq!(eviction_bytes(1 << 30, &vm), 512 << 20);
        let here = CacheSizes { private_bytes: (1 << 20) + (32 << 10), largest_bytes: 32 << 20 };
        assert_eq!(eviction_bytes(2 << 20, &here), 64 << 20);
        assert_eq!(eviction_bytes(100 << 20, &here), 64 << 20);
        assert_eq!(parse_size("32768K"), Some(32 << 20));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("x"), None);
    }

    /// At least `min` cold runs; then warm ones once the last `stable` cold runs stay within
    /// the tolerance of the max before them; a max that keeps rising stays cold to `max`.
    #[test]
    fn runs_stay_cold_until_their_max_is_stable() {
        let cold = ColdRuns { min: 4, max: 8, stable: 2, tolerance: 0.05 };
        let first_warm = |c: &ColdRuns, samples: &[f64]| (0..=samples.len()).find(|&n| c.enough(&samples[..n]));
        // Flat: warm after the floor.
        assert_eq!(first_warm(&cold, &[10.0; 8]), Some(4));
        // A rise within the tolerance is stable; one above it needs `stable` more cold runs.
        assert_eq!(first_warm(&cold, &[10.0, 10.0, 10.0, 10.4, 10.0, 10.0, 10.0, 10.0]), Some(4));
        assert_eq!(first_warm(&cold, &[10.0, 10.0, 10.0, 11.0, 10.0, 10.0, 10.0, 10.0]), Some(6));
        assert_eq!(first_warm(&cold, &[10.0, 10.0, 11.0, 10.0, 10.0, 10.0, 10.0, 10.0]), Some(5));
        // Rising all along: cold to the cap.
        let rising: Vec<f64> = (0..10).map(|k| 10.0 * 1.1f64.powi(k)).collect();
        assert_eq!(first_warm(&cold, &rising), Some(8));
        // Never fewer than stable + 1 (something before the window to compare with).
        assert_eq!(first_warm(&ColdRuns { min: 1, ..cold }, &[10.0; 8]), Some(3));
        // A floor above the cap: the cap.
        assert_eq!(first_warm(&ColdRuns::new(50, 6), &[1.0; 8]), Some(6));
        assert_eq!(ColdRuns::new(10, 11).describe(), "all");
        assert_eq!(ColdRuns::new(100, 100).describe(), "all");
        assert_eq!(
            ColdRuns::new(10, 100).describe(),
            "the first 11 to 100 (until the last 10 did not raise their max by over 2.0%)"
        );
    }

    /// Every timed run is returned, cold or warm; a stop request ends the measurement.
    #[test]
    fn measure_times_every_run_cold_ones_first() {
        let mut evictor = CacheEvictor::with_capacity(1 << 10);
        let mut calls = 0;
        let cold = Some((ColdRuns::new(3, 20), &mut evictor));
        let samples = measure(2, 20, cold, &|| false, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((samples.len(), calls), (20, 22));
        let samples = measure(0, 5, None, &|| false, || Ok(())).unwrap();
        assert_eq!(samples.len(), 5);
        let asked = std::cell::Cell::new(false);
        let slow = || {
            std::thread::sleep(STOP_POLL / 20);
            Ok(())
        };
        let stopped = measure(0, 1_000, None, &|| asked.replace(true), slow);
        assert!(matches!(stopped, Err(EngineError::Interrupted(_))), "{stopped:?}");
    }

    #[test]
    fn phases_add_up_by_name() {
        let mut p = Phases::new();
        p.end("a");
        p.end("b");
        p.end("a");
        assert_eq!(p.spent.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["a", "b"]);
        assert!(p.to_string().starts_with("0.0 s, a 0.0 s, b 0.0 s"), "{p}");
    }

    #[test]
    fn partial_profiles_go_beside_the_output() {
        assert_eq!(partial_path(Path::new("/x/p.json")), Path::new("/x/p.partial.json"));
    }
}
