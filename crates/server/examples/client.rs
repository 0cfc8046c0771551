//! A Rust client of `lalarand serve --listen grpc://...`: the Open Inference Protocol's gRPC
//! service through tonic. Asks for the model's metadata, sends one request of zeros (or of
//! `--value V`) and prints the outputs' shapes and the job's timing next to its bound.
//!
//! ```text
//! lalarand serve --platform examples/e2e/platform.toml --tasks examples/e2e/taskset.toml \
//!     --allocation examples/e2e/allocation.toml --listen grpc://127.0.0.1:8001 &
//! cargo run -p lalarand-server --example client -- http://127.0.0.1:8001 digits
//! ```

use lalarand_server::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use lalarand_server::proto::infer_parameter::ParameterChoice;
use lalarand_server::proto::model_infer_request::InferInputTensor;
use lalarand_server::proto::{ModelInferRequest, ModelMetadataRequest};
use std::collections::HashMap;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(model)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: client URL MODEL [--value V]   (URL: http://127.0.0.1:8001, the grpc:// endpoint)");
        std::process::exit(2);
    };
    let value: f32 =
        args.iter().position(|a| a == "--value").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(0.0);
    let mut client = GrpcInferenceServiceClient::connect(url.clone()).await?;
    let meta = client.model_metadata(ModelMetadataRequest { name: model.clone(), version: String::new() }).await?;
    let meta = meta.into_inner();
    let mut inputs = Vec::new();
    let mut raw = Vec::new();
    for t in &meta.inputs {
        // Free dims (-1) as 1.
        let shape: Vec<i64> = t.shape.iter().map(|&d| d.max(1)).collect();
        let n: i64 = shape.iter().product();
        inputs.push(InferInputTensor {
            name: t.name.clone(),
            datatype: t.datatype.clone(),
            shape,
            parameters: HashMap::new(),
            contents: None,
        });
        raw.push(std::iter::repeat_n(value.to_le_bytes(), n as usize).flatten().collect::<Vec<u8>>().into());
    }
    let request = ModelInferRequest {
        model_name: model.clone(),
        model_version: String::new(),
        id: "client".into(),
        parameters: HashMap::new(),
        inputs,
        outputs: Vec::new(),
        raw_input_contents: raw,
    };
    let response = client.model_infer(request).await?.into_inner();
    for (t, bytes) in response.outputs.iter().zip(&response.raw_output_contents) {
        println!("output {:?}: {} {:?}, {} bytes", t.name, t.datatype, t.shape, bytes.len());
    }
    let int = |k: &str| match response.parameters.get(k).and_then(|p| p.parameter_choice.clone()) {
        Some(ParameterChoice::Int64Param(v)) => Some(v),
        _ => None,
    };
    let ms = |k: &str| int(k).map_or("-".into(), |v| format!("{:.3} ms", v as f64 / 1e6));
    let met = matches!(
        response.parameters.get("deadline_met").and_then(|p| p.parameter_choice.clone()),
        Some(ParameterChoice::BoolParam(true))
    );
    println!(
        "job {}: response {} (bound {}), deadline met: {met}, stalled {}",
        int("job").map_or("-".into(), |v| v.to_string()),
        ms("response_ns"),
        ms("bound_ns"),
        ms("stalled_ns")
    );
    Ok(())
}
