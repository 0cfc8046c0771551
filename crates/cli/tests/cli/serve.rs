//! `lalarand serve`: a server fed synthetic inputs until --seconds or Ctrl-C, then drained
//! and reported.

use crate::{examples_dir, lalarand, stdout_json};
use std::os::fd::AsRawFd;

/// Takes turns with the runtime's tests and `run`'s (their workers pin to the same cores).
pub fn turn() -> std::fs::File {
    let path = std::env::temp_dir().join("lalarand-runtime-tests.lock");
    let file = std::fs::File::options().create(true).truncate(false).write(true).open(&path).expect("lock file");
    // SAFETY: flock on an open descriptor; released when the file is closed.
    assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }, 0, "flock {}", path.display());
    file
}

fn mnist_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::copy_dir(&examples_dir().join("mnist"), dir.path());
    dir
}

const BASE: [&str; 7] =
    ["serve", "--platform", "platform.toml", "--tasks", "taskset.toml", "--allocation", "allocation-budget-1.toml"];

#[test]
fn busy_serve_reports_every_task_and_accounts_for_every_job() {
    let dir = mnist_dir();
    let d = dir.path();
    let _turn = turn();
    let out = lalarand()
        .current_dir(d)
        .args(BASE)
        .args(["--busy", "--sporadic", "digits", "--seconds", "1", "--json", "--stats-every", "0"])
        .args(["--trace", "trace.json", "--trace-seconds", "0.5", "--no-realtime"])
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
    let j = stdout_json(&out);
    assert_eq!(j["executor"], "busy");
    assert_eq!(j["report"]["stats"]["realtime"], false, "--no-realtime: normal priority, said so");
    assert_eq!(j["report"]["every_job_accounted"], true, "{j}");
    let tasks = j["report"]["stats"]["tasks"].as_array().unwrap();
    assert_eq!((tasks[0]["name"].as_str(), tasks[0]["kind"].as_str()), (Some("digits"), Some("sporadic")));
    assert_eq!(tasks[1]["kind"], "periodic");
    for t in tasks {
        let n = |k: &str| t[k].as_u64().unwrap();
        assert_eq!(n("released"), n("completed") + n("failed") + n("aborted") + n("cancelled") + n("dropped"), "{t}");
        assert!(n("completed") >= 5, "{t}");
    }
    assert!(!j["memory"]["samples"].as_array().unwrap().is_empty());
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("trace.json")).unwrap()).unwrap();
    assert!(trace["traceEvents"].as_array().unwrap().iter().any(|e| e["ph"] == "X"));
}

#[test]
fn ctrl_c_drains_and_reports() {
    let dir = mnist_dir();
    let d = dir.path();
    let _turn = turn();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_lalarand"))
        .current_dir(d)
        .args(BASE)
        .args(["--busy", "--sporadic", "digits", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed().as_secs() < 10, "stopped promptly");
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
    let j = stdout_json(&out);
    assert_eq!(
        (j["report"]["policy"].as_str(), j["report"]["stats"]["stopped"].as_bool()),
        (Some("drain"), Some(true))
    );
    assert_eq!(j["report"]["every_job_accounted"], true);
    assert!(j["report"]["stats"]["tasks"][0]["completed"].as_u64().unwrap() > 5, "{j}");
}

#[test]
fn bad_serve_arguments_are_refused_by_name() {
    let dir = mnist_dir();
    let d = dir.path();
    lalarand()
        .current_dir(d)
        .args(BASE)
        .args(["--busy", "--sporadic", "radar", "--seconds", "1"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no task is called \"radar\""))
        .stderr(predicates::str::contains("digits"));
    // The int8 allocation needs the profiled calibration, which examples/mnist's profile lacks.
    lalarand()
        .current_dir(d)
        .args(BASE)
        .arg(format!(
            "--models=digits={}",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/testdata/mnist_resnet.onnx").display()
        ))
        .args(["--seconds", "1"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no saved int8 calibration"));
}

/// Reads `lalarand: listening on URL` lines from the child's stderr until `n` came.
fn listening(stderr: &mut impl std::io::BufRead, n: usize) -> Vec<String> {
    let mut urls = Vec::new();
    let mut line = String::new();
    while urls.len() < n {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "stderr ended before {n} endpoints: {urls:?}");
        if let Some(url) = line.trim().strip_prefix("lalarand: listening on ") {
            urls.push(url.to_string());
        }
    }
    urls
}

#[test]
fn listen_serves_every_task_to_network_clients_and_sigterm_drains() {
    use std::io::{BufReader, Read, Write};
    let dir = mnist_dir();
    let d = dir.path();
    let sock = d.join("l.sock");
    let _turn = turn();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lalarand"))
        .current_dir(d)
        .args(BASE)
        .args(["--busy", "--early", "reject", "--json", "--stats-every", "0"])
        .args(["--listen", "http://127.0.0.1:0", "--listen"])
        .arg(format!("grpc+unix://{}", sock.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let urls = listening(&mut stderr, 2);
    assert!(urls[0].starts_with("http://127.0.0.1:") && !urls[0].ends_with(":0"), "{urls:?}");
    assert_eq!(urls[1], format!("grpc+unix://{}", sock.display()));
    let addr = urls[0].trim_start_matches("http://");
    let body = r#"{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}"#;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    for key in ["\"job\":0", "\"release_ns\"", "\"response_ns\"", "\"bound_ns\"", "\"deadline_met\"", "\"stalled_ns\""]
    {
        assert!(response.contains(key), "{key} not in {response}");
    }
    let kill = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{rest}");
    let j = stdout_json(&out);
    assert_eq!(j["report"]["every_job_accounted"], true);
    let tasks = j["report"]["stats"]["tasks"].as_array().unwrap();
    assert!(tasks.iter().all(|t| t["kind"] == "sporadic"), "every task is served to clients: {j}");
    assert_eq!(tasks[0]["completed"], 1, "only the client's request ran: {j}");
    assert!(!sock.exists(), "the socket file is removed");
}

#[test]
fn listen_refuses_remote_addresses_and_bad_urls_by_name() {
    let dir = mnist_dir();
    let d = dir.path();
    lalarand()
        .current_dir(d)
        .args(BASE)
        .args(["--busy", "--listen", "http://0.0.0.0:0", "--seconds", "1"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--listen http://0.0.0.0:0"))
        .stderr(predicates::str::contains("--allow-remote"));
    lalarand()
        .current_dir(d)
        .args(BASE)
        .args(["--busy", "--listen", "ftp://127.0.0.1:1", "--seconds", "1"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("grpc+unix:///PATH"));
}

/// `--inputs digits=FILE`: the MNIST classifier gets the user's three inputs in turn (served
/// sporadically), and `--outputs` saves each job's logits with the input it ran: the same
/// input gives the same logits, different inputs different ones.
#[test]
fn serve_feeds_the_users_inputs_and_saves_their_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(examples_dir().join("e2e/mnist_resnet.json"), d.join("mnist_resnet.json")).unwrap();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/testdata/mnist_resnet.onnx");
    std::fs::write(d.join("platform.toml"), "[[resource]]\nname = \"cpu\"\nkind = \"cpu\"\ncores = [0]\n").unwrap();
    std::fs::write(
        d.join("tasks.toml"),
        "[[task]]\nname = \"digits\"\nprofile = \"mnist_resnet.json\"\nperiod_ms = 20.0\n",
    )
    .unwrap();
    let inputs: Vec<u8> =
        (0..3 * 784).flat_map(|i| if (i / 784) * 200 <= i % 784 { 1f32 } else { 0f32 }.to_le_bytes()).collect();
    std::fs::write(d.join("in.f32"), inputs).unwrap();
    let _turn = turn();
    lalarand()
        .current_dir(d)
        .args(["allocate", "--platform", "platform.toml", "--tasks", "tasks.toml", "--policy", "cpu-only"])
        .args(["--out", "a.toml"])
        .assert()
        .success();
    let out = lalarand()
        .current_dir(d)
        .args(["serve", "--platform", "platform.toml", "--tasks", "tasks.toml", "--allocation", "a.toml"])
        .arg("--models")
        .arg(format!("digits={}", model.display()))
        .args(["--inputs", "digits=in.f32", "--outputs", "out.jsonl", "--seconds", "1", "--no-realtime"])
        .args(["--stats-every", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{err}");
    assert!(err.contains("outputs saved to out.jsonl"), "{err}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(d.join("out.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 6, "{} jobs saved", lines.len());
    let logits = |l: &serde_json::Value| l["outputs"][0]["data"].as_array().unwrap().clone();
    for (k, l) in lines.iter().enumerate() {
        assert_eq!((l["task"].as_str(), l["input"].as_u64()), (Some("digits"), Some(k as u64 % 3)), "{l}");
        assert_eq!(l["outputs"][0]["dims"], serde_json::json!([1, 10]));
        assert_eq!(logits(l), logits(&lines[k % 3]), "input {} gives the same logits", k % 3);
    }
    assert_ne!(logits(&lines[0]), logits(&lines[1]));
    // A task that does not exist, and a file that does not fit, are named.
    for (arg, says) in [("nosuch=in.f32", "no task is called \"nosuch\""), ("digits=tasks.toml", "tasks.toml")] {
        let out = lalarand()
            .current_dir(d)
            .args(["serve", "--platform", "platform.toml", "--tasks", "tasks.toml", "--allocation", "a.toml"])
            .arg("--models")
            .arg(format!("digits={}", model.display()))
            .args(["--inputs", arg, "--seconds", "1", "--no-realtime"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
