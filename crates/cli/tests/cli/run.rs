//! `lalarand run`: busy-waiting and ONNX stages under the real-time runtime, refusals, Ctrl-C.

use crate::{examples_dir, lalarand, stdout_json};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Runs take turns with each other and with the runtime crate's tests (their workers pin to
/// the same cores), through the runtime tests' lock file.
fn turn() -> std::fs::File {
    let path = std::env::temp_dir().join("lalarand-runtime-tests.lock");
    let file = std::fs::File::options().create(true).truncate(false).write(true).open(&path).expect("lock file");
    // SAFETY: flock on an open descriptor; released when the file is closed.
    assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }, 0, "flock {}", path.display());
    file
}

fn mnist_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/testdata/mnist_resnet.onnx")
}

/// examples/mnist's files (two cpu resources on cores 0 and 1) in a scratch folder.
fn mnist_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::copy_dir(&examples_dir().join("mnist"), dir.path());
    dir
}

fn check_accounting(task: &serde_json::Value) {
    let n = |k: &str| task[k].as_u64().unwrap();
    assert_eq!(
        n("released"),
        n("completed") + n("aborted") + n("failed") + n("unfinished") + n("skipped") + n("dropped"),
        "{task}"
    );
}

#[test]
fn busy_run_reports_every_task_and_writes_trace_and_gantt() {
    let dir = mnist_dir();
    let d = dir.path();
    let _turn = turn();
    let out = lalarand()
        .current_dir(d)
        .args(["run", "--platform", "platform.toml", "--tasks", "taskset.toml"])
        .args(["--allocation", "allocation-budget-1.toml", "--busy", "--seconds", "1", "--json"])
        .args(["--trace", "trace.json", "--gantt", "gantt.svg"])
        .output()
        .unwrap();
    // 1 on a deadline miss: the bounds hold only as far as the machine's load allows.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
    let j = stdout_json(&out);
    assert_eq!(j["executor"], "busy");
    let tasks = j["report"]["tasks"].as_array().unwrap();
    assert_eq!(tasks[0]["name"], "digits");
    // Releases at 0, 30, ..., 990 ms and 0, 100, ..., 900 ms.
    assert_eq!(tasks[0]["released"], 34);
    assert_eq!(tasks[1]["released"], 10);
    for t in tasks {
        check_accounting(t);
        assert!(t["bound"].as_u64().unwrap() < t["deadline"].as_u64().unwrap(), "{t}");
        if t["completed"].as_u64().unwrap() > 0 {
            // A busy stage spins its planned cost: no response is shorter than the chain.
            assert!(t["response_min"].as_u64().unwrap() > 1_000_000, "{t}");
        }
    }
    assert_eq!(out.status.code() == Some(0), tasks.iter().all(|t| t["verdict"] == "within-bound"));
    assert!(j["report"]["dispatch_latency"]["samples"].as_u64().unwrap() > 0);
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("trace.json")).unwrap()).unwrap();
    let stages = trace["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "X").count();
    assert!(stages >= 14 * 30, "{stages} stages traced");
    assert!(std::fs::read_to_string(d.join("gantt.svg")).unwrap().starts_with("<svg"));
}

#[test]
fn unschedulable_allocation_is_refused_unless_forced() {
    let dir = mnist_dir();
    let d = dir.path();
    crate::edit(&d.join("taskset.toml"), "period_ms = 30.0", "period_ms = 2.0");
    let args = ["run", "--platform", "platform.toml", "--tasks", "taskset.toml", "--allocation"];
    lalarand()
        .current_dir(d)
        .args(args)
        .args(["allocation-budget-1.toml", "--busy", "--seconds", "0.5"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("unschedulable (no bound for \"digits\""))
        .stderr(predicates::str::contains("--force"));
    let _turn = turn();
    let out = lalarand()
        .current_dir(d)
        .args(args)
        .args(["allocation-budget-1.toml", "--busy", "--seconds", "0.3", "--force", "--overrun", "skip", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let digits = &stdout_json(&out)["report"]["tasks"][0];
    check_accounting(digits);
    assert!(digits["bound"].is_null());
    assert_eq!(digits["verdict"], "deadline-missed");
    assert!(digits["skipped"].as_u64().unwrap() > 0, "{digits}");
}

/// The MNIST model alone, stages alternating int8 on cpu0 and fp32 on cpu1 (every boundary a
/// quantize or dequantize and a hand-over between workers), profile from examples/mnist.
fn mnist_only(d: &Path) {
    std::fs::write(
        d.join("one.toml"),
        "[[task]]\nname = \"digits\"\nprofile = \"mnist_resnet.json\"\nperiod_ms = 30.0\n",
    )
    .unwrap();
    let layers: Vec<String> =
        (0..14).map(|j| if j % 2 == 0 { "\"cpu-int8@cpu0\"" } else { "\"cpu-fp32@cpu1\"" }.to_string()).collect();
    std::fs::write(
        d.join("one-alloc.toml"),
        format!("[[task]]\nname = \"digits\"\nlayers = [{}]\n", layers.join(", ")),
    )
    .unwrap();
}

#[test]
fn engine_run_executes_the_mnist_model_stage_by_stage() {
    let dir = mnist_dir();
    let d = dir.path();
    mnist_only(d);
    let base = ["run", "--platform", "platform.toml", "--tasks", "one.toml", "--allocation", "one-alloc.toml"];
    let models = format!("--models=digits={}", mnist_model().display());
    // examples/mnist's profile predates saved calibrations: its int8 stages cannot be the
    // profiled ones, so the run is refused, with the fix.
    lalarand()
        .current_dir(d)
        .args(base)
        .arg(&models)
        .args(["--jobs", "2"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("\"digits\""))
        .stderr(predicates::str::contains("no saved int8 calibration"))
        .stderr(predicates::str::contains("lalarand profile"));
    // A profile made now saves it (few timed runs: this test checks the plumbing).
    lalarand()
        .current_dir(d)
        .arg("profile")
        .arg(mnist_model())
        .args(["--runs", "2", "--warmup", "1", "--warm-cache", "--modes", "cpu-fp32,cpu-int8"])
        .args(["--out", "mnist_resnet.json"])
        .assert()
        .code(0);
    assert!(std::fs::read_to_string(d.join("mnist_resnet.json")).unwrap().contains("\"int8_sha256\""));
    let _turn = turn();
    // Forced: a profile of 2 runs on a loaded machine may not bound the task at 30 ms.
    let run = ["--jobs", "20", "--json", "--force"];
    let out = lalarand().current_dir(d).args(base).arg(&models).args(run).output().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
    let j = stdout_json(&out);
    assert_eq!(j["executor"], "engine");
    assert_eq!(j["models"][0], mnist_model().to_str().unwrap());
    let t = &j["report"]["tasks"][0];
    check_accounting(t);
    assert_eq!((t["released"].as_u64(), t["failed"].as_u64()), (Some(20), Some(0)), "{t}");
    assert!(j["report"]["failures"].as_array().unwrap().is_empty());
    assert!(t["completed"].as_u64().unwrap() >= 19, "{t}");
    // Both workers ran stages: the job moved between them.
    assert!(j["report"]["handoff"]["samples"].as_u64().unwrap() >= 14 * 19);

    // The model beside the profile is the default; a file that differs from the one profiled
    // is refused before anything runs.
    let changed = d.join("mnist_resnet.onnx");
    let mut bytes = std::fs::read(mnist_model()).unwrap();
    bytes.push(0);
    std::fs::write(&changed, bytes).unwrap();
    lalarand()
        .current_dir(d)
        .args(base)
        .args(["--jobs", "2"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("has changed since it was profiled"))
        .stderr(predicates::str::contains("mnist_resnet.onnx"));
    std::fs::remove_file(&changed).unwrap();
    lalarand()
        .current_dir(d)
        .args(base)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("mnist_resnet.onnx: no such file"))
        .stderr(predicates::str::contains("--models digits="));
    lalarand()
        .current_dir(d)
        .args(base)
        .args(["--models", "nope=x.onnx"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no task or profile model is called \"nope\""));
}

/// SIGINT during a long run: the run stops at once and reports (and traces) what it measured.
#[test]
fn ctrl_c_stops_the_run_and_reports_what_was_measured() {
    let dir = mnist_dir();
    let d = dir.path();
    let _turn = turn();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_lalarand"))
        .current_dir(d)
        .args(["run", "--platform", "platform.toml", "--tasks", "taskset.toml"])
        .args(["--allocation", "allocation-budget-1.toml", "--busy", "--seconds", "60", "--json"])
        .args(["--trace", "trace.json"])
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
    assert_eq!(j["report"]["stopped"], true);
    let released = j["report"]["tasks"][0]["released"].as_u64().unwrap();
    assert!(released > 10 && released < 1000, "{released}");
    assert!(d.join("trace.json").is_file());
}

/// Where the demo cannot run (no GPU and fewer than two cores: the stand-in platform needs two)
/// it says so and exits 2; everywhere else it runs end to end.
#[test]
fn demo_profiles_proves_and_runs_the_zoo_models_and_the_digit_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    let _turn = turn();
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 && !lalarand_engine::onnxruntime::gpu_present() {
        let out =
            lalarand().current_dir(dir.path()).args(["demo", "--seconds", "2", "--out", "demo"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("needs a GPU or two usable cores") && stderr.contains("--quick"), "{stderr}");
        return;
    }
    // Run from an empty folder: the demo needs nothing from the source tree.
    let out = lalarand().current_dir(dir.path()).args(["demo", "--seconds", "2", "--out", "demo"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("vanilla (gpu-only, every layer") && stdout.contains(": not proven"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("| lalarand ") && l.contains("| yes")), "{stdout}");
    // With the stand-in accelerator every policy has an allocation.
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| ") && l.contains("/4 ")).collect();
    assert_eq!(rows.len(), 10, "{stdout}"); // every policy of `lalarand allocate --help`
    assert!(rows.iter().all(|l| !l.contains("error")), "{stdout}");
    assert!(stdout.contains("measured on 1000 test rows") && stdout.contains("not measured (random weights)"));
    assert!(stdout.contains(&format!("everything is in {}", std::path::Path::new("demo").display())), "{stdout}");
    for f in [
        "models/yolov3_tiny.onnx",
        "models/mnist_resnet.onnx",
        "models/mnist_5k.csv.gz",
        "profiles/yolov3_tiny.json",
        "profiles/mnist_resnet.json",
        "allocation.toml",
        "trace.json",
        "gantt.svg",
        "gantt-simulated.svg",
        "bounds.svg",
        "responses.svg",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} missing:\n{stdout}");
    }
    let platform = std::fs::read_to_string(out_dir.join("platform.toml")).unwrap();
    assert!(platform.contains("accelerator = true") || platform.contains("kind = \"gpu\""), "{platform}");
    let svg = |f: &str| {
        let text = std::fs::read_to_string(out_dir.join(f)).unwrap();
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{f}");
        text
    };
    let bounds = svg("bounds.svg");
    for label in ["gpu-only", "dart", "lalarand", "optimal", "digits", "detector", "bound / deadline", "deadline (1.0)"]
    {
        assert!(bounds.contains(label), "bounds.svg lacks {label:?}");
    }
    let responses = svg("responses.svg");
    for label in ["digits (", "classifier (", "features (", "detector (", "analytical bound", "p99", "2 s run"] {
        assert!(responses.contains(label), "responses.svg lacks {label:?}");
    }
    // The digit classifier's int8 accuracy costs were measured: its profile has them.
    let digits = std::fs::read_to_string(out_dir.join("profiles/mnist_resnet.json")).unwrap();
    assert!(digits.contains("int8_accuracy_cost"), "{digits}");
}

/// Each model family of issue 19 (a stateful LSTM, an If before an LSTM, an already-quantized
/// QDQ model, an opset 9 export) is profiled with int8 asked for, allocated by the lalarand
/// policy and run with the engine, every job finished.
#[test]
fn recurrent_quantized_and_old_models_profile_allocate_and_run() {
    let dir = mnist_dir();
    let d = dir.path();
    for model in ["stateful_lstm", "if_lstm", "qdq_conv_matmul", "opset9_export"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../engine/testdata/{model}.onnx"));
        let profile = format!("{model}.json");
        lalarand()
            .current_dir(d)
            .arg("profile")
            .arg(&path)
            .args(["--runs", "2", "--warmup", "1", "--warm-cache", "--modes", "cpu-fp32,cpu-int8", "--out", &profile])
            .assert()
            .code(0);
        let tasks = format!("[[task]]\nname = \"m\"\nprofile = \"{profile}\"\nperiod_ms = 500.0\n");
        std::fs::write(d.join("family.toml"), tasks).unwrap();
        let alloc = ["allocate", "--platform", "platform.toml", "--tasks", "family.toml", "--policy", "lalarand"];
        let out = lalarand().current_dir(d).args(alloc).args(["--out", "family-alloc.toml"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{model}: {}", String::from_utf8_lossy(&out.stderr));
        let _turn = turn();
        let run = ["run", "--platform", "platform.toml", "--tasks", "family.toml", "--allocation", "family-alloc.toml"];
        let models = format!("--models=m={}", path.display());
        let out = lalarand()
            .current_dir(d)
            .args(run)
            .arg(&models)
            .args(["--jobs", "3", "--json", "--force"])
            .output()
            .unwrap();
        assert!(matches!(out.status.code(), Some(0 | 1)), "{model}: {}", String::from_utf8_lossy(&out.stderr));
        let t = &stdout_json(&out)["report"]["tasks"][0];
        assert_eq!((t["released"].as_u64(), t["failed"].as_u64()), (Some(3), Some(0)), "{model}: {t}");
    }
}
