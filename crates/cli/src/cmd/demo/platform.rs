//! The demo's platform on this machine: a real GPU next to one CPU core, or two one-core cpu
//! resources where the second stands in for the accelerator (the gpu-based baselines use it in
//! cpu-fp32).

use anyhow::{bail, Context, Result};
use lalarand_model::{us_to_time, Mode, Platform, Resource, ResourceKind};
use lalarand_runtime::os;

/// The runtime's own costs, charged in the analysis (docs/runtime.md, "Overheads"): per stage
/// (the hand-off, p99 5.2 µs in a 20 s demo run on the idle 2-core build machine) and per
/// wake-up of a sleeping worker (p99 0.86 to 1.07 ms there, max 1.6 ms: this machine's idle
/// cores are slow to wake), with room for a busier machine.
const DISPATCH_OVERHEAD_US: f64 = 20.0;
const WAKEUP_OVERHEAD_US: f64 = 2000.0;

/// What the demo runs on here.
pub(super) struct Here {
    /// The cores this process may use; the first is the cpu resource's (and the profiler's).
    pub cores: Vec<usize>,
    pub gpu: bool,
    pub platform: Platform,
    /// The accelerator: its resource index and the mode the vanilla allocation runs in on it.
    pub accel_id: usize,
    pub vanilla_mode: Mode,
    /// The modes profiled.
    pub modes: Vec<Mode>,
}

/// The platform this machine offers: a GPU whose runtime loads, or two usable cores.
pub(super) fn choose() -> Result<Here> {
    let cores = os::available_cores();
    // The GPU runtime (which also runs the CPU modes) must be the first one this process loads
    // (docs/engine.md); where it does not load, the demo runs on the stand-in platform.
    let gpu = match lalarand_engine::onnxruntime::load_gpu_first() {
        Ok(()) => true,
        Err(why) => {
            if lalarand_engine::onnxruntime::gpu_present() {
                tracing::warn!("a GPU is present but its runtime does not load ({why}); using two cpu resources");
            }
            false
        }
    };
    if !gpu && cores.len() < 2 {
        bail!("the demo needs a GPU or two usable cores (this process may use {cores:?}); `lalarand demo --quick` needs neither");
    }
    // The platform: a real GPU next to one CPU core, or two one-core cpu resources where the
    // second stands in for the accelerator (the gpu-based baselines use it in cpu-fp32).
    let mut cpu = Resource::new("cpu", ResourceKind::Cpu);
    cpu.cores = vec![cores[0]];
    let accel = if gpu {
        Resource::new("gpu", ResourceKind::Gpu)
    } else {
        let mut r = Resource::new("accel", ResourceKind::Cpu);
        r.cores = vec![cores[1]];
        r.accelerator = true;
        r
    };
    let mut platform = Platform { resources: vec![cpu, accel] };
    for r in &mut platform.resources {
        r.dispatch_overhead = us_to_time(DISPATCH_OVERHEAD_US);
        r.wakeup_overhead = us_to_time(WAKEUP_OVERHEAD_US);
    }
    let (accel_id, vanilla_mode) = platform.accelerator().context("the demo platform has an accelerator")?;
    let modes = if gpu { vec![Mode::Gpu, Mode::CpuFp32, Mode::CpuInt8] } else { vec![Mode::CpuFp32, Mode::CpuInt8] };
    Ok(Here { cores, gpu, platform, accel_id, vanilla_mode, modes })
}

impl Here {
    /// One line for the demo's output.
    pub fn describe(&self) -> String {
        if self.gpu {
            format!("platform: gpu + cpu (core {})", self.cores[0])
        } else {
            format!(
                "platform: no GPU here, so two one-core cpu resources: `cpu` (core {}) and `accel` (core {}, accelerator = true) standing in for CPU + accelerator",
                self.cores[0], self.cores[1]
            )
        }
    }
}
