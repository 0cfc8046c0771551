//! Stage-wise int8 (uint8 NHWC handover between stages) computes what the whole model quantized
//! the same way computes, on branching zoo models (measured: bit-identical outputs).

use lalarand_engine::quant::{calibrate, quantize_stages};
use lalarand_engine::stage::{ExecConfig, StageRunner, Tensors};
use lalarand_engine::tensor::{f32_data, f32_value, max_abs_diff};
use lalarand_engine::{Pipeline, StagedModel};
use lalarand_model::Mode;
use lalarand_onnx::quantize::{quantize, CalibrationMethod, QuantizeOptions};
use lalarand_onnx::zoo::{self, Architecture};

fn inputs(n: usize, per: usize) -> Vec<Vec<f32>> {
    lalarand_engine::profile::seeded_inputs(n, per, 99)
}

fn check(arch: Architecture) {
    let staged = StagedModel::from_model(arch.name(), zoo::build(arch, 2), arch.name().into()).unwrap();
    let dims = staged.input_shape(1);
    let xs = inputs(3, dims.iter().product());
    let cal: Vec<(Vec<usize>, Vec<f32>)> = xs.iter().map(|x| (dims.clone(), x.clone())).collect();
    let ranges = calibrate(&staged, &cal, CalibrationMethod::MinMax).unwrap();
    let int8 = quantize_stages(&staged, &ranges);
    let failed: Vec<String> = int8
        .stages
        .iter()
        .zip(staged.stage_names())
        .filter_map(|(s, n)| s.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    assert!(failed.is_empty(), "{}: {failed:?}", arch.name());

    let cfg = ExecConfig::default();
    let whole_q = quantize(&staged.model, &ranges, &QuantizeOptions::default()).unwrap();
    let mut whole =
        StageRunner::new("whole", Mode::CpuInt8, &lalarand_onnx::encode_model(&whole_q.model), &cfg).unwrap();
    let mut expected = Tensors::new();
    expected.insert(staged.input_name.clone(), f32_value(&dims, xs[0].clone()).unwrap());
    whole.run(&mut expected).unwrap();
    let p = Pipeline::new(&staged, &vec![Mode::CpuInt8; staged.stage_count()], Some(&int8), &cfg).unwrap();
    let got = p.run_all(&dims, xs[0].clone()).unwrap();
    for out in &staged.partition.graph_outputs {
        let (ws, w) = f32_data(&expected[out], out).unwrap();
        let (gs, g) = f32_data(&got[out], out).unwrap();
        assert_eq!(ws, gs);
        let (diff, scale) = max_abs_diff(w, g);
        eprintln!("{} {out}: max |diff| {diff} of {scale}", arch.name());
        assert!(scale > 0.0 && diff <= 1e-4 * scale, "{}: {out}: {diff} vs {scale}", arch.name());
    }
}

#[test]
fn squeezenet_int8_stages_match_whole_int8() {
    check(Architecture::SqueezeNet1_1);
}

#[test]
fn mobilenet_v2_int8_stages_match_whole_int8() {
    check(Architecture::MobileNetV2);
}

#[test]
fn yolov3_tiny_int8_stages_match_whole_int8() {
    check(Architecture::YoloV3Tiny);
}

#[test]
fn resnet18_int8_stages_match_whole_int8() {
    check(Architecture::ResNet18);
}

/// `run_stage` on alternating threads, mixed fp32 / int8 stages (so tensors are quantized and
/// dequantized between them), gives exactly what `run_all` gives on the calling thread, with
/// two jobs in flight at once.
#[test]
fn stages_on_different_threads_match_run_all() {
    let arch = Architecture::SqueezeNet1_1;
    let staged = StagedModel::from_model(arch.name(), zoo::build(arch, 3), arch.name().into()).unwrap();
    let dims = staged.input_shape(1);
    let xs = inputs(2, dims.iter().product());
    let cal: Vec<(Vec<usize>, Vec<f32>)> = xs.iter().map(|x| (dims.clone(), x.clone())).collect();
    let int8 = quantize_stages(&staged, &calibrate(&staged, &cal, CalibrationMethod::MinMax).unwrap());
    let modes: Vec<Mode> =
        (0..staged.stage_count()).map(|i| if i % 3 == 1 { Mode::CpuFp32 } else { Mode::CpuInt8 }).collect();
    let p = Pipeline::new(&staged, &modes, Some(&int8), &ExecConfig::default()).unwrap();
    let expected: Vec<Vec<f32>> = xs.iter().map(|x| p.run(&dims, x.clone()).unwrap().1).collect();
    let jobs: Vec<_> = xs.iter().map(|x| p.input(&dims, x.clone()).unwrap()).collect();
    let n = p.stage_count();
    // Every stage runs on a thread of its own; the jobs travel from thread to thread.
    let pipeline = &p;
    let done = std::thread::scope(|s| {
        let mut jobs = jobs;
        for i in 0..n {
            jobs = s
                .spawn(move || {
                    let mut jobs = jobs;
                    for t in &mut jobs {
                        pipeline.run_stage(i, t).unwrap();
                    }
                    jobs
                })
                .join()
                .unwrap();
        }
        jobs
    });
    for (t, want) in done.iter().zip(&expected) {
        assert!(!t.u8().is_empty(), "some tensor crossed as uint8");
        assert_eq!(&p.output(t).unwrap().1, want);
    }
    assert!(p.run_stage(n, &mut p.input(&dims, xs[0].clone()).unwrap()).is_err());
}
