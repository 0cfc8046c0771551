//! int8 is never silently wrong: a classifier whose input is tiny keeps its bias fp32 instead
//! of an int32 bias that ONNX Runtime clamps (which made the output identically zero), and
//! every int8 stage is checked against its fp32 self when it is built; a stage that fails is
//! refused, with a warning and a note in the profile.

use lalarand_engine::accuracy::{evaluate, Calibration};
use lalarand_engine::dataset::Dataset;
use lalarand_engine::profile::{profile_to_file, seeded_inputs, ProfileOptions};
use lalarand_engine::quant::{
    build_int8, calibrate, check_stages_until, quantize_stages, Agreement, Int8Stages, MIN_STAGE_COSINE,
};
use lalarand_engine::stage::ExecConfig;
use lalarand_engine::{Pipeline, StagedModel};
use lalarand_model::{DnnProfile, Mode};
use lalarand_onnx::builder::{attr, GraphBuilder};
use lalarand_onnx::proto::tensor_proto::DataType;
use lalarand_onnx::quantize::{quantize, CalibrationMethod, QuantizeOptions};
use lalarand_onnx::zoo::{self, Architecture};
use std::path::{Path, PathBuf};

/// Seeded values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    seeded_inputs(1, n, seed).remove(0).into_iter().map(|v| 2.0 * v - 1.0).collect()
}

/// input [1,3,16,16] -> 4 x (conv without bias, weights of 1e-4, relu), so that activations
/// shrink to about 1e-14 (as in deep nets with random weights and no bias), then a classifier
/// with a bias of about 0.5: a Gemm after global average pooling, or with `conv_head`
/// SqueezeNet's head (1x1 conv with bias, relu, global average pooling).
fn shrinking(conv_head: bool) -> StagedModel {
    let mut b = GraphBuilder::new("shrinking");
    b.input("input", DataType::Float, &[1, 3, 16, 16]);
    let mut x = "input".to_string();
    let mut cin: i64 = 3;
    for i in 0..4 {
        let w: Vec<f32> = values(8 * cin as usize * 9, 10 + i).iter().map(|v| v * 1e-4).collect();
        let w = b.f32_initializer(&format!("conv{i}.weight"), &[8, cin, 3, 3], &w);
        let conv = vec![attr::ints("pads", &[1; 4]), attr::ints("kernel_shape", &[3, 3])];
        let y = b.op("Conv", &format!("conv{i}"), &[&x, &w], conv);
        x = b.op("Relu", &format!("relu{i}"), &[&y], vec![]);
        cin = 8;
    }
    let weight = values(80, 3);
    let bias: Vec<f32> = values(10, 4).iter().map(|v| 0.25 + 0.25 * v).collect();
    if conv_head {
        let w = b.f32_initializer("head.weight", &[10, 8, 1, 1], &weight);
        let hb = b.f32_initializer("head.bias", &[10], &bias);
        let y = b.op("Conv", "head", &[&x, &w, &hb], vec![attr::ints("kernel_shape", &[1, 1])]);
        let y = b.op("Relu", "head_relu", &[&y], vec![]);
        let y = b.op("GlobalAveragePool", "avgpool", &[&y], vec![]);
        b.node("Flatten", "flatten", &[&y], &["output"], vec![attr::int("axis", 1)]);
    } else {
        let y = b.op("GlobalAveragePool", "avgpool", &[&x], vec![]);
        let y = b.op("Flatten", "flatten", &[&y], vec![attr::int("axis", 1)]);
        let fw = b.f32_initializer("fc.weight", &[10, 8], &weight);
        let fb = b.f32_initializer("fc.bias", &[10], &bias);
        b.node("Gemm", "fc", &[&y, &fw, &fb], &["output"], vec![attr::int("transB", 1)]);
    }
    b.output("output", DataType::Float, &[1, 10]);
    let name = if conv_head { "shrinking_conv_head" } else { "shrinking" };
    StagedModel::from_model(name, b.finish(), PathBuf::from(name)).unwrap()
}

fn calibration(staged: &StagedModel, n: usize) -> Vec<(Vec<usize>, Vec<f32>)> {
    let dims = staged.input_shape(1);
    seeded_inputs(n, dims.iter().product(), 5).into_iter().map(|x| (dims.clone(), x)).collect()
}

/// The whole model's output with every stage in `modes` next to fp32, over `inputs`.
fn agreement(staged: &StagedModel, int8: &Int8Stages, modes: &[Mode], inputs: &[(Vec<usize>, Vec<f32>)]) -> Agreement {
    let cfg = ExecConfig::default();
    let f = Pipeline::new(staged, &vec![Mode::CpuFp32; staged.stage_count()], None, &cfg).unwrap();
    let q = Pipeline::new(staged, modes, Some(int8), &cfg).unwrap();
    let mut sum = Agreement::default();
    for (dims, x) in inputs {
        sum.add(&f.run(dims, x.clone()).unwrap().1, &q.run(dims, x.clone()).unwrap().1);
    }
    sum
}

/// Before the fix the all-int8 output of both models was identically zero (the int32 bias,
/// about 1e18, clamped to 2^31 x 4e-19); now the bias is added in fp32 and the output agrees.
#[test]
fn a_tiny_classifier_input_keeps_the_bias_fp32_and_the_output_right() {
    for (conv_head, node) in [(false, "fc"), (true, "head")] {
        let staged = shrinking(conv_head);
        let cal = calibration(&staged, 4);
        let ranges = calibrate(&staged, &cal, CalibrationMethod::Percentile(99.99)).unwrap();
        let whole = quantize(&staged.model, &ranges, &QuantizeOptions::default()).unwrap();
        let kept: Vec<&str> = whole.kept_fp32.iter().map(|k| k.node.as_str()).collect();
        assert_eq!(kept, [node], "{}", staged.name);
        assert!(whole.kept_fp32[0].reason.contains("int32"), "{}", whole.kept_fp32[0]);

        let int8 = build_int8(&staged, &cal, CalibrationMethod::Percentile(99.99), &mut || false).unwrap();
        let n = staged.stage_count();
        for i in 0..n {
            let check = int8.check(i).unwrap_or_else(|| {
                panic!("{}: stage {i} not checked: {:?}", staged.name, int8.stages[i].as_ref().err())
            });
            assert!(check.passed(), "{}: stage {i}: {check:?}", staged.name);
        }
        let notes: Vec<String> = (0..n).filter_map(|i| int8.note(i)).collect();
        assert!(notes.len() == 1 && notes[0].contains(node) && notes[0].contains("bias kept fp32"), "{notes:?}");

        let a = agreement(&staged, &int8, &vec![Mode::CpuInt8; n], &cal);
        eprintln!("{}: all-int8 cosine {:.6}, relative error {:.2e}", staged.name, a.cosine(), a.relative_error());
        assert!(a.cosine() >= 0.999, "{}: all-int8 cosine {}", staged.name, a.cosine());
        assert!(a.relative_error() < 0.05, "{}: relative error {}", staged.name, a.relative_error());
    }
}

/// input [1,1,64,64] -> conv 3x3 -> relu -> conv 1x1 -> `output`, and calibration inputs of
/// which one has a single value of 1000 among [0, 1) values: percentile calibration clips it
/// (as it should clip rare outliers), so the first stage's int8 output misses what dominates
/// the fp32 one on that input, and the check refuses that stage.
fn outlier_model() -> (StagedModel, Vec<Vec<f32>>) {
    let mut b = GraphBuilder::new("outlier");
    b.input("input", DataType::Float, &[1, 1, 64, 64]);
    let w = b.f32_initializer("conv1.weight", &[4, 1, 3, 3], &values(36, 1));
    let conv = vec![attr::ints("pads", &[1; 4]), attr::ints("kernel_shape", &[3, 3])];
    let y = b.op("Conv", "conv1", &["input", &w], conv);
    let y = b.op("Relu", "relu1", &[&y], vec![]);
    let w2 = b.f32_initializer("conv2.weight", &[2, 4, 1, 1], &values(8, 2));
    b.node("Conv", "conv2", &[&y, &w2], &["output"], vec![attr::ints("kernel_shape", &[1, 1])]);
    b.output("output", DataType::Float, &[1, 2, 64, 64]);
    let staged = StagedModel::from_model("outlier", b.finish(), PathBuf::from("outlier")).unwrap();
    let mut inputs = seeded_inputs(8, 64 * 64, 11);
    inputs[0][2080] = 1000.0;
    (staged, inputs)
}

#[test]
fn a_stage_that_fails_its_check_is_refused_and_the_profile_says_why() {
    let (staged, inputs) = outlier_model();
    assert_eq!(staged.stage_names(), ["conv1", "conv2"]);
    let cal: Vec<(Vec<usize>, Vec<f32>)> = inputs.iter().map(|x| (vec![1, 1, 64, 64], x.clone())).collect();
    let int8 = build_int8(&staged, &cal, CalibrationMethod::Percentile(99.99), &mut || false).unwrap();
    let check = int8.check(0).unwrap();
    assert!(!check.passed() && check.cosine < MIN_STAGE_COSINE, "{check:?}");
    let why = int8.stages[0].as_ref().unwrap_err();
    assert!(why.contains("int8 check failed") && why.contains(&format!("{:.4}", check.cosine)), "{why}");
    // conv2 reads what the outlier made of relu1's output, clipped the same way: refused too.
    assert!(int8.check(1).is_some());
    assert!(Pipeline::new(&staged, &[Mode::CpuInt8, Mode::CpuFp32], Some(&int8), &ExecConfig::default()).is_err());

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("outlier.json");
    let model = dir.path().join("outlier.onnx");
    std::fs::write(&model, &staged.bytes).unwrap();
    let opts = ProfileOptions {
        runs: 2,
        warmup: 1,
        modes: vec![Mode::CpuFp32, Mode::CpuInt8],
        progress: false,
        cold_cache: false,
        ..Default::default()
    };
    let outcome = profile_to_file(&model, &inputs, &opts, &out).unwrap();
    assert!(
        outcome.skipped.iter().any(|s| s.starts_with("conv1: cpu-int8") && s.contains("int8 check failed")),
        "{:?}",
        outcome.skipped
    );
    let p = DnnProfile::load(&out).unwrap();
    assert!(p.layers[0].wcet(Mode::CpuInt8).is_none());
    assert_eq!(p.layers[1].wcet(Mode::CpuInt8).is_some(), p.int8_notes[&1].cosine.unwrap() >= MIN_STAGE_COSINE);
    let note = &p.int8_notes[&0];
    assert!(note.cosine.is_some_and(|c| c < MIN_STAGE_COSINE), "{note:?}");
    assert!(note.note.as_deref().is_some_and(|n| n.contains("no cpu-int8 mode: int8 check failed")), "{note:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("\"int8_note\"") && text.contains("\"int8_cosine\""), "{text}");
}

/// Quantized with ranges 100 times too narrow, every stage clips: the check, run on its own,
/// refuses them all.
#[test]
fn the_check_catches_bad_ranges() {
    let staged = StagedModel::from_model("sq", zoo::build(Architecture::SqueezeNet1_1, 1), "sq".into()).unwrap();
    let cal = calibration(&staged, 1);
    let ranges = calibrate(&staged, &cal, CalibrationMethod::MinMax).unwrap();
    let narrow = ranges.iter().map(|(k, &(lo, hi))| (k.clone(), (lo / 100.0, hi / 100.0))).collect();
    let mut int8 = quantize_stages(&staged, &narrow);
    check_stages_until(&staged, &mut int8, &cal, &mut || false).unwrap();
    let refused = (0..staged.stage_count()).filter(|&i| int8.get(i).is_none()).count();
    assert!(refused * 2 > staged.stage_count(), "{refused} of {} refused", staged.stage_count());
}

/// The lowest cosine of any stage of the model, after checking that every stage passes.
fn every_stage_passes(staged: &StagedModel, cal: &[(Vec<usize>, Vec<f32>)]) -> f64 {
    let int8 = build_int8(staged, cal, CalibrationMethod::Percentile(99.99), &mut || false).unwrap();
    let mut lowest = 1.0f64;
    for (i, name) in staged.stage_names().iter().enumerate() {
        let check =
            int8.check(i).unwrap_or_else(|| panic!("{}: {name}: {:?}", staged.name, int8.stages[i].as_ref().err()));
        assert!(check.passed() && int8.get(i).is_some(), "{}: {name}: {check:?}", staged.name);
        lowest = lowest.min(check.cosine);
    }
    eprintln!("{}: {} stages pass the int8 check, lowest cosine {lowest:.5}", staged.name, staged.stage_count());
    lowest
}

#[test]
fn every_zoo_stage_passes_its_check() {
    for arch in
        [Architecture::SqueezeNet1_1, Architecture::MobileNetV2, Architecture::ResNet18, Architecture::YoloV3Tiny]
    {
        let staged = StagedModel::from_model(arch.name(), zoo::build(arch, 1), arch.name().into()).unwrap();
        every_stage_passes(&staged, &calibration(&staged, 2));
    }
}

fn testdata(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(f)
}

/// Every stage of the MNIST classifier passes, and all-int8 top-1 stays at fp32's 98.7 %
/// (docs/evaluation.md, "Accuracy").
#[test]
fn mnist_stages_pass_and_all_int8_keeps_its_accuracy() {
    let staged = StagedModel::load(&testdata("mnist_resnet.onnx")).unwrap();
    let data = Dataset::load_csv(&testdata("mnist_5k.csv.gz")).unwrap();
    let (train, _) = data.split_per_class(400);
    let rows = data.take_per_class(&train, 20);
    let cal: Vec<(Vec<usize>, Vec<f32>)> = rows.chunks(100).map(|c| data.batch(c, &[1, 28, 28]).unwrap()).collect();
    every_stage_passes(&staged, &cal);
    let modes = vec![Mode::CpuInt8; staged.stage_count()];
    let r = evaluate(&staged, &modes, &data, 400, &Calibration::default(), &ExecConfig::default()).unwrap();
    eprintln!("mnist: fp32 {} %, all int8 {} %", r.fp32_top1, r.top1);
    assert!((r.fp32_top1 - 98.7).abs() < 1e-9 && (r.top1 - 98.7).abs() < 1e-9, "{r:?}");
}

/// Ranks with ties averaged (1-based).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for k in i..=j {
            r[idx[k]] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation.
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let mean = (a.len() as f64 + 1.0) / 2.0;
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - mean) * (y - mean)).sum();
    let va: f64 = ra.iter().map(|x| (x - mean).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mean).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// The label-free cost (top-1 disagreement with fp32 on the test rows, labels unread) ranks the
/// MNIST stages like the labeled top-1 drop. With the default calibration every stage's
/// labeled drop is 0 (nothing to rank), so the stages are calibrated coarsely here (percentile
/// 99, 2 rows per class), which gives them costs that differ.
#[test]
fn mnist_label_free_costs_rank_the_stages_like_the_labeled_ones() {
    use lalarand_engine::accuracy::{int8_costs, label_free_costs_until, Int8CostKind};
    let staged = StagedModel::load(&testdata("mnist_resnet.onnx")).unwrap();
    let data = Dataset::load_csv(&testdata("mnist_5k.csv.gz")).unwrap();
    let (train, test) = data.split_per_class(400);
    let rows = data.take_per_class(&train, 2);
    let cal: Vec<(Vec<usize>, Vec<f32>)> = vec![data.batch(&rows, &[1, 28, 28]).unwrap()];
    let int8 = build_int8(&staged, &cal, CalibrationMethod::Percentile(99.0), &mut || false).unwrap();
    let cfg = ExecConfig::default();
    let labeled = int8_costs(&staged, &int8, &data, &test, &cfg).unwrap();
    let unlabeled: Vec<(Vec<usize>, Vec<f32>)> =
        test.chunks(100).map(|c| data.batch(c, &[1, 28, 28]).unwrap()).collect();
    let (kind, free) = label_free_costs_until(&staged, &int8, &unlabeled, &cfg, &mut || false).unwrap();
    assert_eq!(kind, Int8CostKind::Top1Disagreement);
    let both: Vec<(f64, f64)> = labeled.iter().zip(&free).filter_map(|(a, b)| Some(((*a)?, (*b)?))).collect();
    for (name, (a, b)) in staged.stage_names().iter().zip(labeled.iter().zip(&free)) {
        eprintln!("{name}: labeled drop {a:?} pp, label-free disagreement {b:?} %");
    }
    let (a, b): (Vec<f64>, Vec<f64>) = both.iter().copied().unzip();
    let rho = spearman(&a, &b);
    eprintln!("{} stages, Spearman {rho:.3}", both.len());
    assert!(a.iter().any(|&x| x != a[0]), "labeled costs all equal: nothing to rank");
    assert!(rho >= 0.7, "Spearman {rho}");
}

/// Without labels, `label_free_accuracy` fills the costs of the stages with an int8 mode, and
/// the profile says what they measure (this model's output is a feature map: distortion).
#[test]
fn a_profile_without_labels_holds_label_free_costs_and_says_so() {
    use lalarand_model::Int8CostKind;
    let (staged, _) = outlier_model();
    let inputs = seeded_inputs(4, 64 * 64, 3);
    let dir = tempfile::tempdir().unwrap();
    let (model, out) = (dir.path().join("m.onnx"), dir.path().join("m.json"));
    std::fs::write(&model, &staged.bytes).unwrap();
    let opts = ProfileOptions {
        runs: 1,
        warmup: 0,
        modes: vec![Mode::CpuFp32, Mode::CpuInt8],
        progress: false,
        cold_cache: false,
        label_free_accuracy: true,
        ..Default::default()
    };
    profile_to_file(&model, &inputs, &opts, &out).unwrap();
    let p = DnnProfile::load(&out).unwrap();
    assert_eq!(p.int8_cost_kind, Int8CostKind::Distortion);
    for (j, l) in p.layers.iter().enumerate() {
        assert_eq!(p.int8_accuracy_known(j), l.wcet(Mode::CpuInt8).is_some(), "{}", l.name);
        assert!(l.int8_accuracy_cost >= 0.0 && l.int8_accuracy_cost < 1.0, "{}: {}", l.name, l.int8_accuracy_cost);
    }
    assert!(std::fs::read_to_string(&out).unwrap().contains("\"int8_cost_kind\": \"distortion\""));
}

/// `shrinking`'s output is its classifier's bias, whatever the input (activations of about
/// 1e-14 reach the head): the all-int8 chain's cosine to fp32 is about 1 while it follows none
/// of what varies between inputs. `verify` says so and fails it; the fp32 chain still passes.
#[test]
fn verify_flags_an_output_that_hardly_depends_on_the_input() {
    let staged = shrinking(false);
    let inputs = calibration(&staged, 8);
    let cal = {
        let dims = staged.input_shape(1);
        seeded_inputs(8, dims.iter().product(), 99).into_iter().map(|x| (dims.clone(), x)).collect::<Vec<_>>()
    };
    let verdicts = lalarand_engine::accuracy::verify(
        &staged,
        &[Mode::CpuFp32, Mode::CpuInt8],
        &inputs,
        &cal,
        CalibrationMethod::Percentile(99.99),
        &ExecConfig::default(),
    )
    .unwrap();
    let (fp32, int8) = (&verdicts[0], &verdicts[1]);
    eprintln!("{fp32:?}\n{int8:?}");
    assert!(fp32.passed, "{fp32:?}");
    assert!(int8.cosine > MIN_STAGE_COSINE, "the plain cosine would pass it: {int8:?}");
    assert!(!int8.passed, "{int8:?}");
    assert!(int8.centered_cosine.is_some_and(|c| c < MIN_STAGE_COSINE), "{int8:?}");
    assert!(int8.notes.iter().any(|n| n.contains("hardly depends on its input")), "{:?}", int8.notes);
    assert!(int8.top1_agreement.is_some(), "a classifier's top-1 is judged too");
}
