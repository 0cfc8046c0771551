//! The end-to-end int8 check of an allocation, bound to the command line: each task's model and
//! inputs from the flags, and the check's lines for the text output. The check itself is the
//! engine's (`lalarand_engine::end_to_end`).

use anyhow::{bail, Context, Result};
use lalarand_engine::end_to_end::{EndToEnd, TaskCheck};
use lalarand_model::{Int8CostKind, System};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One check per task: the tasks named in `calibration` (`TASK=FILE`: inputs as `lalarand
/// profile --calibration` reads them) with their models (`models` by task or profile model
/// name, else beside the profile); `None` for the others.
pub fn task_checks(
    system: &System,
    tasks_file: &Path,
    models: &[(String, PathBuf)],
    calibration: &[(String, PathBuf)],
) -> Result<Vec<Option<TaskCheck>>> {
    let names: Vec<&str> = system.tasks.iter().map(|t| t.name.as_str()).collect();
    if let Some((bad, _)) = calibration.iter().find(|(n, _)| !names.contains(&n.as_str())) {
        bail!(
            "--calibration {bad}=...: no task named {bad:?} (tasks: {}); fix: name a task of --tasks",
            names.join(", ")
        );
    }
    let models: HashMap<String, PathBuf> = models.iter().cloned().collect();
    let paths = lalarand_engine::serving::model_paths(system, tasks_file, &models)?;
    system
        .tasks
        .iter()
        .zip(&paths)
        .map(|(task, model)| {
            let Some((_, inputs)) = calibration.iter().find(|(n, _)| *n == task.name) else { return Ok(None) };
            if !inputs.is_file() {
                bail!("--calibration {}={}: no such file", task.name, inputs.display());
            }
            TaskCheck::open_file(task, model, inputs)
                .map(Some)
                .with_context(|| format!("task {:?}: end-to-end check with {}", task.name, model.display()))
        })
        .collect()
}

/// The check in words: the measured cost next to the budget and the estimate, per task, and
/// every repair.
pub fn render(check: &EndToEnd) -> String {
    let mut out = format!(
        "end to end: measured {:.3} pp against the budget of {} pp ({}; the per-stage sum estimated {:.3} pp)\n",
        check.measured_pp,
        check.budget_pp,
        if check.within_budget { "within" } else { "OVER" },
        check.estimated_pp
    );
    for t in check.tasks.iter().filter(|t| t.int8_layers > 0) {
        out += &format!(
            "  {}: {} int8 layers, measured {:.3} pp ({}, chained vs fp32 on {} inputs), estimated {:.3} pp\n",
            t.task,
            t.int8_layers,
            t.measured_pp,
            measure_name(t.kind),
            t.inputs,
            t.estimated_pp
        );
    }
    for (k, r) in check.repairs.iter().enumerate() {
        let moved: Vec<String> = r.moved_to_fp32.iter().map(|(t, l, c)| format!("{t}/{l} ({c:.3} pp)")).collect();
        out += &format!(
            "  repair {}: measured {:.3} pp, over the budget; moved to fp32 and allocated again: {}\n",
            k + 1,
            r.measured_pp,
            moved.join(", ")
        );
    }
    out
}

/// What a task's measured cost is, in words.
fn measure_name(kind: Int8CostKind) -> &'static str {
    match kind {
        Int8CostKind::Top1Drop | Int8CostKind::Top1Disagreement => "top-1 disagreement",
        Int8CostKind::Distortion => "distortion, 100 x (1 - cosine)",
    }
}

/// What became of the layers of unknown int8 cost, where `system` has any.
pub fn unknown_cost_note(system: &System, assume: Option<f64>) -> Option<String> {
    let n: usize = system.tasks.iter().map(|t| t.dnn.int8_cost_unknown_layers().count()).sum();
    (n > 0).then(|| match assume {
        None => format!(
            "note: {n} layers have no measured int8 accuracy cost and were not offered int8; fix: profile with --calibration (your inputs) or --dataset to measure it, or --assume-int8-cost PP to budget it"
        ),
        Some(pp) => format!("note: {n} layers have no measured int8 accuracy cost; budgeted at {pp} pp each (--assume-int8-cost)"),
    })
}
