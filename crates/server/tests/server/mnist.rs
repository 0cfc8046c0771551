//! The MNIST classifier served over gRPC and HTTP equals the same server's in-process `infer`.

use crate::common::*;
use crate::grpc::{input, request};
use lalarand_engine::serving::{EngineExecutor, TaskModel};
use lalarand_engine::StagedModel;
use lalarand_model::examples::chain_profile;
use lalarand_model::{
    Allocation, LayerProfile, Mode, Placement, Platform, PriorityPolicy, Resource, ResourceKind, System, Task, TaskSet,
};
use lalarand_runtime::os;
use lalarand_runtime::serve::{EarlyPolicy, Input};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

pub fn mnist() -> StagedModel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/testdata/mnist_resnet.onnx");
    StagedModel::load(&path).unwrap()
}

/// `staged`'s stages, first half on cpu0, second on cpu1 (cores 0 and the last), 1 ms each.
pub fn system_for(staged: &StagedModel, name: &str, period: u64) -> (System, Allocation) {
    let cores = os::available_cores();
    let resource = |n: &str, core: usize| Resource { cores: vec![core], ..Resource::new(n, ResourceKind::Cpu) };
    let platform = Platform { resources: vec![resource("cpu0", cores[0]), resource("cpu1", *cores.last().unwrap())] };
    let layers: Vec<LayerProfile> =
        staged.stage_names().iter().map(|n| LayerProfile::gpu_cpu(*n, 1_000_000, 1_000_000)).collect();
    let n = layers.len();
    let task = Task::new(name, period, Arc::new(chain_profile(&staged.name, &layers)));
    let places = (0..n).map(|j| Placement { mode: Mode::CpuFp32, resource: usize::from(j >= n / 2) }).collect();
    (System::new(platform, TaskSet::new(vec![task], PriorityPolicy::RateMonotonic)), Allocation { tasks: vec![places] })
}

#[test]
fn mnist_over_grpc_and_http_equals_in_process_infer() {
    let _turn = serial();
    let staged = mnist();
    let (system, alloc) = system_for(&staged, "digits", 100 * MS);
    let exec =
        EngineExecutor::from_models(&system, &alloc, vec![TaskModel { staged: staged.clone(), int8: None }]).unwrap();
    let outputs = vec![exec.output_specs(0)];
    let running = start_with(&system, &alloc, exec, outputs, EarlyPolicy::Wait, |_| {});
    let dims = staged.input_shape(1);
    let x: Vec<f32> = (0..dims.iter().product::<usize>()).map(|i| (i % 17) as f32 / 17.0).collect();
    let local = running.server.infer("digits", Input::from_vec(dims.clone(), x.clone()).unwrap()).unwrap();
    let want = &local.outputs[0];
    let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let name = staged.input_name.clone();
    rt().block_on(async {
        let mut c = grpc(&running.grpc_url()).await;
        let m = c
            .model_metadata(lalarand_server::proto::ModelMetadataRequest {
                name: "digits".into(),
                version: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(m.inputs[0].name, name);
        assert_eq!(m.inputs[0].shape[1..], shape[1..]);
        assert_eq!(m.outputs[0].name, want.name);
        let r = c.model_infer(request("digits", vec![input(&name, shape.clone())], vec![f32_bytes(&x)])).await.unwrap();
        let r = r.into_inner();
        assert_eq!(r.outputs[0].name, want.name);
        assert_eq!(f32_from(&r.raw_output_contents[0]), want.data);
        // A wrong shape is refused before a job is released.
        let e = c.model_infer(request("digits", vec![input(&name, vec![1, 28, 28])], vec![f32_bytes(&x)])).await;
        assert_eq!(e.unwrap_err().code(), tonic::Code::InvalidArgument);
    });
    let body = json!({"inputs": [{"name": name, "shape": shape, "datatype": "FP32", "data": x}]});
    let r = http_post_json(&running.http_addr(), "/v2/models/digits/infer", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let got: Vec<f32> =
        r.json()["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(got, want.data);
    assert_eq!(running.server.stats().tasks[0].completed, 3);
}
