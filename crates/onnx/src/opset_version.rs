//! The opset a model needs, as opposed to the one its exporter stamped. The `onnx` package stamps
//! a model it builds with its newest opset (28 from onnx 1.23) unless told otherwise, and an
//! ONNX Runtime refuses opsets newer than it supports, even when none of the model's operators
//! changed since one it does: a model stamped `N` means each operator's newest schema version
//! up to `N`, which is its version at `M < N` wherever no opset in `(M, N]` changed it.

use crate::opset_changes::{CHANGED_IN, LATEST_OPSET};
use crate::proto::{GraphProto, ModelProto};

/// An operator of the model that changed after the opset it would be lowered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedOp {
    pub op_type: String,
    /// The node's name.
    pub node: String,
    /// The opset that changed it.
    pub opset: i64,
}

/// Why a model's default-domain opset cannot be lowered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotLowered {
    /// An operator of the model changed in between.
    Changed(ChangedOp),
    /// The model's opset is newer than the table lalarand was built with.
    Unknown { opset: i64 },
}

/// The model's default-domain opset (`ai.onnx`, written `""`), if it imports it.
pub fn default_opset(model: &ModelProto) -> Option<i64> {
    model.opset_import.iter().find(|o| matches!(o.domain(), "" | "ai.onnx")).and_then(|o| o.version)
}

/// Lowers `model`'s default-domain opset to `max` where it is newer and no operator the model
/// uses (subgraphs included) changed in an opset in between: `Ok(Some(old))` when lowered,
/// `Ok(None)` when already at most `max` (or without the default domain).
pub fn lower_opset(model: &mut ModelProto, max: i64) -> Result<Option<i64>, NotLowered> {
    let Some(version) = default_opset(model).filter(|&v| v > max) else { return Ok(None) };
    if version > LATEST_OPSET {
        return Err(NotLowered::Unknown { opset: version });
    }
    let changed: Vec<(i64, &str)> = CHANGED_IN
        .iter()
        .filter(|(v, _)| (max + 1..=version).contains(v))
        .flat_map(|(v, ops)| ops.iter().map(move |op| (*v, *op)))
        .collect();
    if let Some(graph) = &model.graph {
        if let Some(op) = first_changed(graph, &changed) {
            return Err(NotLowered::Changed(op));
        }
    }
    for o in model.opset_import.iter_mut().filter(|o| matches!(o.domain(), "" | "ai.onnx")) {
        o.version = Some(max);
    }
    Ok(Some(version))
}

fn first_changed(graph: &GraphProto, changed: &[(i64, &str)]) -> Option<ChangedOp> {
    for n in &graph.node {
        if matches!(n.domain(), "" | "ai.onnx") {
            if let Some((opset, _)) = changed.iter().find(|(_, op)| *op == n.op_type()) {
                return Some(ChangedOp { op_type: n.op_type().into(), node: n.name().into(), opset: *opset });
            }
        }
        for a in &n.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                if let Some(op) = first_changed(g, changed) {
                    return Some(op);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{self, GraphBuilder};
    use crate::proto::tensor_proto::DataType;
    use crate::proto::AttributeProto;

    fn model(ops: &[&str], opset: i64) -> ModelProto {
        let mut g = GraphBuilder::new("ops");
        g.input("x", DataType::Float, &[1, 4]);
        let mut x = "x".to_string();
        for (i, op) in ops.iter().enumerate() {
            x = g.op(op, &format!("{}_{i}", op.to_lowercase()), &[&x], vec![]);
        }
        g.output(&x, DataType::Float, &[1, 4]);
        let mut m = g.finish();
        m.opset_import[0].version = Some(opset);
        m
    }

    #[test]
    fn a_newer_stamp_over_unchanged_operators_is_lowered() {
        let mut m = model(&["Relu", "Sigmoid"], 28);
        assert_eq!(lower_opset(&mut m, 26), Ok(Some(28)));
        assert_eq!(default_opset(&m), Some(26));
        assert_eq!(lower_opset(&mut m, 26), Ok(None), "at the limit, nothing to do");
        let mut old = model(&["Relu"], 17);
        assert_eq!(lower_opset(&mut old, 26), Ok(None));
        assert_eq!(default_opset(&old), Some(17));
    }

    #[test]
    fn an_operator_changed_in_between_is_named_and_nothing_changes() {
        // Cast changed in opset 28 (onnx 1.23's table).
        let mut m = model(&["Relu", "Cast"], 28);
        let e = lower_opset(&mut m, 26).unwrap_err();
        assert_eq!(e, NotLowered::Changed(ChangedOp { op_type: "Cast".into(), node: "cast_1".into(), opset: 28 }));
        assert_eq!(default_opset(&m), Some(28));
        // Range changed in 27: not lowered to 26, but 27 to 28 is fine for it.
        let mut range = model(&["Range"], 28);
        assert!(matches!(lower_opset(&mut range, 26), Err(NotLowered::Changed(ChangedOp { opset: 27, .. }))));
        assert_eq!(lower_opset(&mut range, 27), Ok(Some(28)));
    }

    #[test]
    fn subgraphs_count_and_unknown_opsets_are_refused() {
        let mut m = model(&["Relu"], 28);
        let inner = model(&["Mod"], 28).graph.unwrap();
        let branch = AttributeProto { name: Some("then_branch".into()), g: Some(inner), ..Default::default() };
        m.graph.as_mut().unwrap().node.push(builder::node("If", "branch", &["c"], &["o"], vec![branch]));
        assert!(
            matches!(lower_opset(&mut m, 26), Err(NotLowered::Changed(ChangedOp { ref op_type, .. })) if op_type == "Mod")
        );
        let mut future = model(&["Relu"], LATEST_OPSET + 1);
        assert_eq!(lower_opset(&mut future, 26), Err(NotLowered::Unknown { opset: LATEST_OPSET + 1 }));
    }

    #[test]
    fn the_table_is_ordered_and_has_every_opset() {
        let versions: Vec<i64> = CHANGED_IN.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, (14..=LATEST_OPSET).collect::<Vec<_>>());
        assert!(CHANGED_IN.iter().all(|(_, ops)| ops.windows(2).all(|w| w[0] < w[1])));
    }
}
