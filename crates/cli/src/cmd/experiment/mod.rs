//! `lalarand experiment`: the paper's evaluation, and the check that the analysis is sound.

pub mod mode_changes;
pub mod schedulability;
pub mod soundness;

use crate::Verdict;

/// Run an experiment: a schedulability sweep over random task sets, the soundness campaign, or
/// the mode-change campaign.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand experiment schedulability --sets 50 --out out/schedulability\n  lalarand experiment soundness --sets 2000\n  lalarand experiment mode-changes --sets 2000"
)]
pub struct Args {
    #[command(subcommand)]
    pub experiment: Experiment,
}

#[derive(Debug, clap::Subcommand)]
pub enum Experiment {
    Schedulability(schedulability::Args),
    Soundness(soundness::Args),
    ModeChanges(mode_changes::Args),
}

pub fn run(args: Args) -> anyhow::Result<Verdict> {
    match args.experiment {
        Experiment::Schedulability(a) => schedulability::run(a),
        Experiment::Soundness(a) => soundness::run(a),
        Experiment::ModeChanges(a) => mode_changes::run(a),
    }
}
