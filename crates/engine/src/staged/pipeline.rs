//! A pipeline that runs a staged model's stage models in sequence, each in its own session and
//! mode, (de)quantizing the tensors that cross between fp32 and int8 stages.

use super::model::StagedModel;
use crate::error::{EngineError, Result};
use crate::int8_stages::{Int8Stages, Repr};
use crate::stage::{ExecConfig, StageRunner, Tensors};
use lalarand_model::Mode;
use lalarand_onnx::quantize::QParams;
use ort::value::{DynValue, DynValueRef, TensorRef};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A stage of a pipeline, with the representation its boundary tensors take.
#[derive(Debug)]
struct PipelineStage {
    /// One session per stage; the lock lets any thread run it (one at a time, as a resource does).
    runner: Mutex<StageRunner>,
    name: String,
    inputs: Vec<(String, Repr)>,
    outputs: HashMap<String, Repr>,
}

/// A (de)quantizer session and the parameters it was built with.
type Converter = (QParams, Arc<Mutex<StageRunner>>);

/// All stages of a model, each in its own session and mode. Tensors crossing between an fp32
/// and an int8 stage are (de)quantized on the way.
///
/// `Send + Sync`: [`Pipeline::run_stage`] runs one stage on the calling thread, so the stages
/// of one job can run on different threads (the runtime's workers) while other jobs' stages
/// run elsewhere. Each stage's session sits behind its own lock; [`Pipeline::run_all`] is the
/// same steps in sequence.
#[derive(Debug)]
pub struct Pipeline {
    stages: Vec<PipelineStage>,
    output_name: String,
    model: StagedModel,
    cfg: ExecConfig,
    /// (De)quantizer sessions by (tensor, towards uint8), built on first use.
    converters: Mutex<HashMap<(String, bool), Converter>>,
    last_times: Mutex<Vec<Duration>>,
}

/// The tensors of one job in flight, owned, by representation: fp32 values (and the integer
/// and bool tensors of the model, which are never quantized), and the uint8 (NHWC) values
/// int8 stages exchange. Made by [`Pipeline::input`], advanced by
/// [`Pipeline::run_stage`]; it moves between threads with its job (`Send`), without copies.
#[derive(Default)]
pub struct StageTensors {
    f32: Tensors,
    u8: Tensors,
    /// fp32 tensors that view memory shared with the application ([`Pipeline::input_shared`]):
    /// ONNX Runtime reads them in place. Declared before `keep`, so dropped before it.
    views: HashMap<String, DynValueRef<'static>>,
    /// Keeps the memory `views` read alive.
    keep: Vec<Arc<dyn std::any::Any + Send + Sync>>,
}

impl StageTensors {
    /// The fp32 tensor `name`, owned or a view.
    fn f32_get(&self, name: &str) -> Option<&DynValue> {
        self.f32.get(name).or_else(|| self.views.get(name).map(|v| &**v))
    }

    /// The fp32 tensors (after the last stage, the graph output among them).
    pub fn f32(&self) -> &Tensors {
        &self.f32
    }

    /// The uint8 tensors handed between int8 stages.
    pub fn u8(&self) -> &Tensors {
        &self.u8
    }

    pub fn into_f32(self) -> Tensors {
        self.f32
    }
}

impl std::fmt::Debug for StageTensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f32: Vec<&String> = self.f32.keys().collect();
        let mut u8: Vec<&String> = self.u8.keys().collect();
        f32.sort();
        u8.sort();
        f.debug_struct("StageTensors").field("f32", &f32).field("u8", &u8).finish()
    }
}

/// Locks a mutex; a panic in another holder (a stage the runtime caught) does not poison it
/// for the jobs after.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pipeline {
    /// Builds stage `i` in `modes[i]`; int8 stages come from `int8`.
    pub fn new(staged: &StagedModel, modes: &[Mode], int8: Option<&Int8Stages>, cfg: &ExecConfig) -> Result<Self> {
        if modes.len() != staged.stage_count() {
            return Err(EngineError::tensor(
                "building a pipeline",
                "(modes)",
                format!("{} modes for {} stages", modes.len(), staged.stage_count()),
            ));
        }
        let mut stages = Vec::with_capacity(modes.len());
        for (i, (stage, &mode)) in staged.partition.stages.iter().zip(modes).enumerate() {
            let (runner, inputs, outputs) = match mode {
                Mode::CpuInt8 => {
                    let q = int8.and_then(|q| q.stages.get(i)).ok_or_else(|| EngineError::Unsupported {
                        stage: stage.name.clone(),
                        mode: mode.to_string(),
                        problem: "no int8 model of this stage (quantization was not run)".into(),
                    })?;
                    let q = q.as_ref().map_err(|e| EngineError::Unsupported {
                        stage: stage.name.clone(),
                        mode: mode.to_string(),
                        problem: format!("quantization failed: {e}"),
                    })?;
                    (
                        StageRunner::new(&stage.name, mode, &q.bytes, cfg)?,
                        stage.inputs.iter().map(|t| (t.clone(), q.inputs.get(t).copied().flatten())).collect(),
                        q.outputs.clone(),
                    )
                }
                Mode::CpuFp32 | Mode::Gpu => (
                    StageRunner::new(&stage.name, mode, staged.stage_fp32(i), cfg)?,
                    stage.inputs.iter().map(|t| (t.clone(), None)).collect(),
                    stage.outputs.iter().map(|t| (t.clone(), None)).collect(),
                ),
            };
            stages.push(PipelineStage { runner: Mutex::new(runner), name: stage.name.clone(), inputs, outputs });
        }
        Ok(Self {
            stages,
            output_name: staged.output_name.clone(),
            model: staged.clone(),
            cfg: cfg.clone(),
            converters: Mutex::new(HashMap::new()),
            last_times: Mutex::new(vec![Duration::ZERO; modes.len()]),
        })
    }

    pub fn stage_names(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.name.as_str()).collect()
    }

    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    /// The staged model this pipeline runs.
    pub fn model(&self) -> &StagedModel {
        &self.model
    }

    /// Converts `name` to representation `want` if it is held only in the other one.
    fn ensure(&self, held: &mut StageTensors, name: &str, want: Repr) -> Result<()> {
        let (have_it, to_u8) = match want {
            None => (held.f32_get(name).is_some(), false),
            Some(_) => (held.u8.contains_key(name), true),
        };
        if have_it {
            return Ok(());
        }
        let key = (name.to_string(), to_u8);
        let runner = {
            let mut converters = lock(&self.converters);
            // fp32 -> uint8 uses the parameters the consumer wants; uint8 -> fp32 those it was written with.
            let q = match want {
                Some(q) => q,
                None => match converters.get(&key) {
                    Some((q, _)) => *q,
                    None => self.u8_params(name).ok_or_else(|| {
                        EngineError::tensor("running the pipeline", name, "held as uint8 with unknown parameters")
                    })?,
                },
            };
            if converters.get(&key).is_none_or(|(cq, _)| *cq != q) {
                let bytes = self.model.conversion_model(name, q, to_u8)?;
                let what = if to_u8 { "quantize" } else { "dequantize" };
                let runner = StageRunner::new(&format!("{what} {name}"), Mode::CpuFp32, &bytes, &self.cfg)?;
                converters.insert(key.clone(), (q, Arc::new(Mutex::new(runner))));
            }
            converters.get(&key).expect("just made").1.clone()
        };
        let src = if to_u8 { held.f32_get(name) } else { held.u8.get(name) }
            .ok_or_else(|| EngineError::tensor("running the pipeline", name, "not produced by any earlier stage"))?;
        let out = lock(&runner).run_with(|_| Some(src))?.pop().expect("one output").1;
        let to = if to_u8 { &mut held.u8 } else { &mut held.f32 };
        to.insert(name.to_string(), out);
        Ok(())
    }

    /// How long each stage's session ran when it last ran (conversions excluded).
    pub fn last_stage_times(&self) -> Vec<Duration> {
        lock(&self.last_times).clone()
    }

    /// Parameters with which an earlier stage wrote `name` as uint8.
    fn u8_params(&self, name: &str) -> Option<QParams> {
        self.stages.iter().find_map(|s| s.outputs.get(name).copied().flatten())
    }

    /// The tensors of a job whose sample input is `input` (fp32, shape `dims`; the model's
    /// other inputs fixed: [`StagedModel::feed`]), ready for stage 0.
    pub fn input(&self, dims: &[usize], input: Vec<f32>) -> Result<StageTensors> {
        Ok(StageTensors { f32: self.model.feed(dims, input)?, ..StageTensors::default() })
    }

    /// The tensors of a job whose sample input is the fp32 memory `buffer` (shape `dims`; the
    /// model's other inputs fixed, [`StagedModel::companions`]), without copying it: see
    /// [`Self::add_shared`].
    pub fn input_shared<B>(&self, dims: &[usize], buffer: Arc<B>) -> Result<StageTensors>
    where
        B: ?Sized + AsRef<[f32]> + Send + Sync + 'static,
    {
        self.model.check_input(dims, "pipeline input")?;
        let mut held =
            StageTensors { f32: self.model.companions(dims.first().copied().unwrap_or(1))?, ..Default::default() };
        self.add_shared(&mut held, &self.model.input_name.clone(), dims, buffer)?;
        Ok(held)
    }

    /// Feeds the fp32 graph input `name` from `buffer` (shape `dims`) without copying it:
    /// ONNX Runtime reads it in place, and `held` keeps `buffer` alive until it is dropped.
    /// `buffer` must not be written to meanwhile.
    pub fn add_shared<B>(&self, held: &mut StageTensors, name: &str, dims: &[usize], buffer: Arc<B>) -> Result<()>
    where
        B: ?Sized + AsRef<[f32]> + Send + Sync + 'static,
    {
        let input = self.graph_input(name, dims)?;
        if !input.is_float() {
            return Err(EngineError::tensor(
                "pipeline input",
                name,
                format!("given fp32 values, the model declares {}", crate::tensor::elem::name(input.elem_type)),
            ));
        }
        let data: &[f32] = (*buffer).as_ref();
        if data.len() != dims.iter().product::<usize>() {
            return Err(EngineError::tensor(
                "pipeline input",
                name,
                format!("{} values for shape {dims:?}", data.len()),
            ));
        }
        // SAFETY: the slice lives as long as `buffer`, which `held` owns (`keep`) and drops
        // after the view (`views` is declared, so dropped, first); an `Arc`'s contents do not
        // move, and shared memory is only read.
        let data: &'static [f32] = unsafe { std::slice::from_raw_parts(data.as_ptr(), data.len()) };
        let view = TensorRef::from_array_view((dims.to_vec(), data))
            .map_err(|e| EngineError::tensor("pipeline input", name, e.to_string()))?
            .into_dyn();
        held.f32.remove(name);
        held.views.insert(name.to_string(), view);
        held.keep.push(Arc::new(buffer));
        Ok(())
    }

    /// Feeds graph input `name` the little-endian bytes of its declared element type (one copy
    /// into ONNX Runtime's memory).
    pub fn add_bytes(&self, held: &mut StageTensors, name: &str, dims: &[usize], bytes: &[u8]) -> Result<()> {
        let input = self.graph_input(name, dims)?;
        let value = crate::tensor::value_from_bytes(input.elem_type, dims, bytes)
            .map_err(|e| EngineError::tensor("pipeline input", name, e.to_string()))?;
        held.views.remove(name);
        held.f32.insert(name.to_string(), value);
        Ok(())
    }

    /// Graph input `name`, checked to take shape `dims`.
    fn graph_input(&self, name: &str, dims: &[usize]) -> Result<&super::model::ModelInput> {
        let input = self.model.graph_input(name).ok_or_else(|| {
            let known: Vec<&str> = self.model.inputs.iter().map(|i| i.name.as_str()).collect();
            EngineError::tensor(
                "pipeline input",
                name,
                format!("the model has no such input (inputs: {})", known.join(", ")),
            )
        })?;
        let fits = dims.len() == input.dims.len()
            && dims.iter().zip(&input.dims).all(|(&d, e)| e.is_none_or(|e| e as usize == d));
        if !fits {
            let want: Vec<String> = input.dims.iter().map(|d| d.map_or("batch".into(), |v| v.to_string())).collect();
            return Err(EngineError::tensor(
                "pipeline input",
                name,
                format!(
                    "shape {dims:?} does not fit the input [{}] of {}",
                    want.join(", "),
                    self.model.source.display()
                ),
            ));
        }
        Ok(input)
    }

    /// Checks that every graph input is fed (before stage 0 of a job built with
    /// [`Self::add_shared`] / [`Self::add_bytes`]).
    pub fn check_fed(&self, held: &StageTensors) -> Result<()> {
        match self.model.inputs.iter().find(|i| held.f32_get(&i.name).is_none()) {
            Some(i) => Err(EngineError::tensor("pipeline input", &i.name, "not given; fix: give every graph input")),
            None => Ok(()),
        }
    }

    /// Runs stage `i` on the calling thread: converts the inputs it reads to the representation
    /// it wants (quantize / dequantize, the profile's `quantize_in` / `dequantize_in`), runs its
    /// session and adds what it produces to `held`. The last stage also returns the graph
    /// outputs to fp32 (the profile's `output.dequantize_out`). Stages of one job must run in
    /// order; different stages may run on different threads at the same time.
    pub fn run_stage(&self, i: usize, held: &mut StageTensors) -> Result<()> {
        let st = self.stages.get(i).ok_or_else(|| {
            EngineError::tensor(
                "running the pipeline",
                "(stage)",
                format!("stage {i} does not exist ({} stages)", self.stages.len()),
            )
        })?;
        for (name, repr) in &st.inputs {
            self.ensure(held, name, *repr)?;
        }
        let mut runner = lock(&st.runner);
        let started = Instant::now();
        let outs = runner.run_with(|n| match st.inputs.iter().find(|(t, _)| t == n).and_then(|(_, r)| *r) {
            Some(_) => held.u8.get(n),
            None => held.f32_get(n),
        })?;
        let took = started.elapsed();
        drop(runner);
        lock(&self.last_times)[i] = took;
        for (name, v) in outs {
            match st.outputs.get(&name).copied().flatten() {
                Some(_) => held.u8.insert(name, v),
                None => held.f32.insert(name, v),
            };
        }
        if i + 1 == self.stages.len() {
            for out in &self.model.partition.graph_outputs {
                self.ensure(held, out, None)?;
            }
        }
        Ok(())
    }

    /// Runs all stages on an fp32 input; returns every tensor in fp32 (graph output included).
    /// The same steps as [`Pipeline::input`] and [`Pipeline::run_stage`] for every stage.
    pub fn run_all(&self, dims: &[usize], input: Vec<f32>) -> Result<Tensors> {
        let mut held = self.input(dims, input)?;
        for i in 0..self.stages.len() {
            self.run_stage(i, &mut held)?;
        }
        Ok(held.f32)
    }

    /// The graph output's shape and values after the last stage.
    pub fn output(&self, held: &StageTensors) -> Result<(Vec<usize>, Vec<f32>)> {
        let v = held.f32.get(&self.output_name).ok_or_else(|| {
            EngineError::tensor("running the pipeline", &self.output_name, "the last stage did not produce it")
        })?;
        crate::tensor::f32_values(v, &self.output_name)
    }

    /// Runs all stages and returns the graph output's shape and values.
    pub fn run(&self, dims: &[usize], input: Vec<f32>) -> Result<(Vec<usize>, Vec<f32>)> {
        let mut held = self.input(dims, input)?;
        for i in 0..self.stages.len() {
            self.run_stage(i, &mut held)?;
        }
        self.output(&held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_input_is_read_in_place() {
        let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mnist_resnet.onnx");
        let staged = StagedModel::load(&model).unwrap();
        let modes = vec![Mode::CpuFp32; staged.stage_count()];
        let pipeline = Pipeline::new(&staged, &modes, None, &ExecConfig::default()).unwrap();
        let dims = staged.input_shape(1);
        let buffer: Arc<Vec<f32>> = Arc::new((0..784).map(|i| (i % 7) as f32 / 7.0).collect());
        let mut held = pipeline.input_shared(&dims, buffer.clone()).unwrap();
        let view = held.f32_get(&staged.input_name).unwrap();
        let (_, data) = crate::tensor::f32_data(view, "input").unwrap();
        assert_eq!(data.as_ptr(), buffer.as_ptr(), "ONNX Runtime reads the buffer itself");
        for i in 0..staged.stage_count() {
            pipeline.run_stage(i, &mut held).unwrap();
        }
        assert_eq!(pipeline.output(&held).unwrap(), pipeline.run(&dims, buffer.to_vec()).unwrap());
        assert_eq!(Arc::strong_count(&buffer), 2, "the job keeps the buffer alive");
        drop(held);
        assert_eq!(Arc::strong_count(&buffer), 1, "and lets it go with the job");
    }

    #[test]
    fn pipeline_and_tensors_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Pipeline>();
        send::<StageTensors>();
    }
}
