//! Recurrent models as real exporters write them (crates/engine/testdata/exporters/, made by
//! `scripts/fixtures/make_exporter_fixtures.py --recurrent`): a GRU and a two-layer
//! bidirectional LSTM through PyTorch's TorchScript exporter, and that LSTM dynamically
//! quantized by ONNX Runtime's own quantizer (com.microsoft DynamicQuantizeLSTM, MatMulInteger,
//! ConvInteger). Each is staged with its recurrent module named and whole, chained equal to the
//! exported file in ONNX Runtime (every output, the state included), profiled with int8 stages
//! or the reason why not, and served with its state passed back job after job.

#[path = "support/named_io.rs"]
mod named_io;
#[path = "support/two_cpus.rs"]
mod two_cpus;

use lalarand_engine::accuracy::{verify, Calibration};
use lalarand_engine::profile::{profile_to_file, synthetic_inputs};
use lalarand_engine::stage::ExecConfig;
use lalarand_engine::StagedModel;
use lalarand_model::{DnnProfile, Mode};
use lalarand_onnx::partition::is_recurrent;
use lalarand_onnx::{decode_model, load_model, ModelProto};
use lalarand_runtime::serve::StopPolicy;
use named_io::{assert_close, chain_equals_whole, float, fp32_server, quick_int8_profile, submit, whole, Fed};
use std::path::PathBuf;

/// Each fixture, its stages by name, and the recurrent module's stage.
const FIXTURES: [(&str, &[&str], &str); 3] = [
    ("torch_gru.onnx", &["front", "gru", "head"], "gru"),
    ("torch_lstm.onnx", &["conv", "pool", "rnn", "fc"], "rnn"),
    ("ort_dynamic_lstm.onnx", &["conv", "pool", "rnn", "fc"], "rnn"),
];

fn fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/exporters").join(file)
}

/// The exported file as it is, and staged as `lalarand profile` stages it.
fn load(file: &str) -> (ModelProto, StagedModel) {
    (load_model(fixture(file)).unwrap(), StagedModel::load(&fixture(file)).unwrap())
}

/// A job's inputs: the sequence (seeded) and the state (`h0`, and `c0` for the LSTMs).
fn job(file: &str, seed: u64, state: &[Vec<f32>]) -> Vec<Fed> {
    let with = |name, dims: &[usize], v: &Vec<f32>| Fed { f32: v.clone(), ..float(name, dims, 0) };
    match file {
        "torch_gru.onnx" => vec![float("x", &[1, 6, 10], seed), with("h0", &[1, 1, 24], &state[0])],
        _ => vec![
            float("image", &[1, 1, 8, 20], seed),
            with("h0", &[4, 1, 16], &state[0]),
            with("c0", &[4, 1, 16], &state[1]),
        ],
    }
}

/// A state that is not zeros (so that the model's use of it is tested).
fn some_state(file: &str, seed: u64) -> Vec<Vec<f32>> {
    let (n, parts) = if file == "torch_gru.onnx" { (24, 1) } else { (64, 2) };
    (0..parts).map(|k| float("state", &[n], seed + k).f32).collect()
}

/// The stages are the model's layers by name (the recurrent module's, not `rnn.slice` or a
/// Transpose's), and every node of the recurrent module (the batch-first Transposes, the
/// per-layer Slices of the state, both layers, the Concat of their states) is in one stage,
/// which reads the state inputs and writes the state outputs.
#[test]
fn recurrent_modules_are_one_stage_named_after_them() {
    for (file, names, recurrent) in FIXTURES {
        let (_, m) = load(file);
        assert_eq!(m.stage_names(), names, "{file}");
        let graph = m.model.graph.as_ref().unwrap();
        let k = m.stage_names().iter().position(|n| *n == recurrent).unwrap();
        let stage = &m.partition.stages[k];
        let module = format!("/{recurrent}/");
        for (i, node) in graph.node.iter().enumerate() {
            let in_module = node.name().starts_with(&module) && node.op_type() != "Constant";
            if is_recurrent(node) || in_module && node.op_type() != "DynamicQuantizeLinear" {
                assert!(stage.nodes.contains(&i), "{file}: `{}` is outside stage {recurrent}", node.name());
            }
        }
        let ops = stage.nodes.iter().filter(|&&i| is_recurrent(&graph.node[i])).count();
        assert_eq!(ops, if recurrent == "gru" { 1 } else { 2 }, "{file}");
        let states: &[&str] = if recurrent == "gru" { &["h0"] } else { &["h0", "c0"] };
        for (s, out) in states.iter().zip(["h_n", "c_n"]) {
            assert!(stage.inputs.iter().any(|t| t == s), "{file}: {:?}", stage.inputs);
            assert!(stage.outputs.iter().any(|t| t == out), "{file}: {:?}", stage.outputs);
        }
    }
}

/// The chained fp32 stages equal the exported file run whole in ONNX Runtime: every output,
/// the state outputs included, from a state that is not zeros.
#[test]
fn the_chained_stages_equal_the_exported_model_in_every_output() {
    for (file, _, _) in FIXTURES {
        let (model, _) = load(file);
        let m = chain_equals_whole(model, file, &job(file, 1, &some_state(file, 2)));
        assert_eq!(m.partition.graph_outputs.len(), if file == "torch_gru.onnx" { 2 } else { 3 });
    }
}

fn profile(file: &str, m: &StagedModel) -> DnnProfile {
    let dir = tempfile::tempdir().unwrap();
    let opts = quick_int8_profile();
    let out = dir.path().join("profile.json");
    profile_to_file(&fixture(file), &synthetic_inputs(m, 4), &opts, &out).unwrap();
    DnnProfile::load(&out).unwrap()
}

fn note(p: &DnnProfile, layer: usize) -> String {
    p.int8_notes.get(&layer).and_then(|n| n.note.clone()).unwrap_or_default()
}

/// Profiled with cpu-int8, the float exports' layers are quantized except the recurrent
/// module's, which reads the state calibration cannot fill: its note names the state input
/// and the recurrent op. The int8 chain runs close to fp32.
#[test]
fn float_recurrent_exports_get_int8_stages_or_the_reason() {
    for (file, names, recurrent, op) in [
        ("torch_gru.onnx", &["front", "gru", "head"][..], "gru", "GRU `/gru/GRU`"),
        ("torch_lstm.onnx", &["conv", "pool", "rnn", "fc"], "rnn", "LSTM `/rnn/LSTM`"),
    ] {
        let (_, m) = load(file);
        let p = profile(file, &m);
        let layers: Vec<&str> = p.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(layers, names, "{file}: the profile's layers");
        for (i, l) in p.layers.iter().enumerate() {
            let int8 = l.modes[Mode::CpuInt8.index()].is_some();
            if l.name == recurrent {
                let why = note(&p, i);
                assert!(!int8 && why.contains("\"h0\"") && why.contains(op), "{file}: {}: {why:?}", l.name);
            } else {
                assert!(int8, "{file}: layer {} has no cpu-int8: {:?}", l.name, note(&p, i));
            }
        }
        let samples: Vec<(Vec<usize>, Vec<f32>)> =
            synthetic_inputs(&m, 8).into_iter().map(|x| (m.input_shape(1), x)).collect();
        let v = verify(&m, &[Mode::CpuInt8], &samples, &samples, Calibration::default().method, &ExecConfig::default())
            .unwrap();
        eprintln!("{file}: {:?}", v[0]);
        assert_eq!(v[0].stages_in_mode, names.len() - 1, "{file}: {:?}", v[0]);
        assert!(v[0].cosine > 0.99, "{file}: {:?}", v[0]);
    }
}

/// ONNX Runtime's dynamically quantized LSTM is recognized as already quantized and runs as it
/// is: its stages keep the com.microsoft DynamicQuantizeLSTM and the integer products, and each
/// of them has no cpu-int8 mode, its note naming the op; its float MaxPool is quantized.
#[test]
fn an_ort_dynamically_quantized_lstm_runs_as_it_is() {
    let file = "ort_dynamic_lstm.onnx";
    let (_, m) = load(file);
    let what = m.prequantized.clone().expect("recognized as quantized");
    assert!(what.contains("2 DynamicQuantizeLSTM") && what.contains("1 MatMulInteger"), "{what}");
    let ops_of = |i: usize| -> Vec<(String, String)> {
        let stage = decode_model(m.stage_fp32(i)).unwrap();
        stage.graph.unwrap().node.iter().map(|n| (n.domain().to_string(), n.op_type().to_string())).collect()
    };
    let dq_lstm = ("com.microsoft".to_string(), "DynamicQuantizeLSTM".to_string());
    assert_eq!(ops_of(2).iter().filter(|o| **o == dq_lstm).count(), 2, "{:?}", ops_of(2));
    assert!(ops_of(3).iter().any(|(_, op)| op == "MatMulInteger"), "{:?}", ops_of(3));
    let p = profile(file, &m);
    let expected = [
        ("conv", Some("ConvInteger")),
        ("pool", None),
        ("rnn", Some("DynamicQuantizeLSTM")),
        ("fc", Some("MatMulInteger")),
    ];
    for (i, (l, (name, op))) in p.layers.iter().zip(expected).enumerate() {
        assert_eq!(l.name, name);
        let why = note(&p, i);
        match op {
            Some(op) => {
                assert!(l.modes[Mode::CpuInt8.index()].is_none(), "{name}");
                assert!(why.contains("already quantized (QOperator") && why.contains(op), "{name}: {why:?}");
            }
            None => assert!(l.modes[Mode::CpuInt8.index()].is_some(), "{name}: {why:?}"),
        }
    }
}

/// Served in-process, each job's `h_n` (and `c_n`) is the next job's `h0` (and `c0`), and every
/// output of every job equals ONNX Runtime's run of the exported file on the same inputs.
#[test]
fn served_with_the_state_passed_back_job_after_job() {
    for (file, _, _) in FIXTURES {
        let (model, m) = load(file);
        let server = fp32_server(&m);
        let mut state: Vec<Vec<f32>> = some_state(file, 0).iter().map(|s| vec![0.0; s.len()]).collect();
        for step in 0..3 {
            let inputs = job(file, 40 + step, &state);
            let result = submit(&server, &inputs);
            let want = whole(&model, &inputs);
            assert_eq!(result.outputs.len(), m.partition.graph_outputs.len(), "{file}");
            for out in &result.outputs {
                assert_close(&want, &out.name, &out.dims, &out.data);
            }
            let next: Vec<Vec<f32>> =
                ["h_n", "c_n"][..state.len()].iter().map(|t| result.output(t).unwrap().data.clone()).collect();
            assert_ne!(next, state, "{file}: job {step} left the state as it was");
            state = next;
        }
        server.stop(StopPolicy::Drain).unwrap();
    }
}
