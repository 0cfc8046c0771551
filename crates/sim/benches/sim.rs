//! Simulator throughput: the demo system over one simulated second (about 50k layer instances,
//! trace off, as campaigns run it), and 1,000 campaign sets on one thread.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use lalarand_model::{examples, ms_to_time, Allocation, ExecutionPlan, Mode};
use lalarand_sim::campaign::{campaign_set, violations};
use lalarand_sim::{Horizon, SimConfig, Simulator};

fn bench(c: &mut Criterion) {
    let system = examples::demo_system();
    let plan = ExecutionPlan::new(&system, &Allocation::uniform(&system, Mode::Gpu).unwrap()).unwrap();
    let config = SimConfig {
        horizon: Horizon::Until(ms_to_time(1_000.0)),
        record_jobs: false,
        record_trace: false,
        ..SimConfig::default()
    };
    let mut sim = Simulator::default();
    c.bench_function("demo, 1 s simulated", |b| b.iter(|| sim.run(black_box(&plan), &config).unwrap()));
    let sets: Vec<_> = (0..1_000).map(|i| campaign_set(1, i)).collect();
    c.bench_function("1000 campaign sets (analysis + simulation)", |b| {
        b.iter(|| sets.iter().map(|s| violations(black_box(s)).len()).sum::<usize>())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
