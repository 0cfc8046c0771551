//! Writes the models with several inputs and outputs that the engine's tests and the server's
//! protocol tests use (tests/fixtures/multi_io.rs) into a folder:
//! `cargo run -p lalarand-engine --example multi_io_models -- crates/engine/testdata`.

#[path = "../tests/fixtures/multi_io.rs"]
mod fixtures;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: multi_io_models DIR"))?;
    for (file, model) in fixtures::all() {
        let path = std::path::Path::new(&dir).join(file);
        std::fs::write(&path, lalarand_onnx::encode_model(&model))?;
        println!("{}", path.display());
    }
    Ok(())
}
