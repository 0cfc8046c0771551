//! Target (issue 2): `lalarand` allocation of a 10-task set in under 20 milliseconds.
//!
//! The sets are drawn as the schedulability experiment draws them (artifact profiles, 10 tasks,
//! UUniFast-discard) at a total all-GPU utilization of 0.8, where the GPU alone fails and the
//! search has work to do; three seeds, so one lucky set cannot carry the number.

use criterion::{criterion_group, criterion_main, Criterion};
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_model::library::{artifact_profiles, ArtifactSet, Int8Model};
use lalarand_model::{Mode, Platform, PriorityPolicy, System, Task, TaskSet};
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// A 10-task set at all-GPU utilization `total`; UUniFast (Bini & Buttazzo) with discard.
fn ten_task_set(seed: u64, total: f64) -> System {
    let library = artifact_profiles(ArtifactSet::A, Some(Int8Model::default()));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let utils = loop {
        let mut sum = total;
        let mut u = Vec::new();
        for i in 1..10 {
            let next = sum * rng.gen::<f64>().powf(1.0 / (10 - i) as f64);
            u.push(sum - next);
            sum = next;
        }
        u.push(sum);
        if u.iter().all(|&x| x <= 1.0) {
            break u;
        }
    };
    let tasks = utils
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let dnn = Arc::new(library[rng.gen_range(0..library.len())].clone());
            let period = (dnn.total_wcet(Mode::Gpu) as f64 / u).ceil() as u64;
            Task::new(format!("t{i}"), period, dnn)
        })
        .collect();
    System::new(Platform::default_cpu_gpu(), TaskSet::new(tasks, PriorityPolicy::RateMonotonic))
}

fn bench(c: &mut Criterion) {
    let options = AllocOptions::default();
    for seed in [1, 2, 3] {
        let system = ten_task_set(seed, 0.8);
        let gpu = Policy::GpuOnly.allocate(&system, &options).unwrap();
        let ours = Policy::Lalarand.allocate(&system, &options).unwrap();
        eprintln!("seed {seed}: gpu-only schedulable: {}, lalarand: {}", gpu.schedulable(), ours.schedulable());
        c.bench_function(&format!("lalarand allocate 10 tasks, U=0.8, seed {seed}"), |b| {
            b.iter(|| Policy::Lalarand.allocate(&system, &options).unwrap())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
