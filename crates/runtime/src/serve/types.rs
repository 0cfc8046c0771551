//! What goes in and out of a [`super::Server`]: inputs, outputs, timing, policies, settings
//! and errors.

use crate::config::LatePolicy;
use crate::error::RuntimeError;
use lalarand_model::Time;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// Memory holding an fp32 input tensor, shared with the server without a copy.
///
/// `as_f32` must return the same values on every call for as long as the buffer lives (the
/// executor reads them from another thread while the job runs; an application that writes
/// into the memory meanwhile gets an undefined mix of old and new values in its result).
pub trait InputBuffer: Send + Sync + 'static {
    fn as_f32(&self) -> &[f32];
}

impl InputBuffer for Vec<f32> {
    fn as_f32(&self) -> &[f32] {
        self
    }
}

impl InputBuffer for Box<[f32]> {
    fn as_f32(&self) -> &[f32] {
        self
    }
}

impl AsRef<[f32]> for dyn InputBuffer {
    fn as_ref(&self) -> &[f32] {
        self.as_f32()
    }
}

/// Memory holding an input tensor of another datatype as its little-endian bytes (same rule as
/// [`InputBuffer`]: unchanged while the buffer lives).
pub trait ByteBuffer: Send + Sync + 'static {
    fn as_bytes(&self) -> &[u8];
}

impl ByteBuffer for Vec<u8> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

/// The element type of a tensor. Named as the Open Inference Protocol names them
/// ([`Self::protocol_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum DataType {
    Fp32,
    Int64,
    Int32,
    Uint8,
    Bool,
}

impl DataType {
    pub const ALL: [DataType; 5] = [Self::Fp32, Self::Int64, Self::Int32, Self::Uint8, Self::Bool];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::Fp32 | Self::Int32 => 4,
            Self::Int64 => 8,
            Self::Uint8 | Self::Bool => 1,
        }
    }

    /// `FP32`, `INT64`, `INT32`, `UINT8`, `BOOL`.
    pub fn protocol_name(self) -> &'static str {
        match self {
            Self::Fp32 => "FP32",
            Self::Int64 => "INT64",
            Self::Int32 => "INT32",
            Self::Uint8 => "UINT8",
            Self::Bool => "BOOL",
        }
    }

    /// The datatype called `name` ([`Self::protocol_name`]), if it is one of these.
    pub fn from_protocol_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.protocol_name() == name)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol_name())
    }
}

/// A tensor's memory: fp32 values, or the bytes of another [`DataType`].
#[derive(Clone)]
pub enum TensorData {
    F32(Arc<dyn InputBuffer>),
    Bytes(DataType, Arc<dyn ByteBuffer>),
}

impl TensorData {
    pub fn dtype(&self) -> DataType {
        match self {
            Self::F32(_) => DataType::Fp32,
            Self::Bytes(d, _) => *d,
        }
    }

    /// Elements held.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(b) => b.as_f32().len(),
            Self::Bytes(d, b) => b.as_bytes().len() / d.size(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One named input tensor: a shape and shared memory of exactly `dims.iter().product()`
/// elements. An empty name is the model's only input (single-input call sites).
#[derive(Clone)]
pub struct Tensor {
    name: String,
    dims: Vec<usize>,
    data: TensorData,
}

impl Tensor {
    /// Checks that `data` holds `dims.iter().product()` elements (and, for bytes, a whole
    /// number of them).
    pub fn new(name: impl Into<String>, dims: Vec<usize>, data: TensorData) -> Result<Self, String> {
        let name = name.into();
        let want = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let Some(want) = want else { return Err(format!("input {name:?}: shape {dims:?} overflows")) };
        if let TensorData::Bytes(d, b) = &data {
            let bytes = b.as_bytes().len();
            if !bytes.is_multiple_of(d.size()) {
                return Err(format!("input {name:?}: {bytes} bytes is not a whole number of {d} elements"));
            }
        }
        let have = data.len();
        if want != have {
            return Err(format!("input {name:?}: {have} values for shape {dims:?} ({want} values)"));
        }
        Ok(Self { name, dims, data })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    pub fn dtype(&self) -> DataType {
        self.data.dtype()
    }

    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The fp32 values (`None` for another datatype).
    pub fn f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(b) => Some(b.as_f32()),
            TensorData::Bytes(..) => None,
        }
    }

    /// The elements as little-endian bytes, whatever the datatype.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            TensorData::F32(b) => {
                let v = b.as_f32();
                // SAFETY: f32 has no padding or invalid bit patterns; u8 has alignment 1.
                unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
            }
            TensorData::Bytes(_, b) => b.as_bytes(),
        }
    }

    /// Zeros of `dtype` and shape `dims`.
    pub fn zeros(name: impl Into<String>, dtype: DataType, dims: Vec<usize>) -> Self {
        let n: usize = dims.iter().product();
        let data = match dtype {
            DataType::Fp32 => TensorData::F32(Arc::new(vec![0.0f32; n])),
            d => TensorData::Bytes(d, Arc::new(vec![0u8; n * d.size()])),
        };
        Self { name: name.into(), dims, data }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("name", &self.name)
            .field("dtype", &self.dtype())
            .field("dims", &self.dims)
            .field("values", &self.data.len())
            .finish()
    }
}

/// A job's input: one tensor per model input, by name (as onnxruntime's `run` takes a dict),
/// or one unnamed fp32 tensor for a single-input model ([`Self::new`], [`Self::from_vec`]).
/// Cloning shares the memory.
#[derive(Clone)]
pub struct Input {
    tensors: Vec<Tensor>,
}

impl Input {
    /// One unnamed fp32 tensor (the model's only input); checks that `data` holds
    /// `dims.iter().product()` values.
    pub fn new(dims: Vec<usize>, data: Arc<dyn InputBuffer>) -> Result<Self, String> {
        let want: usize = dims.iter().product();
        let have = data.as_f32().len();
        if want != have {
            return Err(format!("{have} values for shape {dims:?} ({want} values)"));
        }
        Ok(Self { tensors: vec![Tensor { name: String::new(), dims, data: TensorData::F32(data) }] })
    }

    /// An input owning `data` (one unnamed fp32 tensor).
    pub fn from_vec(dims: Vec<usize>, data: Vec<f32>) -> Result<Self, String> {
        Self::new(dims, Arc::new(data))
    }

    /// Named tensors (every name distinct, at least one tensor).
    pub fn named(tensors: Vec<Tensor>) -> Result<Self, String> {
        if tensors.is_empty() {
            return Err("no input tensors".into());
        }
        for (i, t) in tensors.iter().enumerate() {
            if tensors[..i].iter().any(|u| u.name == t.name) {
                return Err(format!("input {:?} is given twice", t.name));
            }
        }
        Ok(Self { tensors })
    }

    /// Zeros of shape `dims` (one unnamed fp32 tensor).
    pub fn zeros(dims: Vec<usize>) -> Self {
        Self { tensors: vec![Tensor::zeros("", DataType::Fp32, dims)] }
    }

    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// The tensor called `name`, or the only (unnamed) one.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        match self.tensors.as_slice() {
            [only] if only.name.is_empty() => Some(only),
            all => all.iter().find(|t| t.name == name),
        }
    }

    /// The first tensor's dims (single-input call sites).
    pub fn dims(&self) -> &[usize] {
        &self.tensors[0].dims
    }

    /// The first tensor's fp32 values (empty for another datatype; single-input call sites).
    pub fn data(&self) -> &[f32] {
        self.tensors[0].f32().unwrap_or(&[])
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.tensors).finish()
    }
}

/// One input a task's model takes: its name, datatype and dims (`None`: any size, e.g. a
/// symbolic batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DataType,
    pub dims: Vec<Option<usize>>,
}

impl TensorSpec {
    /// The expected shape as text, `[*, 1, 28, 28]` (`*` for a free dim).
    pub fn shape_text(&self) -> String {
        let parts: Vec<String> = self.dims.iter().map(|d| d.map_or("*".into(), |v| v.to_string())).collect();
        format!("[{}]", parts.join(", "))
    }

    /// Why `t` does not fit, if it does not.
    pub fn check(&self, t: &Tensor) -> Result<(), String> {
        if t.dtype() != self.dtype {
            return Err(format!("input {:?} has datatype {}, expected {}", self.name, t.dtype(), self.dtype));
        }
        let dims = t.dims();
        let fits = dims.len() == self.dims.len() && dims.iter().zip(&self.dims).all(|(&d, w)| w.is_none_or(|w| w == d));
        if fits {
            Ok(())
        } else {
            Err(format!("input {:?} has shape {dims:?}, expected {} ({})", self.name, self.shape_text(), self.dtype))
        }
    }

    /// A concrete shape (free dims as 1).
    pub fn example_dims(&self) -> Vec<usize> {
        self.dims.iter().map(|d| d.unwrap_or(1)).collect()
    }
}

/// The inputs a task's model takes. `tensors: None` accepts any inputs (busy-wait stages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputSpec {
    pub tensors: Option<Vec<TensorSpec>>,
}

impl InputSpec {
    /// Accepts any inputs.
    pub fn any() -> Self {
        Self { tensors: None }
    }

    /// One fp32 input.
    pub fn single(name: impl Into<String>, dims: Vec<Option<usize>>) -> Self {
        Self { tensors: Some(vec![TensorSpec { name: name.into(), dtype: DataType::Fp32, dims }]) }
    }

    /// The expected inputs as text: a single input's shape, `[*, 1, 28, 28]` (`*` for a free
    /// dim), several as `"ids" [*, 8] INT64, "mask" [*, 8] BOOL`.
    pub fn shape_text(&self) -> String {
        match &self.tensors {
            None => "any shape".into(),
            Some(ts) if ts.len() == 1 => ts[0].shape_text(),
            Some(ts) => {
                let parts: Vec<String> =
                    ts.iter().map(|t| format!("{:?} {} {}", t.name, t.shape_text(), t.dtype)).collect();
                parts.join(", ")
            }
        }
    }

    /// Why `input` does not fit, if it does not: every declared input present (by name, or
    /// the only unnamed tensor for a single-input model) with its datatype and shape, and
    /// nothing else.
    pub fn check(&self, input: &Input) -> Result<(), String> {
        let Some(specs) = &self.tensors else { return Ok(()) };
        if let ([spec], [only]) = (specs.as_slice(), input.tensors()) {
            if only.name().is_empty() {
                return spec.check(only);
            }
        }
        for t in input.tensors() {
            if !specs.iter().any(|s| s.name == t.name()) {
                let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                return Err(format!("the model has no input {:?} (inputs: {})", t.name(), known.join(", ")));
            }
        }
        for s in specs {
            let t = input.tensors().iter().find(|t| t.name() == s.name);
            let t = t.ok_or_else(|| format!("input {:?} is missing ({} {})", s.name, s.shape_text(), s.dtype))?;
            s.check(t)?;
        }
        Ok(())
    }

    /// The first input's concrete shape (free dims as 1; `[1]` for any).
    pub fn example_dims(&self) -> Vec<usize> {
        self.tensors.as_ref().and_then(|t| t.first()).map_or(vec![1], |t| t.example_dims())
    }

    /// Zeros of every input (warm-up jobs).
    pub fn example_input(&self) -> Input {
        match &self.tensors {
            Some(ts) if !ts.is_empty() => {
                Input { tensors: ts.iter().map(|t| Tensor::zeros(t.name.clone(), t.dtype, t.example_dims())).collect() }
            }
            _ => Input::zeros(self.example_dims()),
        }
    }
}

/// One output tensor of a job, on the host, named as in the model: its values as fp32, and an
/// integer or bool output's own elements in its own datatype.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostTensor {
    pub name: String,
    pub dims: Vec<usize>,
    /// The values as fp32 (an integer or bool output converted, exact up to 2^24).
    pub data: Vec<f32>,
    /// The output's own datatype, as the model declares it.
    pub dtype: DataType,
    /// For any datatype but FP32, the elements exactly: little-endian, [`DataType::size`]
    /// bytes each (bool: 0 or 1). Empty for FP32, whose elements are `data`.
    #[serde(skip)]
    pub raw: Vec<u8>,
}

impl HostTensor {
    /// An FP32 output.
    pub fn f32(name: impl Into<String>, dims: Vec<usize>, data: Vec<f32>) -> Self {
        Self { name: name.into(), dims, data, dtype: DataType::Fp32, raw: Vec::new() }
    }

    /// An output of `dtype` from its little-endian elements `raw` (`data` is their fp32
    /// values); FP32 elements go to `data`.
    pub fn typed(name: impl Into<String>, dims: Vec<usize>, dtype: DataType, raw: Vec<u8>) -> Self {
        let data: Vec<f32> = match dtype {
            DataType::Fp32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect(),
            DataType::Int64 => {
                raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect()
            }
            DataType::Int32 => {
                raw.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as f32).collect()
            }
            DataType::Uint8 | DataType::Bool => raw.iter().map(|&v| v as f32).collect(),
        };
        let raw = if dtype == DataType::Fp32 { Vec::new() } else { raw };
        Self { name: name.into(), dims, data, dtype, raw }
    }

    /// The elements in the output's own datatype, little-endian (what the protocol sends).
    pub fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self.dtype {
            DataType::Fp32 => self.data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into(),
            _ => (&self.raw[..]).into(),
        }
    }

    /// An INT64 output's elements (`None` for another datatype).
    pub fn i64s(&self) -> Option<Vec<i64>> {
        (self.dtype == DataType::Int64)
            .then(|| self.raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }
}

/// When a job happened. Times are nanoseconds since the server's time 0 (see
/// [`super::Server::now`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct JobTiming {
    /// When `submit` was called (sporadic), or the nominal release (periodic).
    pub submitted: Time,
    /// The release the analysis covers: the periodic release, or for a sporadic job
    /// `max(submitted, previous release + period)`.
    pub release: Time,
    /// Its first stage started.
    pub start: Time,
    /// Its last stage finished.
    pub finish: Time,
    /// `finish - release`.
    pub response: Time,
    /// The analysis' bound on the response of the task (`None`: no bound, a forced server).
    pub bound: Option<Time>,
    /// Absolute deadline, `release + deadline`.
    pub deadline: Time,
    /// `finish <= deadline`.
    pub met: bool,
    /// How long the machine ran outside the analysis' assumptions, on any resource, from the
    /// release of the oldest job in flight at this one's release (its own, when none was) to its
    /// finish ([`super::ServeStats::stalls`]: stages past their planned cost, wake-ups past the
    /// charged overhead, late queueing; not the server's own hand-offs past theirs). The bound holds for a machine that keeps to its
    /// platform file; a response past the bound by more than this is not the machine's doing.
    pub stalled: Time,
}

/// A completed job: its outputs (the last stage's tensors) and its timing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobResult {
    pub task: String,
    pub task_index: usize,
    /// The job's index within its task (0, 1, ...).
    pub job: u64,
    pub outputs: Vec<HostTensor>,
    pub timing: JobTiming,
}

impl JobResult {
    /// The output called `name`.
    pub fn output(&self, name: &str) -> Option<&HostTensor> {
        self.outputs.iter().find(|t| t.name == name)
    }
}

/// What a sporadic submission became.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Admission {
    /// Released at once.
    Released { release: Time },
    /// Came before the task's minimum inter-arrival time had passed since its previous
    /// release and waits for its earliest legal release ([`EarlyPolicy::Wait`]).
    Delayed { release: Time, by: Time },
    /// Came early and was rejected ([`EarlyPolicy::Reject`]); waiting on it returns
    /// [`ServeError::TooEarly`].
    Rejected { earliest: Time },
}

/// What happens to a sporadic submission that comes less than the task's period (its minimum
/// inter-arrival time) after its previous release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EarlyPolicy {
    /// Released at the earliest legal time (at most [`ServeConfig::max_backlog`] wait).
    #[default]
    Wait,
    /// Rejected at once.
    Reject,
}

/// What a periodic release does when its source has no input newer than the previous job's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StalePolicy {
    /// The job runs on the previous job's input (skipped while there has never been one).
    #[default]
    Reuse,
    /// The release is skipped and counted ([`super::TaskStats::skipped`]).
    Skip,
}

/// How [`super::Server::stop`] ends the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopPolicy {
    /// No new releases or submissions; every admitted job (waiting sporadic releases
    /// included) runs to its end, for at most [`ServeConfig::drain_timeout`], after which the
    /// rest is cancelled.
    #[default]
    Drain,
    /// No new releases or submissions; jobs not yet started and waiting releases resolve with
    /// [`ServeError::Cancelled`], running jobs end at their next stage boundary.
    Cancel,
}

/// Server settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServeConfig {
    /// Serve even if the analysis finds no bound for some task.
    pub force: bool,
    /// Ask for SCHED_FIFO (refusal is warned about, not fatal).
    pub realtime: bool,
    /// A job still running at its deadline: continue or abort at its next stage boundary.
    pub late: LatePolicy,
    /// Per task: releases waiting while a job of the task is in flight, and sporadic
    /// submissions waiting for their legal release. Beyond it a submission fails with
    /// [`ServeError::Backlog`] and a periodic release is dropped (counted).
    pub max_backlog: usize,
    /// Results of a periodic task kept for [`super::Server::results`]; beyond it the oldest
    /// is dropped (counted in [`super::TaskStats::results_dropped`]).
    pub results_capacity: usize,
    /// Keep the stage executions of the last this-many nanoseconds for
    /// [`super::Server::chrome_trace`] (`None`: no trace).
    pub trace_window: Option<Time>,
    /// Most stage executions the trace ring keeps per resource.
    pub trace_max_slots: usize,
    /// Longest [`StopPolicy::Drain`] waits before cancelling what is left.
    pub drain_timeout: Time,
    /// Sporadic tasks the builder was not told about get this policy.
    pub early: EarlyPolicy,
    /// Run two warm-up jobs of every task through its stages before serving
    /// ([`crate::StageExecutor::warm_up`] has why).
    pub warm_up: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            force: false,
            realtime: true,
            late: LatePolicy::Continue,
            max_backlog: 4,
            results_capacity: 64,
            trace_window: None,
            trace_max_slots: 100_000,
            drain_timeout: 10_000_000_000,
            early: EarlyPolicy::Wait,
            warm_up: true,
        }
    }
}

/// Why a server call or a job failed. Every message names the task and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The server cannot start: what `Runtime::new` refuses (unschedulable unless forced,
    /// cores, periods, ...).
    #[error("cannot start the server: {0}")]
    Start(#[from] RuntimeError),
    /// A setting or a task's serving mode is wrong.
    #[error("invalid server settings: {field}: {problem}")]
    Config { field: String, problem: String },
    /// No task of that name.
    #[error("no task is called {name:?} (tasks: {})", known.join(", "))]
    UnknownTask { name: String, known: Vec<String> },
    /// The call does not fit how the task is served (e.g. `submit` to a periodic task).
    #[error("task {task:?}: {problem}")]
    WrongKind { task: String, problem: String },
    /// An input of the wrong shape or type.
    #[error("task {task:?}: bad input: {problem}")]
    Input { task: String, problem: String },
    /// The server was stopped (or is stopping).
    #[error("task {task:?}: the server is stopped; fix: start a new server")]
    Stopped { task: String },
    /// A sporadic submission before its minimum inter-arrival time ([`EarlyPolicy::Reject`]).
    #[error("task {task:?}: submitted {} us before its earliest legal release (minimum inter-arrival time {} us); rejected", *early as f64 / 1e3, *period as f64 / 1e3)]
    TooEarly { task: String, early: Time, period: Time },
    /// Too many jobs waiting for the task.
    #[error("task {task:?}: {waiting} jobs already wait (max_backlog); rejected")]
    Backlog { task: String, waiting: usize },
    /// A stage failed.
    #[error("task {task:?} job {job}: stage {stage} failed: {error}")]
    Failed { task: String, job: u64, stage: usize, error: String },
    /// The task's input source failed (or returned an unusable input).
    #[error("task {task:?} job {job}: the input source failed: {error}")]
    Source { task: String, job: u64, error: String },
    /// Ended at a stage boundary past its deadline ([`LatePolicy::Abort`]).
    #[error("task {task:?} job {job}: aborted before stage {stage}, past its deadline")]
    Aborted { task: String, job: u64, stage: usize },
    /// Cancelled by [`StopPolicy::Cancel`] (or a drain that timed out).
    #[error("task {task:?} job {job}: cancelled by stop")]
    Cancelled { task: String, job: u64 },
    /// The handle's result was already taken by an earlier wait.
    #[error("task {task:?} job {job}: the result was already taken by an earlier wait")]
    AlreadyTaken { task: String, job: u64 },
    /// `wait_timeout` ran out; the handle can be waited on again.
    #[error("task {task:?} job {job}: no result within {} ms", *waited as f64 / 1e6)]
    Timeout { task: String, job: u64, waited: Time },
    /// The OS refused a thread.
    #[error("server: {0}")]
    Os(String),
}

impl ServeError {
    pub(crate) fn config(field: &str, problem: impl Into<String>) -> Self {
        Self::Config { field: field.into(), problem: problem.into() }
    }
}

/// A periodic task's input source.
pub enum Source {
    /// A latest-value slot the application writes ([`super::Server::input_slot`]); each
    /// release takes what it holds.
    Slot,
    /// Called on the task's own source thread (never a worker's), once per release, ahead of
    /// it: the call for job `k` starts when job `k - 1` is released (job 0's at start) and its
    /// result is job `k`'s input. A call still running at job `k`'s release makes that release
    /// follow the [`StalePolicy`]; `Ok(None)` is "nothing new" (the policy too); `Err(text)`
    /// fails job `k` with [`ServeError::Source`] (text, e.g. a Python traceback, included).
    Callback(Box<SourceFn>),
}

/// See [`Source::Callback`]: called with the job index.
pub type SourceFn = dyn FnMut(u64) -> Result<Option<Input>, String> + Send + 'static;

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Slot => f.write_str("Slot"),
            Self::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}

/// How a task is served.
#[derive(Debug)]
pub enum TaskMode {
    /// Jobs come from [`super::Server::submit`]; the task's period is the minimum inter-arrival
    /// time, enforced with `early`.
    Sporadic { early: EarlyPolicy },
    /// Jobs are released every period from `source`; results go to
    /// [`super::Server::results`].
    Periodic { source: Source, stale: StalePolicy },
}

impl TaskMode {
    pub fn is_periodic(&self) -> bool {
        matches!(self, Self::Periodic { .. })
    }
}
