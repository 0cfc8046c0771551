//! What running a model as its layer stages costs next to one whole-model session, split into
//! ONNX Runtime's share and lalarand's: the MNIST classifier of `testdata/` (14 layer stages),
//! one thread, pinned to core 0, timed in interleaved rounds (every variant once per round) so
//! that machine noise hits all alike.
//!
//! - `whole`: one ONNX Runtime session of the whole model.
//! - `sessions`: the 14 stage sessions run back to back straight through `StageRunner`, their
//!   tensors in a plain map: the floor of any runtime that runs a layer per session.
//! - `pipeline`: lalarand's `Pipeline::run` of the same stages (what a served job's stages run).
//!
//! `cargo run --release -p lalarand-engine --example per_stage_floor [rounds]`

use lalarand_engine::profile::seeded_inputs;
use lalarand_engine::stage::{pin_current_thread, ExecConfig, StageRunner, Tensors};
use lalarand_engine::tensor::f32_value;
use lalarand_engine::{Pipeline, StagedModel};
use lalarand_model::Mode;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mnist_resnet.onnx");
    let staged = StagedModel::load(&path).expect("the MNIST model loads");
    let cfg = ExecConfig { threads: 1, cores: vec![0], ..ExecConfig::default() };
    pin_current_thread(&cfg.cores).expect("core 0");
    let dims = staged.input_shape(1);
    let input = seeded_inputs(1, dims.iter().product(), 7).remove(0);
    let n = staged.stage_count();
    let mut whole = StageRunner::new("whole", Mode::CpuFp32, &staged.bytes, &cfg).unwrap();
    let mut sessions: Vec<StageRunner> = (0..n)
        .map(|i| StageRunner::new(&format!("stage {i}"), Mode::CpuFp32, staged.stage_fp32(i), &cfg).unwrap())
        .collect();
    let pipeline = Pipeline::new(&staged, &vec![Mode::CpuFp32; n], None, &cfg).unwrap();
    let fresh = || {
        let mut t = Tensors::new();
        t.insert(staged.input_name.clone(), f32_value(&dims, input.clone()).unwrap());
        t
    };
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds + 50 {
        let mut t = fresh();
        let start = Instant::now();
        whole.run(&mut t).unwrap();
        let w = start.elapsed().as_secs_f64() * 1e6;
        let mut t = fresh();
        let start = Instant::now();
        for s in &mut sessions {
            s.run(&mut t).unwrap();
        }
        let s = start.elapsed().as_secs_f64() * 1e6;
        let start = Instant::now();
        pipeline.run(&dims, input.clone()).unwrap();
        let p = start.elapsed().as_secs_f64() * 1e6;
        if round >= 50 {
            for (v, x) in times.iter_mut().zip([w, s, p]) {
                v.push(x);
            }
        }
    }
    let [w, s, p] = times.map(median);
    println!("MNIST classifier, {n} layer stages, 1 thread, core 0, median of {rounds} interleaved rounds:");
    println!(
        "whole model {w:.1} µs | {n} sessions back to back {s:.1} µs ({:.2}x) | lalarand pipeline {p:.1} µs ({:.2}x)",
        s / w,
        p / w
    );
    println!(
        "per stage: ONNX Runtime's sessions add {:.1} µs, lalarand's pipeline {:.1} µs more",
        (s - w) / n as f64,
        (p - s) / n as f64
    );
}
