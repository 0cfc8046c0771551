//! `lalarand zoo`: write a standard architecture with seeded random weights as ONNX.

use crate::files::write_atomic_bytes;
use crate::report::print_json;
use crate::Verdict;
use anyhow::Result;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use lalarand_onnx::zoo::{self, Architecture};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Write a zoo model (torchvision's layer structure, seeded random weights) as ONNX.
///
/// The weights are random: the model is for timing (`lalarand profile`), not for accuracy.
/// Inputs are float32 `[1,3,224,224]` (`[1,3,416,416]` for yolov3_tiny).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand zoo squeezenet1_1 --out squeezenet1_1.onnx --seed 1\n  lalarand profile squeezenet1_1.onnx --runs 50 --cores 0 --out squeezenet1_1.json\n\nExit codes: 0 written, 2 bad input."
)]
pub struct Args {
    /// Architecture.
    #[arg(value_parser = arch_parser())]
    pub architecture: Architecture,
    /// Where to write the ONNX model (replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Seed of the random weights (same seed, same file).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn arch_parser() -> impl TypedValueParser<Value = Architecture> {
    PossibleValuesParser::new(Architecture::ALL.map(Architecture::name))
        .map(|s| s.parse::<Architecture>().expect("listed architecture"))
}

#[derive(Serialize)]
struct ZooJson<'a> {
    architecture: &'static str,
    parameters: u64,
    seed: u64,
    bytes: usize,
    path: &'a Path,
}

pub fn run(args: Args) -> Result<Verdict> {
    let model = zoo::build(args.architecture, args.seed);
    let parameters = zoo::parameter_count(&model);
    let bytes = lalarand_onnx::encode_model(&model);
    write_atomic_bytes(&args.out, &bytes)?;
    if args.json {
        print_json(&ZooJson {
            architecture: args.architecture.name(),
            parameters,
            seed: args.seed,
            bytes: bytes.len(),
            path: &args.out,
        })?;
    } else {
        outln!(
            "{} (seed {}): {} parameters, {:.1} MB\nwrote {}",
            args.architecture,
            args.seed,
            group_thousands(parameters),
            bytes.len() as f64 / 1e6,
            args.out.display()
        )?;
    }
    Ok(Verdict::Done)
}

/// 11689512 -> "11,689,512".
fn group_thousands(n: u64) -> String {
    let digits = n.to_string().into_bytes();
    let groups: Vec<String> = digits.rchunks(3).rev().map(|g| String::from_utf8_lossy(g).into_owned()).collect();
    groups.join(",")
}
