//! Every bad input gets a clear protocol error with the right status, and the server goes on.

use crate::common::*;
use crate::grpc::{input, request};
use lalarand_runtime::serve::{EarlyPolicy, TensorSpec};
use lalarand_runtime::{BusyTime, BusyWait};
use serde_json::json;

/// A busy server whose `fast` model declares one input `x` of [*, 3] FP32 (as a real model
/// does), limits 1 MiB requests.
fn declared() -> Running<Declared> {
    let (system, alloc) = busy_system();
    let plan = lalarand_model::ExecutionPlan::new(&system, &alloc).unwrap();
    let exec = Declared(BusyWait::from_plan(&plan, &system.platform, BusyTime::Wcet));
    let out = vec![TensorSpec {
        name: "output".into(),
        dtype: lalarand_runtime::serve::DataType::Fp32,
        dims: vec![None, Some(3)],
    }];
    start_with(&system, &alloc, exec, vec![out.clone(), out], EarlyPolicy::Wait, |o| {
        o.limits.max_request_bytes = 1 << 20
    })
}

/// Busy-wait stages behind a declared input (the shape and datatype checks of a real model).
pub struct Declared(BusyWait);

impl lalarand_runtime::StageExecutor for Declared {
    type Job = <BusyWait as lalarand_runtime::StageExecutor>::Job;
    fn input_spec(&self, _task: usize) -> lalarand_runtime::serve::InputSpec {
        lalarand_runtime::serve::InputSpec::single("x", vec![None, Some(3)])
    }
    fn start_job(
        &self,
        t: usize,
        j: u64,
        i: &lalarand_runtime::serve::Input,
    ) -> Result<Self::Job, lalarand_runtime::StageError> {
        self.0.start_job(t, j, i)
    }
    fn run_stage(&self, t: usize, s: usize, j: u64, st: &mut Self::Job) -> Result<(), lalarand_runtime::StageError> {
        lalarand_runtime::StageExecutor::run_stage(&self.0, t, s, j, st)
    }
    fn outputs(
        &self,
        t: usize,
        st: Self::Job,
    ) -> Result<Vec<lalarand_runtime::serve::HostTensor>, lalarand_runtime::StageError> {
        self.0.outputs(t, st)
    }
}

fn error_of(r: &HttpResponse) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn http_bad_inputs_get_clear_errors_and_the_server_goes_on() {
    let _turn = serial();
    let running = declared();
    let a = running.http_addr();
    let good = json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]});
    let post = |body: &[u8]| http_raw(&a, "POST", "/v2/models/fast/infer", &[], body, None);
    let cases: Vec<(&str, HttpResponse, u16, &str)> = vec![
        ("malformed JSON", post(b"{\"inputs\": [}"), 400, "JSON"),
        ("not an infer request", post(b"[1, 2]"), 400, "JSON"),
        ("unknown model", http_post_json(&a, "/v2/models/nope/infer", &good), 404, "no model is called \"nope\""),
        ("unknown version", http_post_json(&a, "/v2/models/fast/versions/7/infer", &good), 404, "version"),
        (
            "wrong shape",
            http_post_json(
                &a,
                "/v2/models/fast/infer",
                &json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
            ),
            400,
            "shape [1, 4], the model takes [*, 3]",
        ),
        (
            "wrong datatype",
            http_post_json(
                &a,
                "/v2/models/fast/infer",
                &json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 3]}]}),
            ),
            400,
            "datatype INT64, the model takes FP32",
        ),
        (
            "unsupported datatype",
            http_post_json(
                &a,
                "/v2/models/fast/infer",
                &json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}]}),
            ),
            400,
            "not supported",
        ),
        (
            "unknown input",
            http_post_json(
                &a,
                "/v2/models/fast/infer",
                &json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}, {"name": "y", "shape": [1], "datatype": "FP32", "data": [1]}]}),
            ),
            400,
            "no input \"y\"",
        ),
        (
            "missing input",
            http_post_json(
                &a,
                "/v2/models/fast/infer",
                &json!({"inputs": [{"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]}),
            ),
            400,
            "input \"x\" is missing",
        ),
        (
            "too few values",
            http_post_json(
                &a,
                "/v2/models/fast/infer",
                &json!({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
            ),
            400,
            "3 values, the shape takes 6",
        ),
        (
            "negative dim",
            http_post_json(
                &a,
                "/v2/models/fast/infer",
                &json!({"inputs": [{"name": "x", "shape": [-1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
            ),
            400,
            "negative",
        ),
        (
            "huge shape",
            http_post_json(
                &a,
                "/v2/models/fast/infer",
                &json!({"inputs": [{"name": "x", "shape": [4611686018427387904i64, 3], "datatype": "FP32", "data": [1]}]}),
            ),
            400,
            "exceeds the limit",
        ),
        (
            "unknown output",
            http_post_json(
                &a,
                "/v2/models/fast/infer",
                &json!({"inputs": good["inputs"], "outputs": [{"name": "logits"}]}),
            ),
            404,
            "no output \"logits\"",
        ),
        ("unknown route", http_get(&a, "/v2/nothing"), 404, "no such endpoint"),
    ];
    for (what, r, status, needle) in cases {
        assert_eq!(r.status, status, "{what}: {}", r.text());
        let e = serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|j| j["error"].as_str().map(String::from))
            .unwrap_or_else(|| r.text());
        assert!(e.contains(needle), "{what}: {needle:?} not in {e}");
    }
    // Binary data: a header length past the body, too few bytes for binary_data_size, bytes
    // left over, a body cut off by a client that went away.
    let header =
        json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}]});
    let (mut headers, body) = binary_body(&header, &[&f32_bytes(&[1.0, 2.0])]);
    let r = http_raw(&a, "POST", "/v2/models/fast/infer", &headers, &body, None);
    assert!(r.status == 400 && error_of(&r).contains("truncated"), "{}", r.text());
    let (_, long) = binary_body(&header, &[&f32_bytes(&[1.0, 2.0, 3.0, 4.0])]);
    let r = http_raw(&a, "POST", "/v2/models/fast/infer", &headers, &long, None);
    assert!(r.status == 400 && error_of(&r).contains("4 bytes of binary data after"), "{}", r.text());
    headers[0].1 = "99999".into();
    let r = http_raw(&a, "POST", "/v2/models/fast/infer", &headers, &long, None);
    assert!(r.status == 400 && error_of(&r).contains("truncated"), "{}", r.text());
    let r = http_raw(&a, "POST", "/v2/models/fast/infer", &[], &body[..10], Some(body.len()));
    assert_eq!(r.status, 400, "{}", r.text());
    // Over the request size limit: refused before it is read whole.
    let big = vec![b' '; (1 << 20) + 1];
    let r = http_raw(&a, "POST", "/v2/models/fast/infer", &[], &big, None);
    assert_eq!(r.status, 413, "{}", r.text());
    // The server goes on.
    let r = http_post_json(&a, "/v2/models/fast/infer", &good);
    assert_eq!(r.status, 200, "{}", r.text());
    let stats = running.server.stats();
    assert_eq!(stats.tasks[0].completed, 1, "no bad request became a job");
}

#[test]
fn grpc_bad_inputs_get_clear_status_codes_and_the_server_goes_on() {
    let _turn = serial();
    let running = declared();
    rt().block_on(async {
        let mut c = grpc(&running.grpc_url()).await;
        let x = f32_bytes(&[1.0, 2.0, 3.0]);
        let cases = vec![
            (
                "unknown model",
                request("nope", vec![input("x", vec![1, 3])], vec![x.clone()]),
                tonic::Code::NotFound,
                "no model",
            ),
            (
                "wrong shape",
                request("fast", vec![input("x", vec![3, 1])], vec![x.clone()]),
                tonic::Code::InvalidArgument,
                "the model takes [*, 3]",
            ),
            (
                "too few bytes",
                request("fast", vec![input("x", vec![2, 3])], vec![x.clone()]),
                tonic::Code::InvalidArgument,
                "12 bytes of data",
            ),
            ("no data", request("fast", vec![input("x", vec![1, 3])], vec![]), tonic::Code::InvalidArgument, "no data"),
            (
                "extra raw",
                request("fast", vec![input("x", vec![1, 3])], vec![x.clone(), x.clone()]),
                tonic::Code::InvalidArgument,
                "more than the inputs",
            ),
            ("no inputs", request("fast", vec![], vec![]), tonic::Code::InvalidArgument, "has no inputs"),
        ];
        for (what, req, code, needle) in cases {
            let e = c.model_infer(req).await.unwrap_err();
            assert_eq!(e.code(), code, "{what}: {e:?}");
            assert!(e.message().contains(needle), "{what}: {needle:?} not in {}", e.message());
        }
        let mut t = input("x", vec![1, 3]);
        t.datatype = "FP16".into();
        let e = c.model_infer(request("fast", vec![t], vec![x.clone()])).await.unwrap_err();
        assert!(e.code() == tonic::Code::InvalidArgument && e.message().contains("FP16"), "{e:?}");
        // Over the message size limit.
        let big = vec![0u8; (1 << 20) + 16];
        let e = c.model_infer(request("fast", vec![input("x", vec![1, 3])], vec![big])).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
        let r = c.model_infer(request("fast", vec![input("x", vec![1, 3])], vec![x.clone()])).await;
        assert!(r.is_ok(), "{r:?}");
    });
}

#[test]
fn a_client_that_disconnects_mid_job_leaves_the_job_accounted_and_the_server_serving() {
    let _turn = serial();
    let running = declared();
    let a = running.http_addr();
    let body = json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}).to_string();
    let wait_until = |f: &dyn Fn() -> bool| {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !f() {
            assert!(std::time::Instant::now() < end, "timed out");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    };
    // Send a full request to the slow task and hang up once its job is released, before its
    // response is read (its 2 ms stage usually still running; hanging up before the release may
    // cancel the request before it is submitted, which is not what this test is about).
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&a).unwrap();
        let req =
            format!("POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        s.write_all(req.as_bytes()).unwrap();
        wait_until(&|| running.server.stats().tasks[1].released == 1);
    }
    wait_until(&|| running.server.stats().tasks[1].completed == 1);
    let r = http_post_json(&a, "/v2/models/slow/infer", &serde_json::from_str(&body).unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["parameters"]["job"], 1);
    let s = running.server.stats();
    assert_eq!((s.tasks[1].released, s.tasks[1].completed, s.tasks[1].in_flight), (2, 2, 0));
}
