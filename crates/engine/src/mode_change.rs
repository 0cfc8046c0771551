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
use lalarand_model::{Allocation, Mode, System};
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
