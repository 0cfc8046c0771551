//! `lalarand serve --listen ... --allow-load` with ONNX models: a client loads a real model into
//! the running server, gets its first result, and unloads it; every bad load is refused by
//! name and changes nothing.

use crate::examples_dir;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

/// POSTs `body` to `path` on `addr` (GET without one): (status, JSON body).
fn request(addr: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    match body.map(|b| b.to_string()) {
        Some(body) => write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        None => write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    }
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let json = response.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    (status, json)
}

fn post(addr: &str, path: &str, body: &Value) -> (u16, Value) {
    request(addr, path, Some(body))
}

/// The MNIST profile of examples/mnist with its fp32 modes only (no saved calibration is needed
/// to serve it), edited by `edit`.
fn mnist_profile(dir: &Path, file: &str, edit: impl FnOnce(&mut Value)) -> String {
    let text = std::fs::read_to_string(examples_dir().join("mnist/mnist_resnet.json")).unwrap();
    let mut p: Value = serde_json::from_str(&text).unwrap();
    for layer in p["layers"].as_array_mut().unwrap() {
        layer["modes"].as_object_mut().unwrap().remove("cpu-int8");
    }
    edit(&mut p);
    std::fs::write(dir.join(file), p.to_string()).unwrap();
    dir.join(file).display().to_string()
}

fn infer(addr: &str, model: &str) -> (u16, Value) {
    let x: Vec<f32> = (0..784).map(|i| (i % 13) as f32 / 13.0).collect();
    let (_, metadata) = request(addr, &format!("/v2/models/{model}"), None);
    let input = metadata["inputs"][0]["name"].as_str().unwrap_or("missing").to_string();
    let body = json!({"inputs": [{"name": input, "shape": [1, 1, 28, 28], "datatype": "FP32", "data": x}]});
    post(addr, &format!("/v2/models/{model}/infer"), &body)
}

/// `taskset.toml` (task `digits` of profile `profile`, period `period_ms`) and
/// `allocation.toml` (its 14 stages fp32 on cpu0) in `d`.
fn write_digits_task(d: &Path, profile: &str, period_ms: f64) {
    let task = format!("[[task]]\nname = \"digits\"\nprofile = \"{profile}\"\nperiod_ms = {period_ms:?}\n");
    std::fs::write(d.join("taskset.toml"), task).unwrap();
    let layers = vec!["\"cpu-fp32@cpu0\""; 14].join(", ");
    std::fs::write(d.join("allocation.toml"), format!("[[task]]\nname = \"digits\"\nlayers = [{layers}]\n")).unwrap();
}

#[test]
fn an_onnx_model_loads_into_a_running_server_serves_and_unloads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(examples_dir().join("mnist/platform.toml"), d.join("platform.toml")).unwrap();
    let model = d.join("mnist_resnet.onnx");
    std::fs::copy(examples_dir().join("../crates/engine/testdata/mnist_resnet.onnx"), &model).unwrap();
    let profile = mnist_profile(d, "mnist_fp32.json", |_| {});
    write_digits_task(d, "mnist_fp32.json", 100.0);
    let _turn = crate::serve::turn();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lalarand"))
        .current_dir(d)
        .args(["serve", "--platform", "platform.toml", "--tasks", "taskset.toml", "--allocation", "allocation.toml"])
        .args(["--listen", "http://127.0.0.1:0", "--allow-load", "--stats-every", "0", "--json"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut said = String::new();
    let addr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "serve ended before listening: {said}");
        said.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("lalarand: listening on http://") {
            break url.to_string();
        }
    };
    let index = || {
        let (_, v) = post(&addr, "/v2/repository/index", &json!({}));
        v.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let load = |name: &str, parameters: Value| {
        post(&addr, &format!("/v2/repository/models/{name}/load"), &json!({ "parameters": parameters }))
    };
    let model_path = model.display().to_string();

    let (status, report) = load("second", json!({"model_path": model_path, "profile_path": profile, "period_ms": 150}));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["pipelines"], json!({"kept": ["digits"], "rebuilt": [], "added": ["second"]}), "{report}");
    assert!(report["bounds_ns"]["second"].as_u64().unwrap() > 0, "{report}");
    let (status, second) = infer(&addr, "second");
    assert_eq!(status, 200, "{second}");
    let (status, digits) = infer(&addr, "digits");
    assert_eq!(status, 200, "{digits}");
    assert_eq!(second["outputs"][0]["data"], digits["outputs"][0]["data"], "the same model, the same input");
    assert_eq!(second["outputs"][0]["data"].as_array().unwrap().len(), 10);

    // Each refusal names the field, and changes nothing.
    let refused = |name: &str, parameters: Value, status: u16, says: &str| {
        let (s, v) = load(name, parameters);
        assert_eq!(s, status, "{name}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{name}: {says:?} not in {v}");
        assert_eq!(index(), ["digits", "second"], "{name} changed nothing");
    };
    let base = json!({"model_path": model_path, "profile_path": profile, "period_ms": 150});
    refused("digits", base.clone(), 409, "already running");
    let mut missing = base.clone();
    missing["model_path"] = json!(d.join("nope.onnx"));
    refused("third", missing, 400, "parameters.model_path");
    let mut no_model = base.clone();
    no_model.as_object_mut().unwrap().remove("model_path");
    refused("third", no_model, 400, "parameters.model_path: missing");
    let other = mnist_profile(d, "other.json", |p| p["model_sha256"] = json!("0".repeat(64)));
    refused(
        "third",
        json!({"model_path": model_path, "profile_path": other, "period_ms": 150}),
        400,
        "parameters.profile does not match",
    );
    let renamed = mnist_profile(d, "renamed.json", |p| {
        p.as_object_mut().unwrap().remove("model_sha256");
        p["layers"][3]["name"] = json!("not-a-stage");
    });
    refused("third", json!({"model_path": model_path, "profile_path": renamed, "period_ms": 150}), 400, "stages");
    // int8 modes only, each costing 0.2 points: 14 layers need 2.8, over the budget of 1.
    let int8 = mnist_profile(d, "int8.json", |p| {
        for layer in p["layers"].as_array_mut().unwrap() {
            layer["modes"] = json!({"cpu-int8": {"wcet_us": 100.0}});
            layer["int8_accuracy_cost"] = json!(0.2);
        }
    });
    refused("third", json!({"model_path": model_path, "profile_path": int8, "period_ms": 150}), 429, "accuracy");
    let (s, v) = post(&addr, "/v2/repository/models/nobody/unload", &json!({}));
    assert_eq!(s, 404, "{v}");

    let (status, report) = post(&addr, "/v2/repository/models/second/unload", &json!({}));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["pipelines"]["kept"], json!(["digits"]), "{report}");
    assert_eq!(infer(&addr, "second").0, 404);
    assert_eq!(infer(&addr, "digits").0, 200);

    let kill = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{rest}");
    let j = crate::stdout_json(&out);
    assert_eq!((j["executor"].as_str(), &j["report"]["every_job_accounted"]), (Some("engine"), &json!(true)), "{j}");
    let digits = &j["report"]["stats"]["tasks"][0];
    assert_eq!(
        (&digits["name"], &digits["completed"]),
        (&json!("digits"), &json!(2)),
        "totals across the changes: {j}"
    );
}

/// `serve --calibration ... --allow-load`: every load's admitted mode is measured end to end
/// before anything changes. A load whose int8 stages are budgeted at 0 (per stage) but
/// distort the output (measured `distortion`, never exactly 0 in int8) is refused over a
/// budget of 0, and one without inputs to measure on is refused naming the field; an fp32
/// load passes.
#[test]
fn a_load_over_its_budget_measured_end_to_end_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(examples_dir().join("mnist/platform.toml"), d.join("platform.toml")).unwrap();
    std::fs::copy(examples_dir().join("../crates/engine/testdata/mnist_resnet.onnx"), d.join("mnist_resnet.onnx"))
        .unwrap();
    let inputs: Vec<u8> = (0..16 * 784).flat_map(|i| (((i * 7919) % 256) as f32 / 255.0).to_le_bytes()).collect();
    std::fs::write(d.join("in.f32"), inputs).unwrap();
    let profiled = std::process::Command::new(env!("CARGO_BIN_EXE_lalarand"))
        .current_dir(d)
        .args(["profile", "mnist_resnet.onnx", "--runs", "1", "--warmup", "0", "--modes", "cpu-fp32,cpu-int8"])
        .args(["--calibration", "in.f32", "--out", "full.json"])
        .output()
        .unwrap();
    assert!(profiled.status.success(), "{}", String::from_utf8_lossy(&profiled.stderr));
    let full: Value = serde_json::from_str(&std::fs::read_to_string(d.join("full.json")).unwrap()).unwrap();
    let write = |file: &str, edit: &dyn Fn(&mut Value)| {
        let mut p = full.clone();
        for layer in p["layers"].as_array_mut().unwrap() {
            edit(layer);
        }
        p["int8_cost_kind"] = json!("distortion");
        std::fs::write(d.join(file), p.to_string()).unwrap();
        d.join(file).display().to_string()
    };
    let fp32 = write("fp32.json", &|l| {
        l["modes"].as_object_mut().unwrap().remove("cpu-int8");
    });
    let int8 = write("int8.json", &|l| {
        if l["modes"].get("cpu-int8").is_some() {
            let m = l["modes"].as_object_mut().unwrap();
            m.remove("cpu-fp32");
            l["int8_accuracy_cost"] = json!(0.0);
        }
    });
    write_digits_task(d, "fp32.json", 1000.0);
    let _turn = crate::serve::turn();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lalarand"))
        .current_dir(d)
        .args(["serve", "--platform", "platform.toml", "--tasks", "taskset.toml", "--allocation", "allocation.toml"])
        .args(["--calibration", "digits=in.f32", "--budget", "0", "--no-realtime"])
        .args(["--listen", "http://127.0.0.1:0", "--allow-load", "--stats-every", "0", "--json"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut line, mut said) = (String::new(), String::new());
    let addr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "serve ended before listening: {said}");
        said.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("lalarand: listening on http://") {
            break url.to_string();
        }
    };
    assert!(said.contains("end to end: measured 0.000 pp against the budget of 0 pp (within;"), "{said}");
    let model_path = d.join("mnist_resnet.onnx").display().to_string();
    let load = |name: &str, parameters: Value| {
        post(&addr, &format!("/v2/repository/models/{name}/load"), &json!({ "parameters": parameters }))
    };
    let (s, v) = load("quantized", json!({"model_path": model_path, "profile_path": int8, "period_ms": 1000}));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("parameters.calibration_path"), "{v}");
    let calibration = d.join("in.f32").display().to_string();
    let (s, v) = load(
        "quantized",
        json!({"model_path": model_path, "profile_path": int8, "period_ms": 1000, "calibration_path": calibration}),
    );
    assert_eq!(s, 429, "an admitted mode the check refuses is a refusal, as over the estimated budget: {v}");
    assert!(
        v["error"].as_str().unwrap().contains("measured end to end")
            && v["error"].as_str().unwrap().contains("over the budget of 0 pp"),
        "{v}"
    );
    let (s, v) = load("plain", json!({"model_path": model_path, "profile_path": fp32, "period_ms": 1000}));
    assert_eq!(s, 200, "an fp32 load has nothing to measure: {v}");

    let kill = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)));
}
