//! The profiler on the MNIST model: a complete profile the timing core reads back, and a
//! partial one when stopped.

use lalarand_engine::dataset::Dataset;
use lalarand_engine::profile::{load_inputs, profile_to_file, sha256_file, ProfileOptions};
use lalarand_engine::{EngineError, StagedModel};
use lalarand_model::{DnnProfile, Mode};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn testdata(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(f)
}

fn opts() -> ProfileOptions {
    ProfileOptions { runs: 5, warmup: 1, progress: false, ..ProfileOptions::default() }
}

#[test]
fn profiles_every_stage_in_every_cpu_mode() {
    let model = testdata("mnist_resnet.onnx");
    let staged = StagedModel::load(&model).unwrap();
    let inputs = load_inputs(&testdata("mnist_5k.csv.gz"), &staged).unwrap();
    let calibration: Vec<Vec<f32>> = inputs.iter().step_by(25).cloned().collect();
    let data = Dataset::load_csv(&testdata("mnist_5k.csv.gz")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let o = ProfileOptions { accuracy: Some((data, 400)), ..opts() };
    let outcome = profile_to_file(&model, &calibration, &o, &out).unwrap();

    let p = DnnProfile::load(&out).unwrap();
    // The file holds what was returned (statistics up to JSON's float printing).
    let wcets = |p: &DnnProfile| {
        p.layers.iter().map(|l| (l.name.clone(), l.modes.map(|m| m.map(|m| m.wcet)))).collect::<Vec<_>>()
    };
    assert_eq!(wcets(&p), wcets(&outcome.profile));
    assert_eq!(p.model, "mnist_resnet");
    assert_eq!(p.wcet_margin, Some(1.2));
    assert_eq!(p.model_sha256.as_deref(), Some(sha256_file(&model).unwrap().as_str()));
    assert_eq!(p.layers.len(), staged.stage_count());
    // The residual adds read the block's input as well as their predecessor; the file says so
    // (the plan charges the conversions of every input a layer reads).
    let adds: Vec<usize> = (0..p.layers.len()).filter(|&j| p.layers[j].name.ends_with("add")).collect();
    assert!(!adds.is_empty(), "{:?}", staged.stage_names());
    for &j in &adds {
        let read = p.sources(j);
        assert!(read.layers.len() == 2 && read.layers.contains(&(j - 1)), "{}: {read:?}", p.layers[j].name);
    }
    assert_eq!(p.layer_sources, outcome.profile.layer_sources);
    for l in &p.layers {
        for m in [Mode::CpuFp32, Mode::CpuInt8] {
            let t = l.mode(m).unwrap_or_else(|| panic!("{}: no {m}", l.name));
            let s = t.stats.unwrap();
            assert_eq!(s.samples, 5);
            assert!(s.max_us > 0.0 && s.mean_us <= s.max_us && s.p99_us <= s.max_us);
            assert!(lalarand_model::time_to_us(t.wcet) >= s.max_us * 1.2 - 1e-3, "{}: {m}", l.name);
        }
        assert!(l.mode(Mode::Gpu).is_none(), "no GPU here");
        assert!(l.int8_accuracy_cost.is_finite());
    }
    assert!(p.int8_accuracy_unknown.is_empty(), "measured with a dataset: {:?}", p.int8_accuracy_unknown);
    // The first stage's int8 model reads the quantized image; converting it costs something.
    assert!(p.layers[0].transitions.quantize_in > 0);
    // Later stages read uint8 tensors of int8 producers; an fp32 stage pays to dequantize them.
    assert!(p.layers[1..].iter().all(|l| l.transitions.dequantize_in > 0));
    assert!(p.output.dequantize_out > 0);
    assert!(outcome.skipped.iter().any(|s| s.contains("gpu")), "{:?}", outcome.skipped);
}

#[test]
fn a_stopped_run_writes_what_it_measured() {
    let model = testdata("mnist_resnet.onnx");
    let staged = StagedModel::load(&model).unwrap();
    let inputs = load_inputs(&testdata("mnist_5k.csv.gz"), &staged).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let o = ProfileOptions { stop: Some(Arc::new(|done| done >= 3)), ..opts() };
    let err = profile_to_file(&model, &inputs[..20], &o, &out).unwrap_err();
    assert!(matches!(err, EngineError::Interrupted(_)), "{err}");
    let partial = dir.path().join("p.partial.json");
    assert!(err.to_string().contains(&partial.display().to_string()), "{err}");
    assert!(!out.exists(), "an incomplete profile must not take the real name");
    let p = DnnProfile::load(&partial).unwrap();
    assert_eq!(p.layers.len(), 3);
    assert!(p.source.starts_with("PARTIAL"), "{}", p.source);
}

/// A stop request in the middle of a stage's timing (here a million cold-cache runs, hours)
/// is honoured within a fraction of a second; the stages done before it are written.
#[test]
fn a_stop_during_a_long_stage_is_prompt() {
    let model = testdata("mnist_resnet.onnx");
    let staged = StagedModel::load(&model).unwrap();
    let inputs = lalarand_engine::profile::synthetic_inputs(&staged, 2);
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let stop = Arc::new(move |_done: usize| started.elapsed() > std::time::Duration::from_millis(500));
    let o = ProfileOptions { runs: 1_000_000, warmup: 0, modes: vec![Mode::CpuFp32], stop: Some(stop), ..opts() };
    let err = profile_to_file(&model, &inputs, &o, &dir.path().join("p.json")).unwrap_err();
    assert!(matches!(err, EngineError::Interrupted(_)), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
}

#[test]
fn wrong_calibration_shape_is_named() {
    let model = testdata("mnist_resnet.onnx");
    let staged = StagedModel::load(&model).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("cal.bin");
    std::fs::write(&raw, vec![0u8; 4 * 100]).unwrap();
    let e = load_inputs(&raw, &staged).unwrap_err().to_string();
    assert!(e.contains("cal.bin") && e.contains("[1, 1, 28, 28]"), "{e}");

    let e = profile_to_file(&model, &[vec![0.0; 100]], &opts(), &dir.path().join("p.json")).unwrap_err().to_string();
    assert!(e.contains("100 values") && e.contains("[1, 1, 28, 28]"), "{e}");
    assert!(!dir.path().join("p.partial.json").exists());
}

/// A model with a fixed batch of 1 (as torchvision exports are) calibrates one sample at a time.
#[test]
fn fixed_batch_model_with_several_inputs() {
    use lalarand_onnx::zoo::{self, Architecture};
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("squeezenet1_1.onnx");
    lalarand_onnx::save_model(&zoo::build(Architecture::SqueezeNet1_1, 3), &model).unwrap();
    let staged = StagedModel::load(&model).unwrap();
    assert_eq!(staged.input_dims[0], Some(1));
    let inputs = lalarand_engine::profile::synthetic_inputs(&staged, 3);
    let o = ProfileOptions { runs: 2, warmup: 0, ..opts() };
    let p = profile_to_file(&model, &inputs, &o, &dir.path().join("p.json")).unwrap().profile;
    assert_eq!(p.layers.len(), staged.stage_count());
    assert!(p.layers.iter().all(|l| l.mode(Mode::CpuInt8).is_some() && l.mode(Mode::CpuFp32).is_some()));
}

/// A model whose batch is fixed above 1 (exported at batch 10): each input already fills the
/// batch, so calibration takes it as a batch of its own rather than stacking ten of them.
#[test]
fn a_fixed_batch_of_ten_profiles_in_int8() {
    use lalarand_onnx::builder::{attr, GraphBuilder};
    use lalarand_onnx::proto::tensor_proto::DataType;
    let mut b = GraphBuilder::new("batch10");
    b.input("x", DataType::Float, &[10, 4, 8, 8]);
    let mut x = "x".to_string();
    for name in ["a", "b"] {
        let w: Vec<f32> = (0..4 * 4 * 9).map(|i| ((i * 37 % 17) as f32 - 8.0) / 20.0).collect();
        let w = b.f32_initializer(&format!("{name}_w"), &[4, 4, 3, 3], &w);
        let c = b.op("Conv", &format!("{name}_conv"), &[&x, &w], vec![attr::ints("pads", &[1, 1, 1, 1])]);
        x = b.op("Relu", &format!("{name}_relu"), &[&c], vec![]);
    }
    b.output(&x, DataType::Float, &[10, 4, 8, 8]);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("batch10.onnx");
    lalarand_onnx::save_model(&b.finish(), &model).unwrap();
    let staged = StagedModel::load(&model).unwrap();
    assert_eq!(staged.input_dims[0], Some(10));
    let inputs = lalarand_engine::profile::synthetic_inputs(&staged, 3);
    assert_eq!(inputs[0].len(), 10 * 4 * 8 * 8);
    let o = ProfileOptions { runs: 2, warmup: 0, modes: vec![Mode::CpuFp32, Mode::CpuInt8], ..opts() };
    let p = profile_to_file(&model, &inputs, &o, &dir.path().join("p.json")).unwrap().profile;
    assert!(p.layers.iter().all(|l| l.mode(Mode::CpuInt8).is_some()), "every stage has its int8 mode");
    assert_eq!(p.calibration.expect("saved").samples, 30, "three inputs of ten rows each");
}

/// Without a labeled dataset the int8 accuracy costs are not known: written as `null`, read
/// back as unknown, never as a free 0.
#[test]
fn without_a_dataset_accuracy_costs_are_unknown() {
    let model = testdata("mnist_resnet.onnx");
    let staged = StagedModel::load(&model).unwrap();
    let inputs = lalarand_engine::profile::synthetic_inputs(&staged, 4);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let o = ProfileOptions { runs: 1, warmup: 0, modes: vec![Mode::CpuFp32, Mode::CpuInt8], ..opts() };
    profile_to_file(&model, &inputs, &o, &out).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.matches("\"int8_accuracy_cost\": null").count(), staged.stage_count(), "{text}");
    let p = DnnProfile::load(&out).unwrap();
    assert_eq!(p.int8_accuracy_unknown.len(), p.layers.len());
    assert!((0..p.layers.len()).all(|j| !p.int8_accuracy_known(j) && p.layers[j].int8_accuracy_cost == 0.0));
}

/// A stop function that answers `true` from its `n`th call on (counting from 0), and counts.
fn stop_after(n: usize) -> (lalarand_engine::profile::StopFn, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    (Arc::new(move |_| c.fetch_add(1, Ordering::Relaxed) >= n), calls)
}

/// Stopped in the set-up (Ctrl-C while loading, calibrating or measuring accuracy): it ends
/// there, says so, and writes nothing (no stage was measured).
#[test]
fn a_stop_during_the_set_up_ends_it_there() {
    let model = testdata("mnist_resnet.onnx");
    let staged = StagedModel::load(&model).unwrap();
    let n = staged.stage_count();
    let inputs = load_inputs(&testdata("mnist_5k.csv.gz"), &staged).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let stopped = |stop: lalarand_engine::profile::StopFn, accuracy: bool| {
        let data = accuracy.then(|| (Dataset::load_csv(&testdata("mnist_5k.csv.gz")).unwrap(), 400));
        let o = ProfileOptions { stop: Some(stop), accuracy: data, ..opts() };
        // 100 inputs: 4 calibration batches of up to 32.
        let e = profile_to_file(&model, &inputs[..100], &o, &out).unwrap_err();
        assert!(matches!(e, EngineError::Interrupted(_)), "{e}");
        assert!(!out.exists() && !dir.path().join("p.partial.json").exists(), "nothing measured, nothing written");
        e.to_string()
    };
    // From the start: before the model is even loaded.
    let (stop, calls) = stop_after(0);
    let e = stopped(stop, false);
    assert!(e.contains("before loading the model") && e.contains("nothing written"), "{e}");
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    // Calls: 0 before loading, 1 before the fp32 reference run, 2.. before each calibration batch.
    let (stop, calls) = stop_after(4);
    let e = stopped(stop, false);
    assert!(e.contains("int8 calibration (2 of 4 batches done)"), "{e}");
    assert_eq!(calls.load(Ordering::Relaxed), 5);
    // Then one call before quantizing each stage, then before every batch of the accuracy runs.
    let (stop, _) = stop_after(2 + 4 + 3);
    let e = stopped(stop, false);
    assert!(e.contains("quantizing the stages (3 of"), "{e}");
    let (stop, calls) = stop_after(2 + 4 + n + 5);
    let e = stopped(stop, true);
    assert!(e.contains("int8 accuracy"), "{e}");
    assert_eq!(calls.load(Ordering::Relaxed), 2 + 4 + n + 6);
}

/// By default every timed run starts with evicted caches, and the profile says so; a warm-cache
/// profile says that instead.
#[test]
fn timed_runs_start_cold_unless_asked_otherwise() {
    let evictor = lalarand_engine::profile::CacheEvictor::new();
    assert!(evictor.bytes() >= 1 << 20, "at least twice a real last-level cache: {} bytes", evictor.bytes());
    let model = testdata("mnist_resnet.onnx");
    let staged = StagedModel::load(&model).unwrap();
    let inputs = lalarand_engine::profile::synthetic_inputs(&staged, 2);
    let dir = tempfile::tempdir().unwrap();
    for (cold, says) in [(true, "caches evicted before all timed runs"), (false, "warm caches")] {
        let o = ProfileOptions { runs: 1, warmup: 0, modes: vec![Mode::CpuFp32], cold_cache: cold, ..opts() };
        let p = profile_to_file(&model, &inputs, &o, &dir.path().join("p.json")).unwrap().profile;
        assert!(p.source.contains(says), "{}", p.source);
    }
}
