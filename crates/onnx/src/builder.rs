//! A small builder for ONNX graphs (opset 17), used by the zoo and the quantizer.

use crate::proto::attribute_proto::AttributeType;
use crate::proto::tensor_proto::DataType;
use crate::proto::tensor_shape_proto::{dimension, Dimension};
use crate::proto::type_proto::{self, Tensor};
use crate::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// The default-domain opset every model written here uses.
pub const OPSET: i64 = 17;
/// IR version 8 is the one ONNX 1.12 pairs with opset 17.
pub const IR_VERSION: i64 = 8;

/// Builds a [`GraphProto`] node by node; [`GraphBuilder::finish`] wraps it in a model.
#[derive(Debug, Clone, Default)]
pub struct GraphBuilder {
    pub graph: GraphProto,
}

impl GraphBuilder {
    pub fn new(name: &str) -> Self {
        GraphBuilder { graph: GraphProto { name: Some(name.to_string()), ..Default::default() } }
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem_type: DataType, shape: &[i64]) {
        self.graph.input.push(value_info(name, elem_type, shape));
    }

    /// Declares a graph output.
    pub fn output(&mut self, name: &str, elem_type: DataType, shape: &[i64]) {
        self.graph.output.push(value_info(name, elem_type, shape));
    }

    /// Records the type and shape of an intermediate value.
    pub fn value_info(&mut self, name: &str, elem_type: DataType, shape: &[i64]) {
        self.graph.value_info.push(value_info(name, elem_type, shape));
    }

    /// Adds a constant tensor and returns its name.
    pub fn initializer(&mut self, tensor: TensorProto) -> String {
        let name = tensor.name().to_string();
        self.graph.initializer.push(tensor);
        name
    }

    /// Adds a float32 constant and returns its name.
    pub fn f32_initializer(&mut self, name: &str, dims: &[i64], data: &[f32]) -> String {
        self.initializer(crate::tensor::f32_tensor(name, dims, data))
    }

    /// Adds a node of the default domain.
    pub fn node(&mut self, op_type: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) {
        self.graph.node.push(node(op_type, name, inputs, outputs, attrs));
    }

    /// Adds a one-output node whose output is named after it (`{name}.out`) and returns that name.
    pub fn op(&mut self, op_type: &str, name: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = format!("{name}.out");
        self.node(op_type, name, inputs, &[&out], attrs);
        out
    }

    /// The finished model: opset 17, IR version 8.
    pub fn finish(self) -> ModelProto {
        model(self.graph)
    }
}

/// Wraps a graph in a model with lalarand's producer fields and opset 17.
pub fn model(graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("lalarand".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
        graph: Some(graph),
        ..Default::default()
    }
}

/// The attributes an op that lalarand writes in place of another accepts, where ONNX Runtime
/// refuses any other (a rewrite that copies the original op's attributes must drop the rest).
fn accepted_attributes(op_type: &str) -> Option<&'static [&'static str]> {
    match op_type {
        // com.microsoft.NhwcMaxPool: no `storage_order` (it has no Indices output).
        "NhwcMaxPool" => Some(&["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides"]),
        _ => None,
    }
}

/// A node of the default domain. For an op with a fixed attribute set (see
/// `accepted_attributes`), attributes it does not accept are left out, so that a rewrite that
/// passes on the attributes of the op it replaces still writes a valid node.
pub fn node(op_type: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    let attrs = match accepted_attributes(op_type) {
        Some(ok) => attrs.into_iter().filter(|a| ok.contains(&a.name())).collect(),
        None => attrs,
    };
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: Some(name.to_string()),
        op_type: Some(op_type.to_string()),
        domain: Some(String::new()),
        attribute: attrs,
        ..Default::default()
    }
}

/// A tensor value info with a fixed shape.
pub fn value_info(name: &str, elem_type: DataType, shape: &[i64]) -> ValueInfoProto {
    let dim = shape.iter().map(|&d| Dimension { value: Some(dimension::Value::DimValue(d)), ..Default::default() });
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(Tensor {
                elem_type: Some(elem_type as i32),
                shape: Some(TensorShapeProto { dim: dim.collect() }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Node attributes.
pub mod attr {
    use super::*;

    fn named(name: &str, ty: AttributeType) -> AttributeProto {
        AttributeProto { name: Some(name.to_string()), r#type: Some(ty as i32), ..Default::default() }
    }

    pub fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto { i: Some(v), ..named(name, AttributeType::Int) }
    }

    pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto { ints: v.to_vec(), ..named(name, AttributeType::Ints) }
    }

    pub fn float(name: &str, v: f32) -> AttributeProto {
        AttributeProto { f: Some(v), ..named(name, AttributeType::Float) }
    }

    pub fn floats(name: &str, v: &[f32]) -> AttributeProto {
        AttributeProto { floats: v.to_vec(), ..named(name, AttributeType::Floats) }
    }

    pub fn string(name: &str, v: &str) -> AttributeProto {
        AttributeProto { s: Some(v.as_bytes().to_vec()), ..named(name, AttributeType::String) }
    }

    /// A subgraph (an If's branch, a Loop's body).
    pub fn graph(name: &str, g: GraphProto) -> AttributeProto {
        AttributeProto { g: Some(g), ..named(name, AttributeType::Graph) }
    }

    pub fn tensor(name: &str, v: TensorProto) -> AttributeProto {
        AttributeProto { t: Some(v), ..named(name, AttributeType::Tensor) }
    }
}

/// Looks up an attribute of a node by name.
pub fn find_attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

/// The fixed shape of a value info, when every dimension is a number.
pub fn shape_of(info: &ValueInfoProto) -> Option<Vec<i64>> {
    let Some(type_proto::Value::TensorType(t)) = info.r#type.as_ref()?.value.as_ref() else { return None };
    t.shape
        .as_ref()?
        .dim
        .iter()
        .map(|d| match d.value {
            Some(dimension::Value::DimValue(v)) => Some(v),
            _ => None,
        })
        .collect()
}

/// The element type of a value info.
pub fn elem_type_of(info: &ValueInfoProto) -> Option<i32> {
    match info.r#type.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => t.elem_type,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_op_keeps_only_the_attributes_it_accepts() {
        let attrs =
            vec![attr::ints("kernel_shape", &[3, 3]), attr::int("storage_order", 0), attr::ints("strides", &[2, 2])];
        let n = node("NhwcMaxPool", "pool", &["x"], &["y"], attrs.clone());
        let names: Vec<&str> = n.attribute.iter().map(|a| a.name()).collect();
        assert_eq!(names, ["kernel_shape", "strides"]);
        assert_eq!(node("MaxPool", "pool", &["x"], &["y"], attrs).attribute.len(), 3);
    }

    #[test]
    fn builder_writes_opset_17_and_named_nodes() {
        let mut b = GraphBuilder::new("g");
        b.input("x", DataType::Float, &[1, 3, 8, 8]);
        let w = b.f32_initializer("conv.weight", &[4, 3, 1, 1], &[0.5; 12]);
        let y = b.op("Conv", "conv", &["x", &w], vec![attr::ints("strides", &[1, 1]), attr::int("group", 1)]);
        b.output(&y, DataType::Float, &[1, 4, 8, 8]);
        let m = b.finish();
        assert_eq!(m.opset_import[0].version, Some(17));
        assert_eq!(m.ir_version, Some(IR_VERSION));
        let g = m.graph.unwrap();
        assert_eq!(g.node[0].name(), "conv");
        assert_eq!(g.node[0].output, vec!["conv.out".to_string()]);
        assert_eq!(find_attr(&g.node[0], "group").unwrap().i, Some(1));
        assert_eq!(find_attr(&g.node[0], "strides").unwrap().ints, vec![1, 1]);
        assert_eq!(shape_of(&g.output[0]), Some(vec![1, 4, 8, 8]));
        assert_eq!(elem_type_of(&g.input[0]), Some(DataType::Float as i32));
    }
}
