use crate::common::*;
use crate::grpc::{input, request};
use lalarand_runtime::serve::EarlyPolicy;
use lalarand_server::proto::infer_parameter::ParameterChoice;
use lalarand_server::proto::model_infer_request::InferRequestedOutputTensor;
use lalarand_server::proto::*;
use serde_json::json;
use std::collections::HashMap;

use crate::shm_region::Shm;

fn shm_params(region: &str, offset: i64, size: i64) -> HashMap<String, InferParameter> {
    let p = |c| InferParameter { parameter_choice: Some(c) };
    HashMap::from([
        ("shared_memory_region".to_string(), p(ParameterChoice::StringParam(region.into()))),
        ("shared_memory_offset".to_string(), p(ParameterChoice::Int64Param(offset))),
        ("shared_memory_byte_size".to_string(), p(ParameterChoice::Int64Param(size))),
    ])
}

#[test]
fn inputs_and_outputs_in_registered_shared_memory() {
    let _turn = serial();
    let running = start_busy(EarlyPolicy::Wait);
    let mut shm = Shm::new(4096);
    let x = [1.5f32, 2.5, 3.5, 4.5];
    shm.bytes()[..16].copy_from_slice(&f32_bytes(&x));
    rt().block_on(async {
        let mut c = grpc(&running.grpc_url()).await;
        let reg = |name: &str, offset, byte_size| SystemSharedMemoryRegisterRequest {
            name: name.into(),
            key: shm.key.clone(),
            offset,
            byte_size,
        };
        c.system_shared_memory_register(reg("io", 0, 4096)).await.unwrap();
        let e = c.system_shared_memory_register(reg("io", 0, 16)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e:?}");
        let e = c.system_shared_memory_register(reg("big", 4000, 200)).await.unwrap_err();
        assert!(e.code() == tonic::Code::InvalidArgument && e.message().contains("do not fit"), "{e:?}");
        let mut missing = reg("gone", 0, 16);
        missing.key = "/lalarand-no-such-object".into();
        let e = c.system_shared_memory_register(missing).await.unwrap_err();
        assert!(e.message().contains("shm_open"), "{e:?}");
        let status = c.system_shared_memory_status(SystemSharedMemoryStatusRequest { name: String::new() }).await;
        assert_eq!(status.unwrap().into_inner().regions["io"].byte_size, 4096);

        // Input at offset 0, output at offset 1024, both in the region.
        let mut t = input("x", vec![4]);
        t.parameters = shm_params("io", 0, 16);
        let mut req = request("slow", vec![t], vec![]);
        req.outputs =
            vec![InferRequestedOutputTensor { name: "output".into(), parameters: shm_params("io", 1024, 16) }];
        let r = c.model_infer(req).await.unwrap().into_inner();
        assert!(r.raw_output_contents[0].is_empty(), "the output is in shared memory, not the response");
        assert_eq!(r.outputs[0].shape, vec![4]);

        // Out of bounds: a clear error naming the region, no job released.
        let mut t = input("x", vec![4]);
        t.parameters = shm_params("io", 4090, 16);
        let e = c.model_infer(request("fast", vec![t], vec![])).await.unwrap_err();
        assert!(e.code() == tonic::Code::InvalidArgument && e.message().contains("\"io\""), "{e:?}");
        let mut t = input("x", vec![4]);
        t.parameters = shm_params("nope", 0, 16);
        let e = c.model_infer(request("fast", vec![t], vec![])).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
        c.system_shared_memory_unregister(SystemSharedMemoryUnregisterRequest { name: "io".into() }).await.unwrap();
    });
    assert_eq!(f32_from(&shm.bytes()[1024..1040]), x);

    // The same over HTTP.
    let a = running.http_addr();
    let r = http_post_json(
        &a,
        "/v2/systemsharedmemory/region/h/register",
        &json!({"key": shm.key, "offset": 0, "byte_size": 4096}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(http_get(&a, "/v2/systemsharedmemory/status").json()[0]["name"], "h");
    shm.bytes()[..8].copy_from_slice(&f32_bytes(&[9.0, 8.0]));
    let body = json!({
        "inputs": [{"name": "x", "shape": [2], "datatype": "FP32",
                    "parameters": {"shared_memory_region": "h", "shared_memory_byte_size": 8}}],
        "outputs": [{"name": "output", "parameters": {"shared_memory_region": "h", "shared_memory_offset": 2048, "shared_memory_byte_size": 8}}]
    });
    let r = http_post_json(&a, "/v2/models/fast/infer", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(f32_from(&shm.bytes()[2048..2056]), [9.0, 8.0]);
    let r = http_raw(&a, "POST", "/v2/systemsharedmemory/unregister", &[], b"", None);
    assert_eq!(r.status, 200);
    assert_eq!(http_get(&a, "/v2/systemsharedmemory/status").json(), json!([]));
}
