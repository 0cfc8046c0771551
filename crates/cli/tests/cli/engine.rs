//! The commands that run ONNX models: `zoo`, `profile`, `accuracy`; and that the timing core
//! stays free of the engine.

use crate::{examples_dir, lalarand, stdout_json};
use lalarand_model::{DnnProfile, Mode};
use std::io::BufRead;
use std::path::{Path, PathBuf};

fn testdata(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/testdata").join(f)
}

#[test]
fn zoo_parameter_counts_equal_torchvision_and_darknet() {
    let dir = tempfile::tempdir().unwrap();
    // torchvision's counts; YOLOv3-tiny's from darknet's cfg.
    let expected = [
        ("resnet18", 11_689_512u64),
        ("resnet50", 25_557_032),
        ("mobilenet_v2", 3_504_872),
        ("squeezenet1_1", 1_235_496),
        ("yolov3_tiny", 8_852_366),
    ];
    for (arch, params) in expected {
        let path = dir.path().join(format!("{arch}.onnx"));
        let out = lalarand().args(["zoo", arch, "--json", "--seed", "3", "--out"]).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{arch}: {}", String::from_utf8_lossy(&out.stderr));
        let j = stdout_json(&out);
        assert_eq!(j["architecture"], arch);
        assert_eq!(j["parameters"], params, "{arch}");
        assert_eq!(j["path"], path.to_str().unwrap());
        // The file is the model: it decodes and counts the same.
        let model = lalarand_onnx::load_model(&path).unwrap();
        assert_eq!(lalarand_onnx::zoo::parameter_count(&model), params, "{arch} on disk");
        assert_eq!(j["bytes"], std::fs::metadata(&path).unwrap().len());
        std::fs::remove_file(&path).unwrap();
    }
    // The table output names the count; an unknown architecture is a usage error.
    let path = dir.path().join("s.onnx");
    lalarand()
        .args(["zoo", "squeezenet1_1", "--out"])
        .arg(&path)
        .assert()
        .code(0)
        .stdout(predicates::str::contains("1,235,496 parameters"));
    lalarand()
        .args(["zoo", "vgg16", "--out"])
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("resnet18"));
    // No folder: exit 2, nothing half-written.
    lalarand()
        .args(["zoo", "squeezenet1_1", "--out"])
        .arg(dir.path().join("missing/s.onnx"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("does the directory exist"));
}

/// Profiles the MNIST model with its labeled data (few runs, 100 test rows), reads the file
/// back, and analyzes a task set that uses it.
#[test]
fn profile_is_read_by_the_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mnist.json");
    let run = lalarand()
        .arg("profile")
        .arg(testdata("mnist_resnet.onnx"))
        .arg("--dataset")
        .arg(testdata("mnist_5k.csv.gz"))
        .args(["--train-per-class", "490", "--runs", "3", "--warmup", "1", "--modes", "cpu-fp32,cpu-int8", "--json"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let j = stdout_json(&run);
    assert_eq!(j["stages"], 14);
    let p = DnnProfile::load(&out).unwrap();
    assert_eq!(p.layers.len(), 14);
    assert_eq!(j["profile"]["layers"].as_array().unwrap().len(), 14);
    for l in &p.layers {
        assert_eq!(l.mode(Mode::CpuFp32).unwrap().stats.unwrap().samples, 3, "{}", l.name);
        assert!(l.mode(Mode::CpuInt8).is_some() && l.mode(Mode::Gpu).is_none(), "{}", l.name);
        // 100 test rows: every cost is a whole number of rows.
        assert!((l.int8_accuracy_cost * 1.0).fract().abs() < 1e-9, "{}: {}", l.name, l.int8_accuracy_cost);
    }

    std::fs::write(
        dir.path().join("tasks.toml"),
        "[[task]]\nname = \"digits\"\nprofile = \"mnist.json\"\nperiod_ms = 1000.0\n",
    )
    .unwrap();
    let layers = vec!["\"cpu-fp32@cpu\""; 14].join(", ");
    std::fs::write(dir.path().join("a.toml"), format!("[[task]]\nname = \"digits\"\nlayers = [{layers}]\n")).unwrap();
    let analyzed = lalarand()
        .current_dir(dir.path())
        .args(["analyze", "--json", "--tasks", "tasks.toml", "--allocation", "a.toml"])
        .output()
        .unwrap();
    assert_eq!(analyzed.status.code(), Some(0), "{}", String::from_utf8_lossy(&analyzed.stderr));
    let report = stdout_json(&analyzed);
    assert_eq!(report["tasks"][0]["layers"], 14);
    let bound = report["tasks"][0]["bound_ns"].as_u64().unwrap();
    let fp32: u64 = p.layers.iter().map(|l| l.wcet(Mode::CpuFp32).unwrap()).sum();
    assert!(bound >= fp32, "the bound {bound} covers the measured WCETs {fp32}");

    // The table output: one row per stage, and where it wrote.
    let out2 = dir.path().join("mnist2.json");
    lalarand()
        .arg("profile")
        .arg(testdata("mnist_resnet.onnx"))
        .args(["--runs", "1", "--warmup", "0", "--modes", "cpu-fp32", "--out"])
        .arg(&out2)
        .assert()
        .code(0)
        .stdout(predicates::str::contains("| f.1.add"))
        .stdout(predicates::str::contains("n/m"))
        .stdout(predicates::str::contains(format!("wrote {}", out2.display())));
}

/// Without --dataset the int8 accuracy costs are not measured: `null` in the file, "n/m" in
/// the table, and counted (not taken as free) where an allocation's accuracy cost is reported.
#[test]
fn unmeasured_accuracy_costs_are_reported_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mnist.json");
    let run = lalarand()
        .arg("profile")
        .arg(testdata("mnist_resnet.onnx"))
        .args(["--runs", "1", "--warmup", "0", "--modes", "cpu-fp32,cpu-int8", "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let j = stdout_json(&run);
    assert!(j["profile"]["layers"].as_array().unwrap().iter().all(|l| l["int8_accuracy_cost"].is_null()));
    assert_eq!(DnnProfile::load(&out).unwrap().int8_accuracy_unknown.len(), 14);

    std::fs::write(
        dir.path().join("tasks.toml"),
        "[[task]]\nname = \"digits\"\nprofile = \"mnist.json\"\nperiod_ms = 1000.0\n",
    )
    .unwrap();
    let mut layers = vec!["\"cpu-int8@cpu\""; 14];
    layers[0] = "\"cpu-fp32@cpu\"";
    std::fs::write(
        dir.path().join("a.toml"),
        format!("[[task]]\nname = \"digits\"\nlayers = [{}]\n", layers.join(", ")),
    )
    .unwrap();
    let analyze = |json: bool| {
        let mut c = lalarand();
        c.current_dir(dir.path()).args(["analyze", "--tasks", "tasks.toml", "--allocation", "a.toml"]);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let report = stdout_json(&analyze(true));
    assert_eq!(report["int8_layers"], 13);
    assert_eq!(report["int8_layers_unknown_cost"], 13);
    assert_eq!(report["tasks"][0]["int8_layers_unknown_cost"], 13);
    assert_eq!(report["accuracy_cost_pp"], 0.0);
    let table = String::from_utf8(analyze(false).stdout).unwrap();
    assert!(table.contains("13 of them not measured") && table.contains(">= 0.000"), "{table}");

    // `accuracy --allocation`: what the allocator budgeted leaves those 13 layers out.
    let r = accuracy_json(&[
        "--tasks",
        dir.path().join("tasks.toml").to_str().unwrap(),
        "--allocation",
        dir.path().join("a.toml").to_str().unwrap(),
        "--task",
        "digits",
    ]);
    assert_eq!(r["int8_layers_unknown_cost"], 13, "{r}");
    assert_eq!(r["predicted_drop_pp"], 0.0, "{r}");
}

/// Runs `lalarand profile` on the MNIST model with `args` (and `--out <dir>/p.json`), sends it
/// SIGINT once its debug log has printed a line containing `marker`, checks that it exited 2
/// without a panic, and returns the rest of its stderr.
fn interrupted_profile(dir: &Path, args: &[&str], marker: &str) -> String {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lalarand"))
        .env("RUST_LOG", "lalarand=debug")
        .arg("profile")
        .arg(testdata("mnist_resnet.onnx"))
        .args(args)
        .arg("--out")
        .arg(dir.join("p.json"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("exited before {marker:?}: {seen}");
        }
        seen.push_str(&line);
        if line.contains(marker) {
            break;
        }
    }
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{rest}");
    assert!(!rest.contains("panicked"), "{rest}");
    rest
}

/// SIGINT while the profiler is still setting up (loading, calibrating): exit 2, no panic,
/// a message that nothing was measured, and no file at all.
#[test]
fn ctrl_c_during_the_set_up_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The first stage alone takes far longer than the set-up, so the signal lands before it;
    // the first stop check comes before the engine loads the model.
    let args = ["--runs", "100000", "--warmup", "0", "--modes", "cpu-fp32,cpu-int8"];
    let rest = interrupted_profile(dir.path(), &args, "0 of 14 stages measured");
    assert!(rest.contains("interrupted before the first stage was measured; nothing written"), "{rest}");
    assert!(!dir.path().join("p.json").exists() && !dir.path().join("p.partial.json").exists());
}

/// SIGINT (Ctrl-C) after the first stage: exit 2, no panic, the stages measured so far in
/// `<stem>.partial.json`, no complete profile.
#[test]
fn ctrl_c_leaves_a_partial_profile() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    // Long enough that the run is still going when the signal arrives (minutes in all); warm
    // caches, so the first stage is done in a second (evicting them before each of 100000 runs
    // would take minutes per stage).
    let args = ["--runs", "100000", "--warmup", "0", "--modes", "cpu-fp32", "--warm-cache"];
    let rest = interrupted_profile(dir.path(), &args, "1 of 14 stages measured");
    let partial = dir.path().join("p.partial.json");
    assert!(rest.contains(partial.to_str().unwrap()), "the error names the partial file: {rest}");
    assert!(!out.exists(), "no complete profile");
    let p = DnnProfile::load(&partial).unwrap();
    assert!(p.source.starts_with("PARTIAL"), "{}", p.source);
    assert!(!p.layers.is_empty() && p.layers.len() < 14, "{} stages", p.layers.len());
}

fn accuracy_json(args: &[&str]) -> serde_json::Value {
    let out = lalarand()
        .arg("accuracy")
        .arg(testdata("mnist_resnet.onnx"))
        .arg("--dataset")
        .arg(testdata("mnist_5k.csv.gz"))
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    stdout_json(&out)
}

#[test]
fn accuracy_of_int8_stages_and_of_an_allocation() {
    let all = accuracy_json(&["--int8", "all"]);
    assert_eq!(all["samples"], 1000);
    // The model's published fp32 accuracy on these rows.
    assert!((all["fp32_top1"].as_f64().unwrap() - 98.7).abs() < 1e-9, "{all}");
    assert_eq!(all["int8_stages"].as_array().unwrap().len(), 14);
    assert!(all["drop_pp"].as_f64().unwrap().abs() <= 0.5, "{all}");
    assert!(all["predicted_drop_pp"].is_null());

    // An allocation's cpu-int8 layers are the int8 stages.
    let ex = examples_dir().join("mnist");
    let alloc = ex.join("allocation-budget-0.5.toml");
    let r = accuracy_json(&[
        "--platform",
        ex.join("platform.toml").to_str().unwrap(),
        "--tasks",
        ex.join("taskset.toml").to_str().unwrap(),
        "--allocation",
        alloc.to_str().unwrap(),
        "--task",
        "digits",
    ]);
    let text = std::fs::read_to_string(&alloc).unwrap();
    let digits = text.split("name = \"digits\"").nth(1).unwrap().split("[[task]]").next().unwrap();
    assert_eq!(r["int8_stages"].as_array().unwrap().len(), digits.matches("cpu-int8").count(), "{r}");
    assert!(r["predicted_drop_pp"].as_f64().unwrap() <= 0.5, "{r}");
    assert_eq!(r["int8_layers_unknown_cost"], 0, "examples/mnist's profile was measured with a dataset");

    let none = accuracy_json(&["--int8", "none"]);
    assert_eq!(none["top1"], none["fp32_top1"]);
    assert_eq!(none["drop_pp"], 0.0);
}

#[test]
fn accuracy_bad_input_names_file_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let row = |label: &str| format!("{}{label}\n", "0,".repeat(784));
    // A label that is not a class number.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("{}{}", row("3"), row("seven"))).unwrap();
    lalarand()
        .arg("accuracy")
        .arg(testdata("mnist_resnet.onnx"))
        .arg("--dataset")
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(format!("{}: row 2, column 785", bad.display())))
        .stderr(predicates::str::contains("\"seven\""));
    // A label past the model's 10 classes.
    let big = dir.path().join("big.csv");
    std::fs::write(&big, format!("{}{}{}", row("1"), row("2"), row("12"))).unwrap();
    lalarand()
        .arg("accuracy")
        .arg(testdata("mnist_resnet.onnx"))
        .arg("--dataset")
        .arg(&big)
        .args(["--train-per-class", "0", "--int8", "none"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(format!("{}: row 3, column 785", big.display())))
        .stderr(predicates::str::contains("10 classes"));
    // An unknown stage lists the model's stages.
    lalarand()
        .arg("accuracy")
        .arg(testdata("mnist_resnet.onnx"))
        .arg("--dataset")
        .arg(testdata("mnist_5k.csv.gz"))
        .args(["--int8", "conv9"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("conv9"))
        .stderr(predicates::str::contains("f.1.add"));
    // Not a model.
    lalarand()
        .arg("profile")
        .arg(&bad)
        .args(["--out"])
        .arg(dir.path().join("p.json"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not an ONNX model"));
    lalarand()
        .arg("profile")
        .arg(testdata("mnist_resnet.onnx"))
        .arg("--dataset")
        .arg(dir.path().join("missing.csv"))
        .arg("--out")
        .arg(dir.path().join("p.json"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--dataset"))
        .stderr(predicates::str::contains("missing.csv: no such file"));
    lalarand()
        .arg("profile")
        .arg(testdata("mnist_resnet.onnx"))
        .args(["--margin", "0.5", "--out", "p.json"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("margin"));
}

/// The timing core never links ONNX Runtime: no `ort` (or engine) in the dependency closure of
/// model, analysis, alloc, sim and experiments in Cargo.lock (normal, dev and build
/// dependencies together, so stricter than `cargo tree`).
#[test]
fn timing_core_does_not_depend_on_the_engine() {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock")).unwrap();
    let lock: toml::Value = toml::from_str(&lock).unwrap();
    let mut deps: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for p in lock["package"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_string();
        let d = p.get("dependencies").and_then(|d| d.as_array()).cloned().unwrap_or_default();
        let entry = deps.entry(name).or_default();
        entry.extend(d.iter().map(|s| s.as_str().unwrap().split(' ').next().unwrap().to_string()));
    }
    assert!(deps["lalarand-cli"].contains(&"lalarand-engine".to_string()), "the lock is read right");
    for root in [
        "lalarand-model",
        "lalarand-analysis",
        "lalarand-alloc",
        "lalarand-sim",
        "lalarand-experiments",
        "lalarand-runtime",
    ] {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![root.to_string()];
        while let Some(n) = stack.pop() {
            if seen.insert(n.clone()) {
                stack.extend(deps.get(&n).cloned().unwrap_or_default());
            }
        }
        // Nor on the network front end (docs/runtime.md, "Network server").
        for banned in
            ["ort", "ort-sys", "lalarand-engine", "lalarand-onnx", "lalarand-server", "tokio", "tonic", "axum"]
        {
            assert!(!seen.contains(banned), "{root} depends on {banned}");
        }
    }
}

/// The network front end sits above the runtime, never above the engine: the CLI binds the two
/// (`EngineRepository`). Cargo.lock does not tell dependencies from dev-dependencies (the
/// server's tests serve real models), so this reads the server's manifest.
#[test]
fn the_network_server_does_not_depend_on_the_engine() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/Cargo.toml");
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    let deps = manifest["dependencies"].as_table().unwrap();
    assert!(deps.contains_key("lalarand-runtime"), "the manifest is read right");
    for banned in ["lalarand-engine", "lalarand-onnx", "ort"] {
        assert!(!deps.contains_key(banned), "lalarand-server depends on {banned}");
    }
}

/// A labeled CSV for torch_script.onnx (3x64x64 inputs, 10 classes): `per_class` rows of
/// every class, values 0..=255 from a fixed pattern.
fn exporter_dataset(dir: &Path, per_class: usize) -> PathBuf {
    let path = dir.join("x64.csv");
    let mut text = String::new();
    for row in 0..per_class * 10 {
        let values: Vec<String> = (0..3 * 64 * 64).map(|i| ((i * 31 + row * 97) % 256).to_string()).collect();
        text.push_str(&values.join(","));
        text.push_str(&format!(",{}\n", row % 10));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn exporter_model() -> PathBuf {
    testdata("exporters/torch_script.onnx")
}

/// A model with symbolic height and width: `accuracy` takes `--input-shape` as `profile` does,
/// runs the model at the batch that shape fixes, and names a bad shape's flag and input.
#[test]
fn accuracy_with_input_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let data = exporter_dataset(dir.path(), 2);
    let accuracy = |extra: &[&str]| {
        let mut cmd = lalarand();
        cmd.arg("accuracy").arg(exporter_model()).arg("--dataset").arg(&data);
        cmd.args(["--train-per-class", "1", "--json"]).args(extra);
        cmd.output().unwrap()
    };
    let out = accuracy(&["--input-shape", "x=1,3,64,64"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let j = stdout_json(&out);
    assert_eq!(j["samples"], 10, "{j}");
    assert_eq!(j["int8_stages"].as_array().unwrap().len(), j["stages"].as_u64().unwrap() as usize, "{j}");
    assert!(
        j["int8_calibration"]
            .as_str()
            .unwrap()
            .contains("calibrated anew on 10 training rows (up to 20 of every class"),
        "{j}"
    );

    for (shape, names) in [
        (None, &["--input-shape x=1,3,<height>,<width>", "height"][..]),
        (Some("image=1,3,64,64"), &["image", "inputs are [\"x\"]", "--input-shape x=1,3,<height>,<width>"][..]),
        (Some("x=1,3,64"), &["--input-shape x=1,3,64", "rank 4", "give 4 dimensions"][..]),
    ] {
        let out = accuracy(&shape.map(|s| vec!["--input-shape", s]).unwrap_or_default());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{shape:?}: {err}");
        assert!(err.contains("torch_script.onnx"), "{shape:?}: {err}");
        for n in names {
            assert!(err.contains(n), "{shape:?}: no {n:?} in {err}");
        }
    }
}

/// With `--profile`, the int8 stages are the profiled ones: rebuilt from the profile's saved
/// calibration (and its input shapes), refused when they are not what was profiled, and
/// calibrated anew (said so) where the profile saved none.
#[test]
fn accuracy_uses_the_profiles_saved_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let data = exporter_dataset(dir.path(), 2);
    let profile = dir.path().join("p.json");
    let run = lalarand()
        .arg("profile")
        .arg(exporter_model())
        .args(["--input-shape", "x=1,3,64,64", "--runs", "1", "--warmup", "0", "--modes", "cpu-fp32,cpu-int8"])
        .arg("--out")
        .arg(&profile)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let accuracy = |profile: &Path| {
        lalarand()
            .arg("accuracy")
            .arg(exporter_model())
            .arg("--dataset")
            .arg(&data)
            .args(["--train-per-class", "1", "--profile"])
            .arg(profile)
            .output()
            .unwrap()
    };
    // No --input-shape: the profile's recorded shape is used.
    let out = accuracy(&profile);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("int8 calibration: saved in {}", profile.display())), "{text}");
    assert!(text.contains("16 samples; same int8 stages as profiled"), "{text}");

    // Other ranges than those the profiled stages were built from: refused, with the fix.
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    let ranges = json["calibration"]["ranges"].as_object_mut().unwrap();
    for r in ranges.values_mut() {
        r[1] = serde_json::json!(r[1].as_f64().unwrap() * 2.0 + 1.0);
    }
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, json.to_string()).unwrap();
    let out = accuracy(&tampered);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("differ from the profiled ones") && err.contains("lalarand profile"), "{err}");

    // No saved calibration: calibrated anew, and said so.
    json.as_object_mut().unwrap().remove("calibration");
    let old = dir.path().join("old.json");
    std::fs::write(&old, json.to_string()).unwrap();
    let out = accuracy(&old);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("calibrated anew") && text.contains("old.json has no saved calibration"), "{text}");
}

/// A model file cut short: exit 2, the file named, what it looks like and the fix.
#[test]
fn profile_of_a_truncated_model() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(exporter_model()).unwrap();
    let cut = dir.path().join("half.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    lalarand()
        .arg("profile")
        .arg(&cut)
        .args(["--input-shape", "x=1,3,64,64", "--out"])
        .arg(dir.path().join("p.json"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains(format!("{}: not an ONNX model", cut.display())))
        .stderr(predicates::str::contains("cut short"))
        .stderr(predicates::str::contains("fix: pass a complete .onnx file"));
}

/// `--granularity block` merges the MNIST model's residual blocks, says so, and records the
/// grouping; an unknown granularity is a usage error naming the choices.
#[test]
fn profile_granularity_merges_and_records_the_stages() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mnist.json");
    let run = lalarand()
        .arg("profile")
        .arg(testdata("mnist_resnet.onnx"))
        .args(["--granularity", "block", "--runs", "2", "--warmup", "1", "--modes", "cpu-fp32", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let p = DnnProfile::load(&out).unwrap();
    let g = p.stage_grouping.expect("recorded");
    assert_eq!((g.granularity.as_str(), g.groups.iter().sum::<usize>()), ("block", 14));
    assert!(p.layers.len() < 14, "{g:?}");
    assert!(stdout.contains(&format!("granularity block: 14 layer stages -> {} stages", p.layers.len())), "{stdout}");
    lalarand()
        .arg("profile")
        .arg(testdata("mnist_resnet.onnx"))
        .args(["--granularity", "coarse", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("layer, block, auto"));
}
