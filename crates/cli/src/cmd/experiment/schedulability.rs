//! `lalarand experiment schedulability`: the paper's Fig. 8-style sweep.

use crate::report::print_json;
use crate::Verdict;
use anyhow::{bail, Context, Result};
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_experiments::{check_profile, parse_utilizations, run_schedulability, ProfileLibrary, SweepConfig};
use lalarand_model::{DnnProfile, Platform};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Share of random task sets each policy makes schedulable, per utilization.
///
/// Random task sets at each total utilization of the vanilla all-accelerator framework, drawn
/// from the LaLaRAND artifact's DNN profiles or from --profiles, allocated by every policy;
/// writes schedulability.{csv,svg,json} and summary.txt, and prints the summary next to the
/// paper's headline numbers.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  lalarand experiment schedulability --tasks 4 --sets 100 --utilizations 0.1:2.0:0.1 \\\n      --out out/schedulability\n  lalarand experiment schedulability --profiles measured/*.json --platform platform.toml \\\n      --out out/measured\n\nExit codes: 0 done, 2 bad settings or input."
)]
pub struct Args {
    /// Tasks per generated set.
    #[arg(long, default_value_t = SweepConfig::default().tasks)]
    pub tasks: usize,
    /// Task sets per utilization point (every policy sees the same sets).
    #[arg(long, default_value_t = SweepConfig::default().sets_per_point)]
    pub sets: usize,
    /// Total utilizations of the all-accelerator (all-GPU) framework: start:end:step (inclusive)
    /// or a comma list.
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
    /// Platform TOML [default: one gpu and one cpu]. Its accelerator (the gpu, or the cpu marked
    /// `accelerator = true`) is where the vanilla framework runs every layer: the x axis.
    #[arg(long, value_name = "FILE")]
    pub platform: Option<PathBuf>,
    /// Draw the DNNs from these profile JSON files (`lalarand profile` output; a folder means
    /// its *.json) instead of the LaLaRAND artifact's published profiles. Every layer needs the
    /// mode of the platform's accelerator: for cpu-only profiles, pass a --platform with a cpu
    /// marked `accelerator = true`.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub profiles: Vec<PathBuf>,
    /// Divide every cpu time of the profiles by this measured k-thread speed-up: models a
    /// data-parallel cpu node (pass a --platform whose cpu has k cores and `threads = k`) from
    /// one-thread profiles. Every policy sees the scaled times; reports say they are modelled.
    #[arg(long, value_name = "X")]
    pub cpu_speedup: Option<f64>,
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
    let platform = match &args.platform {
        Some(p) => Platform::load(p)?,
        None => Platform::default_cpu_gpu(),
    };
    let library = if args.profiles.is_empty() {
        defaults.library
    } else {
        load_library(&args.profiles, &platform, args.platform.as_deref())?
    };
    let cfg = SweepConfig {
        tasks: args.tasks,
        sets_per_point: args.sets,
        utilizations: parse_utilizations(&args.utilizations)?,
        policies: if args.policies.is_empty() { defaults.policies } else { args.policies.clone() },
        optimal: args.optimal,
        options: AllocOptions { accuracy_budget: args.budget, node_limit: args.node_limit, ..AllocOptions::default() },
        platform,
        library,
        random_offsets: args.offsets,
        seed: args.seed,
        cpu_speedup: args.cpu_speedup,
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

/// `--profiles`: folders expanded to their `*.json`, every file loaded and checked against the
/// platform, each model once. The library is named after the files' folder.
fn load_library(paths: &[PathBuf], platform: &Platform, platform_file: Option<&Path>) -> Result<ProfileLibrary> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("--profiles {}: cannot read the folder", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
                .collect();
            if found.is_empty() {
                bail!("--profiles {}: the folder holds no *.json profile; fix: run `lalarand profile` into it, or name the files", path.display());
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let which_platform = match platform_file {
        Some(p) => format!("--platform {}", p.display()),
        None => "the default platform (one gpu, one cpu; no --platform given)".into(),
    };
    let mut profiles: Vec<(PathBuf, Arc<DnnProfile>)> = Vec::with_capacity(files.len());
    for file in files {
        let profile = DnnProfile::load(&file).context("--profiles: cannot load a profile")?;
        check_profile(platform, &profile)
            .with_context(|| format!("--profiles {} does not fit {which_platform}", file.display()))?;
        if let Some((first, _)) = profiles.iter().find(|(_, p)| p.model == profile.model) {
            bail!(
                "--profiles: {} and {} both profile model {:?}; fix: pass each model once (it would be drawn twice as often)",
                first.display(),
                file.display(),
                profile.model
            );
        }
        profiles.push((file, Arc::new(profile)));
    }
    let folders: Vec<&Path> = profiles.iter().map(|(f, _)| f.parent().unwrap_or(Path::new(""))).collect();
    let name = if folders.iter().all(|d| *d == folders[0]) && !folders[0].as_os_str().is_empty() {
        format!("{} ({} profiles)", folders[0].display(), profiles.len())
    } else {
        profiles.iter().map(|(f, _)| f.display().to_string()).collect::<Vec<_>>().join(", ")
    };
    Ok(ProfileLibrary::Custom { name, profiles: profiles.into_iter().map(|(_, p)| p).collect() })
}
