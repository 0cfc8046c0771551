//! `lalarand allocate`: run one allocation policy and write the allocation it settles on.

use crate::files::write_atomic;
use crate::input::SystemArgs;
use crate::report::{print_json, Report};
use crate::Verdict;
use anyhow::{Context, Result};
use indicatif::ProgressBar;
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_model::ExecutionPlan;
use serde::Serialize;
use std::path::PathBuf;

/// Allocate every layer to a processor and precision with a policy; write the allocation.
///
/// The allocation is written even when it is not schedulable (it is the policy's best
/// attempt, useful to inspect); the exit code tells: 0 schedulable, 1 not, 2 bad input.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand allocate --platform examples/platform.toml --tasks examples/taskset.toml \\\n      --policy lalarand --budget 0.5 --out allocation.toml\n\nExit codes: 0 schedulable, 1 allocation written but not schedulable, 2 bad input."
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
    report: &'a Report,
}

pub fn run(args: Args) -> Result<Verdict> {
    let system = args.system.load()?;
    let options = AllocOptions { accuracy_budget: args.budget, node_limit: args.node_limit, ..AllocOptions::default() };
    // The exact search can take seconds; a spinner shows it is alive (hidden off a terminal).
    let spinner = ProgressBar::new_spinner().with_message(format!("allocating with {}", args.policy));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let outcome = args.policy.allocate(&system, &options).with_context(|| format!("policy {}", args.policy));
    spinner.finish_and_clear();
    let outcome = outcome?;
    write_atomic(&args.out, &outcome.allocation.to_toml(&system, Some(args.policy.name())))?;
    let plan = ExecutionPlan::new(&system, &outcome.allocation)
        .with_context(|| format!("policy {} produced an invalid allocation (a bug)", args.policy))?;
    let report = Report::new(&system, &outcome.allocation, &plan, &outcome.analysis);
    if args.json {
        print_json(&AllocateJson {
            policy: args.policy,
            out: &args.out,
            options,
            evaluations: outcome.evaluations,
            complete: outcome.complete,
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
        if report.int8_layers_unknown_cost > 0 {
            outln!(
                "note: {} int8 layers have no measured accuracy cost; the {} pp budget counted them as 0",
                report.int8_layers_unknown_cost,
                args.budget
            )?;
        }
        outln!("wrote {}", args.out.display())?;
    }
    Ok(Verdict::of(report.schedulable))
}
