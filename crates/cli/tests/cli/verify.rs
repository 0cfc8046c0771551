//! `lalarand verify`: the chained stages next to the whole model, per mode, with its exit code.

use crate::{lalarand, stdout_json};
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn testdata(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/testdata").join(f)
}

fn mode<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["modes"].as_array().unwrap().iter().find(|m| m["mode"] == name).unwrap_or_else(|| panic!("no {name}: {json}"))
}

#[test]
fn mnist_stages_compute_what_the_model_computes() {
    for extra in [&[][..], &["--dataset".to_string(), testdata("mnist_5k.csv.gz").display().to_string()][..]] {
        let out = lalarand()
            .arg("verify")
            .arg(testdata("mnist_resnet.onnx"))
            .args(["--json", "--modes", "cpu-fp32,cpu-int8"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let json = stdout_json(&out);
        assert_eq!(json["passed"], true);
        assert_eq!(json["samples"], 8);
        let fp32 = mode(&json, "cpu-fp32");
        let scale = fp32["output_scale"].as_f64().unwrap();
        assert!(scale > 0.0 && fp32["max_abs_diff"].as_f64().unwrap() <= 1e-4 * scale, "{fp32}");
        let int8 = mode(&json, "cpu-int8");
        assert_eq!(int8["stages_in_mode"], 14, "{int8}");
        assert!(int8["cosine"].as_f64().unwrap() >= 0.99, "{int8}");
        assert!(int8["max_abs_diff"].as_f64().unwrap() > 0.0, "int8 is not fp32: {int8}");
    }
    // The text form: a row per mode, and what could not be verified here.
    lalarand()
        .arg("verify")
        .arg(testdata("mnist_resnet.onnx"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("| cpu-int8 | 14/14").and(predicate::str::contains("cosine >= 0.99")));
}

/// Calibrated on rows whose pixels are all below 3/255 and compared on rows that are not, the
/// int8 chain clips its input: every stage passes its check on the calibration rows, but
/// verify sees the chain fail its threshold on the test rows and exits 1.
#[test]
fn unrepresentative_calibration_fails_verify_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("skewed.csv");
    let mut text = String::new();
    let mut s = 1u64;
    let mut next = |m: u64| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) % m
    };
    for label in 0..10 {
        for max in [3, 256] {
            let row: Vec<String> = (0..784).map(|_| next(max).to_string()).collect();
            text += &format!("{},{label}\n", row.join(","));
        }
    }
    std::fs::write(&csv, text).unwrap();
    let out = lalarand()
        .arg("verify")
        .arg(testdata("mnist_resnet.onnx"))
        .args(["--json", "--modes", "cpu-fp32,cpu-int8", "--train-per-class", "1", "--dataset"])
        .arg(&csv)
        .output()
        .unwrap();
    let json = stdout_json(&out);
    assert_eq!(out.status.code(), Some(1), "{json}");
    assert_eq!(json["passed"], false);
    assert_eq!(mode(&json, "cpu-fp32")["passed"], true);
    let int8 = mode(&json, "cpu-int8");
    assert!(int8["passed"] == false && int8["cosine"].as_f64().unwrap() < 0.99, "{int8}");
}

#[test]
fn verify_bad_input_exits_2() {
    lalarand()
        .args(["verify", "/nonexistent/m.onnx"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/m.onnx"));
    lalarand()
        .arg("verify")
        .arg(testdata("mnist_resnet.onnx"))
        .args(["--dataset", "/nonexistent/d.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/d.csv"));
}

/// Real exports with a dynamic height and width: verified at the shape `--input-shape` fixes.
#[test]
fn exported_models_verify_at_their_input_shape() {
    for (file, shape) in
        [("exporters/paddle2onnx_real.onnx", "x=1,3,32,32"), ("exporters/tf2onnx_keras.onnx", "image=1,32,32,3")]
    {
        let out = lalarand()
            .arg("verify")
            .arg(testdata(file))
            .args(["--json", "--modes", "cpu-fp32,cpu-int8", "--input-shape", shape])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        let json = stdout_json(&out);
        let fp32 = mode(&json, "cpu-fp32");
        let scale = fp32["output_scale"].as_f64().unwrap();
        assert!(scale > 0.0 && fp32["max_abs_diff"].as_f64().unwrap() <= 1e-4 * scale, "{file}: {fp32}");
        let int8 = mode(&json, "cpu-int8");
        eprintln!("{file}: {int8}");
        assert!(int8["stages_in_mode"].as_u64().unwrap() > 0, "{file}: {int8}");
    }
    lalarand()
        .arg("verify")
        .arg(testdata("exporters/paddle2onnx_real.onnx"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--input-shape x=1,3,<"));
}

/// Unlabeled inputs of the user's own (raw fp32, as `profile --calibration` reads): every other
/// sample calibrates int8, the rest are compared on; a file of the wrong size is named.
#[test]
fn verify_takes_the_users_own_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("digits.f32");
    let per = 28 * 28;
    let values: Vec<u8> = (0..6 * per).flat_map(|i| (((i * 7919) % 256) as f32 / 255.0).to_le_bytes()).collect();
    std::fs::write(&raw, values).unwrap();
    let out = lalarand()
        .arg("verify")
        .arg(testdata("mnist_resnet.onnx"))
        .args(["--json", "--modes", "cpu-fp32,cpu-int8", "--inputs"])
        .arg(&raw)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json = stdout_json(&out);
    assert_eq!((json["samples"].as_u64(), json["passed"].as_bool()), (Some(3), Some(true)), "{json}");
    assert!(json["inputs"].as_str().unwrap().ends_with("digits.f32"), "{json}");

    std::fs::write(&raw, vec![0u8; 4 * per + 4]).unwrap();
    lalarand()
        .arg("verify")
        .arg(testdata("mnist_resnet.onnx"))
        .arg("--inputs")
        .arg(&raw)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("digits.f32").and(predicate::str::contains("[1, 1, 28, 28]")));
}

/// An already-quantized model: its fp32 chain is verified; its cpu-int8 chain would run no
/// int8 stage (lalarand does not quantize it again), so it is reported as not verified with
/// why, not "ok".
#[test]
fn a_cpu_int8_chain_without_int8_stages_is_not_reported_ok() {
    let out = lalarand()
        .arg("verify")
        .arg(testdata("qdq_conv_matmul.onnx"))
        .args(["--json", "--modes", "cpu-fp32,cpu-int8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json = stdout_json(&out);
    let modes: Vec<&str> = json["modes"].as_array().unwrap().iter().map(|m| m["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["cpu-fp32"], "{json}");
    let skipped = json["skipped"].to_string();
    assert!(skipped.contains("cpu-int8: no stage runs in int8") && skipped.contains("already quantized"), "{json}");
}

/// A stateful LSTM (state inputs h0 and c0) and an old opset 9 export verify in both cpu modes.
#[test]
fn recurrent_and_old_exports_verify() {
    for file in ["stateful_lstm.onnx", "opset9_export.onnx"] {
        let out = lalarand()
            .arg("verify")
            .arg(testdata(file))
            .args(["--json", "--modes", "cpu-fp32,cpu-int8"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        let json = stdout_json(&out);
        assert_eq!(mode(&json, "cpu-fp32")["passed"], true, "{file}: {json}");
        assert!(mode(&json, "cpu-int8")["stages_in_mode"].as_u64().unwrap() > 0, "{file}: {json}");
    }
}
