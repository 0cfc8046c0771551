//! Models as exporters write them (crates/engine/testdata/exporters/, made by
//! scripts/fixtures/make_exporter_fixtures.py): with their input shapes fixed, the chained fp32
//! stages compute what the whole exported model computes in ONNX Runtime, no stage is integer
//! shape arithmetic or a lone activation, and the int8 stages run.

use lalarand_engine::quant::{calibrate, quantize_stages};
use lalarand_engine::stage::{ExecConfig, StageRunner};
use lalarand_engine::tensor::{f32_data, f32_value, max_abs_diff};
use lalarand_engine::{Pipeline, StagedModel, Tensors};
use lalarand_model::Mode;
use lalarand_onnx::fold::InputShape;
use lalarand_onnx::quantize::CalibrationMethod;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/exporters").join(name)
}

fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    lalarand_engine::profile::seeded_inputs(1, n, seed).remove(0)
}

/// Loads `file` with `shape`, checks the fp32 chain against the exported file itself (not the
/// folded model) and runs every stage that quantizes in int8. Returns the staged model.
fn check(file: &str, shape: &str) -> StagedModel {
    let path = fixture(file);
    let shape: InputShape = shape.parse().unwrap();
    let staged = StagedModel::load_with(&path, std::slice::from_ref(&shape)).unwrap();
    let dims: Vec<usize> = shape.dims.iter().map(|&d| d as usize).collect();
    assert_eq!(staged.input_shape(1), dims, "{file}");
    let input = pseudo_random(dims.iter().product(), 11);

    let cfg = ExecConfig::default();
    let exported = std::fs::read(&path).unwrap();
    let mut whole = StageRunner::new("whole", Mode::CpuFp32, &exported, &cfg).unwrap();
    let mut expected = Tensors::new();
    expected.insert(staged.input_name.clone(), f32_value(&dims, input.clone()).unwrap());
    whole.run(&mut expected).unwrap();

    let fp32 = Pipeline::new(&staged, &vec![Mode::CpuFp32; staged.stage_count()], None, &cfg).unwrap();
    let got = fp32.run_all(&dims, input.clone()).unwrap();
    for out in &staged.partition.graph_outputs {
        let (ws, w) = f32_data(&expected[out], out).unwrap();
        let (gs, g) = f32_data(&got[out], out).unwrap();
        assert_eq!(ws, gs, "{file}: output {out}");
        let (diff, scale) = max_abs_diff(w, g);
        assert!(scale > 0.0, "{file}: output {out} is all zeros; the test would prove nothing");
        assert!(diff <= 1e-4 * scale, "{file}: output {out}: max |diff| {diff} > 1e-4 x {scale}");
        eprintln!(
            "{file}: {} fp32 stages, output {out}: max |diff| = {:.2e} x its scale",
            staged.stage_count(),
            diff / scale
        );
    }

    // Stages a user recognises: none is shape arithmetic alone or a lone activation.
    let graph = staged.model.graph.as_ref().unwrap();
    for s in &staged.partition.stages {
        let ops: Vec<&str> = s.nodes.iter().map(|&n| graph.node[n].op_type()).collect();
        assert!(
            !ops.iter().any(|o| matches!(*o, "Shape" | "Gather" | "Range" | "ConstantOfShape" | "Constant")),
            "{file}: stage {} computes shapes: {ops:?}",
            s.name
        );
        let lone_activation = matches!(ops.as_slice(), ["Sigmoid"] | ["HardSigmoid"] | ["Relu"] | ["Clip"])
            || (matches!(ops.as_slice(), ["Mul"] | ["Add"]) && s.inputs.len() == 1);
        assert!(!lone_activation, "{file}: stage {} is a lone activation: {ops:?}", s.name);
        assert!(!ops.iter().all(|o| *o == "Identity"), "{file}: stage {} only copies: {ops:?}", s.name);
        for t in s.inputs.iter().chain(&s.outputs) {
            assert_eq!(staged.types[t].elem_type, 1, "{file}: stage {} exchanges non-float `{t}`", s.name);
        }
    }

    // int8: every stage that quantizes runs, the others stay fp32.
    let cal: Vec<(Vec<usize>, Vec<f32>)> =
        (0..2).map(|k| (dims.clone(), pseudo_random(dims.iter().product(), 20 + k))).collect();
    let ranges = calibrate(&staged, &cal, CalibrationMethod::MinMax).unwrap();
    let int8 = quantize_stages(&staged, &ranges);
    let modes: Vec<Mode> = int8.stages.iter().map(|s| if s.is_ok() { Mode::CpuInt8 } else { Mode::CpuFp32 }).collect();
    let quantized = modes.iter().filter(|m| **m == Mode::CpuInt8).count();
    for (s, name) in int8.stages.iter().zip(staged.stage_names()) {
        if let Err(e) = s {
            eprintln!("{file}: stage {name} stays fp32: {e}");
        }
    }
    assert!(quantized * 2 >= modes.len(), "{file}: only {quantized} of {} stages quantize", modes.len());
    let p = Pipeline::new(&staged, &modes, Some(&int8), &cfg).unwrap();
    let (shape, out) = p.run(&dims, input).unwrap();
    assert!(out.iter().all(|v| v.is_finite()), "{file}: int8 output has non-finite values");
    eprintln!("{file}: {quantized} of {} stages int8, output {shape:?}", modes.len());
    staged
}

fn names(staged: &StagedModel) -> Vec<&str> {
    staged.stage_names()
}

#[test]
fn torch_script_exporter() {
    let m = check("torch_script.onnx", "x=1,3,64,64");
    eprintln!("{:?}", names(&m));
}

#[test]
fn torch_dynamo_exporter() {
    let m = check("torch_dynamo.onnx", "x=1,3,48,80");
    eprintln!("{:?}", names(&m));
}

#[test]
fn ultralytics_style_detector() {
    let m = check("ultralytics_style.onnx", "images=1,3,64,96");
    eprintln!("{:?}", names(&m));
}

#[test]
fn paddle2onnx_style() {
    let m = check("paddle2onnx_style.onnx", "x=1,3,32,32");
    eprintln!("{:?}", names(&m));
}

#[test]
fn tf2onnx_style() {
    let m = check("tf2onnx_style.onnx", "input_1:0=1,48,48,3");
    eprintln!("{:?}", names(&m));
}

/// Without `--input-shape`, symbolic height and width are an error naming each and the flag.
#[test]
fn symbolic_dims_without_shapes_are_named() {
    let e = StagedModel::load(&fixture("ultralytics_style.onnx")).unwrap_err().to_string();
    assert!(
        e.contains("ultralytics_style.onnx") && e.contains("axis 2 (height)") && e.contains("axis 3 (width)"),
        "{e}"
    );
    assert!(e.contains("--input-shape images=1,3,<height>,<width>"), "{e}");
}

/// A symbolic batch alone is fixed at 1 where the graph computes shapes (tf2onnx's Reshape).
#[test]
fn a_symbolic_batch_with_shape_computations_runs_at_batch_1() {
    let m = StagedModel::load(&fixture("tf2onnx_style.onnx")).unwrap();
    assert_eq!(m.input_shape(1), [1, 48, 48, 3]);
    assert!(!m.model.graph.as_ref().unwrap().node.iter().any(|n| n.op_type() == "Shape"));
}

/// A tf.keras CNN through tf2onnx itself (NHWC, a Transpose at the input and one before the
/// Flatten, a Reshape computed from Shape, Pad, depthwise conv, Concat over channels).
#[test]
fn tf2onnx_real_export() {
    let m = check("tf2onnx_keras.onnx", "image=1,32,32,3");
    eprintln!("{:?}", names(&m));
}

/// A paddle CNN through paddle2onnx itself (opset 11, BatchNormalization left unfused,
/// Hardswish as HardSigmoid*Mul, Identity nodes, Resize with sizes from Shape, ConvTranspose).
#[test]
fn paddle2onnx_real_export() {
    let m = check("paddle2onnx_real.onnx", "x=1,3,32,32");
    eprintln!("{:?}", names(&m));
}

/// paddle2onnx at opset 12 with two outputs: Softmax(axis=1) in its pre-13 meaning (rewritten
/// for the upgrade to 13 that per-channel int8 needs), Split with a `split` attribute, reflect
/// Pad, PReLU, bilinear Resize.
#[test]
fn paddle2onnx_opset12_export() {
    let m = check("paddle2onnx_opset12.onnx", "x=1,3,32,32");
    assert_eq!(m.partition.graph_outputs.len(), 2);
    eprintln!("{:?}", names(&m));
}
