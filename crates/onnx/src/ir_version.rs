//! The ONNX IR version a model needs, as opposed to the one its exporter wrote. The `onnx`
//! package writes its newest IR version (14 from onnx 1.23) into every model it saves, and an
//! ONNX Runtime refuses any IR version newer than it knows, even when the model uses nothing
//! that version added. Each IR version since 9 only added element types, so a model that uses
//! none of the newer ones is, unchanged, a model of the older version.

use crate::proto::tensor_proto::DataType;
use crate::proto::type_proto::Value;
use crate::proto::{AttributeProto, GraphProto, ModelProto, TypeProto};

/// Integer attributes that hold an element type (`Cast.to`, `EyeLike.dtype`,
/// `QuantizeLinear.output_dtype`, `LayerNormalization.stash_type`, ...).
const ELEMENT_TYPE_ATTRIBUTES: &[&str] = &["to", "dtype", "output_dtype", "stash_type"];

/// The oldest IR version that has element type `t` (`DataType` as i32).
fn ir_version_of_element_type(t: i32) -> i64 {
    match t {
        t if t <= DataType::Bfloat16 as i32 => 4,
        t if t <= DataType::Float8e5m2fnuz as i32 => 9,
        t if t <= DataType::Int4 as i32 => 10,
        t if t <= DataType::Float4e2m1 as i32 => 11,
        t if t <= DataType::Float8e8m0 as i32 => 12,
        t if t <= DataType::Int2 as i32 => 13,
        // FLOAT6E2M3 and FLOAT6E3M2 (IR 14), or a type newer than this crate knows (at least 14).
        _ => 14,
    }
}

/// The newest element type a model uses: the IR version that has it, and what uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewestType {
    pub ir_version: i64,
    /// e.g. `FLOAT8E4M3FN (initializer "w")`.
    pub used_by: String,
}

/// The newest element type anywhere in `model` (graph inputs and outputs, value infos,
/// initializers, attributes, subgraphs, local functions). `None`: only IR-4 types.
pub fn newest_element_type(model: &ModelProto) -> Option<NewestType> {
    let mut newest = None;
    let mut see = |t: i32, what: &dyn Fn() -> String| {
        let ir_version = ir_version_of_element_type(t);
        if ir_version > 4 && newest.as_ref().is_none_or(|n: &NewestType| ir_version > n.ir_version) {
            let name = DataType::try_from(t).map_or_else(|_| format!("element type {t}"), |d| d.as_str_name().into());
            newest = Some(NewestType { ir_version, used_by: format!("{name} ({})", what()) });
        }
    };
    if let Some(graph) = &model.graph {
        walk_graph(graph, &mut see);
    }
    for f in &model.functions {
        for n in &f.node {
            for a in &n.attribute {
                walk_attribute(a, n.name(), &mut see);
            }
        }
    }
    newest
}

type See<'a> = dyn FnMut(i32, &dyn Fn() -> String) + 'a;

fn walk_graph(g: &GraphProto, see: &mut See<'_>) {
    for (kind, infos) in [("input", &g.input), ("output", &g.output), ("value", &g.value_info)] {
        for vi in infos {
            if let Some(tp) = &vi.r#type {
                walk_type(tp, &|| format!("{kind} {:?}", vi.name()), see);
            }
        }
    }
    for t in &g.initializer {
        see(t.data_type(), &|| format!("initializer {:?}", t.name()));
    }
    for s in &g.sparse_initializer {
        if let Some(t) = &s.values {
            see(t.data_type(), &|| format!("sparse initializer {:?}", t.name()));
        }
    }
    for n in &g.node {
        for a in &n.attribute {
            walk_attribute(a, n.name(), see);
        }
    }
}

fn walk_attribute(a: &AttributeProto, node: &str, see: &mut See<'_>) {
    let what = || format!("attribute {:?} of node {node:?}", a.name());
    if ELEMENT_TYPE_ATTRIBUTES.contains(&a.name()) {
        if let Some(i) = a.i {
            see(i32::try_from(i).unwrap_or(i32::MAX), &what);
        }
    }
    for t in a.t.iter().chain(&a.tensors) {
        see(t.data_type(), &what);
    }
    for s in a.sparse_tensor.iter().chain(&a.sparse_tensors) {
        if let Some(t) = &s.values {
            see(t.data_type(), &what);
        }
    }
    for tp in a.tp.iter().chain(&a.type_protos) {
        walk_type(tp, &what, see);
    }
    for g in a.g.iter().chain(&a.graphs) {
        walk_graph(g, see);
    }
}

fn walk_type(tp: &TypeProto, what: &dyn Fn() -> String, see: &mut See<'_>) {
    match &tp.value {
        Some(Value::TensorType(t)) => see(t.elem_type(), what),
        Some(Value::SparseTensorType(t)) => see(t.elem_type(), what),
        Some(Value::SequenceType(s)) => s.elem_type.iter().for_each(|e| walk_type(e, what, see)),
        Some(Value::OptionalType(o)) => o.elem_type.iter().for_each(|e| walk_type(e, what, see)),
        Some(Value::MapType(m)) => {
            see(m.key_type(), what);
            m.value_type.iter().for_each(|e| walk_type(e, what, see));
        }
        Some(Value::OpaqueType(_)) | None => {}
    }
}

/// Lowers `model`'s IR version to `max` when it is newer and uses no element type newer than
/// `max` has: `Ok(Some(old))` when lowered, `Ok(None)` when already at most `max`, and the
/// element type that needs the newer version (and what uses it) otherwise.
pub fn lower_ir_version(model: &mut ModelProto, max: i64) -> Result<Option<i64>, NewestType> {
    let version = model.ir_version();
    if version <= max {
        return Ok(None);
    }
    match newest_element_type(model) {
        Some(newest) if newest.ir_version > max => Err(newest),
        _ => {
            model.ir_version = Some(max);
            Ok(Some(version))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{self, GraphBuilder};

    fn relu_model(ir_version: i64) -> ModelProto {
        let mut g = GraphBuilder::new("relu");
        g.input("x", DataType::Float, &[1, 4]);
        g.node("Relu", "relu", &["x"], &["y"], vec![]);
        g.output("y", DataType::Float, &[1, 4]);
        let mut model = g.finish();
        model.ir_version = Some(ir_version);
        model
    }

    #[test]
    fn a_newer_ir_version_without_newer_types_is_lowered() {
        let mut model = relu_model(14);
        assert_eq!(newest_element_type(&model), None);
        assert_eq!(lower_ir_version(&mut model, 13), Ok(Some(14)));
        assert_eq!(model.ir_version, Some(13));
        // At or below the limit, nothing changes.
        assert_eq!(lower_ir_version(&mut model, 13), Ok(None));
        let mut old = relu_model(8);
        assert_eq!(lower_ir_version(&mut old, 13), Ok(None));
        assert_eq!(old.ir_version, Some(8));
    }

    #[test]
    fn a_type_the_older_version_lacks_is_named_with_what_uses_it() {
        let mut model = relu_model(14);
        let cast = builder::node("Cast", "to_float6", &["y"], &["z"], vec![builder::attr::int("to", 27)]);
        model.graph.as_mut().unwrap().node.push(cast);
        let newest = lower_ir_version(&mut model, 13).unwrap_err();
        assert_eq!(newest.ir_version, 14);
        assert!(newest.used_by.contains("FLOAT6") && newest.used_by.contains("to_float6"), "{newest:?}");
        assert_eq!(model.ir_version, Some(14));

        // An fp8 initializer needs IR 9, so the model can go to 13 but not to 8.
        let mut fp8 = relu_model(14);
        let mut w = crate::tensor::f32_tensor("w", &[1], &[0.0]);
        w.data_type = Some(DataType::Float8e4m3fn as i32);
        fp8.graph.as_mut().unwrap().initializer.push(w);
        let newest = newest_element_type(&fp8).unwrap();
        assert_eq!((newest.ir_version, newest.used_by.as_str()), (9, "FLOAT8E4M3FN (initializer \"w\")"));
        assert_eq!(lower_ir_version(&mut fp8.clone(), 13), Ok(Some(14)));
        assert_eq!(lower_ir_version(&mut fp8, 8).unwrap_err().ir_version, 9);
    }

    #[test]
    fn types_inside_subgraphs_and_nested_types_count() {
        let mut model = relu_model(14);
        let mut inner = relu_model(14).graph.unwrap();
        inner.output[0] = builder::value_info("y", DataType::Int2, &[1, 4]);
        let branch = AttributeProto { name: Some("then_branch".into()), g: Some(inner), ..Default::default() };
        let if_node = builder::node("If", "branch", &["c"], &["o"], vec![branch]);
        model.graph.as_mut().unwrap().node.push(if_node);
        assert_eq!(newest_element_type(&model).unwrap().ir_version, 13);
    }
}
