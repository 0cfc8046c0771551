//! `lalarand experiment schedulability`: the paper's Fig. 8-style sweep.

use crate::files::{example_files, write_all, write_gantt_atomic};
use crate::report::print_json;
use crate::Verdict;
use anyhow::{bail, Context, Result};
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_experiments::{
    check_profile, find_gap_example, parse_utilizations, run_schedulability, ProfileLibrary, SweepConfig,
};
use lalarand_model::{DnnProfile, ExecutionPlan, Platform};
use lalarand_sim::{simulate, GanttLabels, Horizon, SimConfig};
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
    /// Budget each layer whose int8 accuracy cost is not known (`null` in its profile) at this
    /// many percentage points; without it such layers are not offered int8.
    #[arg(long, value_name = "PP", value_parser = super::super::parse_budget, allow_negative_numbers = true)]
    pub assume_int8_cost: Option<f64>,
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
    /// Also write, into this folder, the first set (by index) at the utilization of the largest
    /// lalarand-vs-dart gap that lalarand schedules and dart does not: its system files, both
    /// allocations, a Gantt chart of lalarand's allocation simulated at WCETs, and why.txt (every
    /// task's bound and stages under both).
    #[arg(long, value_name = "DIR")]
    pub explain_gap: Option<PathBuf>,
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
        options: AllocOptions {
            accuracy_budget: args.budget,
            node_limit: args.node_limit,
            assume_int8_cost: args.assume_int8_cost,
            ..AllocOptions::default()
        },
        platform,
        library,
        random_offsets: args.offsets,
        seed: args.seed,
        cpu_speedup: args.cpu_speedup,
    };
    let result = run_schedulability(&cfg, true)?;
    let mut written = result.write_all(&args.out)?;
    if let Some(dir) = &args.explain_gap {
        match result.summary().lalarand_vs_dart.and_then(|c| c.largest_gap) {
            Some(gap) => written.extend(explain_gap(&cfg, gap.utilization, dir)?),
            None => outln!("--explain-gap: lalarand is nowhere ahead of dart; nothing written")?,
        }
    }
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

/// `--explain-gap`: the first set at `utilization` that lalarand schedules and dart does not
/// ([`find_gap_example`]), its files, `why.txt` and the Gantt chart of its critical instant.
fn explain_gap(cfg: &SweepConfig, utilization: f64, dir: &Path) -> Result<Vec<PathBuf>> {
    let Some(gap) = find_gap_example(cfg, utilization)? else {
        bail!("--explain-gap: no set at U = {utilization} that lalarand schedules and dart does not (a bug: the sweep counted one)")
    };
    let system = &gap.system;
    let mut files = example_files(system, &gap.lalarand.allocation, Policy::Lalarand.name());
    files.push((PathBuf::from("allocation-dart.toml"), gap.dart.allocation.to_toml(system, Some("dart"))));
    files.push((PathBuf::from("why.txt"), gap.explain(cfg.seed)));
    let mut written = write_all(dir, &files)?;
    let plan = ExecutionPlan::new(system, &gap.lalarand.allocation)?;
    // Synchronous releases at WCETs, over the longest period: the critical instant.
    let longest = system.tasks.iter().map(|t| t.period).max().unwrap_or(0);
    let config = SimConfig { horizon: Horizon::Until(longest), ..SimConfig::default() };
    let run = simulate(&plan, &config).context("--explain-gap: simulation")?;
    let gantt = dir.join("gantt-lalarand.svg");
    write_gantt_atomic(&run, &GanttLabels::from_system(system), &gantt)?;
    written.push(gantt);
    Ok(written)
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
