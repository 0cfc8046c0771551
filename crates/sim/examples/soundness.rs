//! The soundness campaign from the command line:
//! `cargo run --release -p lalarand-sim --example soundness -- [SETS] [SEED]`.
//! Prints the report, and the first violation (if any) minimized.

use lalarand_sim::campaign::{minimize, soundness_campaign, violations};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().expect("SETS and SEED are whole numbers"));
    let sets = args.next().unwrap_or(100_000);
    let seed = args.next().unwrap_or(1);
    let report = soundness_campaign(sets, seed, true);
    println!("{report}");
    if let Some(v) = report.violations.first() {
        let small = minimize(&v.set);
        println!("\nfirst violation (set {}), minimized:\n{:#?}", v.index, small);
        println!("violations of the minimized set (task, bound, observed): {:?}", violations(&small));
    }
}
