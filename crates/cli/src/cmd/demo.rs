//! `lalarand demo`: the built-in example end to end.

use super::simulate::{run_simulation, SimJson};
use crate::files::{example_files, write_all};
use crate::report::{print_json, Report};
use crate::Verdict;
use anyhow::{Context, Result};
use comfy_table::{presets, CellAlignment, Table};
use indicatif::{ProgressBar, ProgressStyle};
use lalarand_alloc::{AllocOptions, Outcome, Policy};
use lalarand_model::examples::demo_system;
use lalarand_model::{ExecutionPlan, System};
use lalarand_sim::SimConfig;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Run the built-in example end to end: allocate, analyze, simulate.
///
/// Allocates the built-in example (four DNN tasks on one GPU and one CPU) with every policy,
/// shows which policies make it schedulable, simulates the `lalarand` allocation, and writes
/// its files and Gantt chart.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand demo --out out/demo\n  lalarand analyze --platform out/demo/platform.toml --tasks out/demo/taskset.toml \\\n      --allocation out/demo/allocation.toml"
)]
pub struct Args {
    /// Folder for the example files (created if missing; its files are replaced).
    #[arg(long, value_name = "DIR", default_value = "out/demo")]
    pub out: PathBuf,
    /// Print the result as JSON on stdout.
    #[arg(long, conflicts_with = "full")]
    pub json: bool,
    /// The full demo, on this machine: write three zoo models (squeezenet1_1, mobilenet_v2,
    /// yolov3_tiny), profile them, pick periods the vanilla allocation cannot be proven to meet,
    /// compare every policy, run the lalarand allocation with ONNX inference and write its
    /// Gantt chart and Perfetto trace (a few minutes; needs ONNX Runtime, and a GPU or two
    /// cores).
    #[arg(long)]
    pub full: bool,
    /// With --full: how long the run lasts, seconds.
    #[arg(long, default_value_t = 20.0, requires = "full", value_parser = parse_seconds)]
    pub seconds: f64,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (1.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: give 1 to 3600 seconds")),
    }
}

#[derive(Serialize)]
pub(super) struct PolicyRow {
    policy: Policy,
    /// Set when the policy could not produce an allocation at all.
    error: Option<String>,
    schedulable: bool,
    tasks_proven: usize,
    /// Largest bound / deadline (estimates for unproven tasks).
    max_normalized_response: Option<f64>,
    accuracy_cost_pp: Option<f64>,
    int8_layers: Option<usize>,
    evaluations: u64,
    complete: bool,
    seconds: f64,
}

#[derive(Serialize)]
struct DemoJson {
    policies: Vec<PolicyRow>,
    lalarand: Report,
    simulation: SimJson,
    files: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<Verdict> {
    if args.full {
        return super::demo_full::run(&args);
    }
    let system = demo_system();
    let options = AllocOptions::default();
    let (rows, outcome) = allocate_all(&system, &options)?;
    let plan = ExecutionPlan::new(&system, &outcome.allocation).context("lalarand produced an invalid allocation")?;
    let report = Report::new(&system, &outcome.allocation, &plan, &outcome.analysis);
    let mut files = write_all(&args.out, &example_files(&system, &outcome.allocation, Policy::Lalarand.name()))?;

    let spinner = ProgressBar::new_spinner().with_message("simulating the lalarand allocation");
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let gantt = args.out.join("gantt.svg");
    let simulation = run_simulation(&system, &plan, &SimConfig::default(), Some(&gantt))?;
    spinner.finish_and_clear();
    files.push(gantt);

    if args.json {
        print_json(&DemoJson { policies: rows, lalarand: report, simulation, files })?;
        return Ok(Verdict::Done);
    }
    outln!(
        "demo: {} DNN tasks on {} resources; every policy, accuracy budget {} pp\n",
        system.tasks.len(),
        system.platform.resources.len(),
        options.accuracy_budget
    )?;
    outln!("{}\n", policy_table(&rows, system.tasks.len()))?;
    outln!("the lalarand allocation, task by task:\n{}", report.render())?;
    outln!("simulated at worst-case execution times, next to the bounds:\n{}", simulation.render())?;
    outln!("files (analyze them with `lalarand analyze`, see docs/formats.md):")?;
    for f in &files {
        outln!("  {}", f.display())?;
    }
    Ok(Verdict::Done)
}

/// Allocates `system` with every policy, with a progress bar: one row per policy, and the
/// `lalarand` outcome.
pub(super) fn allocate_all(system: &System, options: &AllocOptions) -> Result<(Vec<PolicyRow>, Outcome)> {
    let bar = ProgressBar::new(Policy::ALL.len() as u64)
        .with_style(ProgressStyle::with_template("{spinner} allocating [{bar:20}] {pos}/{len} {msg}")?);
    let mut rows = Vec::new();
    let mut lalarand: Option<Outcome> = None;
    for policy in Policy::ALL {
        bar.set_message(policy.name());
        let start = Instant::now();
        let result = policy.allocate(system, options);
        let seconds = start.elapsed().as_secs_f64();
        tracing::info!(%policy, seconds, "allocated");
        rows.push(match &result {
            Ok(o) => PolicyRow {
                policy,
                error: None,
                schedulable: o.schedulable(),
                tasks_proven: o.analysis.tasks.len() - o.analysis.unschedulable_count(),
                max_normalized_response: Some(o.analysis.max_normalized()),
                accuracy_cost_pp: Some(o.allocation.accuracy_cost(system) + 0.0),
                int8_layers: Some(o.allocation.int8_layers()),
                evaluations: o.evaluations,
                complete: o.complete,
                seconds,
            },
            Err(e) => PolicyRow {
                policy,
                error: Some(e.to_string()),
                schedulable: false,
                tasks_proven: 0,
                max_normalized_response: None,
                accuracy_cost_pp: None,
                int8_layers: None,
                evaluations: 0,
                complete: true,
                seconds,
            },
        });
        if policy == Policy::Lalarand {
            lalarand = Some(result.context("policy lalarand")?);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    Ok((rows, lalarand.expect("Policy::ALL lists lalarand")))
}

pub(super) fn policy_table(rows: &[PolicyRow], tasks: usize) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::ASCII_MARKDOWN).set_header(vec![
        "policy",
        "schedulable",
        "tasks proven",
        "max bound/D",
        "acc. cost pp",
        "int8 layers",
        "analyses",
        "time s",
    ]);
    for r in rows {
        let verdict = match (&r.error, r.schedulable) {
            (Some(e), _) => format!("error: {e}"),
            (None, true) => "yes".into(),
            (None, false) if !r.complete => "no (search stopped at its node limit)".into(),
            (None, false) => "no".into(),
        };
        table.add_row(vec![
            r.policy.to_string(),
            verdict,
            format!("{}/{tasks}", r.tasks_proven),
            r.max_normalized_response.map_or("-".into(), |v| format!("{v:.3}")),
            r.accuracy_cost_pp.map_or("-".into(), |v| format!("{v:.3}")),
            r.int8_layers.map_or("-".into(), |v| v.to_string()),
            r.evaluations.to_string(),
            format!("{:.3}", r.seconds),
        ]);
    }
    for i in 2..=7 {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}
