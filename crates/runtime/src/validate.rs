//! Checks that a (system, allocation, settings) can run here, before any thread starts.

use crate::config::{RunConfig, RunHorizon, MIN_PERIOD};
use crate::error::RuntimeError;
use lalarand_analysis::Analysis;
use lalarand_model::{time_to_us, ResourceKind, System};
use std::collections::HashMap;

/// Resources and tasks the machine and the clock can serve; `cores` is the machine's.
pub(crate) fn check_system(system: &System, cores: &[usize]) -> Result<(), RuntimeError> {
    let mut owner: HashMap<usize, usize> = HashMap::new();
    for (index, r) in system.platform.resources.iter().enumerate() {
        let err = |problem: String, fix: &str| RuntimeError::Resource {
            index,
            name: r.name.clone(),
            problem,
            fix: fix.into(),
        };
        if r.kind != ResourceKind::Cpu {
            continue;
        }
        if r.cores.is_empty() {
            return Err(err(
                "a cpu resource with no cores: its worker would float over the whole machine".into(),
                &format!("give it cores in the platform file, e.g. cores = [{}]", cores.first().copied().unwrap_or(0)),
            ));
        }
        if let Some(bad) = r.cores.iter().find(|c| !cores.contains(c)) {
            return Err(err(
                format!("core {bad} does not exist or is not allowed to this process (allowed: {cores:?})"),
                "use cores from the allowed list",
            ));
        }
        for &c in &r.cores {
            if let Some(other) = owner.insert(c, index) {
                tracing::warn!(
                    "core {c} is shared by resource[{other}] and resource[{index}]: their stages may delay each other"
                );
            }
        }
    }
    for (index, t) in system.tasks.iter().enumerate() {
        if t.period < MIN_PERIOD {
            return Err(RuntimeError::Task {
                index,
                name: t.name.clone(),
                problem: format!(
                    "period {} us is shorter than the {} us the runtime can time",
                    time_to_us(t.period),
                    time_to_us(MIN_PERIOD)
                ),
                fix: "use a period of at least 0.1 ms".into(),
            });
        }
    }
    Ok(())
}

pub(crate) fn check_config(config: &RunConfig) -> Result<(), RuntimeError> {
    let bad = |field: &str, problem: &str| Err(RuntimeError::Config { field: field.into(), problem: problem.into() });
    match config.horizon {
        RunHorizon::Duration(0) => return bad("horizon", "a run of 0 ns releases nothing"),
        RunHorizon::Jobs(0) => return bad("horizon", "0 jobs per task releases nothing"),
        _ => {}
    }
    if config.max_backlog == 0 {
        return bad("max_backlog", "must be at least 1 (use the skip policy to queue nothing)");
    }
    Ok(())
}

/// Refuses an allocation without a bound for every task, unless `force`.
pub(crate) fn check_analysis(system: &System, analysis: &Analysis, force: bool) -> Result<(), RuntimeError> {
    if force || analysis.schedulable() {
        return Ok(());
    }
    let tasks = analysis
        .tasks
        .iter()
        .zip(&system.tasks)
        .filter(|(b, _)| !b.schedulable())
        .map(|(_, t)| format!("{:?}", t.name))
        .collect();
    Err(RuntimeError::Unschedulable { tasks })
}
