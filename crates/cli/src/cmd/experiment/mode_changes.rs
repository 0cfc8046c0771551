//! `lalarand experiment mode-changes`: random load/unload sequences run under the mode-change
//! protocol and checked against their bounds.

use crate::report::print_json;
use crate::Verdict;
use anyhow::Result;
use lalarand_sim::campaign::mode_change_campaign;

/// Check the mode-change protocol on random load/unload sequences.
///
/// Each set starts a random proven task set, then requests 1 to 10 loads and unloads at random
/// instants (often during the drain of the change before, so they queue); a load is admitted only
/// if the analysis proves the new mode, and some loads also move running tasks' layers. The
/// simulator applies the drain-then-switch protocol (docs/analysis.md, section 5) and every job
/// is checked against the bound of the mode it was released in, every switch against the drain
/// bound, every unload against Lemma 5 (no remaining bound grows).
///
/// Exit code 0 if nothing was violated, 1 if something was (the report names the seed and set
/// index to replay with `lalarand_sim::campaign::mode_change_set`), 2 on bad input.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand experiment mode-changes --sets 200000 --seed 1\n\nExit codes: 0 no violation, 1 a bound was exceeded, 2 bad input."
)]
pub struct Args {
    /// Random load/unload sequences to run (about 4 admitted changes each).
    #[arg(long, default_value_t = 1_000)]
    pub sets: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<Verdict> {
    let report = mode_change_campaign(args.sets, args.seed, !args.json);
    if args.json {
        print_json(&report)?;
    } else {
        outln!("{report}")?;
    }
    Ok(if report.violation_count == 0 { Verdict::Done } else { Verdict::Unschedulable })
}
