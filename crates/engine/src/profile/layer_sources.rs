//! Which earlier stages (or the graph input) each stage reads where it is more than its
//! predecessor: the profile's `reads_layers` / `reads_input`.

use crate::staged::StagedModel;

/// What each of the first `n` stages reads (the profile's `reads_layers` / `reads_input`),
/// where it is more than the chain rule's predecessor: a residual add reading an earlier
/// stage's output, a head reading an earlier feature map. The plan charges a conversion when
/// any of them is in another representation (`lalarand_model::plan`).
pub fn layer_sources(
    staged: &StagedModel,
    n: usize,
) -> std::collections::BTreeMap<usize, lalarand_model::LayerSources> {
    let stages = &staged.partition.stages;
    let producer = |t: &str| stages.iter().position(|s| s.outputs.iter().any(|o| o == t));
    let mut sources = std::collections::BTreeMap::new();
    for (j, stage) in stages.iter().enumerate().take(n) {
        let mut read = lalarand_model::LayerSources::default();
        for t in &stage.inputs {
            match producer(t).filter(|&k| k < j) {
                Some(k) if !read.layers.contains(&k) => read.layers.push(k),
                Some(_) => {}
                None => read.graph_input = true,
            }
        }
        read.layers.sort_unstable();
        let chain = match j.checked_sub(1) {
            Some(prev) => read.layers == [prev] && !read.graph_input,
            None => read.layers.is_empty() && read.graph_input,
        };
        if !chain {
            sources.insert(j, read);
        }
    }
    sources
}
