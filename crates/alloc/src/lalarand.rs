//! LaLaRAND's layer-level, quantization-aware, accuracy-aware allocator (being written).

use crate::{AllocError, AllocOptions, Allocator, GpuOnly, Outcome};
use lalarand_model::System;

pub struct Lalarand;

impl Allocator for Lalarand {
    fn name(&self) -> &'static str {
        "lalarand"
    }

    fn allocate(&self, system: &System, options: &AllocOptions) -> Result<Outcome, AllocError> {
        GpuOnly.allocate(system, options)
    }
}
