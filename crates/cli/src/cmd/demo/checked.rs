//! The `lalarand` allocation the demo runs, checked end to end: every task it places int8
//! layers of runs chained against fp32 on the inputs its model was calibrated on, and the
//! measured cost is held to the budget (`lalarand_engine::end_to_end`).

use super::models::Profiled;
use anyhow::{Context, Result};
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_engine::end_to_end::{allocate_checked, Checked, TaskCheck};
use lalarand_engine::ExecConfig;
use lalarand_model::{Mode, System};

/// `lalarand`'s allocation of `system`, checked and repaired. Only the tasks that can be
/// offered int8 (a known cost, or an assumed one) get a check: the others never run int8.
pub(super) fn lalarand(system: &System, options: &AllocOptions, profiled: &Profiled) -> Result<Checked> {
    let offered = system.with_unknown_int8_costs(options.assume_int8_cost);
    let checks = offered
        .tasks
        .iter()
        .enumerate()
        .map(|(i, task)| {
            if !task.dnn.layers.iter().any(|l| l.mode(Mode::CpuInt8).is_some()) {
                return Ok(None);
            }
            TaskCheck::open(&system.tasks[i], &profiled.models[i], profiled.inputs[i].clone())
                .map(Some)
                .with_context(|| format!("task {:?}: end-to-end int8 check", task.name))
        })
        .collect::<Result<Vec<_>>>()?;
    allocate_checked(system, Policy::Lalarand, options, &checks, &ExecConfig::default())
        .context("policy lalarand, checked end to end")
}
