//! int8 accuracy on the MNIST model in testdata.

use lalarand_engine::accuracy::{evaluate, Calibration};
use lalarand_engine::dataset::Dataset;
use lalarand_engine::{ExecConfig, StagedModel};
use lalarand_model::Mode;
use std::path::{Path, PathBuf};

fn testdata(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(f)
}

#[test]
fn all_int8_is_within_half_a_point_of_fp32() {
    let staged = StagedModel::load(&testdata("mnist_resnet.onnx")).unwrap();
    let data = Dataset::load_csv(&testdata("mnist_5k.csv.gz")).unwrap();
    assert_eq!(data.len(), 5000);
    let modes = vec![Mode::CpuInt8; staged.stage_count()];
    let r = evaluate(&staged, &modes, &data, 400, &Calibration::default(), &ExecConfig::default()).unwrap();
    eprintln!("{r:?}");
    assert_eq!(r.samples, 1000);
    assert_eq!(r.int8_stages.len(), staged.stage_count(), "every stage quantized");
    // The model's published fp32 accuracy on these rows.
    assert!((r.fp32_top1 - 98.7).abs() < 1e-9, "fp32 {}", r.fp32_top1);
    assert!((r.fp32_top1 - r.top1).abs() <= 0.5, "int8 {} vs fp32 {}", r.top1, r.fp32_top1);
}

#[test]
fn mixed_allocation_runs_and_converts_at_the_boundaries() {
    let staged = StagedModel::load(&testdata("mnist_resnet.onnx")).unwrap();
    let data = Dataset::load_csv(&testdata("mnist_5k.csv.gz")).unwrap();
    let int8: Vec<String> = staged.stage_names().iter().step_by(2).map(|s| s.to_string()).collect();
    let modes = lalarand_engine::accuracy::modes_with_int8(&staged, &int8).unwrap();
    assert_eq!(modes.iter().filter(|m| **m == Mode::CpuInt8).count(), int8.len());
    let e = lalarand_engine::accuracy::modes_with_int8(&staged, &["conv9".to_string()]).unwrap_err().to_string();
    assert!(e.contains("conv9") && e.contains("f.1.add"), "{e}");
    let r = evaluate(&staged, &modes, &data, 400, &Calibration::default(), &ExecConfig::default()).unwrap();
    assert!((r.fp32_top1 - r.top1).abs() <= 1.0, "{r:?}");
}

/// The input's range comes from the data itself (a runtime echo of a graph input once gave an
/// uninitialized buffer and a scale of 1e19).
#[test]
fn calibration_ranges_match_the_data() {
    use lalarand_engine::calibrate;
    use lalarand_onnx::quantize::CalibrationMethod;
    let staged = StagedModel::load(&testdata("mnist_resnet.onnx")).unwrap();
    let data = Dataset::load_csv(&testdata("mnist_5k.csv.gz")).unwrap();
    let rows: Vec<usize> = (0..50).collect();
    let (dims, x) = data.batch(&rows, &[1, 28, 28]).unwrap();
    let max = x.iter().copied().fold(0.0f32, f32::max);
    let r = calibrate(&staged, &[(dims, x)], CalibrationMethod::MinMax).unwrap();
    assert_eq!(r["input"], (0.0, max));
    assert!(r.len() > staged.stage_count(), "every intermediate tensor is observed");
}
