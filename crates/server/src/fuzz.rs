//! Fuzzing the decode paths with proptest: random bytes and mutated valid requests through the
//! HTTP JSON and binary-extension parser and the gRPC message decoder, each then through the
//! tensor checks against a model that declares its input. Nothing may panic; every input is
//! decoded or refused with an error. Cases per property: `FUZZ_CASES` (default 2000; the
//! count tried is in docs/runtime.md, "Network server").

use crate::catalog::ModelInfo;
use crate::codec::decode_input;
use crate::frontend::Limits;
use crate::proto::ModelInferRequest;
use crate::shm::Registry;
use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use lalarand_runtime::serve::{DataType, InputSpec, TensorSpec};
use proptest::prelude::*;
use prost::Message;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

fn model(any: bool) -> ModelInfo {
    let inputs = if any {
        InputSpec::any()
    } else {
        InputSpec {
            tensors: Some(vec![
                TensorSpec { name: "x".into(), dtype: DataType::Fp32, dims: vec![None, Some(3)] },
                TensorSpec { name: "ids".into(), dtype: DataType::Int64, dims: vec![Some(2)] },
            ]),
        }
    };
    ModelInfo {
        name: "m".into(),
        inputs,
        outputs: vec![TensorSpec { name: "output".into(), dtype: DataType::Fp32, dims: vec![None] }],
        period: 1,
        deadline: 1,
        bound: None,
        periodic: false,
    }
}

fn limits() -> Limits {
    Limits { max_request_bytes: 1 << 20, max_elements: 1 << 16 }
}

/// A valid binary-extension HTTP request for `model(false)`.
fn valid_http() -> (String, Vec<u8>) {
    let head = serde_json::json!({
        "id": "1",
        "parameters": {"binary_data_output": true},
        "inputs": [
            {"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}},
            {"name": "ids", "shape": [2], "datatype": "INT64", "data": [1, 2]}
        ],
        "outputs": [{"name": "output", "parameters": {"binary_data": true}}]
    })
    .to_string();
    let mut body = head.clone().into_bytes();
    body.extend(std::iter::repeat_n(0u8, 12));
    (head.len().to_string(), body)
}

/// A valid gRPC request for `model(false)`, encoded.
fn valid_grpc() -> Vec<u8> {
    use crate::proto::model_infer_request::InferInputTensor;
    let t = |name: &str, dtype: &str, shape: Vec<i64>| InferInputTensor {
        name: name.into(),
        datatype: dtype.into(),
        shape,
        parameters: Default::default(),
        contents: None,
    };
    ModelInferRequest {
        model_name: "m".into(),
        inputs: vec![t("x", "FP32", vec![2, 3]), t("ids", "INT64", vec![2])],
        raw_input_contents: vec![Bytes::from(vec![0u8; 24]), Bytes::from(vec![1u8; 16])],
        ..Default::default()
    }
    .encode_to_vec()
}

fn http_decode(len_header: Option<&str>, body: Vec<u8>, any: bool) {
    let mut h = HeaderMap::new();
    if let Some(v) = len_header.and_then(|v| HeaderValue::from_str(v).ok()) {
        h.insert(crate::http::HEADER_LENGTH, v);
    }
    if let Ok(p) = crate::http::parse_infer(&h, Bytes::from(body)) {
        let _ = decode_input(&model(any), p.tensors, &Registry::default(), &limits());
    }
}

fn grpc_decode(bytes: &[u8], any: bool) {
    if let Ok(mut r) = ModelInferRequest::decode(bytes) {
        let _ = crate::grpc::decode_request(&model(any), &mut r, &Registry::default(), &limits());
    }
}

/// `base` with `edits` applied: (position, new byte) overwrites, then a cut to `cut` bytes.
fn mutate(mut base: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    for &(at, b) in edits {
        if !base.is_empty() {
            let n = base.len();
            base[at % n] = b;
        }
    }
    if let Some(c) = cut {
        base.truncate(c % (base.len() + 1));
    }
    base
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn http_random_bytes(body in proptest::collection::vec(any::<u8>(), 0..512), len in proptest::option::of(0usize..600), any in any::<bool>()) {
        http_decode(len.map(|l| l.to_string()).as_deref(), body, any);
    }

    #[test]
    fn http_mutated_valid_requests(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8), cut in proptest::option::of(any::<usize>()), any in any::<bool>()) {
        let (len, body) = valid_http();
        http_decode(Some(&len), mutate(body, &edits, cut), any);
    }

    #[test]
    fn http_json_with_random_shapes_and_types(
        shape in proptest::collection::vec(any::<i64>(), 0..5),
        dtype in prop::sample::select(vec!["FP32", "INT64", "INT32", "UINT8", "BOOL", "FP16", "BYTES", ""]),
        data in proptest::collection::vec(-1e6f64..1e6, 0..40),
        binary in proptest::option::of(any::<u64>()),
        any in any::<bool>(),
    ) {
        let mut input = serde_json::json!({"name": "x", "shape": shape, "datatype": dtype, "data": data});
        if let Some(n) = binary {
            input["parameters"] = serde_json::json!({"binary_data_size": n});
        }
        let body = serde_json::json!({"inputs": [input]}).to_string();
        let len = body.len().to_string();
        let mut bytes = body.into_bytes();
        bytes.extend(std::iter::repeat_n(7u8, (binary.unwrap_or(0) % 64) as usize));
        http_decode(Some(&len), bytes, any);
    }

    #[test]
    fn grpc_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512), any in any::<bool>()) {
        grpc_decode(&bytes, any);
    }

    #[test]
    fn grpc_mutated_valid_requests(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8), cut in proptest::option::of(any::<usize>()), any in any::<bool>()) {
        grpc_decode(&mutate(valid_grpc(), &edits, cut), any);
    }
}

#[test]
fn the_valid_requests_decode() {
    let (len, body) = valid_http();
    let mut h = HeaderMap::new();
    h.insert(crate::http::HEADER_LENGTH, HeaderValue::from_str(&len).unwrap());
    let p = crate::http::parse_infer(&h, Bytes::from(body)).unwrap();
    let input = decode_input(&model(false), p.tensors, &Registry::default(), &limits()).unwrap();
    assert_eq!(input.tensors().len(), 2);
    let mut r = ModelInferRequest::decode(valid_grpc().as_slice()).unwrap();
    let (input, _) = crate::grpc::decode_request(&model(false), &mut r, &Registry::default(), &limits()).unwrap();
    assert_eq!(input.get("x").unwrap().dims(), [2, 3]);
}
