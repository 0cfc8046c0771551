//! Compiles proto/inference.proto with protox (pure Rust), so a clean clone builds with cargo
//! alone: no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/inference.proto");
    let descriptors = protox::compile(["proto/inference.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Tensor bytes as `Bytes`: decoded as slices of the received buffer, not copied.
        .bytes(".inference")
        .compile_fds(descriptors)?;
    Ok(())
}
