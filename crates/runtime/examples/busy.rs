//! Runs a task set with busy-waiting stages (each spins its planned time) and prints the JSON
//! report; writes the Chrome trace and the Gantt chart of the first hyperperiod.
//!
//! cargo run --release -p lalarand-runtime --example busy -- PLATFORM TASKS ALLOCATION [SECONDS] [OUT_DIR] [--force] [--no-realtime]
//!
//! Cpu resources must list the cores to pin to. Ctrl-C stops the run and reports what was
//! measured.

use lalarand_model::{Allocation, Platform, System, TaskSet};
use lalarand_runtime::{BusyTime, RunConfig, RunHorizon, Runtime};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let force = args.iter().any(|a| a == "--force");
    let realtime = !args.iter().any(|a| a == "--no-realtime");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    if pos.len() < 3 {
        eprintln!("usage: busy PLATFORM TASKS ALLOCATION [SECONDS] [OUT_DIR] [--force] [--no-realtime]");
        return ExitCode::from(2);
    }
    match run(&pos, force, realtime) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(pos: &[&String], force: bool, realtime: bool) -> Result<(), Box<dyn std::error::Error>> {
    let platform = Platform::load(pos[0].as_ref())?;
    let system = System::new(platform, TaskSet::load(pos[1].as_ref())?);
    let alloc = Allocation::load(pos[2].as_ref(), &system)?;
    let seconds: f64 = pos.get(3).map_or(Ok(1.0), |s| s.parse())?;
    let out = PathBuf::from(pos.get(4).map_or(".", |s| s.as_str()));
    let config =
        RunConfig { horizon: RunHorizon::Duration((seconds * 1e9) as u64), force, realtime, ..RunConfig::default() };
    let runtime = Runtime::new(&system, &alloc, config)?;
    runtime.stop_handle().on_ctrl_c()?;
    let outcome = runtime.run(&runtime.busy_wait(BusyTime::Wcet))?;
    outcome.write_chrome_trace(&runtime, &out.join("trace.json"))?;
    // The chart is the simulator's, drawn from the run's records.
    let schedule = lalarand_sim::Schedule {
        end: outcome.report.end,
        hyperperiod: runtime.plan().hyperperiod(),
        tasks: system.tasks.len(),
        resources: &outcome.trace.resources,
        jobs: &outcome.trace.jobs,
    };
    let labels = lalarand_sim::GanttLabels::from_system(&system);
    lalarand_sim::write_schedule_gantt(&schedule, &labels, &out.join("gantt.svg"), None)?;
    println!("{}", serde_json::to_string_pretty(&outcome.report)?);
    Ok(())
}
