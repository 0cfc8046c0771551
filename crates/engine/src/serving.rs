//! Real inference under the runtime: [`EngineExecutor`] runs each task's stages with one
//! [`Pipeline`] per task, in the modes the allocation gives: the runtime's [`StageExecutor`],
//! for `lalarand run` (every job starts from one fixed synthetic input,
//! [`StageExecutor::run_input`]) and for `lalarand serve` and the Python package (the
//! application's inputs in, the graph outputs out).
//!
//! The int8 stages are the profiled ones: rebuilt from the calibration saved with each task's
//! profile and checked against its digest ([`crate::calibration`]).
//!
//! A task takes every graph input of its model by name, in its declared datatype
//! ([`EngineExecutor::input_spec`]), and returns every graph output.
//!
//! fp32 inputs are not copied: a job's buffer is handed to ONNX Runtime as a tensor that
//! views it ([`Pipeline::add_shared`]), so an fp32 first stage reads the application's
//! memory in place (0 copies; an int8 first stage quantizes it, which is its `quantize_in`).
//! Integer and bool inputs are copied once into ONNX Runtime's memory ([`Pipeline::add_bytes`]).
//! Outputs are copied once, from ONNX Runtime's memory to the [`HostTensor`]s, on the server's
//! delivery thread; an integer or bool output keeps its datatype ([`HostTensor::raw`]), its
//! fp32 values beside it.

use crate::calibration::profiled_int8_stages;
use crate::error::{EngineError, Result};
use crate::profile::{sha256_file, synthetic_inputs};
use crate::quant::Int8Stages;
use crate::stage::{gpu_present, ExecConfig};
use crate::staged::{Pipeline, StageTensors, StagedModel};
use crate::tensor::{elem, f32_values};
use lalarand_model::{Allocation, Mode, Placement, ResourceKind, System, Task};
use lalarand_runtime::serve::{
    DataType, HostTensor, Input, InputSpec, Server, ServerBuilder, Tensor, TensorData, TensorSpec,
};
use lalarand_runtime::{StageError, StageExecutor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Untimed runs of every pipeline when it is built (sessions warmed up, converters built).
const WARMUP_RUNS: usize = 3;

/// A task's model and its int8 stages, for [`EngineExecutor::from_models`].
#[derive(Debug, Clone)]
pub struct TaskModel {
    pub staged: StagedModel,
    /// Needed when the allocation runs a stage of the task in `cpu-int8`.
    pub int8: Option<Int8Stages>,
}

/// One task's model, in its allocated modes. Shared (`Arc`) with the executor of a later mode
/// in which the task keeps its modes ([`EngineExecutor::for_mode`]).
pub(crate) struct TaskPipeline {
    pub(crate) name: String,
    pub(crate) modes: Vec<Mode>,
    pub(crate) pipeline: Pipeline,
    spec: InputSpec,
    /// The input every `lalarand run` job starts from: the sample input seeded and synthetic,
    /// batch 1, the others zeros (as [`StagedModel::feed`]).
    input: Input,
}

/// Runs stage `j` of task `i` as stage `j` of task `i`'s staged model (profile layer `j` is
/// stage `j`: the profiler names layers after the stages).
pub struct EngineExecutor {
    pub(crate) tasks: Vec<Arc<TaskPipeline>>,
}

impl std::fmt::Debug for EngineExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let specs: Vec<&InputSpec> = self.tasks.iter().map(|t| &t.spec).collect();
        f.debug_struct("EngineExecutor").field("inputs", &specs).finish()
    }
}

/// Where each task's ONNX model is: `models` by task name or by profile `model` name, else
/// `<profile folder>/<profile model>.onnx`. `tasks_file` is the task set file (profile paths
/// are relative to it).
pub fn model_paths(system: &System, tasks_file: &Path, models: &HashMap<String, PathBuf>) -> Result<Vec<PathBuf>> {
    let base = tasks_file.parent().unwrap_or(Path::new(""));
    system
        .tasks
        .iter()
        .map(|t| {
            if let Some(p) = models.get(&t.name).or_else(|| models.get(&t.dnn.model)) {
                return Ok(p.clone());
            }
            let Some(profile) = &t.profile_path else {
                return Err(EngineError::Serving {
                    task: t.name.clone(),
                    problem: "no profile file to look for its model beside".into(),
                    fix: format!("--models {}=MODEL.onnx", t.name),
                });
            };
            let profile = base.join(profile);
            Ok(profile.parent().unwrap_or(Path::new("")).join(format!("{}.onnx", t.dnn.model)))
        })
        .collect()
}

fn serving_err(task: &str, problem: String, fix: impl Into<String>) -> EngineError {
    EngineError::Serving { task: task.into(), problem, fix: fix.into() }
}

impl EngineExecutor {
    /// Loads every task's model (`models[i]` for task `i`), checks it is the file its profile
    /// measured (`model_sha256`) and has the profile's stages, rebuilds the profiled int8
    /// stages where the allocation has any, builds its pipeline in the allocated modes and
    /// warms it up.
    pub fn new(system: &System, alloc: &Allocation, models: &[PathBuf]) -> Result<Self> {
        if models.len() != system.tasks.len() {
            return Err(serving_err(
                "(all)",
                format!("{} model paths for {} tasks", models.len(), system.tasks.len()),
                "give one model per task",
            ));
        }
        let mut loaded = Vec::with_capacity(models.len());
        for ((task, places), path) in system.tasks.iter().zip(&alloc.tasks).zip(models) {
            let staged = open_model(task, path).map_err(|problem| {
                let fix = match &problem {
                    ModelProblem::Missing { .. } => {
                        format!("regenerate it (lalarand zoo) or give --models {}=MODEL.onnx", task.name)
                    }
                    ModelProblem::Digest { .. } => {
                        "profile it again (lalarand profile), or point --models at the file that was profiled".into()
                    }
                    ModelProblem::Stages { .. } => "profile this model with lalarand profile".into(),
                    ModelProblem::Unreadable(_) => String::new(),
                };
                match problem {
                    ModelProblem::Unreadable(e) => e,
                    other => serving_err(&task.name, other.to_string(), fix),
                }
            })?;
            let int8 = int8_stages_for(task, places, &staged)?;
            loaded.push(TaskModel { staged, int8 });
        }
        Self::from_models(system, alloc, loaded)
    }

    /// Builds the pipelines from models already loaded (`models[i]` for task `i`), with the
    /// int8 stages given (no profile hash checks: the caller chose them), and warms them up.
    pub fn from_models(system: &System, alloc: &Allocation, models: Vec<TaskModel>) -> Result<Self> {
        for (i, r) in system.platform.resources.iter().enumerate() {
            if r.kind == ResourceKind::Cpu && r.threads > 1 {
                return Err(serving_err(
                    "(all)",
                    format!(
                        "resource[{i}] {:?}: threads = {}: the engine executor runs every stage on its worker thread alone",
                        r.name, r.threads
                    ),
                    "threads = 1 (or busy-waiting stages)",
                ));
            }
        }
        load_runtime_for(alloc)?;
        let mut tasks = Vec::with_capacity(models.len());
        for ((task, places), model) in system.tasks.iter().zip(&alloc.tasks).zip(models) {
            tasks.push(Arc::new(TaskPipeline::build(task, places, model)?));
        }
        Ok(Self { tasks })
    }

    /// The outputs task `task`'s model returns: name, datatype (the model's; fp32 for a type the
    /// protocol has no name for here, e.g. double, converted), dims (`None`: a free dim).
    pub fn output_specs(&self, task: usize) -> Vec<TensorSpec> {
        let model = self.tasks[task].pipeline.model();
        model
            .partition
            .graph_outputs
            .iter()
            .map(|name| {
                let dims = model.types.get(name).map(|i| i.dims.iter().map(|d| d.map(|v| v as usize)).collect());
                let dtype = model.types.get(name).and_then(|i| data_type(i.elem_type)).unwrap_or(DataType::Fp32);
                TensorSpec { name: name.clone(), dtype, dims: dims.unwrap_or_default() }
            })
            .collect()
    }

    /// Task `task`'s pipeline.
    pub fn pipeline(&self, task: usize) -> &Pipeline {
        &self.tasks[task].pipeline
    }
}

/// Output `name`'s value on the host, in its own datatype where the protocol has one (int64,
/// int32, uint8, bool), else as fp32 values.
fn host_tensor(name: &str, v: &ort::value::DynValue) -> Result<HostTensor> {
    fn raw<T: ort::value::PrimitiveTensorElementType + Copy + std::fmt::Debug, const N: usize>(
        v: &ort::value::DynValue,
        name: &str,
        bytes: impl Fn(T) -> [u8; N],
    ) -> Result<(Vec<usize>, Vec<u8>)> {
        let (shape, data) =
            v.try_extract_tensor::<T>().map_err(|e| EngineError::tensor("serving", name, e.to_string()))?;
        Ok((shape.iter().map(|&d| d as usize).collect(), data.iter().flat_map(|x| bytes(*x)).collect()))
    }
    let elem_type = crate::tensor::info_of(v).map_or(elem::FLOAT, |i| i.elem_type);
    let (dims, bytes) = match data_type(elem_type) {
        Some(DataType::Int64) => raw::<i64, 8>(v, name, i64::to_le_bytes)?,
        Some(DataType::Int32) => raw::<i32, 4>(v, name, i32::to_le_bytes)?,
        Some(DataType::Uint8) => raw::<u8, 1>(v, name, |x| [x])?,
        Some(DataType::Bool) => raw::<bool, 1>(v, name, |x| [u8::from(x)])?,
        _ => {
            let (dims, data) = f32_values(v, name)?;
            return Ok(HostTensor::f32(name, dims, data));
        }
    };
    Ok(HostTensor::typed(name, dims, data_type(elem_type).expect("matched above"), bytes))
}

/// The protocol's datatype of an ONNX element type, where it has one.
fn data_type(elem_type: i32) -> Option<DataType> {
    match elem_type {
        elem::FLOAT => Some(DataType::Fp32),
        elem::INT64 => Some(DataType::Int64),
        elem::INT32 => Some(DataType::Int32),
        elem::UINT8 => Some(DataType::Uint8),
        elem::BOOL => Some(DataType::Bool),
        _ => None,
    }
}

/// Every graph input of `staged`, by name, with its declared datatype and dims.
fn input_spec(task: &str, staged: &StagedModel) -> Result<InputSpec> {
    let tensors = staged
        .inputs
        .iter()
        .map(|i| {
            let dtype = data_type(i.elem_type).ok_or_else(|| {
                serving_err(
                    task,
                    format!(
                        "input {:?} of {} is of {}; served inputs are FP32, INT64, INT32, UINT8 or BOOL",
                        i.name,
                        staged.source.display(),
                        elem::name(i.elem_type)
                    ),
                    format!("export input {:?} as float, int64, int32, uint8 or bool", i.name),
                )
            })?;
            Ok(TensorSpec { name: i.name.clone(), dtype, dims: i.dims.iter().map(|d| d.map(|v| v as usize)).collect() })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(InputSpec { tensors: Some(tensors) })
}

/// The input of every `lalarand run` job: `sample` (fp32, `dims`) for the sample input,
/// converted to its datatype, zeros for the others. One fp32 input stays unnamed.
fn run_input(task: &str, staged: &StagedModel, spec: &InputSpec, dims: &[usize], sample: Vec<f32>) -> Result<Input> {
    let specs = spec.tensors.as_deref().unwrap_or_default();
    let bad = |e: String| serving_err(task, format!("the run's input: {e}"), "report this as a bug");
    if let [only] = specs {
        if only.dtype == DataType::Fp32 {
            return Input::from_vec(dims.to_vec(), sample).map_err(bad);
        }
    }
    let value = crate::tensor::typed_value(staged.sample_input().elem_type, dims, sample)?;
    let tensors = specs
        .iter()
        .map(|s| {
            if s.name != staged.input_name {
                return Ok(Tensor::zeros(s.name.clone(), s.dtype, s.example_dims()));
            }
            let data = match s.dtype {
                DataType::Fp32 => TensorData::F32(std::sync::Arc::new(f32_values(&value, &s.name)?.1)),
                d => TensorData::Bytes(d, std::sync::Arc::new(value_bytes(&value, &s.name)?)),
            };
            Tensor::new(s.name.clone(), dims.to_vec(), data).map_err(bad)
        })
        .collect::<Result<Vec<_>>>()?;
    Input::named(tensors).map_err(bad)
}

/// The little-endian bytes of an integer or bool value.
fn value_bytes(v: &ort::value::DynValue, name: &str) -> Result<Vec<u8>> {
    fn le<T: ort::value::PrimitiveTensorElementType + Copy + std::fmt::Debug, const N: usize>(
        v: &ort::value::DynValue,
        f: fn(T) -> [u8; N],
    ) -> Option<Vec<u8>> {
        Some(v.try_extract_tensor::<T>().ok()?.1.iter().flat_map(|&x| f(x)).collect())
    }
    le::<i64, 8>(v, i64::to_le_bytes)
        .or_else(|| le::<i32, 4>(v, i32::to_le_bytes))
        .or_else(|| le::<u8, 1>(v, |x| [x]))
        .or_else(|| le::<bool, 1>(v, |x| [u8::from(x)]))
        .ok_or_else(|| EngineError::tensor("the run's input", name, "not an integer or bool tensor"))
}

/// Why a model file cannot serve a task with its profile. `Display` says what is wrong; the
/// fix depends on how the caller named the model and the profile (a flag, a request field, a
/// keyword argument), so callers add it.
#[derive(Debug, thiserror::Error)]
pub enum ModelProblem {
    #[error("model {}: no such file", path.display())]
    Missing { path: PathBuf },
    /// The profile recorded another model's sha256 (`model_sha256`).
    #[error("model {} has changed since it was profiled (sha256 {have}, the profile measured {want})", path.display())]
    Digest { path: PathBuf, have: String, want: String },
    /// The model's stages are not the profile's layers (count or names).
    #[error(
        "model {} has {stages} stages, its profile {layers} layers, or their names differ (first stage {first_stage:?}, first layer {first_layer:?})",
        path.display()
    )]
    Stages { path: PathBuf, stages: usize, layers: usize, first_stage: Option<String>, first_layer: Option<String> },
    /// Not a readable ONNX model, or one the engine cannot partition.
    #[error(transparent)]
    Unreadable(EngineError),
}

/// Opens `path` as task `task`'s model: the file its profile measured (`model_sha256`, where
/// the profile records it), cut into the profile's layers (count and names, in order).
pub fn open_model(task: &Task, path: &Path) -> std::result::Result<StagedModel, ModelProblem> {
    if !path.is_file() {
        return Err(ModelProblem::Missing { path: path.into() });
    }
    if let Some(want) = &task.dnn.model_sha256 {
        let have = sha256_file(path).map_err(ModelProblem::Unreadable)?;
        if &have != want {
            return Err(ModelProblem::Digest { path: path.into(), have, want: want.clone() });
        }
    }
    let staged = StagedModel::load_for_profile(path, &task.dnn).map_err(ModelProblem::Unreadable)?;
    let names = staged.stage_names();
    if names.iter().copied().ne(task.dnn.layers.iter().map(|l| l.name.as_str())) {
        return Err(ModelProblem::Stages {
            path: path.into(),
            stages: names.len(),
            layers: task.dnn.layers.len(),
            first_stage: names.first().map(|s| s.to_string()),
            first_layer: task.dnn.layers.first().map(|l| l.name.clone()),
        });
    }
    Ok(staged)
}

/// The profiled int8 stages, where `places` runs any stage in `cpu-int8`.
pub(crate) fn int8_stages_for(task: &Task, places: &[Placement], staged: &StagedModel) -> Result<Option<Int8Stages>> {
    if places.iter().any(|p| p.mode == Mode::CpuInt8) {
        Ok(Some(profiled_int8_stages(staged, &task.dnn, &task.name)?))
    } else {
        Ok(None)
    }
}

/// One process loads one ONNX Runtime library, and the GPU build also runs the CPU modes: it
/// must be loaded before any CPU session (docs/engine.md). Without a GPU the gpu stages fail
/// with the engine's NoGpu error when their sessions are built.
pub(crate) fn load_runtime_for(alloc: &Allocation) -> Result<()> {
    if alloc.tasks.iter().flatten().any(|p| p.mode == Mode::Gpu) && gpu_present() {
        crate::runtime::environment(crate::runtime::Flavor::Gpu)?;
    }
    Ok(())
}

impl TaskPipeline {
    /// Task `task`'s pipeline in the modes of `places`, warmed up.
    pub(crate) fn build(task: &Task, places: &[Placement], model: TaskModel) -> Result<Self> {
        let staged = &model.staged;
        if places.len() != staged.stage_count() {
            return Err(serving_err(
                &task.name,
                format!(
                    "the allocation places {} layers, {} has {} stages",
                    places.len(),
                    staged.source.display(),
                    staged.stage_count()
                ),
                "allocate the task set whose profiles were made from these models",
            ));
        }
        let modes: Vec<Mode> = places.iter().map(|p| p.mode).collect();
        if modes.contains(&Mode::CpuInt8) && model.int8.is_none() {
            return Err(serving_err(
                &task.name,
                "the allocation has cpu-int8 stages but no int8 stages were given".into(),
                "pass the profiled int8 stages (EngineExecutor::new rebuilds them from the profile)",
            ));
        }
        let spec = input_spec(&task.name, staged)?;
        let pipeline = Pipeline::new(staged, &modes, model.int8.as_ref(), &ExecConfig::default())?;
        let dims = staged.input_shape(1);
        let sample = synthetic_inputs(staged, 1).pop().expect("one input");
        for _ in 0..WARMUP_RUNS {
            pipeline.run_all(&dims, sample.clone())?;
        }
        let input = run_input(&task.name, staged, &spec, &dims, sample)?;
        Ok(Self { name: task.name.clone(), modes, pipeline, spec, input })
    }
}

/// A server builder for `system` under `alloc` with the models at `models` (one per task,
/// see [`model_paths`]): [`EngineExecutor::new`] then [`Server::builder`]. Configure the
/// tasks and settings on the builder, then `start()`.
pub fn server_builder(
    system: &System,
    alloc: &Allocation,
    models: &[PathBuf],
) -> Result<ServerBuilder<EngineExecutor>> {
    Ok(Server::builder(system, alloc, EngineExecutor::new(system, alloc, models)?))
}

impl StageExecutor for EngineExecutor {
    type Job = StageTensors;

    fn input_spec(&self, task: usize) -> InputSpec {
        self.tasks[task].spec.clone()
    }

    /// The task's seeded synthetic input, batch 1 (the model's other inputs zeros).
    fn run_input(&self, task: usize) -> Input {
        self.tasks[task].input.clone()
    }

    /// Every graph input from the tensor of its name (the runtime checked names, datatypes and
    /// shapes against [`Self::input_spec`]): an fp32 one as a view of its memory (no copy, see
    /// the module doc), another datatype copied once.
    fn start_job(&self, task: usize, _job: u64, input: &Input) -> Result<StageTensors, StageError> {
        let t = &self.tasks[task];
        let err = |e: EngineError| StageError(e.to_string());
        let mut held = StageTensors::default();
        for spec in t.spec.tensors.as_deref().unwrap_or_default() {
            let tensor =
                input.get(&spec.name).ok_or_else(|| StageError(format!("input {:?} is missing", spec.name)))?;
            match tensor.data() {
                TensorData::F32(buffer) => t.pipeline.add_shared(&mut held, &spec.name, tensor.dims(), buffer.clone()),
                TensorData::Bytes(..) => t.pipeline.add_bytes(&mut held, &spec.name, tensor.dims(), tensor.bytes()),
            }
            .map_err(err)?;
        }
        t.pipeline.check_fed(&held).map_err(err)?;
        Ok(held)
    }

    fn run_stage(&self, task: usize, stage: usize, _job: u64, job: &mut StageTensors) -> Result<(), StageError> {
        self.tasks[task].pipeline.run_stage(stage, job).map_err(|e| StageError(e.to_string()))
    }

    /// Every graph output, copied once to the host.
    fn outputs(&self, task: usize, job: StageTensors) -> Result<Vec<HostTensor>, StageError> {
        let model = self.tasks[task].pipeline.model();
        model
            .partition
            .graph_outputs
            .iter()
            .map(|name| {
                let v = job
                    .f32()
                    .get(name)
                    .ok_or_else(|| StageError(format!("the last stage did not produce the output {name:?}")))?;
                host_tensor(name, v).map_err(|e| StageError(e.to_string()))
            })
            .collect()
    }

    /// The stage itself, on its worker, in the runtime's warm-up jobs before time 0: the warm-up
    /// runs of `new` ran on the loading thread, and a stage's first runs on its worker still
    /// allocate and fault in memory (measured: a 3 s `demo` run's dispatch latency p99 went from
    /// 1.3 to 1.6 ms to 0.4 to 0.5 ms; docs/runtime.md, "Warm-up").
    fn warm_up(&self, task: usize, stage: usize, job: u64, state: &mut StageTensors) -> Result<(), StageError> {
        self.run_stage(task, stage, job, state)
    }
}
