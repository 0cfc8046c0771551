//! One ONNX Runtime session per stage and mode, exchanging tensors by name.

use crate::error::{EngineError, OrtContext, Result};
use crate::onnxruntime::{self, Flavor};
use lalarand_model::Mode;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::DynValue;
use std::borrow::Cow;
use std::collections::HashMap;

/// Tensors in flight between stages, by name. Values move from one session's outputs into the
/// next session's inputs without copies (they stay in ONNX Runtime's host memory).
pub type Tensors = HashMap<String, DynValue>;

/// Where and how stages execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    /// Intra-op threads of every CPU session (1: the calling thread does all the work).
    pub threads: usize,
    /// Cores the work is pinned to; empty: not pinned. The calling thread is pinned by
    /// [`pin_current_thread`]; ONNX Runtime's extra intra-op threads get the following cores.
    pub cores: Vec<usize>,
    /// CUDA device of gpu stages.
    pub gpu_device: i32,
}

impl Default for ExecConfig {
    fn default() -> Self {
        Self { threads: 1, cores: Vec::new(), gpu_device: 0 }
    }
}

/// Pins the calling thread to the first of `cores` (empty: left alone); ONNX Runtime's extra
/// intra-op threads get the following ones (see [`ExecConfig::cores`]). The pinning itself is
/// the runtime's (`lalarand_runtime::os`), with the engine's error naming the core.
pub fn pin_current_thread(cores: &[usize]) -> Result<()> {
    let Some(&first) = cores.first() else { return Ok(()) };
    let pinning_error =
        |problem: String| EngineError::Unsupported { stage: "(pinning)".into(), mode: "cpu".into(), problem };
    let available = lalarand_runtime::os::available_cores();
    if let Some(bad) = cores.iter().find(|c| !available.contains(c)) {
        return Err(pinning_error(format!(
            "core {bad} does not exist or is not allowed here (available: {available:?})"
        )));
    }
    lalarand_runtime::os::pin_current_thread(&[first])
        .map_err(|e| pinning_error(format!("the OS refused to pin this thread to core {first}: {e}")))
}

// Where callers (serving.rs, tests) have long found it.
pub use crate::onnxruntime::gpu_present;

/// A session for one stage (or a whole model) in one mode.
pub struct StageRunner {
    pub name: String,
    pub mode: Mode,
    session: Session,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl std::fmt::Debug for StageRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageRunner")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish()
    }
}

impl StageRunner {
    /// Builds the session of a stage model (ONNX bytes) for `mode`. `cpu-int8` expects the
    /// stage's QDQ model, which ONNX Runtime turns into int8 kernels.
    pub fn new(name: &str, mode: Mode, model: &[u8], cfg: &ExecConfig) -> Result<Self> {
        let unsupported =
            |problem: String| EngineError::Unsupported { stage: name.into(), mode: mode.to_string(), problem };
        let env = match mode {
            Mode::Gpu => {
                if !gpu_present() {
                    return Err(EngineError::NoGpu {
                        reason: "no NVIDIA GPU is visible (no /proc/driver/nvidia/gpus entry, no /dev/nvidia0)".into(),
                        fix: "run gpu stages on a machine with an NVIDIA GPU and driver, or use cpu-fp32 / cpu-int8"
                            .into(),
                    });
                }
                onnxruntime::environment(Flavor::Gpu)?
            }
            // A process that loaded the GPU runtime runs its CPU modes with it.
            Mode::CpuFp32 | Mode::CpuInt8 => match onnxruntime::loaded() {
                Some((f, _)) => onnxruntime::environment(f)?,
                None => onnxruntime::environment(Flavor::Cpu)?,
            },
        };
        let mut builder = Session::builder(&env)
            .ctx(|| format!("stage {name:?}: session builder"))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .ctx(|| format!("stage {name:?}: optimization level"))?
            .with_inter_threads(1)
            .ctx(|| format!("stage {name:?}: inter-op threads"))?
            .with_intra_threads(cfg.threads.max(1))
            .ctx(|| format!("stage {name:?}: intra-op threads"))?;
        if cfg.threads > 1 && cfg.cores.len() > 1 {
            // ONNX Runtime numbers processors from 1 and pins only its own threads (threads - 1).
            let aff: Vec<String> = (1..cfg.threads).map(|t| (cfg.cores[t % cfg.cores.len()] + 1).to_string()).collect();
            builder = builder
                .with_config_entry("session.intra_op_thread_affinities", aff.join(";"))
                .ctx(|| format!("stage {name:?}: thread affinities"))?;
        }
        if mode == Mode::Gpu {
            // fp32 as profiled and as the CPU computes it (no TF32), and cuDNN's heuristic
            // algorithm choice: the same kernels in the profiling and the run process, where an
            // exhaustive search may time its way to other ones.
            let cuda = ort::ep::CUDA::default()
                .with_device_id(cfg.gpu_device)
                .with_tf32(false)
                .with_conv_algorithm_search(ort::ep::cuda::ConvAlgorithmSearch::Heuristic)
                .build()
                .error_on_failure();
            builder = builder.with_execution_providers([cuda]).map_err(|e| EngineError::NoGpu {
                reason: format!("the CUDA execution provider did not start: {e}"),
                fix: "install the CUDA 13 and cuDNN 9 runtime libraries where the loader finds them (LD_LIBRARY_PATH)"
                    .into(),
            })?;
        }
        let session = builder.commit_from_memory(model).map_err(|e| unsupported(e.to_string()))?;
        let inputs = session.inputs().iter().map(|o| o.name().to_string()).collect();
        let outputs = session.outputs().iter().map(|o| o.name().to_string()).collect();
        Ok(Self { name: name.into(), mode, session, inputs, outputs })
    }

    pub fn input_names(&self) -> &[String] {
        &self.inputs
    }

    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// Runs the stage on the tensors it reads from `tensors` and adds the tensors it produces.
    pub fn run(&mut self, tensors: &mut Tensors) -> Result<()> {
        let outputs = self.run_with(|n| tensors.get(n))?;
        tensors.extend(outputs);
        Ok(())
    }

    /// Runs the stage on the tensors `get` finds by name; returns what it produces.
    pub fn run_with<'a>(&mut self, get: impl Fn(&str) -> Option<&'a DynValue>) -> Result<Vec<(String, DynValue)>> {
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(self.inputs.len());
        for n in &self.inputs {
            let v = get(n).ok_or_else(|| {
                EngineError::tensor(
                    format!("stage {:?} ({})", self.name, self.mode),
                    n,
                    "not produced by any earlier stage",
                )
            })?;
            inputs.push((Cow::Borrowed(n.as_str()), SessionInputValue::from(v)));
        }
        let name = &self.name;
        let mode = self.mode;
        let outputs = self.session.run(inputs).ctx(|| format!("running stage {name:?} ({mode})"))?;
        Ok(outputs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
}
