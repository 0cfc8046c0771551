//! A recurrent model served with its state passed back by the application: the model takes
//! an input `x` and the state `h` and returns an output `y` and the new state `h_new`; each job
//! is one release of a sporadic task, and the application sends job `k`'s `h_new` as job
//! `k + 1`'s `h` (the server keeps nothing between jobs). The model is
//! `crates/engine/testdata/recurrent_cell.onnx`, profiled here (fp32, a few runs) and
//! allocated on the e2e platform's first CPU resource.
//!
//! `cargo run -p lalarand-engine --example recurrent_state`

use lalarand_engine::profile::{profile_to_file, seeded_inputs, synthetic_inputs, ProfileOptions};
use lalarand_engine::serving::EngineExecutor;
use lalarand_engine::StagedModel;
use lalarand_model::{Allocation, Mode, Placement, Platform, PriorityPolicy, System, Task, TaskSet};
use lalarand_runtime::serve::{Input, ServeConfig, Server, StopPolicy, Tensor, TensorData};
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/recurrent_cell.onnx");
    let dir = tempfile::tempdir()?;
    let staged = StagedModel::load(&model)?;
    let opts = ProfileOptions {
        runs: 20,
        warmup: 5,
        modes: vec![Mode::CpuFp32],
        progress: false,
        cold_cache: false,
        ..ProfileOptions::default()
    };
    let profile = profile_to_file(&model, &synthetic_inputs(&staged, 4), &opts, &dir.path().join("cell.json"))?.profile;
    // The e2e platform (its dispatch overheads measured on this machine), stages on cpu0.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let platform = Platform::load(&root.join("examples/e2e/platform.toml"))?;
    let stages = profile.layers.len();
    let task = Task::new("cell", 10_000_000, Arc::new(profile));
    let system = System::new(platform, TaskSet::new(vec![task], PriorityPolicy::RateMonotonic));
    let alloc = Allocation { tasks: vec![vec![Placement { mode: Mode::CpuFp32, resource: 0 }; stages]] };
    let exec = EngineExecutor::new(&system, &alloc, std::slice::from_ref(&model))?;
    let server = Server::builder(&system, &alloc, exec)
        .config(ServeConfig { realtime: false, ..ServeConfig::default() })
        .start()?;

    let mut h = vec![0.0f32; 16]; // the initial state
    for (k, x) in seeded_inputs(5, 8, 1).into_iter().enumerate() {
        let input = Input::named(vec![
            Tensor::new("x", vec![1, 8], TensorData::F32(Arc::new(x))).map_err(anyhow::Error::msg)?,
            Tensor::new("h", vec![1, 16], TensorData::F32(Arc::new(h.clone()))).map_err(anyhow::Error::msg)?,
        ])
        .map_err(anyhow::Error::msg)?;
        let result = server.infer("cell", input)?;
        let y = &result.output("y").expect("the model returns y").data;
        h = result.output("h_new").expect("the model returns h_new").data.clone(); // the next job's state
        let t = result.timing;
        println!(
            "job {k}: y = {y:.4?}  |h| = {:.4}  response {:.3} ms (bound {})",
            h.iter().map(|v| v * v).sum::<f32>().sqrt(),
            t.response as f64 / 1e6,
            t.bound.map_or("none".into(), |b| format!("{:.3} ms", b as f64 / 1e6))
        );
    }
    server.stop(StopPolicy::Drain)?;
    Ok(())
}
