//! Shared pieces of the allocators' searches.

use crate::{AllocError, AllocOptions};
use lalarand_model::{Placement, System};

/// Every placement layer `layer` of task `task` may take under `options`: each mode its
/// profile lists (int8 only if allowed) on each resource of that mode's kind.
pub fn placements(system: &System, options: &AllocOptions, task: usize, layer: usize) -> Vec<Placement> {
    let profile = &system.tasks[task].dnn.layers[layer];
    profile
        .available_modes()
        .filter(|m| options.allow_int8 || !m.is_int8())
        .flat_map(|mode| system.platform.of_kind(mode.kind()).map(move |resource| Placement { mode, resource }))
        .collect()
}

/// [`placements`] for every layer of every task; errors if some layer has none.
pub fn all_placements(system: &System, options: &AllocOptions) -> Result<Vec<Vec<Vec<Placement>>>, AllocError> {
    system
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (0..t.dnn.layers.len())
                .map(|j| {
                    let p = placements(system, options, i, j);
                    if p.is_empty() {
                        Err(AllocError::Unplaceable { task: t.name.clone(), layer: t.dnn.layers[j].name.clone() })
                    } else {
                        Ok(p)
                    }
                })
                .collect()
        })
        .collect()
}
