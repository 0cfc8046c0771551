//! Serve the MNIST classifier under a proven schedule and print its outputs (README, "Start").
//! Run from the repository root: `cargo run -p lalarand --features engine --example serve`.
use lalarand::{alloc::Policy, engine::serving::server_builder, model::*, runtime::serve::Input};
use std::path::{Path, PathBuf};

fn main() -> anyhow::Result<()> {
    let platform = Platform::load(Path::new("examples/e2e/platform.toml"))?;
    let mut tasks = TaskSet::load(Path::new("examples/e2e/taskset.toml"))?;
    tasks.tasks.retain(|t| t.name == "digits"); // the MNIST classifier, at most every 3 ms
    let system = System::new(platform, tasks);
    let alloc = Policy::LalarandFp32.allocate(&system, &Default::default())?.allocation; // start() proves it
    let models = [PathBuf::from("crates/engine/testdata/mnist_resnet.onnx")];
    let server = server_builder(&system, &alloc, &models)?.start()?;
    let input = Input::from_vec(vec![1, 1, 28, 28], vec![0.5; 784]).map_err(anyhow::Error::msg)?;
    let digit = server.infer("digits", input)?;
    println!("{:?}\nresponse {} ns, bound {:?} ns", digit.outputs[0], digit.timing.response, digit.timing.bound);
    println!("{}", serde_json::to_string_pretty(&server.stop(Default::default())?)?);
    Ok(())
}
