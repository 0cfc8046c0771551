//! `lalarand init`: the demo system's files, as a starting point for your own.

use crate::files::{example_files, write_all};
use crate::report::print_json;
use crate::Verdict;
use anyhow::{bail, Context, Result};
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_model::examples::{demo_system, demo_system_cpu_only};
use std::path::PathBuf;

/// Write the built-in example (platform, task set, profiles, allocation) into a folder.
///
/// The files are what `lalarand demo --quick` analyzes; edit them to describe your own system.
/// `lalarand init --out examples --force` regenerates the repository's examples/.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand init --out my-system            (add --cpu-only on a machine without a GPU)\n  lalarand analyze --platform my-system/platform.toml --tasks my-system/taskset.toml \\\n      --allocation my-system/allocation.toml"
)]
pub struct Args {
    /// Folder to write into (created if missing).
    #[arg(long, value_name = "DIR", default_value = "lalarand-example")]
    pub out: PathBuf,
    /// Policy that produces allocation.toml.
    #[arg(long, value_parser = super::policy_parser(), default_value = "lalarand")]
    pub policy: Policy,
    /// A machine without a GPU: two `cpu` resources, `accel` standing in for the accelerator
    /// (`accelerator = true`), and task periods chosen for the cpu times (twice each model's
    /// whole `cpu-fp32` time, so only `cpu-int8` layers make the set schedulable).
    #[arg(long)]
    pub cpu_only: bool,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
    /// Print the written paths as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<Verdict> {
    let system = if args.cpu_only { demo_system_cpu_only() } else { demo_system() };
    let outcome =
        args.policy.allocate(&system, &AllocOptions::default()).with_context(|| format!("policy {}", args.policy))?;
    let files = example_files(&system, &outcome.allocation, args.policy.name());
    if !args.force {
        if let Some((rel, _)) = files.iter().find(|(rel, _)| args.out.join(rel).exists()) {
            bail!(
                "{} already exists; fix: pass --force to replace it, or choose another --out",
                args.out.join(rel).display()
            );
        }
    }
    let written = write_all(&args.out, &files)?;
    if args.json {
        print_json(&serde_json::json!({ "files": written }))?;
    } else {
        for p in &written {
            outln!("wrote {}", p.display())?;
        }
    }
    Ok(Verdict::Done)
}
