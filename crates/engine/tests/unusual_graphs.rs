//! Graphs that cannot be cut finely (control flow, sequence values) and bad input: each either
//! runs as stages that compute what the whole model computes, or is a clear error naming the
//! file, node or flag and the fix; never a panic.

use lalarand_engine::stage::{ExecConfig, StageRunner};
use lalarand_engine::tensor::{f32_data, f32_value, max_abs_diff};
use lalarand_engine::{Pipeline, StagedModel, Tensors};
use lalarand_model::Mode;
use lalarand_onnx::builder::{attr, value_info, GraphBuilder};
use lalarand_onnx::proto::attribute_proto::AttributeType;
use lalarand_onnx::proto::tensor_proto::DataType;
use lalarand_onnx::proto::{AttributeProto, GraphProto, TensorProto};
use lalarand_onnx::{encode_model, ModelProto};
use std::path::PathBuf;

fn graph_attr(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Graph as i32),
        g: Some(g),
        ..Default::default()
    }
}

/// A branch that reads `r` from the enclosing graph and scales it by `k`.
fn branch(name: &str, k: f32) -> GraphProto {
    let mut b = GraphBuilder::new(name);
    b.f32_initializer(&format!("{name}_k"), &[1], &[k]);
    b.node("Mul", &format!("{name}_mul"), &["r", &format!("{name}_k")], &[&format!("{name}_out")], vec![]);
    b.graph.output.push(value_info(&format!("{name}_out"), DataType::Float, &[1, 4, 3, 3]));
    b.graph
}

fn conv_relu(b: &mut GraphBuilder, x: &str, name: &str) -> String {
    let w: Vec<f32> = (0..4 * 4 * 9).map(|i| ((i * 37 % 17) as f32 - 8.0) / 20.0).collect();
    let w = b.f32_initializer(&format!("{name}_w"), &[4, 4, 3, 3], &w);
    let c = b.op("Conv", &format!("{name}_conv"), &[x, &w], vec![attr::ints("pads", &[1, 1, 1, 1])]);
    b.op("Relu", &format!("{name}_relu"), &[&c], vec![])
}

fn if_model() -> ModelProto {
    let mut b = GraphBuilder::new("branchy");
    b.input("x", DataType::Float, &[1, 4, 3, 3]);
    let c = conv_relu(&mut b, "x", "a");
    b.node("Identity", "r", &[&c], &["r"], vec![]);
    b.initializer(TensorProto {
        name: Some("cond".into()),
        data_type: Some(DataType::Bool as i32),
        raw_data: Some(vec![1]),
        ..Default::default()
    });
    b.node(
        "If",
        "choose",
        &["cond"],
        &["chosen"],
        vec![graph_attr("then_branch", branch("then", 2.0)), graph_attr("else_branch", branch("else", -1.0))],
    );
    let y = conv_relu(&mut b, "chosen", "b");
    b.output(&y, DataType::Float, &[1, 4, 3, 3]);
    b.finish()
}

fn sequence_model() -> ModelProto {
    let mut b = GraphBuilder::new("seq");
    b.input("x", DataType::Float, &[1, 4, 3, 3]);
    let c = conv_relu(&mut b, "x", "a");
    b.node("SplitToSequence", "to_seq", &[&c], &["s"], vec![attr::int("axis", 1)]);
    b.node("ConcatFromSequence", "from_seq", &["s"], &["joined"], vec![attr::int("axis", 1)]);
    let y = conv_relu(&mut b, "joined", "b");
    b.output(&y, DataType::Float, &[1, 4, 3, 3]);
    b.finish()
}

/// The chained fp32 stages equal the whole model.
fn chain_equals_whole(model: ModelProto, name: &str) -> StagedModel {
    let staged = StagedModel::from_model(name, model.clone(), PathBuf::from(format!("{name}.onnx"))).unwrap();
    let dims = staged.input_shape(1);
    let input = lalarand_engine::profile::seeded_inputs(1, dims.iter().product(), 5).remove(0);
    let cfg = ExecConfig::default();
    let mut whole = StageRunner::new("whole", Mode::CpuFp32, &encode_model(&model), &cfg).unwrap();
    let mut expected = Tensors::new();
    expected.insert("x".into(), f32_value(&dims, input.clone()).unwrap());
    whole.run(&mut expected).unwrap();
    let p = Pipeline::new(&staged, &vec![Mode::CpuFp32; staged.stage_count()], None, &cfg).unwrap();
    let got = p.run_all(&dims, input).unwrap();
    let out = &staged.output_name;
    let (_, w) = f32_data(&expected[out], out).unwrap();
    let (_, g) = f32_data(&got[out], out).unwrap();
    let (diff, scale) = max_abs_diff(w, g);
    assert!(scale > 0.0 && diff <= 1e-4 * scale, "{name}: {diff} vs {scale}");
    staged
}

/// An IR-3 export lists its weights as graph inputs too (early PyTorch): they are constants, as
/// ONNX Runtime takes them, and the model stages like any other.
#[test]
fn weights_listed_as_inputs_are_constants() {
    let mut b = GraphBuilder::new("ir3");
    b.input("x", DataType::Float, &[1, 4, 3, 3]);
    let c = conv_relu(&mut b, "x", "a");
    let y = conv_relu(&mut b, &c, "b");
    b.output(&y, DataType::Float, &[1, 4, 3, 3]);
    let mut model = b.finish();
    let graph = model.graph.as_mut().unwrap();
    for w in ["a_w", "b_w"] {
        graph.input.push(value_info(w, DataType::Float, &[4, 4, 3, 3]));
    }
    model.ir_version = Some(3);
    let staged = chain_equals_whole(model, "ir3");
    assert_eq!(staged.partition.graph_inputs, ["x"]);
    assert_eq!(staged.stage_count(), 2, "{:?}", staged.stage_names());
}

#[test]
fn control_flow_runs_whole_as_one_stage() {
    let staged = chain_equals_whole(if_model(), "branchy");
    let s = staged.partition.stages.iter().find(|s| s.name == "choose").unwrap();
    // The branches read `r` from the enclosing graph: it is the stage's input.
    assert_eq!(s.inputs, ["r"]);
    assert!(staged.partition.notes.iter().any(|n| n.contains("choose") && n.contains("control flow")));
}

#[test]
fn sequence_values_stay_inside_a_stage() {
    let staged = chain_equals_whole(sequence_model(), "seq");
    let s = staged.partition.stages.iter().find(|s| s.name == "to_seq").unwrap();
    assert_eq!(s.nodes.len(), 2, "SplitToSequence and ConcatFromSequence together");
}

#[test]
fn a_truncated_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = encode_model(&if_model());
    let p = dir.path().join("cut.onnx");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = StagedModel::load(&p).unwrap_err().to_string();
    assert!(e.contains("cut.onnx") && e.contains("not an ONNX model"), "{e}");
}

#[test]
fn input_shape_errors_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.onnx");
    std::fs::write(&p, encode_model(&sequence_model())).unwrap();
    let e = StagedModel::load_with(&p, &["images=1,4,3,3".parse().unwrap()]).unwrap_err().to_string();
    assert!(e.contains("m.onnx") && e.contains("--input-shape images=1,4,3,3") && e.contains("[\"x\"]"), "{e}");
    let e = StagedModel::load_with(&p, &["x=1,4,3".parse().unwrap()]).unwrap_err().to_string();
    assert!(e.contains("--input-shape x=1,4,3") && e.contains("rank 4"), "{e}");
}

#[test]
fn an_op_onnx_runtime_cannot_run_names_the_node() {
    let mut b = GraphBuilder::new("odd");
    b.input("x", DataType::Float, &[1, 4, 3, 3]);
    let c = conv_relu(&mut b, "x", "a");
    b.node("Relu", "bad", &[&c], &["y"], vec![]);
    let mut m = b.finish();
    // An op of a domain no runtime knows.
    let g = m.graph.as_mut().unwrap();
    g.node.last_mut().unwrap().op_type = Some("MyCustomOp".into());
    g.node.last_mut().unwrap().domain = Some("com.example".into());
    g.output.push(value_info("y", DataType::Float, &[1, 4, 3, 3]));
    let e = StagedModel::from_model("odd", m, "odd.onnx".into()).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(e.contains("odd.onnx") && e.contains("MyCustomOp") && e.contains("fix:"), "{e}");
}

#[test]
fn outputs_not_reachable_from_the_inputs_are_named() {
    let mut b = GraphBuilder::new("cut");
    b.input("x", DataType::Float, &[1, 4, 3, 3]);
    let c = conv_relu(&mut b, "x", "a");
    b.node("Add", "join", &[&c, "ghost"], &["y"], vec![]);
    b.output("y", DataType::Float, &[1, 4, 3, 3]);
    let e = StagedModel::from_model("cut", b.finish(), "cut.onnx".into()).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(e.contains("cut.onnx") && e.contains("`join`") && e.contains("ghost") && e.contains("fix:"), "{e}");
}

/// A detector-like graph: the input, pooled by 2 and upsampled back, is concatenated with
/// itself. Any height the pooling does not divide gives a Concat of mismatched sizes.
fn pooled_concat_model() -> ModelProto {
    let mut b = GraphBuilder::new("strided");
    let dim = |p: &str| lalarand_onnx::proto::tensor_shape_proto::Dimension {
        value: Some(lalarand_onnx::proto::tensor_shape_proto::dimension::Value::DimParam(p.into())),
        ..Default::default()
    };
    b.input("x", DataType::Float, &[1, 1, 8, 8]);
    let pooled =
        b.op("MaxPool", "down", &["x"], vec![attr::ints("kernel_shape", &[2, 2]), attr::ints("strides", &[2, 2])]);
    let scales = b.f32_initializer("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    let up = b.op("Resize", "up", &[&pooled, "", &scales], vec![attr::string("mode", "nearest")]);
    b.node("Concat", "join", &["x", &up], &["y"], vec![attr::int("axis", 1)]);
    b.output("y", DataType::Float, &[1, 2, 8, 8]);
    let mut m = b.finish();
    let g = m.graph.as_mut().unwrap();
    for info in g.input.iter_mut().chain(g.output.iter_mut()) {
        let shape = info.r#type.as_mut().unwrap().value.as_mut().unwrap();
        if let lalarand_onnx::proto::type_proto::Value::TensorType(t) = shape {
            let dims = &mut t.shape.as_mut().unwrap().dim;
            dims[2] = dim("height");
            dims[3] = dim("width");
        }
    }
    m
}

/// `--input-shape x=1,1,9,8` on that graph: the error names the stride and sizes that work, not
/// "export it with standard ONNX ops".
#[test]
fn a_size_the_strides_do_not_divide_is_named_with_sizes_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("strided.onnx");
    std::fs::write(&p, encode_model(&pooled_concat_model())).unwrap();
    StagedModel::load_with(&p, &["x=1,1,8,8".parse().unwrap()]).unwrap();
    let e = StagedModel::load_with(&p, &["x=1,1,9,8".parse().unwrap()]).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(!e.contains("standard ONNX ops"), "{e}");
    assert!(e.contains("x=1,1,9,8") && e.contains("stride 2") && e.contains("8 or 10"), "{e}");
}
