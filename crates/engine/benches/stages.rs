//! ResNet-18, single thread: int8 vs fp32 stages, and stage-by-stage vs whole-model sessions.
//! `cargo run --release -p lalarand-engine --example ratios` prints the ratios directly.

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "common/mod.rs"]
mod setup;
use setup::Setup;

fn resnet18(c: &mut Criterion) {
    let mut s = Setup::resnet18();
    let (dims, input, name) = (s.dims.clone(), s.input.clone(), s.input_name.clone());
    eprintln!("ResNet-18 (zoo): {} stages, 1 thread, core 0", s.stages);
    let mut g = c.benchmark_group("resnet18");
    g.sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4));
    g.bench_function("stages_fp32", |b| b.iter(|| Setup::run_staged(&mut s.staged_fp32, &dims, &input)));
    g.bench_function("stages_int8", |b| b.iter(|| Setup::run_staged(&mut s.staged_int8, &dims, &input)));
    g.bench_function("whole_fp32", |b| b.iter(|| Setup::run_whole(&mut s.whole_fp32, &name, &dims, &input)));
    g.bench_function("whole_int8", |b| b.iter(|| Setup::run_whole(&mut s.whole_int8, &name, &dims, &input)));
    g.finish();
}

criterion_group!(benches, resnet18);
criterion_main!(benches);
