//! Running all stages in sequence reproduces the whole model (fp32), on every zoo model and,
//! with `--ignored`, on full-size torchvision exports and on the GPU.

use lalarand_engine::stage::{ExecConfig, StageRunner};
use lalarand_engine::tensor::{f32_data, f32_value, max_abs_diff};
use lalarand_engine::{Pipeline, StagedModel, Tensors};
use lalarand_model::Mode;
use lalarand_onnx::zoo::{self, Architecture};
use std::path::{Path, PathBuf};

fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Returns the number of stages after checking every graph output.
fn check(staged: &StagedModel) -> usize {
    check_in(staged, Mode::CpuFp32, 1e-4)
}

/// Every stage in `mode` against the whole model on the CPU in fp32: each graph output within
/// `tolerance` x its largest magnitude.
fn check_in(staged: &StagedModel, mode: Mode, tolerance: f32) -> usize {
    let dims = staged.input_shape(1);
    let input = pseudo_random(dims.iter().product(), 7);
    let cfg = ExecConfig::default();
    let mut whole = StageRunner::new("whole", Mode::CpuFp32, &staged.bytes, &cfg).unwrap();
    let mut expected = Tensors::new();
    expected.insert(staged.input_name.clone(), f32_value(&dims, input.clone()).unwrap());
    whole.run(&mut expected).unwrap();

    let modes = vec![mode; staged.stage_count()];
    let pipeline = Pipeline::new(staged, &modes, None, &cfg).unwrap();
    let got = pipeline.run_all(&dims, input).unwrap();
    for out in &staged.partition.graph_outputs {
        let (ws, w) = f32_data(&expected[out], out).unwrap();
        let (gs, g) = f32_data(&got[out], out).unwrap();
        assert_eq!(ws, gs, "{}: output {out}", staged.name);
        let (diff, scale) = max_abs_diff(w, g);
        assert!(scale > 0.0, "{}: output {out} is all zeros; the test would prove nothing", staged.name);
        assert!(diff <= tolerance * scale, "{}: output {out}: max |diff| {diff} > {tolerance} x {scale}", staged.name);
        eprintln!("{} in {mode}: output {out}: max |diff| {diff:.3e} = {:.3e} x its scale", staged.name, diff / scale);
    }
    staged.stage_count()
}

fn zoo_model(arch: Architecture) -> StagedModel {
    StagedModel::from_model(arch.name(), zoo::build(arch, 1), PathBuf::from(format!("zoo:{}", arch.name()))).unwrap()
}

#[test]
fn zoo_resnet18() {
    let m = zoo_model(Architecture::ResNet18);
    let names = m.stage_names();
    assert!(names.len() > 15, "{names:?}");
    assert_eq!(check(&m), names.len());
}

#[test]
fn zoo_resnet50() {
    check(&zoo_model(Architecture::ResNet50));
}

#[test]
fn zoo_mobilenet_v2() {
    check(&zoo_model(Architecture::MobileNetV2));
}

#[test]
fn zoo_squeezenet1_1() {
    check(&zoo_model(Architecture::SqueezeNet1_1));
}

#[test]
fn zoo_yolov3_tiny() {
    check(&zoo_model(Architecture::YoloV3Tiny));
}

#[test]
fn mnist_resnet() {
    let m =
        StagedModel::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mnist_resnet.onnx").as_path()).unwrap();
    assert_eq!(m.input_dims[0], None, "dynamic batch");
    let names = m.stage_names();
    assert!(names.contains(&"f.1.add"), "{names:?}");
    check(&m);
}

/// Full-size torchvision exports (65 MB, kept outside the repository; tests/exporters.rs runs
/// the exporters' output that the repository holds):
/// `LALARAND_SHARED_MODELS=DIR cargo test -p lalarand-engine --test stages_match_whole -- --ignored`.
#[test]
#[ignore = "reads full-size torchvision exports from $LALARAND_SHARED_MODELS, outside the repository"]
fn torchvision_exports_stages_match_the_whole_model() {
    let dir = std::env::var("LALARAND_SHARED_MODELS").expect("set LALARAND_SHARED_MODELS to the folder of the exports");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .onnx files in {dir}");
    for f in files {
        let m = StagedModel::load(&f).unwrap();
        eprintln!("{}: {:?}", f.display(), m.stage_names());
        if m.name == "resnet18" {
            // Torch exporter node names become module paths.
            assert_eq!(m.stage_names()[..5], ["conv1", "maxpool", "layer1.0.conv1", "layer1.0.conv2", "layer1.0.add"]);
            assert_eq!(m.stage_names().last(), Some(&"flatten"));
        }
        let n = check(&m);
        eprintln!("{}: {n} stages match the whole model", f.display());
    }
}

/// Two intra-op threads pinned to two cores compute the same as one.
#[test]
fn two_threads_on_two_cores_agree_with_one() {
    let m =
        StagedModel::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mnist_resnet.onnx").as_path()).unwrap();
    let dims = m.input_shape(4);
    let input = pseudo_random(dims.iter().product(), 3);
    let modes = vec![Mode::CpuFp32; m.stage_count()];
    let one = Pipeline::new(&m, &modes, None, &ExecConfig::default()).unwrap().run(&dims, input.clone()).unwrap();
    let cores: Vec<usize> = (0..2).filter(|c| core_ids().contains(c)).collect();
    let cfg = ExecConfig { threads: 2, cores, gpu_device: 0 };
    let two = Pipeline::new(&m, &modes, None, &cfg).unwrap().run(&dims, input).unwrap();
    assert_eq!(one.0, two.0);
    let (diff, scale) = max_abs_diff(&one.1, &two.1);
    assert!(diff <= 1e-4 * scale, "{diff} vs {scale}");
}

fn core_ids() -> Vec<usize> {
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

/// Every zoo model with every stage on the CUDA provider, against the whole model on the CPU
/// (scripts/device/check.sh runs it on the GPU machine). The GPU computes in fp32 (TF32 off,
/// docs/engine.md); the tolerance allows cuDNN's other summation orders.
#[test]
#[ignore = "needs an NVIDIA GPU: scripts/device/check.sh runs it with --ignored"]
fn gpu_stages_match_the_whole_model() {
    assert!(lalarand_engine::onnxruntime::gpu_present(), "no NVIDIA GPU visible: this test needs one");
    // The GPU build must be the process' first runtime: it then also runs the CPU reference.
    lalarand_engine::onnxruntime::environment(lalarand_engine::onnxruntime::Flavor::Gpu).unwrap();
    for arch in Architecture::ALL {
        let n = check_in(&zoo_model(arch), Mode::Gpu, 1e-3);
        eprintln!("{}: {n} gpu stages match the whole model", arch.name());
    }
}
