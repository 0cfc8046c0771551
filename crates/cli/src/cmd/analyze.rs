//! `lalarand analyze`: prove (or fail to prove) every deadline of an allocation.

use crate::input::{load_allocation, SystemArgs};
use crate::report::{print_json, Report};
use crate::Verdict;
use anyhow::Result;
use lalarand_analysis::analyze;
use lalarand_model::ExecutionPlan;
use std::path::PathBuf;

/// Response-time analysis of an allocation: per task bound, deadline, slack and verdict.
///
/// Exit code 0 if every task is proven schedulable, 1 if some task is not, 2 on bad input.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand analyze --platform examples/platform.toml --tasks examples/taskset.toml \\\n      --allocation examples/allocation.toml\n\nExit codes: 0 all tasks schedulable, 1 some task not proven schedulable, 2 bad input."
)]
pub struct Args {
    #[command(flatten)]
    pub system: SystemArgs,
    /// Allocation TOML (one mode@resource per layer), e.g. from `lalarand allocate`.
    #[arg(long, value_name = "FILE")]
    pub allocation: PathBuf,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<Verdict> {
    let system = args.system.load()?;
    let alloc = load_allocation(&args.allocation, &system)?;
    let plan = ExecutionPlan::new(&system, &alloc)?;
    let analysis = analyze(&plan);
    let report = Report::new(&system, &alloc, &plan, &analysis);
    if args.json {
        print_json(&report)?;
    } else {
        out!("{}", crate::report::render(&report))?;
    }
    Ok(Verdict::of(report.schedulable))
}
