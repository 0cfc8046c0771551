//! Real inference under the runtime: [`EngineExecutor`] runs each task's stages with
//! `lalarand-engine`, one [`Pipeline`] per task in the modes the allocation gives.
//!
//! It lives in the CLI (which links the engine anyway) so that `lalarand-runtime` keeps building
//! and testing without ONNX Runtime.

use anyhow::{bail, Context, Result};
use lalarand_engine::profile::{sha256_file, synthetic_inputs};
use lalarand_engine::quant::build_int8;
use lalarand_engine::{ExecConfig, Pipeline, StageTensors, StagedModel};
use lalarand_model::{Allocation, Mode, ResourceKind, System};
use lalarand_onnx::quantize::CalibrationMethod;
use lalarand_runtime::{StageError, StageExecutor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Seeded synthetic samples that calibrate int8 stages (the run measures time, not accuracy).
const CALIBRATION_SAMPLES: usize = 8;
/// Untimed runs of every pipeline before the run starts (session warm-up, converters built).
const WARMUP_RUNS: usize = 3;

/// One task's model, in its allocated modes, and the input every job of it starts from.
struct TaskPipeline {
    pipeline: Pipeline,
    dims: Vec<usize>,
    input: Vec<f32>,
}

/// Runs stage `j` of task `i` as stage `j` of task `i`'s staged model (profile layer `j` is
/// stage `j`: the profiler names layers after the stages).
pub struct EngineExecutor {
    tasks: Vec<TaskPipeline>,
}

/// Where each task's ONNX model is: `models` by task name or by profile `model` name, else
/// `<profile folder>/<profile model>.onnx`. `tasks_file` is the task set file (profile paths are
/// relative to it).
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
                bail!(
                    "task {:?}: no profile file to look for its model beside; fix: --models {}=MODEL.onnx",
                    t.name,
                    t.name
                )
            };
            let profile = base.join(profile);
            Ok(profile.parent().unwrap_or(Path::new("")).join(format!("{}.onnx", t.dnn.model)))
        })
        .collect()
}

impl EngineExecutor {
    /// Loads every task's model, checks it is the file its profile measured (`model_sha256`)
    /// and has the profile's stages, builds its pipeline in the allocated modes and warms it up.
    pub fn new(system: &System, alloc: &Allocation, models: &[PathBuf]) -> Result<Self> {
        for (i, r) in system.platform.resources.iter().enumerate() {
            if r.kind == ResourceKind::Cpu && r.threads > 1 {
                bail!(
                    "resource[{i}] {:?}: threads = {}: the engine executor runs every stage on its worker thread alone; fix: threads = 1 (or --busy)",
                    r.name,
                    r.threads
                );
            }
        }
        // One process loads one ONNX Runtime library, and the GPU build also runs the CPU modes:
        // it must be loaded before any CPU session (docs/engine.md). Without a GPU the gpu
        // stages fail with the engine's NoGpu error when their sessions are built.
        if alloc.tasks.iter().flatten().any(|p| p.mode == Mode::Gpu) && lalarand_engine::stage::gpu_present() {
            lalarand_engine::runtime::environment(lalarand_engine::runtime::Flavor::Gpu)
                .context("the allocation has gpu stages")?;
        }
        let mut tasks = Vec::with_capacity(system.tasks.len());
        for ((task, places), path) in system.tasks.iter().zip(&alloc.tasks).zip(models) {
            let what = || format!("task {:?}: model {}", task.name, path.display());
            if !path.is_file() {
                bail!(
                    "task {:?}: model {}: no such file; fix: regenerate it (lalarand zoo) or give --models {}=MODEL.onnx",
                    task.name,
                    path.display(),
                    task.name
                );
            }
            if let Some(want) = &task.dnn.model_sha256 {
                let have = sha256_file(path).with_context(what)?;
                if &have != want {
                    bail!(
                        "task {:?}: model {} has changed since it was profiled (sha256 {have}, the profile measured {want}); fix: profile it again (lalarand profile), or point --models at the file that was profiled",
                        task.name,
                        path.display()
                    );
                }
            }
            let staged = StagedModel::load(path).with_context(what)?;
            let names = staged.stage_names();
            let layers: Vec<&str> = task.dnn.layers.iter().map(|l| l.name.as_str()).collect();
            if names != layers {
                bail!(
                    "task {:?}: model {} has {} stages, its profile {} layers, or their names differ (first stage {:?}, first layer {:?}); fix: profile this model with lalarand profile",
                    task.name,
                    path.display(),
                    names.len(),
                    layers.len(),
                    names.first(),
                    layers.first()
                );
            }
            let modes: Vec<Mode> = places.iter().map(|p| p.mode).collect();
            let dims = staged.input_shape(1);
            let samples = synthetic_inputs(&staged, CALIBRATION_SAMPLES);
            let int8 = if modes.contains(&Mode::CpuInt8) {
                let cal: Vec<(Vec<usize>, Vec<f32>)> = samples.iter().map(|x| (dims.clone(), x.clone())).collect();
                Some(
                    build_int8(&staged, &cal, CalibrationMethod::Percentile(99.99), &mut || false)
                        .with_context(what)?,
                )
            } else {
                None
            };
            let pipeline = Pipeline::new(&staged, &modes, int8.as_ref(), &ExecConfig::default()).with_context(what)?;
            let input = samples.into_iter().next().expect("CALIBRATION_SAMPLES > 0");
            for _ in 0..WARMUP_RUNS {
                pipeline.run_all(&dims, input.clone()).with_context(|| format!("{}: warm-up run", what()))?;
            }
            tasks.push(TaskPipeline { pipeline, dims, input });
        }
        Ok(Self { tasks })
    }
}

impl StageExecutor for EngineExecutor {
    type Job = StageTensors;

    fn start_job(&self, task: usize, _job: u64) -> StageTensors {
        let t = &self.tasks[task];
        // The shape was checked by the warm-up runs; should it fail anyway, stage 0 reports the
        // missing input tensor and fails the job.
        t.pipeline.input(&t.dims, t.input.clone()).unwrap_or_else(|e| {
            tracing::error!("task {task}: building the input: {e}");
            StageTensors::default()
        })
    }

    fn run_stage(&self, task: usize, stage: usize, _job: u64, job: &mut StageTensors) -> Result<(), StageError> {
        self.tasks[task].pipeline.run_stage(stage, job).map_err(|e| StageError(e.to_string()))
    }

    /// The stage itself, on its worker, in the runtime's warm-up jobs before time 0: the warm-up
    /// runs of `new` ran on the loading thread, and a stage's first runs on its worker still
    /// allocate and fault in memory (measured: a 3 s `demo` run's dispatch latency p99 went from
    /// 1.3 to 1.6 ms to 0.4 to 0.5 ms; docs/runtime.md, "Warm-up").
    fn warm_up(&self, task: usize, stage: usize, job_index: u64, job: &mut StageTensors) -> Result<(), StageError> {
        self.run_stage(task, stage, job_index, job)
    }
}
