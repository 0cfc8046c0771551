//! Real inference under the runtime: [`EngineExecutor`] runs each task's stages with one
//! [`Pipeline`] per task, in the modes the allocation gives: the runtime's [`StageExecutor`],
//! for `lalarand run` (every job starts from one fixed synthetic input,
//! [`StageExecutor::run_input`]) and for `lalarand serve` and the Python package (the
//! application's inputs in, the graph outputs out).
//!
//! The int8 stages are the profiled ones: rebuilt from the calibration saved with each task's
//! profile and checked against its digest ([`crate::calibration`]).
//!
//! Inputs are not copied: a job's [`Input`] buffer is handed to ONNX Runtime as a tensor that
//! views it ([`Pipeline::input_shared`]), so an fp32 first stage reads the application's
//! memory in place (0 copies; an int8 first stage quantizes it, which is its `quantize_in`).
//! Outputs are copied once, from ONNX Runtime's memory to the [`HostTensor`]s, on the server's
//! delivery thread.

use crate::calibration::profiled_int8_stages;
use crate::error::{EngineError, Result};
use crate::profile::{sha256_file, synthetic_inputs};
use crate::quant::Int8Stages;
use crate::stage::{gpu_present, ExecConfig};
use crate::staged::{Pipeline, StageTensors, StagedModel};
use crate::tensor::f32_data;
use lalarand_model::{Allocation, Mode, Placement, ResourceKind, System, Task};
use lalarand_runtime::serve::{DataType, HostTensor, Input, InputSpec, Server, ServerBuilder, TensorData, TensorSpec};
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
    /// Batch-1 dims and the input every `lalarand run` job starts from (seeded, synthetic).
    dims: Vec<usize>,
    input: Vec<f32>,
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

    /// The outputs task `task`'s model returns: name, fp32, dims (`None`: a free dim).
    pub fn output_specs(&self, task: usize) -> Vec<TensorSpec> {
        let model = self.tasks[task].pipeline.model();
        model
            .partition
            .graph_outputs
            .iter()
            .map(|name| {
                let dims = model.types.get(name).map(|i| i.dims.iter().map(|d| d.map(|v| v as usize)).collect());
                TensorSpec { name: name.clone(), dtype: DataType::Fp32, dims: dims.unwrap_or_default() }
            })
            .collect()
    }

    /// Task `task`'s pipeline.
    pub fn pipeline(&self, task: usize) -> &Pipeline {
        &self.tasks[task].pipeline
    }
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
        let pipeline = Pipeline::new(staged, &modes, model.int8.as_ref(), &ExecConfig::default())?;
        let dims = staged.input_shape(1);
        let input = synthetic_inputs(staged, 1).pop().expect("one input");
        for _ in 0..WARMUP_RUNS {
            pipeline.run_all(&dims, input.clone())?;
        }
        let spec = InputSpec::single(
            staged.input_name.clone(),
            staged.input_dims.iter().map(|d| d.map(|v| v as usize)).collect(),
        );
        Ok(Self { name: task.name.clone(), modes, pipeline, spec, dims, input })
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

    /// The task's seeded synthetic input, batch 1.
    fn run_input(&self, task: usize) -> Input {
        let t = &self.tasks[task];
        Input::from_vec(t.dims.clone(), t.input.clone()).unwrap_or_else(|e| {
            // The warm-up runs of `new` ran this input; should it not fit anyway, stage 0 fails
            // each job with the shape error.
            tracing::error!("task {task}: the run's input: {e}");
            Input::zeros(t.dims.clone())
        })
    }

    /// A view of the input's memory (no copy, see the module doc), fed to the graph input of
    /// its name (the runtime checked names, datatypes and shapes against [`Self::input_spec`]).
    fn start_job(&self, task: usize, _job: u64, input: &Input) -> Result<StageTensors, StageError> {
        let t = &self.tasks[task];
        let specs = t.spec.tensors.as_deref().unwrap_or_default();
        let [spec] = specs else {
            return Err(StageError(format!("the model takes {} inputs; the engine feeds one", specs.len())));
        };
        let tensor = input.get(&spec.name).ok_or_else(|| StageError(format!("input {:?} is missing", spec.name)))?;
        let TensorData::F32(buffer) = tensor.data() else {
            return Err(StageError(format!("input {:?} is {}, the model takes FP32", spec.name, tensor.dtype())));
        };
        t.pipeline.input_shared(tensor.dims(), buffer.clone()).map_err(|e| StageError(e.to_string()))
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
                let (dims, data) = f32_data(v, name).map_err(|e| StageError(e.to_string()))?;
                Ok(HostTensor { name: name.clone(), dims, data: data.to_vec() })
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
