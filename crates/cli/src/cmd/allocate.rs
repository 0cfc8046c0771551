//! `lalarand allocate`: run one allocation policy and write the allocation it settles on.

use crate::end_to_end;
use crate::files::write_atomic;
use crate::input::SystemArgs;
use crate::report::{print_json, Report};
use crate::Verdict;
use anyhow::{Context, Result};
use indicatif::ProgressBar;
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_engine::end_to_end::{allocate_checked, EndToEnd};
use lalarand_engine::ExecConfig;
use lalarand_model::ExecutionPlan;
use serde::Serialize;
use std::path::PathBuf;

/// Allocate every layer to a processor and precision with a policy; write the allocation.
///
/// The allocation is written even when it is not schedulable (it is the policy's best
/// attempt, useful to inspect); the exit code tells: 0 schedulable, 1 not, 2 bad input.
///
/// A layer whose int8 accuracy cost is not known (`null` in its profile) is not placed in int8
/// unless `--assume-int8-cost` budgets it. With `--calibration TASK=FILE`, the allocation is
/// checked end to end before it is called within budget: each such task's stages chained in
/// their allocated modes against fp32 on those inputs, the measured cost compared with the
/// budget, and int8 stages moved back to fp32 (then allocated again) until it is within
/// (docs/engine.md, "The chosen allocation, checked end to end").
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand allocate --platform examples/platform.toml --tasks examples/taskset.toml \\\n      --policy lalarand --budget 0.5 --out allocation.toml\n  lalarand allocate --tasks taskset.toml --policy lalarand --budget 1 \\\n      --calibration detector=crops.f32 --out allocation.toml\n\nExit codes: 0 schedulable (and, checked end to end, within budget), 1 allocation written but not schedulable or over its budget measured, 2 bad input."
)]
pub struct Args {
    #[command(flatten)]
    pub system: SystemArgs,
    /// Allocation policy.
    #[arg(long, value_parser = super::policy_parser())]
    pub policy: Policy,
    /// Accuracy budget: largest allowed sum of int8 layers' accuracy costs, percentage points.
    #[arg(long, default_value_t = AllocOptions::default().accuracy_budget, value_parser = super::parse_budget, allow_negative_numbers = true)]
    pub budget: f64,
    /// Search-node cap of the exact policy (`optimal`); past it the search reports itself
    /// incomplete.
    #[arg(long, default_value_t = AllocOptions::default().node_limit)]
    pub node_limit: u64,
    /// Budget each layer whose int8 accuracy cost is not known (`null` in its profile) at this
    /// many percentage points. Without it such layers are not placed in int8: an unknown cost
    /// is not a free one.
    #[arg(long, value_name = "PP", value_parser = super::parse_budget, allow_negative_numbers = true)]
    pub assume_int8_cost: Option<f64>,
    /// Check the allocation end to end on these inputs, per task (comma-separated TASK=FILE;
    /// raw little-endian fp32 samples or a CSV dataset, as `lalarand profile --calibration`
    /// reads them). Every task the allocation runs int8 layers of needs its inputs.
    #[arg(long, value_delimiter = ',', value_name = "TASK=FILE", value_parser = super::parse_task_file)]
    pub calibration: Vec<(String, PathBuf)>,
    /// With --calibration: the ONNX models by task name or profile `model` name, comma-separated
    /// NAME=PATH (default: `<profile folder>/<profile model>.onnx`).
    #[arg(long, value_delimiter = ',', value_name = "NAME=MODEL", value_parser = crate::cmd::run::parse_model, requires = "calibration")]
    pub models: Vec<(String, PathBuf)>,
    /// Where to write the allocation TOML (replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct AllocateJson<'a> {
    policy: Policy,
    out: &'a std::path::Path,
    options: AllocOptions,
    /// Analyses the policy ran while searching.
    evaluations: u64,
    /// false only when an exact search stopped at its node limit.
    complete: bool,
    /// The end-to-end check (`--calibration`): measured cost, budget, repairs; `null` without.
    end_to_end: Option<&'a EndToEnd>,
    report: &'a Report,
}

pub fn run(args: Args) -> Result<Verdict> {
    let loaded = args.system.load()?;
    let options = AllocOptions {
        accuracy_budget: args.budget,
        node_limit: args.node_limit,
        assume_int8_cost: args.assume_int8_cost,
        ..AllocOptions::default()
    };
    let checks = if args.calibration.is_empty() {
        None
    } else {
        Some(end_to_end::task_checks(&loaded, &args.system.tasks, &args.models, &args.calibration)?)
    };
    // The exact search can take seconds; a spinner shows it is alive (hidden off a terminal).
    let spinner = ProgressBar::new_spinner().with_message(format!("allocating with {}", args.policy));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let allocated = match &checks {
        Some(checks) => allocate_checked(&loaded, args.policy, &options, checks, &ExecConfig::default())
            .map(|c| (c.outcome, c.system, Some(c.check)))
            .with_context(|| format!("policy {}, checked end to end", args.policy)),
        None => args
            .policy
            .allocate(&loaded, &options)
            .map(|o| (o, loaded.with_unknown_int8_costs(options.assume_int8_cost).into_owned(), None))
            .with_context(|| format!("policy {}", args.policy)),
    };
    spinner.finish_and_clear();
    // `system`: the one allocated, whose int8 costs are the budgeted ones.
    let (outcome, system, check) = allocated?;
    write_atomic(&args.out, &outcome.allocation.to_toml(&system, Some(args.policy.name())))?;
    let plan = ExecutionPlan::new(&system, &outcome.allocation)
        .with_context(|| format!("policy {} produced an invalid allocation (a bug)", args.policy))?;
    let report = Report::new(&system, &outcome.allocation, &plan, &outcome.analysis);
    let within = check.as_ref().is_none_or(|c| c.within_budget);
    if args.json {
        print_json(&AllocateJson {
            policy: args.policy,
            out: &args.out,
            options,
            evaluations: outcome.evaluations,
            complete: outcome.complete,
            end_to_end: check.as_ref(),
            report: &report,
        })?;
    } else {
        outln!(
            "policy {} (accuracy budget {} pp): {} analyses{}",
            args.policy,
            args.budget,
            outcome.evaluations,
            if outcome.complete { "" } else { ", search stopped at its node limit" }
        )?;
        out!("{}", crate::report::render(&report))?;
        if let Some(note) = end_to_end::unknown_cost_note(&loaded, args.assume_int8_cost) {
            outln!("{note}")?;
        }
        match &check {
            Some(check) => out!("{}", end_to_end::render(check))?,
            None if outcome.allocation.int8_layers() > 0 => outln!(
                "note: the {} int8 layers' cost is the sum of per-stage costs, not measured end to end; fix: --calibration TASK=FILE checks it",
                outcome.allocation.int8_layers()
            )?,
            None => {}
        }
        outln!("wrote {}", args.out.display())?;
    }
    Ok(Verdict::of(report.schedulable && within))
}
