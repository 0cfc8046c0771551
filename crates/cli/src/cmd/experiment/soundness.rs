//! `lalarand experiment soundness`: random plans simulated against their analysis bounds.

use crate::report::print_json;
use crate::Verdict;
use anyhow::Result;
use lalarand_model::Time;
use lalarand_sim::soundness_campaign;
use serde::Serialize;

/// Check the analysis against the simulator on random plans.
///
/// Simulates random plans built to stress the analysis and checks that no task deemed
/// schedulable ever responds later than its bound. Half the plans charge the runtime's wake-up
/// overhead (simulated as a parked worker's delay) and half release jobs sporadically.
///
/// Exit code 0 if no bound was exceeded, 1 if one was (an analysis bug: the report names the
/// seed and set index to replay), 2 on bad input.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  lalarand experiment soundness --sets 10000 --seed 1\n\nExit codes: 0 no violation, 1 a bound was exceeded, 2 bad input."
)]
pub struct Args {
    /// Random plans to simulate.
    #[arg(long, default_value_t = 1_000)]
    pub sets: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ViolationJson {
    /// Replay with `lalarand_sim::campaign::campaign_set(seed, index)`.
    seed: u64,
    index: u64,
    task: usize,
    bound_ns: Time,
    observed_ns: Time,
}

#[derive(Serialize)]
struct CampaignJson {
    seed: u64,
    sets: u64,
    /// Sets charging a wake-up overhead (simulated as a parked worker's delay).
    wakeup_sets: u64,
    /// Sets with sporadic releases (gaps of at least the period).
    sporadic_sets: u64,
    tasks: u64,
    schedulable_tasks: u64,
    jobs_checked: u64,
    violation_count: u64,
    /// The first violations by set index (all are counted above).
    violations: Vec<ViolationJson>,
    /// Largest observed response / bound over schedulable tasks.
    max_ratio: f64,
    max_ratio_set: Option<u64>,
    wall_seconds: f64,
}

pub fn run(args: Args) -> Result<Verdict> {
    let report = soundness_campaign(args.sets, args.seed, !args.json);
    if args.json {
        print_json(&CampaignJson {
            seed: report.seed,
            sets: report.sets,
            wakeup_sets: report.wakeup_sets,
            sporadic_sets: report.sporadic_sets,
            tasks: report.tasks,
            schedulable_tasks: report.schedulable_tasks,
            jobs_checked: report.jobs_checked,
            violation_count: report.violation_count,
            violations: report
                .violations
                .iter()
                .map(|v| ViolationJson {
                    seed: v.seed,
                    index: v.index,
                    task: v.task,
                    bound_ns: v.bound,
                    observed_ns: v.observed,
                })
                .collect(),
            max_ratio: report.max_ratio,
            max_ratio_set: report.max_ratio_set,
            wall_seconds: report.wall.as_secs_f64(),
        })?;
    } else {
        outln!("{report}")?;
    }
    Ok(if report.violation_count == 0 { Verdict::Done } else { Verdict::Unschedulable })
}
