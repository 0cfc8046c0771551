//! The profiler: times every stage in every mode on its inputs from one fp32 run, with the
//! int8 stages calibrated, built and checked first, then the transitions between modes.

use super::cache::{eviction_bytes, CacheEvictor, CacheSizes};
use super::cold_runs::ColdRuns;
use super::layer_sources::layer_sources;
use super::measure::measure;
use super::options::{ProfileOptions, LABEL_FREE_SAMPLES};
use super::phases::Phases;
use super::stats::{stats, wcet};
use super::working_set::stage_working_sets;
use crate::accuracy;
use crate::error::{EngineError, Result};
use crate::quant::{calibrate_until, check_stages_until, quantize_stages_until, Int8Stages};
use crate::stage::{pin_current_thread, ExecConfig, StageRunner, Tensors};
use crate::staged::{Pipeline, StagedModel};
use lalarand_model::{DnnProfile, LayerProfile, Mode, ModeTiming, OutputTransitions, Time, TimingStats, Transitions};
use lalarand_onnx::quantize::{CalibrationMethod, QParams};
use ort::value::DynValue;
use std::collections::BTreeSet;

/// Profiling state; `layers` grows stage by stage so that an interrupted run keeps them.
pub(crate) struct Profiler<'a> {
    staged: &'a StagedModel,
    opts: &'a ProfileOptions,
    sha: String,
    pub(crate) layers: Vec<LayerProfile>,
    output: OutputTransitions,
    pub(crate) skipped: Vec<String>,
    /// gpu was asked for but cannot run (see `skipped`).
    pub(crate) no_gpu: bool,
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
    pub(crate) grouping: Option<lalarand_model::StageGrouping>,
}

impl<'a> Profiler<'a> {
    pub(crate) fn new(staged: &'a StagedModel, opts: &'a ProfileOptions, sha: String) -> Self {
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

    pub(crate) fn profile(&self, partial: Option<&str>) -> DnnProfile {
        let (flavor, lib) = crate::onnxruntime::loaded().map_or(("none".into(), String::new()), |(f, p)| {
            (format!("{f:?}").to_lowercase(), p.display().to_string())
        });
        let mut source = format!(
            "lalarand profile: onnxruntime {} ({flavor}, {lib}), threads={}, cores={:?}, {} runs after {} warm-up, {}, batch 1, cpu: {}",
            crate::onnxruntime::ORT_VERSION,
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

    pub(crate) fn run(&mut self, inputs: &[Vec<f32>]) -> Result<()> {
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
        let prequantized: Vec<usize> =
            (0..staged.stage_count()).filter(|&i| staged.prequantized_stage(i).is_some()).collect();
        if let (Some(what), true) = (&staged.prequantized, modes.contains(&Mode::CpuInt8) && !prequantized.is_empty()) {
            let layers = format!("{} of {} layers", prequantized.len(), staged.stage_count());
            tracing::warn!(
                "cpu-int8 left out of {layers}: the model is already quantized ({what}); its int8 ops run in the fp32 modes as they are (each layer's int8 note says so)"
            );
            self.skipped.push(format!("({layers}): cpu-int8: the model is already quantized ({what})"));
        }

        // Every boundary tensor of one fp32 run: the inputs each stage is timed with.
        self.check_stop_before("the fp32 reference run")?;
        let fp32_modes = vec![Mode::CpuFp32; staged.stage_count()];
        let mut phases = Phases::new();
        let reference = Pipeline::new(staged, &fp32_modes, None, cfg)?;
        let tensors = reference.run_all(&dims, first.clone())?;
        phases.end("fp32 reference");

        let int8 = if modes.contains(&Mode::CpuInt8) {
            // Calibration batches: up to 32 samples stacked where the batch is symbolic; where it
            // is fixed, each input already fills the model's batch and is a batch of its own.
            let fixed_batch = staged.input_dims.first().copied().flatten().is_some();
            let per_batch = if fixed_batch { 1 } else { 32 };
            let batches: Vec<(Vec<usize>, Vec<f32>)> = inputs
                .chunks(per_batch)
                .map(|c| {
                    let mut d = dims.clone();
                    if !fixed_batch {
                        d[0] = c.len();
                    }
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
            // A layer that runs an already-quantized model's own int8 ops has no cpu-int8 mode:
            // its note says why (above), and the mode is left out once, not per layer.
            let quantized_already = prequantized.contains(&i);
            for &mode in modes.iter().filter(|m| !(quantized_already && **m == Mode::CpuInt8)) {
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
            self.output.copy_out = self.time_gpu_copy(&staged.partition.graph_outputs, &tensors)?;
        }
        // Every graph output the last int8 stage writes as uint8 is dequantized, one after another.
        self.output.dequantize_out = 0;
        if let Some(q) = int8.stages.last().and_then(|s| s.as_ref().ok()) {
            for out in &staged.partition.graph_outputs {
                if let Some(qp) = q.outputs.get(out).copied().flatten() {
                    self.output.dequantize_out += self.time_conversion(out, qp, false, &tensors)?;
                }
            }
        }
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
                crate::onnxruntime::ORT_VERSION,
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
        let bytes = staged.conversion_model(t, q, to_u8)?;
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
            let ty = DataType::try_from(info.elem_type).unwrap_or(DataType::Float);
            b.input(&x, ty, &dims);
            b.node("Identity", &format!("copy{k}"), &[&x], &[&y], vec![]);
            b.output(&y, ty, &dims);
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
    let bytes = staged.conversion_model(t, q, to_u8)?;
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
