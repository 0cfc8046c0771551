//! `lalarand demo --quick`: the built-in example end to end, offline, in about a second.
//!
//! Allocates the built-in example (four DNN tasks from the LaLaRAND artifact's profiles on one
//! GPU and one CPU) with every policy, shows which policies make it schedulable, simulates the
//! `lalarand` allocation, and writes its files and Gantt chart.

use super::policies::{allocate_all, policy_table, PolicyRow};
use crate::cmd::simulate::{run_simulation, SimJson};
use crate::files::{example_files, write_all};
use crate::report::{print_json, Report};
use crate::Verdict;
use anyhow::{Context, Result};
use indicatif::ProgressBar;
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_model::examples::demo_system;
use lalarand_model::ExecutionPlan;
use lalarand_sim::SimConfig;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Serialize)]
struct DemoJson {
    policies: Vec<PolicyRow>,
    lalarand: Report,
    simulation: SimJson,
    files: Vec<PathBuf>,
}

/// The quick demo, its files in `out`; `json`: the result as JSON on stdout.
pub(super) fn run(out: &Path, json: bool) -> Result<Verdict> {
    let system = demo_system();
    let options = AllocOptions::default();
    let (rows, outcome) = allocate_all(&system, &options)?;
    let plan = ExecutionPlan::new(&system, &outcome.allocation).context("lalarand produced an invalid allocation")?;
    let report = Report::new(&system, &outcome.allocation, &plan, &outcome.analysis);
    let mut files = write_all(out, &example_files(&system, &outcome.allocation, Policy::Lalarand.name()))?;

    let spinner = ProgressBar::new_spinner().with_message("simulating the lalarand allocation");
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let gantt = out.join("gantt.svg");
    let simulation = run_simulation(&system, &plan, &SimConfig::default(), Some(&gantt))?;
    spinner.finish_and_clear();
    files.push(gantt);

    if json {
        print_json(&DemoJson { policies: rows, lalarand: report, simulation, files })?;
        return Ok(Verdict::Done);
    }
    outln!(
        "demo --quick: {} DNN tasks on {} resources; every policy, accuracy budget {} pp\n",
        system.tasks.len(),
        system.platform.resources.len(),
        options.accuracy_budget
    )?;
    outln!("{}\n", policy_table(&rows, system.tasks.len()))?;
    outln!("the lalarand allocation, task by task:\n{}", crate::report::render(&report))?;
    outln!("simulated at worst-case execution times, next to the bounds:\n{}", simulation.render())?;
    outln!("files (analyze them with `lalarand analyze`, see docs/formats.md):")?;
    for f in &files {
        outln!("  {}", f.display())?;
    }
    Ok(Verdict::Done)
}
