//! Models with several inputs and outputs, of several element types (float, int64, bool):
//! staged, chained, profiled (int8 included), verified and served, each output equal to the
//! whole model's in ONNX Runtime; a recurrent state passed back job after job.

#[path = "fixtures/multi_io.rs"]
mod fixtures;
#[path = "support/named_io.rs"]
mod named_io;
#[path = "support/two_cpus.rs"]
mod two_cpus;

use named_io::{
    assert_close, boolean, chain_equals_whole, float, fp32_server, int64, quick_int8_profile, staged, submit,
    system_for, untimed, whole, Fed,
};

use lalarand_engine::accuracy::{verify, Calibration};
use lalarand_engine::profile::{profile_to_file, synthetic_inputs};
use lalarand_engine::serving::{EngineExecutor, TaskModel};
use lalarand_engine::stage::{ExecConfig, StageRunner};
use lalarand_engine::tensor::{elem, f32_values};
use lalarand_engine::{Pipeline, StageTensors, StagedModel};
use lalarand_model::examples::chain_profile;
use lalarand_model::{DnnProfile, LayerProfile, Mode};
use lalarand_onnx::{encode_model, ModelProto};
use lalarand_runtime::serve::{DataType, Input, Server, StopPolicy};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn testdata(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(f)
}

fn masked_gather_inputs(seed: u64) -> Vec<Fed> {
    vec![
        float("image", &[1, 3, 8, 8], seed),
        boolean("mask", &[1, 4, 8, 8], |i| !(i / 3 + seed as usize).is_multiple_of(4)),
        int64("index", &[2], &[3, (seed % 3) as i64]),
    ]
}

fn token_inputs(seed: u64) -> Vec<Fed> {
    let ids: Vec<i64> = (0..6).map(|i| (i * 7 + seed as i64) % 10).collect();
    vec![int64("ids", &[1, 6], &ids), boolean("mask", &[1, 6], |i| i < 4)]
}

#[test]
fn the_committed_fixtures_are_what_the_generator_builds() {
    for (file, model) in fixtures::all() {
        let committed = std::fs::read(testdata(file)).unwrap();
        assert!(
            committed == encode_model(&model),
            "testdata/{file} differs from tests/fixtures/multi_io.rs; fix: cargo run -p lalarand-engine --example multi_io_models -- crates/engine/testdata"
        );
    }
}

#[test]
fn every_input_keeps_its_declared_type() {
    let m = staged("masked_gather", fixtures::masked_gather());
    let types: Vec<(&str, i32)> = m.inputs.iter().map(|i| (i.name.as_str(), i.elem_type)).collect();
    assert_eq!(types, [("image", elem::FLOAT), ("mask", elem::BOOL), ("index", elem::INT64)]);
    assert_eq!(m.input_name, "image", "samples fill the float input");
    assert_eq!(m.partition.graph_outputs, ["picked", "pooled"]);
    let t = staged("token_bag", fixtures::token_bag());
    assert_eq!(t.input_name, "ids", "without a float input, samples fill the first");
    // Synthetic samples in [0, 1) are token 0; the mask keeps everything.
    let fed = t.feed(&[1, 6], synthetic_inputs(&t, 1).remove(0)).unwrap();
    let ids = fed["ids"].try_extract_tensor::<i64>().unwrap().1.to_vec();
    assert_eq!(ids, [0; 6]);
    assert!(fed["mask"].try_extract_tensor::<bool>().unwrap().1.iter().all(|m| *m));
}

#[test]
fn later_stages_read_graph_inputs_and_the_chain_equals_the_whole_model() {
    let m = chain_equals_whole(fixtures::masked_gather(), "masked_gather", &masked_gather_inputs(1));
    let reads = |t: &str| m.partition.stages.iter().position(|s| s.inputs.iter().any(|i| i == t)).unwrap();
    assert!(reads("mask") > 0 && reads("index") > 0, "{:#?}", m.partition.stages);
    chain_equals_whole(
        fixtures::recurrent_cell(),
        "recurrent_cell",
        &[float("x", &[1, 8], 2), float("h", &[1, 16], 3)],
    );
    chain_equals_whole(fixtures::token_bag(), "token_bag", &token_inputs(4));
}

#[test]
fn a_missing_or_mistyped_input_is_named() {
    let m = staged("masked_gather", fixtures::masked_gather());
    let p = Pipeline::new(&m, &vec![Mode::CpuFp32; m.stage_count()], None, &ExecConfig::default()).unwrap();
    let mut held = StageTensors::default();
    p.add_shared(&mut held, "image", &[1, 3, 8, 8], Arc::new(vec![0.0f32; 192])).unwrap();
    let e = p.check_fed(&held).unwrap_err().to_string();
    assert!(e.contains("\"mask\"") && e.contains("fix"), "{e}");
    let e = p.add_shared(&mut held, "index", &[2], Arc::new(vec![0.0f32; 2])).unwrap_err().to_string();
    assert!(e.contains("\"index\"") && e.contains("int64"), "{e}");
    let e = p.add_bytes(&mut held, "labels", &[2], &[0; 16]).unwrap_err().to_string();
    assert!(e.contains("\"labels\"") && e.contains("image, mask, index"), "{e}");
}

#[test]
fn an_input_of_an_unfed_type_is_refused_with_the_fix() {
    let mut model = fixtures::token_bag();
    let g = model.graph.as_mut().unwrap();
    let ty = g.input[1].r#type.as_mut().unwrap();
    if let Some(lalarand_onnx::proto::type_proto::Value::TensorType(t)) = ty.value.as_mut() {
        t.elem_type = Some(lalarand_onnx::proto::tensor_proto::DataType::String as i32);
    }
    let e = StagedModel::from_model("strings", model, "strings.onnx".into()).unwrap_err().to_string();
    assert!(e.contains("strings.onnx") && e.contains("\"mask\"") && e.contains("string") && e.contains("fix"), "{e}");
}

/// The input lalarand cannot feed is named before any symbolic dimension is asked for: fixing
/// the shapes first would be for nothing.
#[test]
fn an_unfed_input_type_is_said_before_the_input_shapes() {
    use lalarand_onnx::proto::tensor_shape_proto::dimension::Value;
    use lalarand_onnx::proto::type_proto::Value as T;
    let mut model = fixtures::token_bag();
    let g = model.graph.as_mut().unwrap();
    for (k, vi) in g.input.iter_mut().enumerate() {
        if let Some(T::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            t.shape.as_mut().unwrap().dim[1].value = Some(Value::DimParam("tokens".into()));
            if k == 1 {
                t.elem_type = Some(lalarand_onnx::proto::tensor_proto::DataType::String as i32);
            }
        }
    }
    let e = StagedModel::from_model("strings", model, "strings.onnx".into()).unwrap_err().to_string();
    assert!(e.contains("\"mask\"") && e.contains("string") && !e.contains("symbolic"), "{e}");
}

#[test]
fn several_named_inputs_of_several_types_are_served() {
    let model = fixtures::masked_gather();
    let m = staged("masked_gather", model.clone());
    let server = fp32_server(&m);
    let spec = server.input_spec("model").unwrap();
    let declared: Vec<(String, DataType)> =
        spec.tensors.clone().unwrap().into_iter().map(|t| (t.name, t.dtype)).collect();
    assert_eq!(
        declared,
        [("image".into(), DataType::Fp32), ("mask".into(), DataType::Bool), ("index".into(), DataType::Int64)]
    );
    for seed in 0..3 {
        let inputs = masked_gather_inputs(seed);
        let result = submit(&server, &inputs);
        let want = whole(&model, &inputs);
        let names: Vec<&str> = result.outputs.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["picked", "pooled"]);
        for out in &result.outputs {
            assert_close(&want, &out.name, &out.dims, &out.data);
        }
    }
    // A wrong datatype is refused before any stage runs, naming the input.
    let mut wrong = masked_gather_inputs(0);
    wrong[2] = Fed { dtype: DataType::Fp32, f32: vec![1.0, 2.0], bytes: Vec::new(), ..wrong[2].clone() };
    let e = server.submit("model", Input::named(wrong.iter().map(Fed::tensor).collect()).unwrap()).unwrap_err();
    assert!(e.to_string().contains("\"index\"") && e.to_string().contains("INT64"), "{e}");
    assert!(server.stop(StopPolicy::Drain).unwrap().every_job_accounted);
}

#[test]
fn a_recurrent_state_goes_back_in_job_after_job() {
    let model = fixtures::recurrent_cell();
    let m = staged("recurrent_cell", model.clone());
    let server = fp32_server(&m);
    let mut state = Fed { f32: vec![0.0; 16], ..float("h", &[1, 16], 0) };
    for step in 0..4 {
        let inputs = [float("x", &[1, 8], 10 + step), state.clone()];
        let result = submit(&server, &inputs);
        let want = whole(&model, &inputs);
        for out in &result.outputs {
            assert_close(&want, &out.name, &out.dims, &out.data);
        }
        // The new state is the next job's state.
        state.f32 = result.output("h_new").unwrap().data.clone();
    }
    assert!(state.f32.iter().any(|&v| v != 0.0));
    server.stop(StopPolicy::Drain).unwrap();
}

#[test]
fn a_token_model_without_float_inputs_is_served() {
    let model = fixtures::token_bag();
    let m = staged("token_bag", model.clone());
    let server = fp32_server(&m);
    for seed in 0..2 {
        let inputs = token_inputs(seed);
        let result = submit(&server, &inputs);
        let want = whole(&model, &inputs);
        assert_close(&want, "logits", &result.outputs[0].dims, &result.outputs[0].data);
    }
    server.stop(StopPolicy::Drain).unwrap();
}

/// Profiled with int8 (synthetic samples for the image, zeros for the mask and indices), the
/// profile served with its int8 stages rebuilt; `verify` runs the int8 chain. Integer and bool
/// tensors are never quantized: every int8 stage keeps them in their type.
#[test]
fn a_multi_input_model_profiles_with_int8_and_is_served_from_its_profile() {
    let dir = tempfile::tempdir().unwrap();
    let path = testdata("masked_gather.onnx");
    let m = StagedModel::load(&path).unwrap();
    let opts = quick_int8_profile();
    let out = dir.path().join("masked_gather.json");
    let profile = profile_to_file(&path, &synthetic_inputs(&m, 8), &opts, &out).unwrap().profile;
    assert_eq!(DnnProfile::load(&out).unwrap().layers.len(), m.stage_count(), "the profile loads back");
    let int8_stages = profile.layers.iter().filter(|l| l.modes[Mode::CpuInt8.index()].is_some()).count();
    assert!(int8_stages > 0, "no stage has an int8 mode: {:?}", profile.int8_notes);
    let modes: Vec<Mode> = profile
        .layers
        .iter()
        .map(|l| if l.modes[Mode::CpuInt8.index()].is_some() { Mode::CpuInt8 } else { Mode::CpuFp32 })
        .collect();
    let (system, alloc) = system_for(profile, &modes, 1_000_000);
    let exec = EngineExecutor::new(&system, &alloc, std::slice::from_ref(&path)).unwrap();
    let server = Server::builder(&system, &alloc, exec).config(untimed()).start().unwrap();
    // An image from the calibration's distribution ([0, 1), as the synthetic samples).
    let mut inputs = masked_gather_inputs(2);
    inputs[0].f32 = synthetic_inputs(&m, 9).remove(8);
    let result = submit(&server, &inputs);
    server.stop(StopPolicy::Drain).unwrap();
    let want = whole(&fixtures::masked_gather(), &inputs);
    for out in &result.outputs {
        let (_, w) = f32_values(&want[&out.name], &out.name).unwrap();
        let dot: f32 = w.iter().zip(&out.data).map(|(a, b)| a * b).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cosine = dot / (norm(&w) * norm(&out.data));
        eprintln!("{}: cosine {cosine} of the int8 allocation to the whole model", out.name);
        assert!(cosine > 0.95, "{}: cosine {cosine} of the int8 allocation to the whole model", out.name);
    }
    let samples: Vec<(Vec<usize>, Vec<f32>)> =
        synthetic_inputs(&m, 4).into_iter().map(|x| (vec![1, 3, 8, 8], x)).collect();
    let verdicts = verify(
        &m,
        &[Mode::CpuFp32, Mode::CpuInt8],
        &samples,
        &samples,
        Calibration::default().method,
        &ExecConfig::default(),
    )
    .unwrap();
    assert!(verdicts[0].cosine > 0.99999, "{:?}", verdicts[0]);
    assert!(verdicts[1].stages_in_mode > 0, "{:?}", verdicts[1]);
}

/// The samples fill `x`; the state `h` is fed zeros during calibration and has no range, so
/// the stage reading it is refused int8 naming it, and the others are quantized.
#[test]
fn a_stage_reading_an_uncalibrated_state_is_refused_int8_with_the_reason() {
    let m = staged("recurrent_cell", fixtures::recurrent_cell());
    let samples: Vec<(Vec<usize>, Vec<f32>)> = synthetic_inputs(&m, 8).into_iter().map(|x| (vec![1, 8], x)).collect();
    let ranges = lalarand_engine::calibrate(&m, &samples, Calibration::default().method).unwrap();
    assert!(!ranges.contains_key("h"), "the fixed state is not observed");
    let int8 = lalarand_engine::quantize_stages(&m, &ranges);
    for (stage, q) in m.partition.stages.iter().zip(&int8.stages) {
        if stage.inputs.iter().any(|t| t == "h") {
            let e = q.as_ref().unwrap_err();
            assert!(e.contains("\"h\"") && e.contains("\"x\"") && e.contains("fp32"), "{e}");
        } else {
            assert!(q.is_ok(), "{}: {:?}", stage.name, q.as_ref().err());
        }
    }
}

/// The recurrent cell with a symbolic batch on every input and output: the chain equals the
/// whole model at batch 3, and the state fed beside samples takes the samples' batch.
#[test]
fn inputs_sharing_a_symbolic_batch_run_at_any_batch() {
    use lalarand_onnx::proto::tensor_shape_proto::dimension::Value;
    use lalarand_onnx::proto::type_proto::Value as T;
    let mut model = fixtures::recurrent_cell();
    let g = model.graph.as_mut().unwrap();
    for vi in g.input.iter_mut().chain(g.output.iter_mut()) {
        if let Some(T::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            t.shape.as_mut().unwrap().dim[0].value = Some(Value::DimParam("batch".into()));
        }
    }
    let m = chain_equals_whole(model, "recurrent_batch", &[float("x", &[3, 8], 5), float("h", &[3, 16], 6)]);
    assert!(m.inputs.iter().all(|i| i.dims[0].is_none()), "{:?}", m.inputs);
    let fed = m.feed(&[3, 8], vec![0.5; 24]).unwrap();
    assert_eq!(fed["h"].try_extract_tensor::<f32>().unwrap().0.to_vec(), [3, 16]);
}

fn seq_inputs(seed: u64) -> Vec<Fed> {
    vec![float("x", &[1, 5, 4], seed), float("h0", &[1, 1, 8], seed + 1), float("c0", &[1, 1, 8], seed + 2)]
}

fn if_inputs(seed: u64, flip: bool) -> Vec<Fed> {
    vec![float("x", &[5, 1, 4], seed), boolean("flip", &[], |_| flip)]
}

/// An LSTM's stage is named after it (not the Transpose it starts with), the LSTM is never cut,
/// its state crosses stages as its own outputs, and the chain equals the whole model; with an
/// If in front, both branches.
#[test]
fn recurrent_models_are_staged_by_what_they_are_and_chain_to_the_whole_model() {
    let m = chain_equals_whole(fixtures::stateful_lstm(), "stateful_lstm", &seq_inputs(1));
    assert_eq!(m.stage_names(), ["lstm", "head.squeeze"]);
    assert_eq!(m.partition.stages[0].inputs, ["x", "h0", "c0"]);
    assert_eq!(m.partition.stages[0].outputs, ["h_n", "c_n"], "the new state leaves the LSTM's stage");
    for flip in [true, false] {
        let m = chain_equals_whole(fixtures::if_lstm(), "if_lstm", &if_inputs(2, flip));
        assert_eq!(m.stage_names(), ["pick", "encoder", "head.squeeze"]);
    }
}

/// An LSTM cell written out in ops is one stage named after its module (never cut between
/// its gates), reading `x`, `h`, `c` and writing the new state; the chain equals the whole
/// model, and the state goes back job after job when served.
#[test]
fn an_unrolled_cell_is_one_stage_and_serves_its_state_back() {
    let model = fixtures::unrolled_lstm_cell();
    let inputs = |seed, h: &[f32], c: &[f32]| {
        let state = |name, v: &[f32]| Fed { f32: v.to_vec(), ..float(name, &[1, 6], 0) };
        vec![float("x", &[1, 4], seed), state("h", h), state("c", c)]
    };
    let m = chain_equals_whole(model.clone(), "unrolled", &inputs(1, &[0.3; 6], &[-0.2; 6]));
    assert_eq!(m.stage_names(), ["cell", "head"]);
    assert_eq!(m.partition.stages[0].inputs, ["x", "h", "c"]);
    let server = fp32_server(&m);
    let (mut h, mut c) = (vec![0.0; 6], vec![0.0; 6]);
    for step in 0..3 {
        let fed = inputs(30 + step, &h, &c);
        let result = submit(&server, &fed);
        let want = whole(&model, &fed);
        for out in &result.outputs {
            assert_close(&want, &out.name, &out.dims, &out.data);
        }
        h = result.output("h_new").unwrap().data.clone();
        c = result.output("c_new").unwrap().data.clone();
    }
    server.stop(StopPolicy::Drain).unwrap();
}

/// The LSTM's stage reads the state, which calibration cannot fill: it is refused int8 naming
/// `h0`; the head is quantized. With an If in front, every stage is quantized or refused with
/// why, and the int8 chain runs.
#[test]
fn recurrent_models_run_int8_where_they_can_and_say_why_not_elsewhere() {
    let m = staged("stateful_lstm", fixtures::stateful_lstm());
    let samples: Vec<(Vec<usize>, Vec<f32>)> =
        synthetic_inputs(&m, 8).into_iter().map(|x| (vec![1, 5, 4], x)).collect();
    let int8 = lalarand_engine::quantize_stages(
        &m,
        &lalarand_engine::calibrate(&m, &samples, Calibration::default().method).unwrap(),
    );
    let e = int8.stages[0].as_ref().unwrap_err();
    assert!(e.contains("\"h0\"") && e.contains("fp32"), "{e}");
    assert!(int8.stages[1].is_ok(), "{:?}", int8.stages[1]);
    let m = staged("if_lstm", fixtures::if_lstm());
    let samples: Vec<(Vec<usize>, Vec<f32>)> =
        synthetic_inputs(&m, 8).into_iter().map(|x| (vec![5, 1, 4], x)).collect();
    let v = verify(&m, &[Mode::CpuInt8], &samples, &samples, Calibration::default().method, &ExecConfig::default())
        .unwrap();
    assert!(v[0].stages_in_mode > 0, "{:?}", v[0]);
    assert!(v[0].not_in_mode.iter().all(|(_, why)| !why.is_empty()), "{:?}", v[0]);
    assert!(v[0].cosine > 0.99, "{:?}", v[0]);
}

/// Served with its state passed back: `h_n` and `c_n` of each job are the next job's `h0` and
/// `c0`, every output equal to the whole model's in ONNX Runtime; the If model served with
/// its bool scalar.
#[test]
fn a_stateful_lstm_and_an_if_model_are_served() {
    let model = fixtures::stateful_lstm();
    let server = fp32_server(&staged("stateful_lstm", model.clone()));
    let mut state = [
        Fed { f32: vec![0.0; 8], ..float("h0", &[1, 1, 8], 0) },
        Fed { f32: vec![0.0; 8], ..float("c0", &[1, 1, 8], 0) },
    ];
    for step in 0..3 {
        let inputs = [float("x", &[1, 5, 4], 20 + step), state[0].clone(), state[1].clone()];
        let result = submit(&server, &inputs);
        let want = whole(&model, &inputs);
        assert_eq!(result.outputs.len(), 3);
        for out in &result.outputs {
            assert_close(&want, &out.name, &out.dims, &out.data);
        }
        state[0].f32 = result.output("h_n").unwrap().data.clone();
        state[1].f32 = result.output("c_n").unwrap().data.clone();
    }
    server.stop(StopPolicy::Drain).unwrap();
    let model = fixtures::if_lstm();
    let server = fp32_server(&staged("if_lstm", model.clone()));
    for flip in [true, false] {
        let inputs = if_inputs(3, flip);
        let result = submit(&server, &inputs);
        assert_close(&whole(&model, &inputs), "y", &result.outputs[0].dims, &result.outputs[0].data);
    }
    server.stop(StopPolicy::Drain).unwrap();
}

/// An already-quantized (QDQ) model: recognized, cut between QuantizeLinear and
/// DequantizeLinear (its stages hand over uint8), the chain equal to the whole model, no stage
/// quantized again (each says why), and served equal to the whole model.
#[test]
fn an_already_quantized_model_runs_as_it_is() {
    let model = fixtures::qdq_conv_matmul();
    let inputs = |seed| vec![float("x", &[1, 3, 8, 8], seed)];
    let m = chain_equals_whole(model.clone(), "qdq", &inputs(4));
    let what = m.prequantized.clone().expect("recognized as quantized");
    assert!(what.starts_with("QDQ") && what.contains("QuantizeLinear"), "{what}");
    assert_eq!(m.stage_count(), 2, "{:?}", m.partition.stages);
    assert_eq!(m.types[&m.partition.stages[0].outputs[0]].elem_type, elem::UINT8, "uint8 crosses the cut");
    let samples: Vec<(Vec<usize>, Vec<f32>)> = vec![(vec![1, 3, 8, 8], inputs(5).remove(0).f32)];
    let int8 = lalarand_engine::quant::build_int8(&m, &samples, Calibration::default().method, &mut || false).unwrap();
    for q in &int8.stages {
        let e = q.as_ref().unwrap_err();
        assert!(e.contains("already quantized") && e.contains("fix"), "{e}");
    }
    let server = fp32_server(&m);
    for seed in 6..8 {
        let result = submit(&server, &inputs(seed));
        assert_close(&whole(&model, &inputs(seed)), "y", &result.outputs[0].dims, &result.outputs[0].data);
    }
    server.stop(StopPolicy::Drain).unwrap();
    // Profiled with cpu-int8 asked for: no layer has it, and every layer's note says why.
    let dir = tempfile::tempdir().unwrap();
    let path = testdata("qdq_conv_matmul.onnx");
    let opts = quick_int8_profile();
    let out = dir.path().join("qdq.json");
    profile_to_file(&path, &synthetic_inputs(&m, 4), &opts, &out).unwrap();
    let profile = DnnProfile::load(&out).unwrap();
    assert!(profile
        .layers
        .iter()
        .all(|l| l.modes[Mode::CpuInt8.index()].is_none() && l.modes[Mode::CpuFp32.index()].is_some()));
    for i in 0..profile.layers.len() {
        let note = profile.int8_notes.get(&i).and_then(|n| n.note.clone()).unwrap_or_default();
        assert!(note.contains("already quantized (QDQ"), "layer {i}: {note:?}");
    }
}

/// An opset 9 export (Upsample, Pad, Clip and Slice with attributes) is lifted to opset 13:
/// the lifted stages chained equal the original model in ONNX Runtime, and int8 stages build.
#[test]
fn an_opset9_export_is_lifted_for_int8() {
    let original = fixtures::opset9_export();
    let inputs = |seed| vec![float("x", &[1, 3, 8, 8], seed)];
    // `chain_equals_whole` compares with the original, opset 9 model.
    let m = chain_equals_whole(original.clone(), "opset9", &inputs(1));
    assert_eq!(m.model.opset_import[0].version, Some(13));
    let samples: Vec<(Vec<usize>, Vec<f32>)> =
        synthetic_inputs(&m, 8).into_iter().map(|x| (vec![1, 3, 8, 8], x)).collect();
    let int8 = lalarand_engine::quant::build_int8(&m, &samples, Calibration::default().method, &mut || false).unwrap();
    let built = int8.stages.iter().filter(|s| s.is_ok()).count();
    assert!(built > 0, "{:?}", int8.stages);
    let server = fp32_server(&m);
    let result = submit(&server, &inputs(2));
    assert_close(&whole(&original, &inputs(2)), "prob", &result.outputs[0].dims, &result.outputs[0].data);
    server.stop(StopPolicy::Drain).unwrap();
}

/// The QDQ fixture with a float head after its last DequantizeLinear (`z = y W`, [1, 4]): a
/// partly quantized model.
fn qdq_with_float_head() -> ModelProto {
    let mut model = fixtures::qdq_conv_matmul();
    let g = model.graph.as_mut().unwrap();
    let w: Vec<f32> = (0..20).map(|i| (i % 7) as f32 * 0.2 - 0.6).collect();
    g.initializer.push(lalarand_onnx::tensor::f32_tensor("head.w", &[5, 4], &w));
    g.node.push(lalarand_onnx::builder::node("MatMul", "head", &["y", "head.w"], &["z"], vec![]));
    g.output =
        vec![lalarand_onnx::builder::value_info("z", lalarand_onnx::proto::tensor_proto::DataType::Float, &[1, 4])];
    model
}

/// A partly quantized model: the stages that run the model's own int8 ops have no cpu-int8
/// mode (saying so), its float stage is quantized by lalarand, and the int8 chain agrees
/// with the whole model.
#[test]
fn only_the_float_stages_of_a_quantized_model_are_offered_int8() {
    let model = qdq_with_float_head();
    let m = chain_equals_whole(model, "qdq_head", &[float("x", &[1, 3, 8, 8], 9)]);
    let refused: Vec<bool> = (0..m.stage_count()).map(|i| m.prequantized_stage(i).is_some()).collect();
    assert_eq!(refused, [true, true, false], "{:?}", m.partition.stages);
    let why = m.prequantized_stage(0).unwrap();
    assert!(why.contains("QuantizeLinear") && why.contains("fix"), "{why}");
    let samples: Vec<(Vec<usize>, Vec<f32>)> =
        synthetic_inputs(&m, 8).into_iter().map(|x| (vec![1, 3, 8, 8], x)).collect();
    let v = verify(&m, &[Mode::CpuInt8], &samples, &samples, Calibration::default().method, &ExecConfig::default())
        .unwrap();
    assert_eq!(v[0].stages_in_mode, 1, "{:?}", v[0]);
    assert!(v[0].cosine > 0.99, "{:?}", v[0]);
}

/// The token model with a second output, the predicted class (`label`, int64 [1], ArgMax of
/// the logits).
fn token_bag_with_label() -> ModelProto {
    let mut model = fixtures::token_bag();
    let g = model.graph.as_mut().unwrap();
    let attrs = vec![lalarand_onnx::builder::attr::int("axis", 1), lalarand_onnx::builder::attr::int("keepdims", 0)];
    g.node.push(lalarand_onnx::builder::node("ArgMax", "label", &["logits"], &["label"], attrs));
    g.output.push(lalarand_onnx::builder::value_info(
        "label",
        lalarand_onnx::proto::tensor_proto::DataType::Int64,
        &[1],
    ));
    model
}

/// An int64 output is served as INT64, its elements exactly those of ONNX Runtime's whole
/// model (the fp32 values beside them), and declared so in the task's output specs.
#[test]
fn an_integer_output_is_served_in_its_own_datatype() {
    let model = token_bag_with_label();
    let m = staged("token_label", model.clone());
    let server = fp32_server(&m);
    for seed in 0..3 {
        let inputs = token_inputs(seed);
        let result = submit(&server, &inputs);
        let want = whole(&model, &inputs);
        let label = result.output("label").unwrap();
        assert_eq!(label.dtype, DataType::Int64);
        let expected = want["label"].try_extract_tensor::<i64>().unwrap().1.to_vec();
        assert_eq!(label.i64s().unwrap(), expected);
        assert_eq!(label.data, expected.iter().map(|&v| v as f32).collect::<Vec<_>>());
        assert_eq!(result.output("logits").unwrap().dtype, DataType::Fp32);
    }
    server.stop(StopPolicy::Drain).unwrap();
    let layers: Vec<LayerProfile> =
        m.stage_names().iter().map(|n| LayerProfile::gpu_cpu(*n, 1_000_000, 1_000_000)).collect();
    let (system, alloc) = system_for(chain_profile(&m.name, &layers), &vec![Mode::CpuFp32; m.stage_count()], 1_000_000);
    let exec = EngineExecutor::from_models(&system, &alloc, vec![TaskModel { staged: m.clone(), int8: None }]).unwrap();
    let specs: Vec<(String, DataType)> = exec.output_specs(0).into_iter().map(|s| (s.name, s.dtype)).collect();
    assert_eq!(specs, [("logits".to_string(), DataType::Fp32), ("label".to_string(), DataType::Int64)]);
}

/// A model saved by an `onnx` newer than ONNX Runtime (IR 14 from onnx 1.23) that uses no newer
/// element type is read at the IR version ONNX Runtime loads, and served with the outputs of
/// the same model at that version. ONNX Runtime itself refuses the version above that limit and
/// loads the limit, so the constant is the runtime's own.
#[test]
fn a_newer_ir_version_is_read_as_the_one_onnx_runtime_loads() {
    use lalarand_engine::onnxruntime::ORT_MAX_IR_VERSION;
    let at_limit = fixtures::token_bag();
    let at = |v| ModelProto { ir_version: Some(v), ..at_limit.clone() };
    let cfg = ExecConfig::default();
    StageRunner::new("at the limit", Mode::CpuFp32, &encode_model(&at(ORT_MAX_IR_VERSION)), &cfg).unwrap();
    let Err(refused) = StageRunner::new("newer", Mode::CpuFp32, &encode_model(&at(ORT_MAX_IR_VERSION + 1)), &cfg)
    else {
        panic!("ONNX Runtime loads a newer IR version: raise ORT_MAX_IR_VERSION");
    };
    assert!(refused.to_string().contains("IR version"), "{refused}");

    let m = staged("newer_ir", at(ORT_MAX_IR_VERSION + 1));
    assert_eq!(m.model.ir_version, Some(ORT_MAX_IR_VERSION));
    let server = fp32_server(&m);
    let result = submit(&server, &token_inputs(3));
    let want = whole(&at(ORT_MAX_IR_VERSION), &token_inputs(3));
    let logits = result.output("logits").unwrap();
    assert_close(&want, "logits", &logits.dims, &logits.data);
    server.stop(StopPolicy::Drain).unwrap();

    // One that uses a type of the newer version is refused, naming it.
    let mut float6 = at(ORT_MAX_IR_VERSION + 1);
    let to_float6 = vec![lalarand_onnx::builder::attr::int("to", 27)];
    let cast = lalarand_onnx::builder::node("Cast", "to_float6", &["logits"], &["small"], to_float6);
    float6.graph.as_mut().unwrap().node.push(cast);
    let e = StagedModel::from_model("float6", float6, PathBuf::from("float6.onnx")).unwrap_err().to_string();
    assert!(e.contains("FLOAT6E2M3") && e.contains("to_float6") && e.contains("fix"), "{e}");
}

/// A model stamped with an opset newer than ONNX Runtime supports (28, what onnx 1.23's
/// `make_model` writes) whose operators did not change since the newest it supports is read at
/// that one and served with the outputs of the model stamped so. ONNX Runtime itself refuses
/// the opset above the limit and loads the limit, so the constant is the runtime's own.
#[test]
fn a_newer_opset_is_read_as_the_one_onnx_runtime_supports() {
    use lalarand_engine::onnxruntime::ORT_MAX_OPSET;
    use lalarand_onnx::opset_changes::LATEST_OPSET;
    use lalarand_onnx::opset_version::default_opset;
    let stamped = |mut model: ModelProto, opset| {
        model.opset_import[0].version = Some(opset);
        model
    };
    let cell = fixtures::recurrent_cell();
    let cfg = ExecConfig::default();
    StageRunner::new("at the limit", Mode::CpuFp32, &encode_model(&stamped(cell.clone(), ORT_MAX_OPSET)), &cfg)
        .unwrap();
    let Err(refused) =
        StageRunner::new("newer", Mode::CpuFp32, &encode_model(&stamped(cell.clone(), ORT_MAX_OPSET + 1)), &cfg)
    else {
        panic!("ONNX Runtime loads a newer opset: raise ORT_MAX_OPSET");
    };
    assert!(refused.to_string().contains("opset"), "{refused}");

    let m = staged("newest_opset", stamped(cell.clone(), LATEST_OPSET));
    assert_eq!(default_opset(&m.model), Some(ORT_MAX_OPSET));
    let inputs = [float("x", &[1, 8], 4), float("h", &[1, 16], 5)];
    let server = fp32_server(&m);
    let result = submit(&server, &inputs);
    let want = whole(&stamped(cell, ORT_MAX_OPSET), &inputs);
    for out in ["y", "h_new"] {
        let got = result.output(out).unwrap();
        assert_close(&want, out, &got.dims, &got.data);
    }
    server.stop(StopPolicy::Drain).unwrap();

    // The token model's Cast changed in opset 28 (onnx 1.23's table): refused, naming it.
    let e = StagedModel::from_model("cast28", stamped(fixtures::token_bag(), 28), PathBuf::from("cast28.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Cast") && e.contains("changed in opset 28") && e.contains("opset_version="), "{e}");
}
