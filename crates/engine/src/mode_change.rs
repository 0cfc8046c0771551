//! The executor of a server's next mode (a task loaded or unloaded while it serves: the
//! runtime's `ModeServer`, docs/runtime.md "Mode changes").
//!
//! [`EngineExecutor::for_mode`] is the `build` step a change runs before anything changes (a
//! failure here refuses the change): a task that keeps its modes keeps its pipeline (its
//! sessions, converters and warm-up are shared, not rebuilt); a task whose modes changed is
//! rebuilt from the model it already has, and a new task from the model the load brought
//! ([`open_model`] checks it against its profile). A pipeline depends on its stages' modes only,
//! not on the resource that runs them: every session is built with [`crate::ExecConfig`]'s
//! defaults (one thread, the calling worker's; gpu device 0), so a stage moved between two
//! resources of one kind runs the same session on its new worker.
//!
//! [`open_model`]: crate::serving::open_model

use crate::error::{EngineError, Result};
use crate::serving::{int8_stages_for, load_runtime_for, EngineExecutor, TaskModel, TaskPipeline};
use crate::staged::StagedModel;
use lalarand_alloc::admission::LoadRequest;
use lalarand_model::{Allocation, DnnProfile, Mode, System};
use lalarand_runtime::serve::modes::{ModeChange, ModeChangeError, ModeServer};
use std::collections::HashMap;
use std::sync::Arc;

/// What [`EngineExecutor::for_mode`] did with each task of the new mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Tasks whose pipeline was kept (same modes).
    pub kept: Vec<String>,
    /// Running tasks whose modes changed: pipeline rebuilt from their model.
    pub rebuilt: Vec<String>,
    /// Tasks new in this mode: pipeline built from the model given.
    pub added: Vec<String>,
}

impl Rebuilt {
    /// `{"kept": [...], "rebuilt": [...], "added": [...]}`, for change reports.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"kept": self.kept, "rebuilt": self.rebuilt, "added": self.added})
    }
}

impl EngineExecutor {
    /// The executor for the mode `(system, alloc)` a change leads to, sharing this executor's
    /// pipelines where a task's modes did not change. `added` holds the model of every task
    /// `system` has and this executor does not (by task name; [`crate::serving::open_model`]
    /// opens and checks one). The tasks' names identify them across modes.
    pub fn for_mode(
        &self,
        system: &System,
        alloc: &Allocation,
        mut added: HashMap<String, StagedModel>,
    ) -> Result<(Self, Rebuilt)> {
        load_runtime_for(alloc)?;
        let mut report = Rebuilt::default();
        let mut tasks = Vec::with_capacity(system.tasks.len());
        for (task, places) in system.tasks.iter().zip(&alloc.tasks) {
            let modes: Vec<Mode> = places.iter().map(|p| p.mode).collect();
            let running = self.tasks.iter().find(|t| t.name == task.name);
            let staged = match running {
                Some(old) if old.modes == modes => {
                    tasks.push(Arc::clone(old));
                    report.kept.push(task.name.clone());
                    continue;
                }
                Some(old) => {
                    report.rebuilt.push(task.name.clone());
                    old.pipeline.model().clone()
                }
                None => {
                    report.added.push(task.name.clone());
                    added.remove(&task.name).ok_or_else(|| EngineError::Serving {
                        task: task.name.clone(),
                        problem: "a task new in this mode, with no model given".into(),
                        fix: "pass its model to EngineExecutor::for_mode".into(),
                    })?
                }
            };
            let int8 = int8_stages_for(task, places, &staged)?;
            tasks.push(Arc::new(TaskPipeline::build(task, places, TaskModel { staged, int8 })?));
        }
        if let Some(name) = added.keys().next() {
            return Err(EngineError::Serving {
                task: name.clone(),
                problem: "a model was given for a task the new mode does not have".into(),
                fix: "give models only for the tasks the change adds".into(),
            });
        }
        Ok((Self { tasks }, report))
    }

    /// Whether task `task`'s pipeline is `other`'s task `other_task`'s (shared, not rebuilt).
    pub fn shares_pipeline(&self, task: usize, other: &Self, other_task: usize) -> bool {
        Arc::ptr_eq(&self.tasks[task], &other.tasks[other_task])
    }
}

/// The modes of `profile` the engine can serve: `cpu-int8` stages are rebuilt from the int8
/// calibration saved with the profile, so a profile without one offers its fp32 modes only (a
/// load's admission then never picks an int8 stage it could not build). A layer with no other
/// mode keeps its int8 one, so the refusal says why (the accuracy budget, or the missing
/// calibration).
pub fn servable(profile: &DnnProfile) -> DnnProfile {
    let mut p = profile.clone();
    if p.calibration.is_none() {
        for layer in &mut p.layers {
            if layer.modes.iter().enumerate().any(|(m, t)| m != Mode::CpuInt8.index() && t.is_some()) {
                layer.modes[Mode::CpuInt8.index()] = None;
            }
        }
    }
    p
}

/// Loads `request`'s task, whose model is `staged` (opened and checked against the task's
/// profile by [`crate::serving::open_model`]), into a running server: admission control, then
/// the new mode's executor ([`EngineExecutor::for_mode`], before anything changes), then the
/// drain-then-switch. What the CLI's model repository and the Python package both call.
pub fn load(
    server: &ModeServer<EngineExecutor>,
    request: LoadRequest,
    staged: StagedModel,
) -> std::result::Result<(ModeChange, Rebuilt), ModeChangeError> {
    load_checked(server, request, staged, |_, _| Ok(()))
}

/// [`load`], with `check` asked about the admitted (system, allocation) before anything changes
/// (the end-to-end int8 check, [`crate::checked_modes`]): an `Err` refuses the load with its
/// words ([`ModeChangeError::Refused`]).
pub fn load_checked(
    server: &ModeServer<EngineExecutor>,
    request: LoadRequest,
    staged: StagedModel,
    check: impl FnOnce(&lalarand_model::System, &lalarand_model::Allocation) -> std::result::Result<(), String>,
) -> std::result::Result<(ModeChange, Rebuilt), ModeChangeError> {
    let name = request.task.name.clone();
    let mut rebuilt = Rebuilt::default();
    let change = server.load_task_checked(request, check, |system, alloc, running| {
        let (exec, r) = running.for_mode(system, alloc, HashMap::from([(name, staged)])).map_err(|e| e.to_string())?;
        rebuilt = r;
        Ok(exec)
    })?;
    Ok((change, rebuilt))
}

/// Unloads task `name` from a running server (the remaining tasks keep their pipelines).
pub fn unload(
    server: &ModeServer<EngineExecutor>,
    name: &str,
) -> std::result::Result<(ModeChange, Rebuilt), ModeChangeError> {
    let mut rebuilt = Rebuilt::default();
    let change = server.unload_task(name, |system, alloc, running| {
        let (exec, r) = running.for_mode(system, alloc, HashMap::new()).map_err(|e| e.to_string())?;
        rebuilt = r;
        Ok(exec)
    })?;
    Ok((change, rebuilt))
}
