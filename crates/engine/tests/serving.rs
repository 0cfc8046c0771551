//! Serving real models: outputs through the server equal the whole model in ONNX Runtime (every
//! zoo model and the MNIST classifier, all fp32, split over two resources); the MNIST
//! classifier's top-1 through the server equals `lalarand accuracy`'s for a mixed int8
//! allocation; the profiled int8 stages are rebuilt from the profile, or refused.

#[path = "support/two_cpus.rs"]
mod two_cpus;

use lalarand_engine::accuracy::{evaluate, int8_stages, Calibration};
use lalarand_engine::dataset::Dataset;
use lalarand_engine::profile::{profile_to_file, ProfileOptions};
use lalarand_engine::serving::{EngineExecutor, TaskModel};
use lalarand_engine::stage::{ExecConfig, StageRunner};
use lalarand_engine::tensor::{argmax_rows, f32_data, f32_value, max_abs_diff};
use lalarand_engine::{StagedModel, Tensors};
use lalarand_model::examples::chain_profile;
use lalarand_model::{DnnProfile, LayerProfile, Mode};
use lalarand_onnx::zoo::{self, Architecture};
use lalarand_runtime::serve::{Input, ServeConfig, Server, StopPolicy};
use std::path::{Path, PathBuf};
use two_cpus::system_for;

fn testdata(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(f)
}

fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn layers_of(staged: &StagedModel) -> Vec<LayerProfile> {
    staged.stage_names().iter().map(|n| LayerProfile::gpu_cpu(*n, 1_000_000, 1_000_000)).collect()
}

fn untimed() -> ServeConfig {
    ServeConfig { realtime: false, ..ServeConfig::default() }
}

/// The whole model in one ONNX Runtime session on `input`.
fn whole_model(staged: &StagedModel, dims: &[usize], input: Vec<f32>) -> Tensors {
    let mut whole = StageRunner::new("whole", Mode::CpuFp32, &staged.bytes, &ExecConfig::default()).unwrap();
    let mut t = Tensors::new();
    t.insert(staged.input_name.clone(), f32_value(dims, input).unwrap());
    whole.run(&mut t).unwrap();
    t
}

/// All stages fp32, split over two resources, through the server: every graph output within
/// 1e-4 of its range of the whole model's.
fn outputs_match_whole(staged: StagedModel) {
    let n = staged.stage_count();
    let (system, alloc) = system_for(
        chain_profile(&staged.name, &layers_of(&staged)),
        &vec![Mode::CpuFp32; n],
        1_000_000,
        10_000_000_000,
    );
    let dims = staged.input_shape(1);
    let input = pseudo_random(dims.iter().product(), 11);
    let expected = whole_model(&staged, &dims, input.clone());
    let exec =
        EngineExecutor::from_models(&system, &alloc, vec![TaskModel { staged: staged.clone(), int8: None }]).unwrap();
    let server = Server::builder(&system, &alloc, exec).config(untimed()).start().unwrap();
    let result = server.infer("model", Input::from_vec(dims.clone(), input).unwrap()).unwrap();
    let report = server.stop(StopPolicy::Drain).unwrap();
    assert!(report.every_job_accounted, "{report:?}");
    let names: Vec<&str> = result.outputs.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, staged.partition.graph_outputs.iter().map(String::as_str).collect::<Vec<_>>());
    for out in &result.outputs {
        let (want_dims, want) = f32_data(&expected[&out.name], &out.name).unwrap();
        assert_eq!(out.dims, want_dims, "{}: {}", staged.name, out.name);
        let (lo, hi) = want.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        let range = hi - lo;
        assert!(range > 0.0, "{}: output {} is constant; the test would prove nothing", staged.name, out.name);
        let (diff, _) = max_abs_diff(want, &out.data);
        eprintln!("{}: output {}: max |diff| {diff:.3e} = {:.3e} x its range", staged.name, out.name, diff / range);
        assert!(diff <= 1e-4 * range, "{}: output {}: max |diff| {diff} > 1e-4 x {range}", staged.name, out.name);
    }
}

fn zoo_model(arch: Architecture) -> StagedModel {
    StagedModel::from_model(arch.name(), zoo::build(arch, 3), PathBuf::from(format!("zoo:{}", arch.name()))).unwrap()
}

#[test]
fn served_squeezenet1_1_equals_the_whole_model() {
    outputs_match_whole(zoo_model(Architecture::SqueezeNet1_1));
}

#[test]
fn served_mobilenet_v2_equals_the_whole_model() {
    outputs_match_whole(zoo_model(Architecture::MobileNetV2));
}

#[test]
fn served_resnet18_equals_the_whole_model() {
    outputs_match_whole(zoo_model(Architecture::ResNet18));
}

#[test]
fn served_resnet50_equals_the_whole_model() {
    outputs_match_whole(zoo_model(Architecture::ResNet50));
}

#[test]
fn served_yolov3_tiny_equals_the_whole_model() {
    outputs_match_whole(zoo_model(Architecture::YoloV3Tiny));
}

#[test]
fn served_mnist_classifier_equals_the_whole_model() {
    outputs_match_whole(StagedModel::load(&testdata("mnist_resnet.onnx")).unwrap());
}

/// Every other stage int8 (on cpu0 and cpu1 by halves): top-1 over the 1000 test rows, each
/// submitted through the server, equals `lalarand accuracy`'s (`accuracy::evaluate`) for the
/// same modes and calibration.
#[test]
fn served_mixed_int8_top1_equals_lalarand_accuracy() {
    let staged = StagedModel::load(&testdata("mnist_resnet.onnx")).unwrap();
    let data = Dataset::load_csv(&testdata("mnist_5k.csv.gz")).unwrap();
    let n = staged.stage_count();
    let modes: Vec<Mode> = (0..n).map(|j| if j % 2 == 0 { Mode::CpuInt8 } else { Mode::CpuFp32 }).collect();
    let cal = Calibration::default();
    let cfg = ExecConfig::default();
    let expected = evaluate(&staged, &modes, &data, 400, &cal, &cfg).unwrap();
    // The int8 stages `evaluate` builds: the same calibration rows and method.
    let (train, test) = data.split_per_class(400);
    let int8 = int8_stages(&staged, &data, &data.take_per_class(&train, cal.per_class), cal.method).unwrap();

    let (system, alloc) = system_for(chain_profile("mnist", &layers_of(&staged)), &modes, 50_000, 2_000_000);
    let exec =
        EngineExecutor::from_models(&system, &alloc, vec![TaskModel { staged: staged.clone(), int8: Some(int8) }])
            .unwrap();
    let server = Server::builder(&system, &alloc, exec).config(untimed()).start().unwrap();
    let sample = staged.input_shape(1);
    let mut correct = 0;
    for &row in &test {
        let input = Input::from_vec(sample.clone(), data.sample(row).to_vec()).unwrap();
        let r = server.infer("model", input).unwrap();
        let out = &r.outputs[0];
        correct += usize::from(argmax_rows(&out.data, *out.dims.last().unwrap())[0] == data.labels[row]);
    }
    let report = server.stop(StopPolicy::Drain).unwrap();
    assert!(report.every_job_accounted);
    assert_eq!(report.stats.tasks[0].completed as usize, test.len());
    let top1 = 100.0 * correct as f64 / test.len() as f64;
    eprintln!("served top-1 {top1} %, lalarand accuracy {} % ({} rows)", expected.top1, expected.samples);
    assert_eq!(test.len(), expected.samples);
    assert_eq!(top1, expected.top1);
}

/// `lalarand profile` saves the calibration; a server rebuilds the profiled int8 stages from it,
/// and refuses a profile without one or whose calibration does not give the profiled stages.
#[test]
fn int8_stages_come_from_the_profile_or_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = testdata("mnist_resnet.onnx");
    let out = dir.path().join("mnist.json");
    let opts = ProfileOptions {
        runs: 2,
        warmup: 1,
        modes: vec![Mode::CpuFp32, Mode::CpuInt8],
        progress: false,
        cold_cache: false,
        ..ProfileOptions::default()
    };
    let staged = StagedModel::load(&model).unwrap();
    let inputs = lalarand_engine::profile::synthetic_inputs(&staged, 4);
    let profile = profile_to_file(&model, &inputs, &opts, &out).unwrap().profile;
    let cal = profile.calibration.clone().expect("the profiler saves the calibration");
    assert_eq!((cal.method.as_str(), cal.samples), ("percentile:99.99", 4));
    assert_eq!(DnnProfile::load(&out).unwrap().calibration, profile.calibration, "the file keeps it");

    let n = staged.stage_count();
    let modes: Vec<Mode> = (0..n).map(|j| if j < n / 2 { Mode::CpuInt8 } else { Mode::CpuFp32 }).collect();
    // With the profile's sha256 and calibration (the times do not matter here).
    let serve = |p: DnnProfile| {
        let (system, alloc) = system_for(p, &modes, 100_000, 10_000_000);
        EngineExecutor::new(&system, &alloc, std::slice::from_ref(&model))
    };
    let exec = serve(profile.clone()).unwrap();
    // The same stages as the profiler's: served outputs equal a pipeline built from the same ranges.
    let dims = staged.input_shape(1);
    let (system, alloc) = system_for(profile.clone(), &modes, 100_000, 10_000_000);
    let server = Server::builder(&system, &alloc, exec).config(untimed()).start().unwrap();
    let x = inputs[0].clone();
    let served = server.infer("model", Input::from_vec(dims.clone(), x.clone()).unwrap()).unwrap();
    server.stop(StopPolicy::Drain).unwrap();
    let ranges = cal.ranges.iter().map(|(k, r)| (k.clone(), (r[0], r[1]))).collect();
    let int8 = lalarand_engine::quantize_stages(&staged, &ranges);
    let pipeline = lalarand_engine::Pipeline::new(&staged, &modes, Some(&int8), &ExecConfig::default()).unwrap();
    assert_eq!(served.outputs[0].data, pipeline.run(&dims, x).unwrap().1);

    let mut none = profile.clone();
    none.calibration = None;
    let e = serve(none).unwrap_err().to_string();
    assert!(
        e.contains("\"model\"") && e.contains("no saved int8 calibration") && e.contains("lalarand profile"),
        "{e}"
    );
    let mut other = profile.clone();
    let c = other.calibration.as_mut().unwrap();
    // Another calibration: every range twice as wide.
    for r in c.ranges.values_mut() {
        *r = [2.0 * r[0], 2.0 * r[1]];
    }
    let e = serve(other).unwrap_err().to_string();
    assert!(e.contains("differ from the profiled ones") && e.contains("fix:"), "{e}");
}
