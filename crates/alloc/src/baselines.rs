//! Baseline allocators (being written by the baselines owner).

use crate::{AllocError, AllocOptions, Allocator, Outcome};
use lalarand_model::{Allocation, Mode, System};

fn uniform(policy: &'static str, system: &System, mode: Mode) -> Result<Outcome, AllocError> {
    let alloc = Allocation::uniform(system, mode).map_err(|_| AllocError::NoResource { policy, kind: mode.kind() })?;
    Ok(Outcome::evaluate(system, alloc, 0))
}

pub struct GpuOnly;
impl Allocator for GpuOnly {
    fn name(&self) -> &'static str {
        "gpu-only"
    }
    fn allocate(&self, system: &System, _options: &AllocOptions) -> Result<Outcome, AllocError> {
        uniform(self.name(), system, Mode::Gpu)
    }
}

pub struct CpuOnly;
impl Allocator for CpuOnly {
    fn name(&self) -> &'static str {
        "cpu-only"
    }
    fn allocate(&self, system: &System, _options: &AllocOptions) -> Result<Outcome, AllocError> {
        uniform(self.name(), system, Mode::CpuFp32)
    }
}

pub struct TaskLevel;
impl Allocator for TaskLevel {
    fn name(&self) -> &'static str {
        "task-level"
    }
    fn allocate(&self, system: &System, options: &AllocOptions) -> Result<Outcome, AllocError> {
        GpuOnly.allocate(system, options)
    }
}

pub struct Dart;
impl Allocator for Dart {
    fn name(&self) -> &'static str {
        "dart"
    }
    fn allocate(&self, system: &System, options: &AllocOptions) -> Result<Outcome, AllocError> {
        GpuOnly.allocate(system, options)
    }
}
