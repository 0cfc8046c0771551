//! The demo's periods, chosen from the profiles: the task set on which the vanilla allocation
//! is not proven and lalarand is (with int8 needed, where such periods exist).

use super::models::{Profiled, TASKS};
use super::platform::Here;
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_analysis::Analysis;
use lalarand_experiments::generate::reference_wcet;
use lalarand_model::{time_to_ms, DnnProfile, Placement, Platform, PriorityPolicy, System, Task, TaskSet, Time};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The demo's task set on `here`'s platform, printed with the vanilla allocation's verdict.
pub(super) fn choose(here: &Here, profiled: &Profiled, options: &AllocOptions, models_dir: &Path) -> Result<System> {
    let (platform, profiles) = (&here.platform, &profiled.profiles);
    let (accel_id, vanilla_mode) = (here.accel_id, here.vanilla_mode);
    // Shrinking from twice the summed vanilla WCETs: the first scale at which the vanilla
    // allocation is not proven and lalarand is; from there on, while lalarand stays proven, the
    // first scale at which lalarand without int8 is not proven either, so that the demo shows
    // what both layer-level placement and quantization buy. Without such a scale the first one
    // is kept.
    // The vanilla framework's cost of each model, overheads included, as the sweep's
    // utilization axis charges it.
    let vanilla_place = Placement { mode: vanilla_mode, resource: accel_id };
    let fp32: Time = profiles
        .iter()
        .map(|p| {
            reference_wcet(platform, p, vanilla_place).with_context(|| {
                format!("{}: some stages have no {} timing, so there is no vanilla allocation to compare with (see the warnings above)", p.model, vanilla_mode.name())
            })
        })
        .sum::<Result<Time>>()?;
    let build = |scale: f64| system_at(platform, profiles, fp32 as f64 * scale);
    let spinner = ProgressBar::new_spinner().with_message("choosing periods");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let proven = |policy: Policy, system: &System| -> Result<bool> {
        Ok(policy.allocate(system, options).with_context(|| format!("policy {policy}"))?.schedulable())
    };
    let mut first = None;
    let mut needs_int8 = None;
    let mut scale = 2.0;
    while scale > 0.05 {
        spinner.set_message(format!("choosing periods: {scale:.3} x the summed {} WCETs", vanilla_mode.name()));
        let system = build(scale);
        let vanilla = Policy::GpuOnly.allocate(&system, options).context("policy gpu-only")?;
        if first.is_none() && vanilla.schedulable() {
            scale *= 0.9;
            continue;
        }
        if !proven(Policy::Lalarand, &system)? {
            break;
        }
        let fp32_proven = proven(Policy::LalarandFp32, &system)?;
        let candidate = (scale, system, vanilla);
        if !fp32_proven {
            needs_int8 = Some(candidate);
            break;
        }
        first.get_or_insert(candidate);
        scale *= 0.9;
    }
    spinner.finish_and_clear();
    let Some((scale, system, vanilla)) = needs_int8.or(first) else {
        bail!(
            "no periods found at which the vanilla (gpu-only) allocation fails and lalarand is proven (profiles in {})",
            models_dir.display()
        );
    };
    let ratios: Vec<f64> = TASKS.iter().map(|t| t.2).collect();
    outln!(
        "\ntask set (rate monotonic; periods {:.3} x the summed {} WCETs x {ratios:?}):",
        scale,
        vanilla_mode.name()
    )?;
    for t in &system.tasks {
        outln!("  {:<10} {:<14} period {:.1} ms", t.name, t.dnn.model, time_to_ms(t.period))?;
    }
    outln!(
        "vanilla (gpu-only, every layer {} on {}): {}",
        vanilla_mode.name(),
        system.platform.resources[accel_id].name,
        verdict(&vanilla.analysis)
    )?;
    Ok(system)
}

/// The demo's task set on `platform`, with every period `unit x` its task's ratio.
fn system_at(platform: &Platform, profiles: &[Arc<DnnProfile>], unit: f64) -> System {
    let tasks = TASKS
        .iter()
        .zip(profiles)
        .map(|(&(name, _, ratio), p)| Task::new(name, (unit * ratio).round() as Time, p.clone()))
        .collect();
    System::new(platform.clone(), TaskSet::new(tasks, PriorityPolicy::RateMonotonic))
}

fn verdict(a: &Analysis) -> String {
    if a.schedulable() {
        "proven".into()
    } else {
        format!("not proven ({} of {} tasks unbounded)", a.unschedulable_count(), a.tasks.len())
    }
}
