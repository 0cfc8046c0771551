//! Runs a schedulability sweep until the `lalarand experiment schedulability` CLI wires it:
//!
//! `cargo run --release -p lalarand-experiments --example schedulability -- --tasks 4 --sets 200
//!  --utilizations 0.1:2.0:0.1 --out out/ [--optimal] [--budget 1.0] [--seed 2021] [--json]`

use lalarand_experiments::{parse_utilizations, run_schedulability, ExperimentError, SweepConfig};
use std::path::PathBuf;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), ExperimentError> {
    let mut cfg = SweepConfig::default();
    let (mut out, mut json) = (PathBuf::from("out/schedulability"), false);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |name: &str| {
            args.next().ok_or_else(|| ExperimentError::Config {
                field: name.into(),
                problem: "missing value".into(),
                fix: format!("write {name} VALUE"),
            })
        };
        let number = |name: &str, v: String| {
            v.parse::<f64>().map_err(|_| ExperimentError::Config {
                field: name.into(),
                problem: format!("{v:?} is not a number"),
                fix: format!("write {name} 4"),
            })
        };
        match flag.as_str() {
            "--tasks" => cfg.tasks = number("--tasks", value("--tasks")?)? as usize,
            "--sets" => cfg.sets_per_point = number("--sets", value("--sets")?)? as usize,
            "--seed" => cfg.seed = number("--seed", value("--seed")?)? as u64,
            "--budget" => cfg.options.accuracy_budget = number("--budget", value("--budget")?)?,
            "--node-limit" => cfg.options.node_limit = number("--node-limit", value("--node-limit")?)? as u64,
            "--utilizations" => cfg.utilizations = parse_utilizations(&value("--utilizations")?)?,
            "--out" => out = PathBuf::from(value("--out")?),
            "--optimal" => cfg.optimal = true,
            "--offsets" => cfg.random_offsets = true,
            "--json" => json = true,
            other => {
                return Err(ExperimentError::Config {
                    field: other.into(),
                    problem: "unknown flag".into(),
                    fix: "see the example's doc comment for the flags".into(),
                })
            }
        }
    }
    let result = run_schedulability(&cfg, true)?;
    let written = result.write_all(&out)?;
    if json {
        println!("{}", result.to_json());
    } else {
        print!("{}", result.summary());
        println!("wall time {:.1} s; wrote {}", result.wall_seconds, written[0].parent().unwrap_or(&out).display());
    }
    Ok(())
}
