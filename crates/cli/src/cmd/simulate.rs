//! `lalarand simulate`: run an allocation in the discrete-event simulator, next to its bounds.

use crate::files::write_gantt_atomic;
use crate::input::{load_allocation, SystemArgs};
use crate::report::{ms, print_json};
use crate::Verdict;
use anyhow::{Context, Result};
use comfy_table::{presets, CellAlignment, Table};
use lalarand_analysis::analyze;
use lalarand_model::{ms_to_time, ExecutionPlan, System, Time};
use lalarand_sim::{simulate, ExecutionTimeModel, GanttLabels, Horizon, SimConfig, SimReport, SimResult};
use serde::Serialize;
use std::path::PathBuf;

/// Simulate an allocation and compare observed response times with the bounds.
///
/// Per task: jobs, deadline misses and observed response times next to the analysis bound;
/// optionally a Gantt chart.
///
/// Exit code 0 if no job missed its deadline or exceeded its proven bound, 1 otherwise, 2 on
/// bad input.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand simulate --tasks examples/taskset-light.toml --allocation examples/allocation-light.toml \\\n      --horizon-ms 1000 --exec uniform:0.5 --seed 7 --gantt gantt.svg\n\nExit codes: 0 no miss, 1 a deadline miss or a response above its proven bound, 2 bad input."
)]
pub struct Args {
    #[command(flatten)]
    pub system: SystemArgs,
    /// Allocation TOML to run.
    #[arg(long, value_name = "FILE")]
    pub allocation: PathBuf,
    /// Simulated time, milliseconds [default: two hyperperiods after the largest offset,
    /// at most 100 longest periods].
    #[arg(long, value_name = "MS", value_parser = parse_horizon)]
    pub horizon_ms: Option<f64>,
    /// Execution times: `wcet` (every layer takes its WCET), `uniform:F` (uniform in
    /// [F x WCET, WCET]) or `two-point:F:P` (WCET with probability P, else F x WCET).
    #[arg(long, value_name = "MODEL", default_value = "wcet", value_parser = parse_exec)]
    pub exec: ExecutionTimeModel,
    /// Seed of the execution-time draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a Gantt chart (SVG) of the run's first hyperperiod (at most 3000 layers).
    #[arg(long, value_name = "FILE")]
    pub gantt: Option<PathBuf>,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_horizon(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of milliseconds")),
    }
}

/// Parses `wcet`, `uniform:F`, `two-point:F:P`.
pub fn parse_exec(s: &str) -> Result<ExecutionTimeModel, String> {
    let fraction = |v: &str| match v.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{v:?} is not a fraction in [0, 1]")),
    };
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        ["wcet"] => Ok(ExecutionTimeModel::Wcet),
        ["uniform", f] => Ok(ExecutionTimeModel::Uniform { min_fraction: fraction(f)? }),
        ["two-point", f, p] => {
            Ok(ExecutionTimeModel::TwoPoint { min_fraction: fraction(f)?, wcet_probability: fraction(p)? })
        }
        _ => Err(format!("{s:?}: use wcet, uniform:F or two-point:F:P (e.g. uniform:0.5)")),
    }
}

/// `lalarand simulate --json`: the library's report, and where the Gantt chart went.
#[derive(Debug, Serialize)]
pub struct SimJson {
    #[serde(flatten)]
    pub report: SimReport,
    pub gantt: Option<PathBuf>,
}

/// Simulates `alloc`'s plan and gathers per-task results with the analysis bounds.
pub fn run_simulation(
    system: &System,
    plan: &ExecutionPlan,
    config: &SimConfig,
    gantt: Option<&std::path::Path>,
) -> Result<SimJson> {
    let bounds = analyze(plan);
    let result: SimResult = simulate(plan, config).context("simulation")?;
    if let Some(path) = gantt {
        write_gantt_atomic(&result, &GanttLabels::from_system(system), path)?;
    }
    Ok(SimJson { report: SimReport::new(system, &result, &bounds), gantt: gantt.map(|p| p.to_path_buf()) })
}

impl SimJson {
    pub fn clean(&self) -> bool {
        self.report.clean()
    }

    pub fn render(&self) -> String {
        let mut table = Table::new();
        table.load_preset(presets::ASCII_MARKDOWN).set_header(vec![
            "task",
            "jobs",
            "misses",
            "min ms",
            "mean ms",
            "max ms",
            "bound ms",
            "max/bound",
        ]);
        for t in &self.report.tasks {
            let opt = |v: Option<Time>| v.map_or("-".into(), ms);
            table.add_row(vec![
                t.name.clone(),
                t.jobs.to_string(),
                t.misses.to_string(),
                opt(t.min_response_ns),
                t.mean_response_ns.map_or("-".into(), |m| format!("{:.3}", m / 1e6)),
                opt(t.max_response_ns),
                opt(t.bound_ns),
                match (t.max_response_ns, t.bound_ns) {
                    (Some(m), Some(b)) if b > 0 => {
                        format!("{:.3}{}", m as f64 / b as f64, if t.exceeds_bound { " EXCEEDS BOUND" } else { "" })
                    }
                    _ => "-".into(),
                },
            ]);
        }
        for i in 1..=7 {
            if let Some(c) = table.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        let mut out =
            format!("{table}\nsimulated 0..{} ms: {} deadline misses\n", ms(self.report.end_ns), self.report.misses);
        if self.report.tasks.iter().any(|t| t.exceeds_bound) {
            out.push_str("a response exceeded its proven bound: the analysis is unsound here; please report it\n");
        }
        if let Some(g) = &self.gantt {
            out.push_str(&format!("gantt chart: {}\n", g.display()));
        }
        out
    }
}

pub fn run(args: Args) -> Result<Verdict> {
    let system = args.system.load()?;
    let alloc = load_allocation(&args.allocation, &system)?;
    let plan = ExecutionPlan::new(&system, &alloc)?;
    let config = SimConfig {
        horizon: args.horizon_ms.map_or(Horizon::Auto, |h| Horizon::Until(ms_to_time(h))),
        execution: args.exec,
        seed: args.seed,
        // The table needs only per-task statistics; jobs and trace feed the chart.
        record_jobs: args.gantt.is_some(),
        record_trace: args.gantt.is_some(),
        ..SimConfig::default()
    };
    let sim = run_simulation(&system, &plan, &config, args.gantt.as_deref())?;
    if args.json {
        print_json(&sim)?;
    } else {
        out!("{}", sim.render())?;
    }
    Ok(if sim.clean() { Verdict::Done } else { Verdict::Unschedulable })
}
