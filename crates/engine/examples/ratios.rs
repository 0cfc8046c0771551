//! Prints the engine's speed ratios on ResNet-18 (zoo weights), single thread, pinned to core 0:
//! int8 stages vs fp32 stages, and stages in sequence vs one whole-model session.
//! The four variants are timed in interleaved blocks (round robin, `BLOCK` runs each, the first
//! of a block untimed to refill caches) so machine noise hits all alike.
//!
//! `cargo run --release -p lalarand-engine --example ratios [rounds]`

#[path = "../benches/common/mod.rs"]
mod setup;
use setup::Setup;
use std::time::Instant;

const BLOCK: usize = 5;

fn best(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let mut s = Setup::resnet18();
    let (dims, input, name) = (s.dims.clone(), s.input.clone(), s.input_name.clone());
    let mut t = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds + 3 {
        let time = |f: &mut dyn FnMut()| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        };
        let mut variants: [Box<dyn FnMut()>; 4] = [
            Box::new(|| Setup::run_staged(&mut s.staged_fp32, &dims, &input)),
            Box::new(|| Setup::run_staged(&mut s.staged_int8, &dims, &input)),
            Box::new(|| Setup::run_whole(&mut s.whole_fp32, &name, &dims, &input)),
            Box::new(|| Setup::run_whole(&mut s.whole_int8, &name, &dims, &input)),
        ];
        for (v, f) in t.iter_mut().zip(variants.iter_mut()) {
            f();
            for _ in 1..BLOCK {
                let ms = time(f.as_mut());
                // The first rounds are warm-up.
                if round >= 3 {
                    v.push(ms);
                }
            }
        }
    }
    println!(
        "ResNet-18 (zoo), {} stages, 1 thread, core 0, {} runs each in {rounds} interleaved rounds:",
        s.stages,
        rounds * (BLOCK - 1)
    );
    // Best-of resists preemption by other processes (a loaded machine); the median is typical.
    for (what, [sf, si, wf, wi]) in [("best", t.clone().map(best)), ("median", t.map(median))] {
        println!(
            "{what}: stages fp32 {sf:.2} ms | stages int8 {si:.2} ms | whole fp32 {wf:.2} ms | whole int8 {wi:.2} ms"
        );
        println!("  int8 speed-up, stages: {:.2}x (fp32 stages / int8 stages)", sf / si);
        println!("  staging overhead fp32: {:.3}x (stages / whole)", sf / wf);
        println!("  staging overhead int8: {:.3}x (stages / whole)", si / wi);
    }
}
