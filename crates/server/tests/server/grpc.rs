use crate::common::*;
use lalarand_runtime::serve::EarlyPolicy;
use lalarand_server::proto::infer_parameter::ParameterChoice;
use lalarand_server::proto::model_infer_request::InferInputTensor;
use lalarand_server::proto::*;
use std::collections::HashMap;

pub fn input(name: &str, shape: Vec<i64>) -> InferInputTensor {
    InferInputTensor { name: name.into(), datatype: "FP32".into(), shape, parameters: HashMap::new(), contents: None }
}

pub fn request(model: &str, inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        model_version: String::new(),
        id: "r1".into(),
        parameters: HashMap::new(),
        inputs,
        outputs: vec![],
        raw_input_contents: raw.into_iter().map(Into::into).collect(),
    }
}

pub fn int_param(p: &HashMap<String, InferParameter>, key: &str) -> i64 {
    match p.get(key).and_then(|v| v.parameter_choice.clone()) {
        Some(ParameterChoice::Int64Param(i)) => i,
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn grpc_infer_returns_the_outputs_and_the_jobs_timing() {
    let _turn = serial();
    let running = start_busy(EarlyPolicy::Wait);
    rt().block_on(async {
        let mut c = grpc(&running.grpc_url()).await;
        assert!(c.server_live(ServerLiveRequest {}).await.unwrap().into_inner().live);
        assert!(c.server_ready(ServerReadyRequest {}).await.unwrap().into_inner().ready);
        let ready = c.model_ready(ModelReadyRequest { name: "fast".into(), version: String::new() }).await.unwrap();
        assert!(ready.into_inner().ready);
        let meta = c.server_metadata(ServerMetadataRequest {}).await.unwrap().into_inner();
        assert_eq!(meta.name, "lalarand");
        assert!(meta.extensions.contains(&"system_shared_memory".to_string()), "{meta:?}");
        let m = c.model_metadata(ModelMetadataRequest { name: "slow".into(), version: "1".into() }).await.unwrap();
        let m = m.into_inner();
        assert_eq!((m.name.as_str(), m.versions.clone()), ("slow", vec!["1".to_string()]));
        assert_eq!(m.outputs[0].name, "output");

        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let r = c.model_infer(request("slow", vec![input("x", vec![2, 3])], vec![f32_bytes(&x)])).await.unwrap();
        let r = r.into_inner();
        assert_eq!((r.model_name.as_str(), r.id.as_str()), ("slow", "r1"));
        assert_eq!(r.outputs.len(), 1);
        assert_eq!((r.outputs[0].datatype.as_str(), r.outputs[0].shape.clone()), ("FP32", vec![2, 3]));
        assert_eq!(f32_from(&r.raw_output_contents[0]), x);
        let p = &r.parameters;
        let (release, start, finish) =
            (int_param(p, "release_ns"), int_param(p, "start_ns"), int_param(p, "finish_ns"));
        assert!(release <= start && start < finish, "{p:?}");
        assert_eq!(int_param(p, "response_ns"), finish - release);
        assert_eq!(int_param(p, "deadline_ns"), release + 100 * MS as i64);
        assert_eq!(int_param(p, "job"), 0);
        assert!(int_param(p, "stalled_ns") >= 0);
        assert!(int_param(p, "bound_ns") >= 2 * MS as i64);
        assert!(int_param(p, "response_ns") >= 2 * MS as i64);
        assert!(matches!(p["deadline_met"].parameter_choice, Some(ParameterChoice::BoolParam(_))), "{p:?}");

        // Typed contents work too; the second job of the task is job 1.
        let mut t = input("x", vec![3]);
        t.contents = Some(InferTensorContents { fp32_contents: vec![7.0, 8.0, 9.0], ..Default::default() });
        let r = c.model_infer(request("slow", vec![t], vec![])).await.unwrap().into_inner();
        assert_eq!(f32_from(&r.raw_output_contents[0]), [7.0, 8.0, 9.0]);
        assert_eq!(int_param(&r.parameters, "job"), 1);

        let s = c.model_statistics(ModelStatisticsRequest { name: "slow".into(), version: String::new() }).await;
        let s = s.unwrap().into_inner();
        assert_eq!((s.model_stats.len(), s.model_stats[0].inference_count), (1, 2));
    });
}

#[test]
fn grpc_over_a_unix_socket_with_mode_0660() {
    use std::os::unix::fs::PermissionsExt;
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sock");
    let url = format!("grpc+unix://{}", path.display());
    let (system, alloc) = busy_system();
    let plan = lalarand_model::ExecutionPlan::new(&system, &alloc).unwrap();
    let exec = lalarand_runtime::BusyWait::from_plan(&plan, &system.platform, lalarand_runtime::BusyTime::Wcet);
    let outputs = vec![lalarand_server::Catalog::busy_outputs(); 2];
    let running = start_with(&system, &alloc, exec, outputs, EarlyPolicy::Wait, |o| {
        o.listen = vec![lalarand_server::Listen::parse(&url).unwrap()];
    });
    assert_eq!(running.front.as_ref().unwrap().endpoints(), std::slice::from_ref(&url));
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o660);
    rt().block_on(async {
        let p = path.clone();
        let channel = tonic::transport::Endpoint::from_static("http://unix.invalid")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let p = p.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(p).await?))
                }
            }))
            .await
            .unwrap();
        let mut c = grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
        let r = c.model_infer(request("fast", vec![input("x", vec![1])], vec![f32_bytes(&[4.0])])).await;
        assert_eq!(f32_from(&r.unwrap().into_inner().raw_output_contents[0]), [4.0]);
    });
    drop(running);
    assert!(!path.exists(), "the socket file is removed at shutdown");
}

#[test]
fn methods_outside_the_protocol_subset_answer_unimplemented() {
    let _turn = serial();
    let running = start_busy(EarlyPolicy::Wait);
    rt().block_on(async {
        // A raw gRPC call to Triton's CudaSharedMemoryStatus, which this server does not implement.
        let mut c = tonic::client::Grpc::new(
            tonic::transport::Endpoint::from_shared(running.grpc_url()).unwrap().connect().await.unwrap(),
        );
        c.ready().await.unwrap();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
            "/inference.GRPCInferenceService/CudaSharedMemoryStatus",
        );
        let codec = tonic_prost::ProstCodec::<ServerLiveRequest, ServerLiveResponse>::default();
        let e = c.unary(tonic::Request::new(ServerLiveRequest {}), path, codec).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unimplemented, "{e:?}");
    });
}

/// An INT64 output comes back as INT64, its own 8-byte elements in `raw_output_contents`.
#[test]
fn grpc_outputs_keep_their_datatype() {
    let _turn = serial();
    let running = start_busy(EarlyPolicy::Wait);
    rt().block_on(async {
        let mut c = grpc(&running.grpc_url()).await;
        let ids = [5i64, -2, 1 << 40];
        let mut t = input("ids", vec![3]);
        t.datatype = "INT64".into();
        let raw: Vec<u8> = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
        let r = c.model_infer(request("fast", vec![t], vec![raw.clone()])).await.unwrap().into_inner();
        assert_eq!((r.outputs[0].datatype.as_str(), r.outputs[0].shape.clone()), ("INT64", vec![3]));
        assert_eq!(r.raw_output_contents[0].as_ref(), &raw[..], "exact beyond 2^24");
    });
}
