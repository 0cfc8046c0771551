//! `lalarand experiment schedulability`: the paper's Fig. 8-style sweep.

use crate::report::print_json;
use crate::Verdict;
use anyhow::Result;
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_experiments::{parse_utilizations, run_schedulability, SweepConfig};
use lalarand_model::Platform;
use std::path::PathBuf;

/// Share of random task sets each policy makes schedulable, per utilization.
///
/// Random task sets from the artifact's DNN profiles at each total (all-GPU) utilization,
/// allocated by every policy; writes schedulability.{csv,svg,json} and summary.txt, and prints
/// the summary next to the paper's headline numbers.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand experiment schedulability --tasks 4 --sets 100 --utilizations 0.1:2.0:0.1 \\\n      --out out/schedulability\n\nExit codes: 0 done, 2 bad settings."
)]
pub struct Args {
    /// Tasks per generated set.
    #[arg(long, default_value_t = SweepConfig::default().tasks)]
    pub tasks: usize,
    /// Task sets per utilization point (every policy sees the same sets).
    #[arg(long, default_value_t = SweepConfig::default().sets_per_point)]
    pub sets: usize,
    /// Total all-GPU utilizations: start:end:step (inclusive) or a comma list.
    #[arg(long, default_value = "0.1:2.0:0.1")]
    pub utilizations: String,
    /// Policies to compare (comma-separated) [default: every policy but optimal].
    #[arg(long, value_delimiter = ',', value_parser = super::super::policy_parser())]
    pub policies: Vec<Policy>,
    /// Also run the exact branch and bound (slow; capped by --node-limit per set).
    #[arg(long)]
    pub optimal: bool,
    /// Search-node cap of the exact search, per set.
    #[arg(long, default_value_t = AllocOptions::default().node_limit)]
    pub node_limit: u64,
    /// Accuracy budget handed to every policy, percentage points.
    #[arg(long, default_value_t = AllocOptions::default().accuracy_budget, value_parser = super::super::parse_budget, allow_negative_numbers = true)]
    pub budget: f64,
    /// Random release offsets instead of synchronous releases.
    #[arg(long)]
    pub offsets: bool,
    /// Platform TOML [default: one gpu and one cpu].
    #[arg(long, value_name = "FILE")]
    pub platform: Option<PathBuf>,
    #[arg(long, default_value_t = SweepConfig::default().seed)]
    pub seed: u64,
    /// Folder for the CSV, SVG, JSON and summary (created if missing).
    #[arg(long, value_name = "DIR", default_value = "out/schedulability")]
    pub out: PathBuf,
    /// Print the full result (settings, points, rows, summary) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<Verdict> {
    let defaults = SweepConfig::default();
    let cfg = SweepConfig {
        tasks: args.tasks,
        sets_per_point: args.sets,
        utilizations: parse_utilizations(&args.utilizations)?,
        policies: if args.policies.is_empty() { defaults.policies.clone() } else { args.policies.clone() },
        optimal: args.optimal,
        options: AllocOptions { accuracy_budget: args.budget, node_limit: args.node_limit, ..AllocOptions::default() },
        platform: match &args.platform {
            Some(p) => Platform::load(p)?,
            None => Platform::default_cpu_gpu(),
        },
        random_offsets: args.offsets,
        seed: args.seed,
        ..defaults
    };
    let result = run_schedulability(&cfg, true)?;
    let written = result.write_all(&args.out)?;
    if args.json {
        print_json(&serde_json::from_str::<serde_json::Value>(&result.to_json())?)?;
    } else {
        out!("{}", result.summary())?;
        outln!("\nwall time {:.1} s; wrote:", result.wall_seconds)?;
        for p in &written {
            outln!("  {}", p.display())?;
        }
    }
    Ok(Verdict::Done)
}
