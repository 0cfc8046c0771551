//! How coarse stages are: the layer stages of [`partition`](crate::partition), merged.
//!
//! Every stage run pays a fixed cost (a session run, and the layout changes ONNX Runtime makes
//! at a session's edges that a whole model makes once), which the analysis pays again as
//! WCET. Merging adjacent stages removes that cost where a stage is short, at the price of
//! fewer cut points for the allocator and longer non-preemptive stages, which block
//! higher-priority work longer. [`Granularity`] says which trade-off a profile takes:
//!
//! - `layer`: the partition's stages as they are (a conv with its norm and activation);
//! - `block`: layer stages merged between the points where one tensor carries everything
//!   forward (between residual blocks, inverted-residual blocks, fire modules) — [`block_groups`];
//! - `auto`: merged where measuring shows a cut costs much (the engine measures and chooses,
//!   see `lalarand_engine::granularity`; [`merged_stage`] and [`merge`] build its candidates).
//!
//! A grouping is a list of group sizes over the layer stages, in order (`[1, 3, 2]`: layer
//! stage 0 alone, 1-3 together, 4-5 together); [`merge`] applies it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::partition::{Partition, Stage};
use crate::OnnxError;

/// See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Granularity {
    Layer,
    Block,
    #[default]
    Auto,
}

impl Granularity {
    pub const ALL: [Granularity; 3] = [Granularity::Layer, Granularity::Block, Granularity::Auto];

    pub fn name(self) -> &'static str {
        match self {
            Granularity::Layer => "layer",
            Granularity::Block => "block",
            Granularity::Auto => "auto",
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Granularity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Granularity::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| format!("unknown granularity `{s}`; expected one of: layer, block, auto"))
    }
}

/// Checks that `sizes` groups all `stages` layer stages: positive sizes summing to the count.
pub fn check_groups(sizes: &[usize], stages: usize) -> Result<(), String> {
    if sizes.contains(&0) {
        return Err("a stage group of size 0".into());
    }
    let total: usize = sizes.iter().sum();
    if total != stages {
        return Err(format!("the stage groups cover {total} layer stages; the model has {stages}"));
    }
    Ok(())
}

/// The partition with consecutive stages merged: group `g` takes the next `sizes[g]` stages.
/// A merged stage reads what its members read from outside it and writes what a later stage
/// (or the graph output) reads; it is named after its member of largest `weight` (its main
/// node: the caller passes measured times, or parameter counts), made unique as the partition
/// names are.
pub fn merge(partition: &Partition, sizes: &[usize], weight: &[f64]) -> Result<Partition, OnnxError> {
    let n = partition.stages.len();
    check_groups(sizes, n).map_err(|e| OnnxError::graph("(stage groups)", e))?;
    if weight.len() != n {
        return Err(OnnxError::graph("(stage groups)", format!("{} weights for {n} stages", weight.len())));
    }
    let mut stages = Vec::with_capacity(sizes.len());
    let mut first = 0;
    for &size in sizes {
        let range = first..first + size;
        let main = range.clone().max_by(|&a, &b| weight[a].total_cmp(&weight[b]).then(b.cmp(&a))).expect("size > 0");
        let mut stage = merged_stage(partition, range);
        stage.name = partition.stages[main].name.clone();
        stages.push(stage);
        first += size;
    }
    let unique = crate::partition::unique_names(stages.iter().map(|s| s.name.clone()).collect());
    for (stage, name) in stages.iter_mut().zip(unique) {
        stage.name = name;
    }
    Ok(Partition { stages, ..partition.clone() })
}

/// Stages `range` of `partition` as one stage (named after the first): it reads what its
/// members read from outside the range and writes what a stage after it (or the graph output)
/// reads.
pub fn merged_stage(partition: &Partition, range: Range<usize>) -> Stage {
    let members = &partition.stages[range.clone()];
    let produced: HashSet<&str> = members.iter().flat_map(|s| s.outputs.iter().map(String::as_str)).collect();
    let mut inputs: Vec<String> = Vec::new();
    for t in members.iter().flat_map(|s| &s.inputs) {
        if !produced.contains(t.as_str()) && !inputs.contains(t) {
            inputs.push(t.clone());
        }
    }
    let read_after: HashSet<&str> = partition.stages[range.end..]
        .iter()
        .flat_map(|s| s.inputs.iter().map(String::as_str))
        .chain(partition.graph_outputs.iter().map(String::as_str))
        .collect();
    let mut outputs: Vec<String> = Vec::new();
    for t in members.iter().flat_map(|s| &s.outputs) {
        if read_after.contains(t.as_str()) && !outputs.contains(t) {
            outputs.push(t.clone());
        }
    }
    Stage {
        name: members[0].name.clone(),
        nodes: members.iter().flat_map(|s| s.nodes.iter().copied()).collect(),
        inputs,
        outputs,
    }
}

/// Whether one tensor alone is live after each stage (the last stage: always): the tensors
/// made so far (and the graph input) that a later stage reads or the graph returns.
pub fn single_live_tensor_after(partition: &Partition) -> Vec<bool> {
    let n = partition.stages.len();
    // The last stage that reads each tensor (graph outputs live to the end).
    let mut last_read: HashMap<&str, usize> = HashMap::new();
    for (s, st) in partition.stages.iter().enumerate() {
        for t in &st.inputs {
            last_read.insert(t.as_str(), s);
        }
    }
    for t in &partition.graph_outputs {
        last_read.insert(t.as_str(), n);
    }
    let mut live: HashSet<&str> = partition.graph_inputs.iter().map(String::as_str).collect();
    let mut single = Vec::with_capacity(n);
    for (s, st) in partition.stages.iter().enumerate() {
        live.extend(st.outputs.iter().map(String::as_str));
        live.retain(|t| last_read.get(t).is_some_and(|&r| r > s));
        single.push(live.len() <= 1 || s + 1 == n);
    }
    single
}

/// Group sizes of the `block` granularity: a group ends after every stage where one tensor
/// alone is live ([`single_live_tensor_after`]).
pub fn block_groups(partition: &Partition) -> Vec<usize> {
    cut_where(&single_live_tensor_after(partition))
}

/// Group sizes from per-stage "a group may end here" flags (the last is taken as true).
fn cut_where(ends: &[bool]) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut size = 0;
    for (s, &end) in ends.iter().enumerate() {
        size += 1;
        if end || s + 1 == ends.len() {
            sizes.push(size);
            size = 0;
        }
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// a -> s0 -> t0 -> s1 -> t1 -> s2 (reads t0 and t1: a skip) -> t2 -> s3 -> y
    fn skip_chain() -> Partition {
        let st = |name: &str, nodes: Vec<usize>, i: &[&str], o: &[&str]| Stage {
            name: name.into(),
            nodes,
            inputs: i.iter().map(|s| s.to_string()).collect(),
            outputs: o.iter().map(|s| s.to_string()).collect(),
        };
        Partition {
            stages: vec![
                st("conv1", vec![0, 1], &["a"], &["t0"]),
                st("block.conv", vec![2], &["t0"], &["t1"]),
                st("block.add", vec![3], &["t0", "t1"], &["t2"]),
                st("fc", vec![4, 5], &["t2"], &["y"]),
            ],
            graph_inputs: vec!["a".into()],
            graph_outputs: vec!["y".into()],
            notes: vec![],
        }
    }

    #[test]
    fn merging_keeps_only_what_crosses_the_group() {
        let p = skip_chain();
        let m = merge(&p, &[1, 2, 1], &[1.0, 5.0, 1.0, 1.0]).unwrap();
        assert_eq!(m.stages.len(), 3);
        let block = &m.stages[1];
        assert_eq!(block.name, "block.conv", "named after its heaviest member");
        assert_eq!(block.nodes, [2, 3]);
        assert_eq!(block.inputs, ["t0"], "t1 never leaves the group");
        assert_eq!(block.outputs, ["t2"]);
        let all = merge(&p, &[4], &[1.0; 4]).unwrap();
        assert_eq!((all.stages[0].inputs.clone(), all.stages[0].outputs.clone()), (vec!["a".into()], vec!["y".into()]));
        assert_eq!(merge(&p, &[1, 1, 1, 1], &[1.0; 4]).unwrap(), p, "groups of one change nothing");
    }

    #[test]
    fn bad_groups_are_errors() {
        let p = skip_chain();
        for bad in [&[1, 2][..], &[2, 0, 2], &[5]] {
            let e = merge(&p, bad, &[1.0; 4]).unwrap_err().to_string();
            assert!(e.contains("stage group"), "{e}");
        }
    }

    #[test]
    fn blocks_end_where_one_tensor_is_live() {
        let p = skip_chain();
        // After s1, t0 (the skip) and t1 are both live.
        assert_eq!(single_live_tensor_after(&p), [true, false, true, true]);
        assert_eq!(block_groups(&p), [1, 2, 1]);
    }

    #[test]
    fn granularity_names_round_trip() {
        for g in Granularity::ALL {
            assert_eq!(g.to_string().parse::<Granularity>().unwrap(), g);
        }
        assert!("blocks".parse::<Granularity>().unwrap_err().contains("layer, block, auto"));
    }
}
