use crate::common::*;
use lalarand_runtime::serve::EarlyPolicy;
use serde_json::json;

#[test]
fn http_json_and_binary_infer_return_outputs_and_timing() {
    let _turn = serial();
    let running = start_busy(EarlyPolicy::Wait);
    let a = running.http_addr();
    assert_eq!(http_get(&a, "/v2/health/live").status, 200);
    assert_eq!(http_get(&a, "/v2/health/ready").status, 200);
    assert_eq!(http_get(&a, "/v2/models/fast/ready").status, 200);
    assert_eq!(http_get(&a, "/v2/models/fast/versions/1/ready").status, 200);
    assert_eq!(http_get(&a, "/v2").json()["name"], "lalarand");
    let meta = http_get(&a, "/v2/models/slow").json();
    assert_eq!(meta["outputs"][0]["name"], "output");
    assert_eq!(meta["parameters"]["period_ns"], 100 * MS);

    // JSON tensors in and out.
    let body =
        json!({"id": "a", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4.5]]}]});
    let r = http_post_json(&a, "/v2/models/slow/infer", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["id"], "a");
    assert_eq!(j["outputs"][0]["data"], json!([1.0, 2.0, 3.0, 4.5]));
    assert_eq!(j["outputs"][0]["shape"], json!([2, 2]));
    let p = &j["parameters"];
    for key in ["job", "release_ns", "start_ns", "finish_ns", "response_ns", "deadline_ns", "stalled_ns", "bound_ns"] {
        assert!(p[key].is_i64(), "{key}: {p}");
    }
    assert!(p["deadline_met"].is_boolean(), "{p}");
    assert_eq!(
        p["response_ns"].as_i64().unwrap(),
        p["finish_ns"].as_i64().unwrap() - p["release_ns"].as_i64().unwrap()
    );

    // The binary tensor data extension, both ways (what tritonclient.http sends by default).
    let x = [0.5f32, -1.0, 2.0];
    let header = json!({
        "inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}],
        "outputs": [{"name": "output", "parameters": {"binary_data": true}}]
    });
    let (headers, body) = binary_body(&header, &[&f32_bytes(&x)]);
    let r = http_raw(&a, "POST", "/v2/models/slow/versions/1/infer", &headers, &body, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let n: usize = r.header("inference-header-content-length").unwrap().parse().unwrap();
    let j = r.json();
    assert_eq!(j["outputs"][0]["parameters"]["binary_data_size"], 12);
    assert_eq!(f32_from(&r.body[n..]), x);
    assert_eq!(j["parameters"]["job"], 1);

    // binary_data_output for every output when none is named.
    let header = json!({
        "parameters": {"binary_data_output": true},
        "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [3]}]
    });
    let r = http_post_json(&a, "/v2/models/fast/infer", &header);
    assert_eq!(r.status, 200, "{}", r.text());
    let n: usize = r.header("inference-header-content-length").unwrap().parse().unwrap();
    assert_eq!(f32_from(&r.body[n..]), [3.0]);

    let s = http_get(&a, "/v2/models/slow/stats").json();
    assert_eq!(s["model_stats"][0]["inference_count"], 2);
    assert_eq!(http_get(&a, "/v2/models/stats").json()["model_stats"].as_array().unwrap().len(), 2);
}

#[test]
fn several_named_inputs_and_datatypes_reach_the_executor() {
    let _turn = serial();
    let running = start_busy(EarlyPolicy::Wait);
    let a = running.http_addr();
    let (headers, body) = binary_body(
        &json!({"inputs": [
            {"name": "ids", "shape": [2], "datatype": "INT64", "parameters": {"binary_data_size": 16}},
            {"name": "mask", "shape": [2], "datatype": "BOOL", "data": [true, false]},
            {"name": "img", "shape": [1, 2], "datatype": "UINT8", "data": [7, 255]}
        ]}),
        &[&[5i64.to_le_bytes(), (-2i64).to_le_bytes()].concat()],
    );
    let r = http_raw(&a, "POST", "/v2/models/fast/infer", &headers, &body, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let outs = r.json()["outputs"].clone();
    // The busy-wait executor echoes every input under its name, each output in its own datatype.
    let get = |n: &str| outs.as_array().unwrap().iter().find(|o| o["name"] == n).unwrap().clone();
    let typed = |n: &str| (get(n)["datatype"].clone(), get(n)["data"].clone());
    assert_eq!(typed("ids"), (json!("INT64"), json!([5, -2])));
    assert_eq!(typed("mask"), (json!("BOOL"), json!([true, false])));
    assert_eq!(typed("img"), (json!("UINT8"), json!([7, 255])));
    // As binary data: the INT64 output's own 8-byte elements.
    let (headers, body) = binary_body(
        &json!({"inputs": [
            {"name": "ids", "shape": [2], "datatype": "INT64", "parameters": {"binary_data_size": 16}},
            {"name": "mask", "shape": [2], "datatype": "BOOL", "data": [true, false]},
            {"name": "img", "shape": [1, 2], "datatype": "UINT8", "data": [7, 255]}
        ], "outputs": [{"name": "ids", "parameters": {"binary_data": true}}]}),
        &[&[5i64.to_le_bytes(), (-2i64).to_le_bytes()].concat()],
    );
    let r = http_raw(&a, "POST", "/v2/models/fast/infer", &headers, &body, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let n: usize = r.header("inference-header-content-length").unwrap().parse().unwrap();
    assert_eq!(r.body[n..], [5i64.to_le_bytes(), (-2i64).to_le_bytes()].concat());
}

#[test]
fn early_requests_wait_or_are_rejected_naming_the_task() {
    let _turn = serial();
    let running = start_busy(EarlyPolicy::Reject);
    let a = running.http_addr();
    let body = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]});
    assert_eq!(http_post_json(&a, "/v2/models/slow/infer", &body).status, 200);
    // Within slow's 100 ms period: rejected, 429, naming the task and the reason.
    let r = http_post_json(&a, "/v2/models/slow/infer", &body);
    assert_eq!(r.status, 429, "{}", r.text());
    let e = r.json()["error"].as_str().unwrap().to_string();
    assert!(e.contains("\"slow\"") && e.contains("earliest legal release"), "{e}");
    // The other task goes on.
    assert_eq!(http_post_json(&a, "/v2/models/fast/infer", &body).status, 200);
    let metrics = http_get(&a, "/metrics").text();
    assert!(metrics.contains("lalarand_rejected_total{task=\"slow\"} 1"), "{metrics}");
}

#[test]
fn metrics_expose_jobs_misses_rejected_responses_bounds_and_stalls() {
    let _turn = serial();
    let running = start_busy(EarlyPolicy::Wait);
    let a = running.http_addr();
    let body = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]});
    for _ in 0..3 {
        assert_eq!(http_post_json(&a, "/v2/models/fast/infer", &body).status, 200);
    }
    let r = http_get(&a, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("application/openmetrics-text; version=1.0.0"), "{r:?}");
    let m = r.text();
    for want in [
        "lalarand_jobs_total{task=\"fast\"} 3",
        "lalarand_misses_total{task=\"fast\"}",
        "lalarand_rejected_total{task=\"slow\"} 0",
        "lalarand_response_seconds_count{task=\"fast\"} 3",
        "lalarand_response_seconds_bucket{le=",
        "lalarand_bound_seconds{task=\"fast\"}",
        "lalarand_stall_seconds_total{kind=\"stage\"}",
        "lalarand_unauthenticated_requests_total 0",
        "lalarand_resource_busy_seconds_total{resource=\"cpu0\"}",
        "# EOF",
    ] {
        assert!(m.contains(want), "{want} not in\n{m}");
    }
}

#[test]
fn http_over_a_unix_socket() {
    use std::io::{Read, Write};
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sock");
    let url = format!("http+unix://{}", path.display());
    let (system, alloc) = busy_system();
    let plan = lalarand_model::ExecutionPlan::new(&system, &alloc).unwrap();
    let exec = lalarand_runtime::BusyWait::from_plan(&plan, &system.platform, lalarand_runtime::BusyTime::Wcet);
    let outputs = vec![lalarand_server::Catalog::busy_outputs(); 2];
    let running = start_with(&system, &alloc, exec, outputs, EarlyPolicy::Wait, |o| {
        o.listen = vec![lalarand_server::Listen::parse(&url).unwrap()];
    });
    assert_eq!(running.front.as_ref().unwrap().endpoints(), std::slice::from_ref(&url));
    let body = json!({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}).to_string();
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    write!(
        s,
        "POST /v2/models/fast/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"data\":[1.0,2.0]") && response.contains("\"deadline_met\""), "{response}");
}
