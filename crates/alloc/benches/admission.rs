//! Issue 15: the time from a load request to the admission decision (analysis plus
//! allocation), with 4, 8 and 16 tasks after the load.
//!
//! The running set (n - 1 tasks) and the loaded task are drawn as the allocation bench draws its
//! sets (artifact profiles, UUniFast-discard, rate-monotonic); the running set is allocated by
//! `lalarand` and must be proven. Two scenarios per size: at all-GPU utilization 0.7 the first
//! seed whose load is admitted, at 1.0 the first whose load is rejected (a rejection runs every
//! search step, the slowest decision). Timed from `admit_load`'s call to its answer; the bench
//! also prints the drain bound, the longest the new task's first release can then wait.

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

/// A proven running set of `n - 1` tasks and a request to load the `n`-th, drawn at all-GPU
/// utilization `total` from seed 1 up until the decision is an admission (`admitted`) or a
/// rejection.
fn scenario(n: usize, total: f64, admitted: bool) -> (u64, Proven, LoadRequest) {
    let options = AdmissionOptions::default();
    (1..500)
        .find_map(|seed| {
            let mut all = tasks(seed, n, total);
            let new = all.pop().expect("n >= 1");
            let system = System::new(Platform::default_cpu_gpu(), TaskSet::new(all, PriorityPolicy::RateMonotonic));
            let outcome = Policy::Lalarand.allocate(&system, &AllocOptions::default()).ok()?;
            let running = Proven::new(system, outcome.allocation).ok()?;
            let request = LoadRequest { task: new, priority: LoadPriority::RateMonotonic };
            (admit_load(&running, request.clone(), &options).is_ok() == admitted).then_some((seed, running, request))
        })
        .unwrap_or_else(|| panic!("no seed below 500 gives a proven running set of {} tasks at U={total}", n - 1))
}

fn bench(c: &mut Criterion) {
    let options = AdmissionOptions::default();
    for n in [4, 8, 16] {
        for (total, admitted) in [(0.7, true), (1.0, false)] {
            let (seed, running, request) = scenario(n, total, admitted);
            let decision = match admit_load(&running, request.clone(), &options) {
                Ok(a) => format!("admitted, {} running layers moved", a.moved_layers()),
                Err(AdmissionError::Rejected(r)) => format!("rejected ({} would miss)", r.misses.len()),
                Err(e) => panic!("{e}"),
            };
            let drain_ms = lalarand_model::time_to_ms(running.drain_bound());
            eprintln!("{n} tasks, U={total} (seed {seed}): {decision}; drain bound {drain_ms:.3} ms");
            let what = if admitted { "admitted" } else { "rejected" };
            c.bench_function(&format!("admit_load to {n} tasks, U={total}, {what}"), |b| {
                b.iter(|| admit_load(&running, request.clone(), &options))
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
