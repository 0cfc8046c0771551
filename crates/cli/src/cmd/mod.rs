//! One module per subcommand.

pub mod accuracy;
pub mod allocate;
pub mod analyze;
pub mod completions;
pub mod demo;
pub mod experiment;
pub mod init;
pub mod profile;
pub mod run;
pub mod serve;
mod serve_loadable;
mod serve_outputs;
pub mod simulate;
pub mod verify;
pub mod zoo;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use lalarand_alloc::Policy;

/// `--policy` values, listed in `--help` and shell completions.
pub fn policy_parser() -> impl TypedValueParser<Value = Policy> {
    PossibleValuesParser::new(Policy::ALL.map(|p| PossibleValue::new(p.name()).help(p.label())))
        .map(|s| s.parse::<Policy>().expect("listed policy"))
}

/// `--budget`: a finite, non-negative number of percentage points.
/// `TASK=FILE` values: a task's inputs (`--calibration`, `serve --inputs`).
pub fn parse_task_file(s: &str) -> Result<(String, std::path::PathBuf), String> {
    match s.split_once('=') {
        Some((task, path)) if !task.is_empty() && !path.is_empty() => Ok((task.to_string(), path.into())),
        _ => Err(format!("{s:?}: use TASK=FILE (a .npy array, a folder of images, a CSV or raw fp32)")),
    }
}

pub fn parse_budget(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not a finite accuracy budget >= 0 (percentage points)"))
    }
}
