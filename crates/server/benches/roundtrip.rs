//! Round trip added by the protocol over in-process `Server::infer`, side by side in one run:
//! the MNIST classifier and SqueezeNet 1.1 (1x3x224x224, `lalarand zoo squeezenet1_1 --seed 1`),
//! each served (all stages cpu-fp32 on one resource) and called in-process, over gRPC on a Unix
//! socket, gRPC on TCP, gRPC on a Unix socket with the input and output in shared memory, and
//! HTTP with binary tensor data (TCP). The modes take turns request by request, paced at the
//! task's period (so no request waits for its release), and the table gives each mode's median
//! and p99 round trip and the median and p99 added over in-process.
//!
//! `cargo bench -p lalarand-server --bench roundtrip [-- REQUESTS]` (default 300 per mode).

use lalarand_engine::serving::{EngineExecutor, TaskModel};
use lalarand_engine::StagedModel;
use lalarand_model::examples::chain_profile;
use lalarand_model::{
    Allocation, LayerProfile, Mode, Placement, Platform, PriorityPolicy, Resource, ResourceKind, System, Task, TaskSet,
};
use lalarand_runtime::serve::{Input, ServeConfig, Server};
use lalarand_server::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use lalarand_server::proto::infer_parameter::ParameterChoice;
use lalarand_server::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use lalarand_server::proto::*;
use lalarand_server::{Catalog, FrontEnd, Listen, Options};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MODES: [&str; 5] = ["in-process", "gRPC unix", "gRPC tcp", "gRPC unix + shm", "HTTP tcp binary"];

/// One task of `staged`'s stages, all cpu-fp32 on the first core; `force`d (the profile's
/// 1 µs stages are not its real times: the bench measures the protocol, not the schedule).
#[path = "../tests/server/shm_region.rs"]
mod shm_region;
use shm_region::Shm;

fn system_for(staged: &StagedModel, period: u64) -> (System, Allocation) {
    let core = lalarand_runtime::os::available_cores()[0];
    let platform =
        Platform { resources: vec![Resource { cores: vec![core], ..Resource::new("cpu0", ResourceKind::Cpu) }] };
    let layers: Vec<LayerProfile> =
        staged.stage_names().iter().map(|n| LayerProfile::gpu_cpu(*n, 1_000, 1_000)).collect();
    let n = layers.len();
    let task = Task::new("model", period, Arc::new(chain_profile(&staged.name, &layers)));
    let places = vec![Placement { mode: Mode::CpuFp32, resource: 0 }; n];
    (System::new(platform, TaskSet::new(vec![task], PriorityPolicy::RateMonotonic)), Allocation { tasks: vec![places] })
}

/// A keep-alive HTTP/1.1 connection.
struct Http {
    reader: BufReader<std::net::TcpStream>,
}

impl Http {
    fn post(&mut self, path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let s = self.reader.get_mut();
        let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut len = 0;
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut out = vec![0u8; len];
        self.reader.read_exact(&mut out).unwrap();
        out
    }
}

fn shm_params(size: usize, offset: usize) -> HashMap<String, InferParameter> {
    let p = |c| InferParameter { parameter_choice: Some(c) };
    HashMap::from([
        ("shared_memory_region".into(), p(ParameterChoice::StringParam("bench".into()))),
        ("shared_memory_offset".into(), p(ParameterChoice::Int64Param(offset as i64))),
        ("shared_memory_byte_size".into(), p(ParameterChoice::Int64Param(size as i64))),
    ])
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn bench(label: &str, staged: StagedModel, period: u64, requests: usize) {
    let (system, alloc) = system_for(&staged, period);
    let exec =
        EngineExecutor::from_models(&system, &alloc, vec![TaskModel { staged: staged.clone(), int8: None }]).unwrap();
    let outputs = vec![exec.output_specs(0)];
    let config = ServeConfig { force: true, ..ServeConfig::default() };
    let server = Arc::new(Server::builder(&system, &alloc, exec).config(config).start().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("bench.sock");
    let listen = vec![
        Listen::parse(&format!("grpc+unix://{}", sock.display())).unwrap(),
        Listen::parse("grpc://127.0.0.1:0").unwrap(),
        Listen::parse("http://127.0.0.1:0").unwrap(),
    ];
    let owned = [system.platform.resources[0].cores[0]];
    let spare: Vec<usize> =
        lalarand_runtime::os::available_cores().into_iter().filter(|c| !owned.contains(c)).collect();
    let options = Options { threads: spare.len().clamp(1, 2), cores: spare.clone(), ..Options::local(listen) };
    let front = FrontEnd::start(server.clone(), Catalog::of_server(&server, outputs), options).unwrap();
    // The client (this thread) also stays off the worker's core.
    if !spare.is_empty() {
        let _ = lalarand_runtime::os::pin_current_thread(&spare);
    }
    let dims = staged.input_shape(1);
    let n: usize = dims.iter().product();
    let x = lalarand_engine::profile::seeded_inputs(1, n, 3).pop().unwrap();
    let raw: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let input_name = staged.input_name.clone();
    let output_name = staged.partition.graph_outputs[0].clone();
    let out_bytes =
        server.infer("model", Input::from_vec(dims.clone(), x.clone()).unwrap()).unwrap().outputs[0].data.len() * 4;
    let shm = Shm::new(raw.len() + out_bytes + 64);
    // SAFETY: inside the mapping just made.
    unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), shm.ptr, raw.len()) };
    let http_addr = front.endpoints()[2].trim_start_matches("http://").to_string();
    let grpc_tcp = front.endpoints()[1].replace("grpc://", "http://");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (mut unix, mut tcp) = rt.block_on(async {
        let p = sock.clone();
        let channel = tonic::transport::Endpoint::from_static("http://unix.invalid")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let p = p.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(p).await?))
                }
            }))
            .await
            .unwrap();
        let unix = GrpcInferenceServiceClient::new(channel).max_decoding_message_size(usize::MAX);
        let tcp = GrpcInferenceServiceClient::connect(grpc_tcp).await.unwrap().max_decoding_message_size(usize::MAX);
        (unix, tcp)
    });
    rt.block_on(unix.system_shared_memory_register(SystemSharedMemoryRegisterRequest {
        name: "bench".into(),
        key: shm.key.clone(),
        offset: 0,
        byte_size: shm.len as u64,
    }))
    .unwrap();
    let stream = std::net::TcpStream::connect(&http_addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut http = Http { reader: BufReader::new(stream) };
    let http_head = serde_json::json!({
        "inputs": [{"name": input_name, "shape": shape, "datatype": "FP32", "parameters": {"binary_data_size": raw.len()}}],
        "outputs": [{"name": output_name, "parameters": {"binary_data": true}}]
    })
    .to_string();
    let mut http_body = http_head.clone().into_bytes();
    http_body.extend_from_slice(&raw);
    let http_headers = format!("Inference-Header-Content-Length: {}\r\n", http_head.len());
    let request = |shm_io: bool| {
        let t = InferInputTensor {
            name: input_name.clone(),
            datatype: "FP32".into(),
            shape: shape.clone(),
            parameters: if shm_io { shm_params(raw.len(), 0) } else { HashMap::new() },
            contents: None,
        };
        ModelInferRequest {
            model_name: "model".into(),
            inputs: vec![t],
            outputs: if shm_io {
                vec![InferRequestedOutputTensor {
                    name: output_name.clone(),
                    parameters: shm_params(out_bytes, raw.len()),
                }]
            } else {
                vec![]
            },
            raw_input_contents: if shm_io { vec![] } else { vec![raw.clone().into()] },
            ..Default::default()
        }
    };
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    let mut next = Instant::now();
    let warm = 20;
    for i in 0..requests + warm {
        for (m, t) in times.iter_mut().enumerate() {
            // Paced at the period: every request is released at once.
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            let started = Instant::now();
            match m {
                0 => {
                    server.infer("model", Input::from_vec(dims.clone(), x.clone()).unwrap()).unwrap();
                }
                1 => {
                    rt.block_on(unix.model_infer(request(false))).unwrap();
                }
                2 => {
                    rt.block_on(tcp.model_infer(request(false))).unwrap();
                }
                3 => {
                    rt.block_on(unix.model_infer(request(true))).unwrap();
                }
                _ => {
                    let r = http.post("/v2/models/model/infer", &http_headers, &http_body);
                    assert!(r.len() > out_bytes);
                }
            }
            let took = started.elapsed().as_secs_f64() * 1e6;
            next = started + Duration::from_nanos(period);
            if i >= warm {
                t.push(took);
            }
        }
    }
    let base_med = percentile(&mut times[0].clone(), 0.5);
    let base_p99 = percentile(&mut times[0].clone(), 0.99);
    println!("\n{label}: {requests} requests per mode, input {dims:?} ({} bytes)", raw.len());
    println!("| mode | median µs | p99 µs | added median µs | added p99 µs |");
    println!("|---|---:|---:|---:|---:|");
    for (m, t) in times.iter_mut().enumerate() {
        let (med, p99) = (percentile(t, 0.5), percentile(t, 0.99));
        println!("| {} | {med:.0} | {p99:.0} | {:.0} | {:.0} |", MODES[m], med - base_med, p99 - base_p99);
    }
    front.shutdown(Duration::from_secs(1));
    let report = server.stop(Default::default()).unwrap();
    assert!(report.every_job_accounted);
}

fn main() {
    let requests: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(300);
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/testdata/mnist_resnet.onnx");
    bench("MNIST (crates/engine/testdata/mnist_resnet.onnx)", StagedModel::load(&mnist).unwrap(), 5_000_000, requests);
    let arch = lalarand_onnx::zoo::Architecture::SqueezeNet1_1;
    let squeeze =
        StagedModel::from_model("squeezenet1_1", lalarand_onnx::zoo::build(arch, 1), "zoo:squeezenet1_1".into())
            .unwrap();
    bench("SqueezeNet 1.1 (lalarand zoo squeezenet1_1 --seed 1)", squeeze, 40_000_000, requests);
}
