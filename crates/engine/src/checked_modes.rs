//! Loads and unloads on a server that checks every admitted mode's int8 end to end
//! (`lalarand serve --calibration` with loads allowed, Python `serve(calibration=...)`): a load
//! is admitted only if the analysis proves the new mode *and* its int8 layers, measured on the
//! running tasks' inputs and the loaded task's, cost at most the budget. One mechanism for the
//! command line's model repository and the Python package, which only name their arguments.

use crate::end_to_end::{check_allocation, TaskCheck};
use crate::mode_change::{self, Rebuilt};
use crate::serving::EngineExecutor;
use crate::staged::StagedModel;
use crate::ExecConfig;
use lalarand_alloc::admission::LoadRequest;
use lalarand_model::{Allocation, Mode, System, Task};
use lalarand_runtime::serve::modes::{ModeChange, ModeChangeError, ModeServer};
use std::collections::HashMap;
use std::sync::Mutex;

/// How a binding names what a refusal's fix asks for.
#[derive(Debug, Clone, Copy)]
pub struct CheckWords {
    /// The loaded task's inputs (`parameters.calibration_path`, `Server.load(calibration=...)`).
    pub inputs: &'static str,
    /// The server's budget (`--budget`, `serve(budget=...)`).
    pub budget: &'static str,
}

/// The budget and each running task's check, by task name.
pub struct CheckedModes {
    budget: f64,
    tasks: Mutex<HashMap<String, TaskCheck>>,
    words: CheckWords,
}

impl CheckedModes {
    /// The checks of the tasks served now (a task without one has no int8 layer to measure,
    /// or its allocation keeps it in fp32).
    pub fn new(budget: f64, tasks: impl IntoIterator<Item = (String, TaskCheck)>, words: CheckWords) -> Self {
        Self { budget, tasks: Mutex::new(tasks.into_iter().collect()), words }
    }

    pub fn budget(&self) -> f64 {
        self.budget
    }

    /// Why a load of `task` without inputs is refused before admission (a bad request, not a
    /// refusal of the mode): its profile offers cpu-int8, so the admitted mode may give it int8
    /// layers that nothing could measure. `None` when it can load without.
    pub fn missing_inputs(&self, task: &Task) -> Option<String> {
        let offers_int8 = task.dnn.layers.iter().any(|l| l.modes[Mode::CpuInt8.index()].is_some());
        offers_int8.then(|| {
            format!(
                "missing, and this server checks int8 end to end while task {:?}'s profile offers cpu-int8; fix: give {} (inputs of the model on the server's machine), or load a profile measured without cpu-int8",
                task.name, self.words.inputs
            )
        })
    }

    /// [`mode_change::load`], with the admitted mode measured before anything changes, `check`
    /// the loaded task's (its model and the user's inputs); kept for later loads once admitted.
    pub fn load(
        &self,
        server: &ModeServer<EngineExecutor>,
        request: LoadRequest,
        staged: StagedModel,
        check: Option<TaskCheck>,
    ) -> Result<(ModeChange, Rebuilt), ModeChangeError> {
        let name = request.task.name.clone();
        let changed = mode_change::load_checked(server, request, staged, |system, alloc| {
            self.admit(system, alloc, check.as_ref(), &name)
        })?;
        if let Some(check) = check {
            self.tasks().insert(name, check);
        }
        Ok(changed)
    }

    /// [`mode_change::unload`], forgetting the task's check.
    pub fn unload(
        &self,
        server: &ModeServer<EngineExecutor>,
        name: &str,
    ) -> Result<(ModeChange, Rebuilt), ModeChangeError> {
        let changed = mode_change::unload(server, name)?;
        self.tasks().remove(name);
        Ok(changed)
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, HashMap<String, TaskCheck>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The admitted mode's measured int8 cost against the budget, `new` being the loaded task
    /// `name`'s check: `Err` in words when over it or not measurable.
    fn admit(&self, system: &System, alloc: &Allocation, new: Option<&TaskCheck>, name: &str) -> Result<(), String> {
        let tasks = self.tasks();
        let checks: Vec<Option<&TaskCheck>> =
            system.tasks.iter().map(|t| if t.name == name { new } else { tasks.get(&t.name) }).collect();
        let words = self.words;
        let check = check_allocation(system, alloc, self.budget, &checks, &ExecConfig::default()).map_err(|e| {
            format!(
                "{e} (this server checks int8 end to end: give {}, inputs of the model on the server's machine)",
                words.inputs
            )
        })?;
        if check.within_budget {
            return Ok(());
        }
        Err(format!(
            "the admitted mode's int8 layers cost {:.3} pp measured end to end (the per-stage sum estimated {:.3}), over the budget of {} pp; fix: load the task with a profile measured without cpu-int8, or serve with a larger {}",
            check.measured_pp, check.estimated_pp, check.budget_pp, words.budget
        ))
    }
}
