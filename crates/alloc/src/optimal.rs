//! Exact branch and bound over layer-level allocations (being written).

use crate::{AllocError, AllocOptions, Allocator, GpuOnly, Outcome};
use lalarand_model::System;

pub struct Optimal;

impl Allocator for Optimal {
    fn name(&self) -> &'static str {
        "optimal"
    }

    fn allocate(&self, system: &System, options: &AllocOptions) -> Result<Outcome, AllocError> {
        GpuOnly.allocate(system, options)
    }
}
