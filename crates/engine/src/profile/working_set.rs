//! What each stage of a model touches in a run (weights and boundary tensors): it sizes the
//! cache eviction.

use crate::staged::StagedModel;
use std::collections::BTreeSet;

/// Bytes every stage touches in a run: the initializers its nodes read and its input and
/// output tensors (fp32 sizes; an int8 stage touches less).
pub fn stage_working_sets(staged: &StagedModel) -> Vec<usize> {
    let graph = staged.model.graph.as_ref().expect("a staged model has a graph");
    let init_bytes: std::collections::HashMap<&str, usize> = graph
        .initializer
        .iter()
        .map(|t| (t.name(), lalarand_onnx::tensor::element_count(&t.dims) as usize * elem_size(t.data_type())))
        .collect();
    staged
        .partition
        .stages
        .iter()
        .map(|s| {
            let mut seen = BTreeSet::new();
            let weights: usize = s
                .nodes
                .iter()
                .flat_map(|&n| graph.node[n].input.iter())
                .filter(|t| seen.insert(t.as_str()))
                .filter_map(|t| init_bytes.get(t.as_str()))
                .sum();
            let tensors: usize = s
                .inputs
                .iter()
                .chain(&s.outputs)
                .filter_map(|t| staged.types.get(t))
                .map(|ti| {
                    ti.dims.iter().map(|d| d.unwrap_or(1).max(0) as usize).product::<usize>() * elem_size(ti.elem_type)
                })
                .sum();
            weights + tensors
        })
        .collect()
}

/// Bytes per element of an ONNX element type (4 where unknown).
fn elem_size(elem_type: i32) -> usize {
    match elem_type {
        2 | 3 | 9 => 1,
        5 | 4 | 10 | 16 => 2,
        7 | 11 | 13 => 8,
        _ => 4,
    }
}
