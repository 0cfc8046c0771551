//! Issue 15: the time from a load request to the admission decision (analysis plus
//! allocation), with 4, 8 and 16 tasks after the load.
//!
//! The running set (n - 1 tasks) and the loaded task are drawn as the allocation bench draws its
//! sets (artifact profiles, UUniFast-discard over all-GPU utilization 0.7, rate-monotonic); the
//! running set is allocated by `lalarand` and must be proven (the first seed from 1 up whose is).
//! The decision is timed from `admit_load`'s call to its answer, admitted or rejected.

use criterion::{criterion_group, criterion_main, Criterion};
use lalarand_alloc::admission::{admit_load, AdmissionError, AdmissionOptions, LoadPriority, LoadRequest, Proven};
use lalarand_alloc::{AllocOptions, Policy};
use lalarand_model::library::{artifact_profiles, ArtifactSet, Int8Model};
use lalarand_model::{Mode, Platform, PriorityPolicy, System, Task, TaskSet};
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// `n` tasks at all-GPU utilization `total`; UUniFast (Bini & Buttazzo) with discard.
fn tasks(seed: u64, n: usize, total: f64) -> Vec<Task> {
    let library = artifact_profiles(ArtifactSet::A, Some(Int8Model::default()));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let utils = loop {
        let mut sum = total;
        let mut u = Vec::new();
        for i in 1..n {
            let next = sum * rng.gen::<f64>().powf(1.0 / (n - i) as f64);
            u.push(sum - next);
            sum = next;
        }
        u.push(sum);
        if u.iter().all(|&x| x <= 1.0) {
            break u;
        }
    };
    utils
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let dnn = Arc::new(library[rng.gen_range(0..library.len())].clone());
            let period = (dnn.total_wcet(Mode::Gpu) as f64 / u).ceil() as u64;
            Task::new(format!("t{i}"), period, dnn)
        })
        .collect()
}

/// A proven running set of `n - 1` tasks and a request to load the `n`-th.
fn scenario(n: usize) -> (u64, Proven, LoadRequest) {
    (1..)
        .find_map(|seed| {
            let mut all = tasks(seed, n, 0.7);
            let new = all.pop().expect("n >= 1");
            let system = System::new(Platform::default_cpu_gpu(), TaskSet::new(all, PriorityPolicy::RateMonotonic));
            let outcome = Policy::Lalarand.allocate(&system, &AllocOptions::default()).ok()?;
            let running = Proven::new(system, outcome.allocation).ok()?;
            Some((seed, running, LoadRequest { task: new, priority: LoadPriority::RateMonotonic }))
        })
        .expect("some seed gives a proven running set")
}

fn bench(c: &mut Criterion) {
    let options = AdmissionOptions::default();
    for n in [4, 8, 16] {
        let (seed, running, request) = scenario(n);
        let decision = match admit_load(&running, request.clone(), &options) {
            Ok(a) => format!("admitted, {} running layers moved", a.moved_layers()),
            Err(AdmissionError::Rejected(r)) => format!("rejected ({} would miss)", r.misses.len()),
            Err(e) => panic!("{e}"),
        };
        eprintln!("{n} tasks (seed {seed}): {decision}");
        c.bench_function(&format!("admit_load to {n} tasks, U=0.7"), |b| {
            b.iter(|| admit_load(&running, request.clone(), &options))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
