//! The server from Python: `serve(...)` starts a `lalarand_runtime::serve::Server`; numpy
//! arrays are copied in at submit and come out as arrays (no copy); handles behave as
//! `concurrent.futures.Future`s.
//!
//! The GIL is released around every call that waits or works in Rust (`py.detach`), and is
//! taken only on the threads that run Python code: the caller's, a periodic task's source
//! thread (its callable), and the server's delivery thread (done-callbacks). No resource worker
//! ever takes it, so Python cannot delay a stage. Blocking waits wait in short slices and check
//! for signals between them, so Ctrl-C interrupts them as it does any Python wait.

use crate::errors::serve_error;
use crate::system::{Allocation, System};
use lalarand_alloc::admission::{AdmissionOptions, Proven};
use lalarand_engine::checked_modes::{CheckWords, CheckedModes};
use lalarand_engine::end_to_end::TaskCheck;
use lalarand_engine::serving::{model_paths, EngineExecutor};
use lalarand_model::Time;
use lalarand_runtime::serve::modes::ModeServer;
use lalarand_runtime::serve::ServerBuilder;
use lalarand_runtime::serve::{
    Admission, DataType, EarlyPolicy, Input, InputSlot as CoreSlot, JobHandle as CoreHandle, JobResult as CoreResult,
    ResultStream as CoreStream, ServeConfig, ServeError, Server as CoreServer, Source, StalePolicy, StopPolicy, Tensor,
    TensorData,
};
use lalarand_runtime::{BusyTime, BusyWait, LatePolicy};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyRuntimeWarning, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A numpy array as task `task`'s input, copied at once (any float32 layout): the server
/// never reads Python memory later, so writing into the array after `submit` cannot change
/// what the model sees. Another dtype or type is an error naming the task and what it expects
/// (the server checks the shape).
fn to_input(task: &str, expected: impl FnOnce() -> String, obj: &Bound<'_, PyAny>) -> Result<Input, ServeError> {
    let bad = |problem: String| ServeError::Input { task: task.to_string(), problem };
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut tensors = Vec::with_capacity(dict.len());
        for (name, value) in dict.iter() {
            let name: String = name.extract().map_err(|_| bad(format!("a key {name} is not an input name (str)")))?;
            tensors.push(named_tensor(&name, &value).map_err(&bad)?);
        }
        return Input::named(tensors).map_err(bad);
    }
    let Ok(array) = obj.cast::<PyArrayDyn<f32>>() else {
        let what = match obj.getattr("dtype") {
            Ok(dtype) => format!("an array of dtype {dtype}"),
            Err(_) => format!("a {}", obj.get_type().name().map_or("?".into(), |n| n.to_string())),
        };
        return Err(bad(format!("got {what}, expected a float32 numpy array, shape {}", expected())));
    };
    let dims = array.shape().to_vec();
    let readonly = array.try_readonly().map_err(|e| bad(format!("the array cannot be read: {e}")))?;
    let values: Vec<f32> = match readonly.as_slice() {
        Ok(contiguous) => contiguous.to_vec(),
        Err(_) => readonly.as_array().iter().copied().collect(),
    };
    Input::from_vec(dims, values).map_err(bad)
}

/// One input of a dict (`{name: array}`, as onnxruntime's `run` takes): a numpy array of
/// float32, int64, int32, uint8 or bool, copied.
fn named_tensor(name: &str, value: &Bound<'_, PyAny>) -> Result<Tensor, String> {
    fn values<T: numpy::Element + Copy>(a: &Bound<'_, PyArrayDyn<T>>) -> Result<Vec<T>, String> {
        let r = a.try_readonly().map_err(|e| format!("the array cannot be read: {e}"))?;
        Ok(match r.as_slice() {
            Ok(contiguous) => contiguous.to_vec(),
            Err(_) => r.as_array().iter().copied().collect(),
        })
    }
    fn bytes<T: numpy::Element + Copy, const N: usize>(
        a: &Bound<'_, PyArrayDyn<T>>,
        le: fn(T) -> [u8; N],
    ) -> Result<Vec<u8>, String> {
        Ok(values(a)?.into_iter().flat_map(le).collect())
    }
    let in_input = |e: String| format!("input {name:?}: {e}");
    let (dims, data) = if let Ok(a) = value.cast::<PyArrayDyn<f32>>() {
        (a.shape().to_vec(), TensorData::F32(Arc::new(values(a).map_err(in_input)?)))
    } else if let Ok(a) = value.cast::<PyArrayDyn<i64>>() {
        (
            a.shape().to_vec(),
            TensorData::Bytes(DataType::Int64, Arc::new(bytes(a, i64::to_le_bytes).map_err(in_input)?)),
        )
    } else if let Ok(a) = value.cast::<PyArrayDyn<i32>>() {
        (
            a.shape().to_vec(),
            TensorData::Bytes(DataType::Int32, Arc::new(bytes(a, i32::to_le_bytes).map_err(in_input)?)),
        )
    } else if let Ok(a) = value.cast::<PyArrayDyn<u8>>() {
        (a.shape().to_vec(), TensorData::Bytes(DataType::Uint8, Arc::new(bytes(a, |x: u8| [x]).map_err(in_input)?)))
    } else if let Ok(a) = value.cast::<PyArrayDyn<bool>>() {
        (
            a.shape().to_vec(),
            TensorData::Bytes(DataType::Bool, Arc::new(bytes(a, |x: bool| [u8::from(x)]).map_err(in_input)?)),
        )
    } else {
        let what = match value.getattr("dtype") {
            Ok(dtype) => format!("an array of dtype {dtype}"),
            Err(_) => format!("a {}", value.get_type().name().map_or("?".into(), |n| n.to_string())),
        };
        return Err(format!(
            "input {name:?}: got {what}, expected a numpy array of float32, int64, int32, uint8 or bool"
        ));
    };
    Tensor::new(name, dims, data)
}

/// The expected input shape of `task`, as text, for messages.
fn expected_shape(server: &AnyServer, task: &str) -> String {
    with_server!(server, s => s.input_spec(task).map(|spec| spec.shape_text()).unwrap_or_else(|_| "?".into()))
}

/// A server over any of the executors the bindings offer: one whose task set is fixed (it has
/// periodic tasks, or serves an allocation the analysis does not prove), or one whose tasks
/// load and unload while it serves (`ModeServer`, every task sporadic: `crate::modes`).
pub(crate) enum AnyServer {
    Engine(CoreServer<EngineExecutor>),
    Busy(CoreServer<BusyWait>),
    EngineModes(ModeServer<EngineExecutor>),
    BusyModes(ModeServer<BusyWait>),
}

/// Runs `$body` with `$s` bound to the concrete server (a `ModeServer`'s current mode).
macro_rules! with_server {
    ($server:expr, $s:ident => $body:expr) => {
        match $server {
            AnyServer::Engine($s) => $body,
            AnyServer::Busy($s) => $body,
            AnyServer::EngineModes(m) => {
                let current = m.current();
                let $s = &*current;
                $body
            }
            AnyServer::BusyModes(m) => {
                let current = m.current();
                let $s = &*current;
                $body
            }
        }
    };
}
use with_server;

impl AnyServer {
    /// A release of `task` (during a mode change, on the next mode).
    fn submit(&self, task: &str, input: Input) -> Result<CoreHandle, ServeError> {
        match self {
            Self::Engine(s) => s.submit(task, input),
            Self::Busy(s) => s.submit(task, input),
            Self::EngineModes(m) => m.submit(task, input),
            Self::BusyModes(m) => m.submit(task, input),
        }
    }

    /// Stops (a `ModeServer` refuses changes from then on).
    fn stop(&self, policy: StopPolicy) -> Result<lalarand_runtime::serve::ServeReport, ServeError> {
        match self {
            Self::Engine(s) => s.stop(policy),
            Self::Busy(s) => s.stop(policy),
            Self::EngineModes(m) => m.stop(policy),
            Self::BusyModes(m) => m.stop(policy),
        }
    }
}

/// One job's outputs and timing. Times are nanoseconds since the server's time 0.
#[pyclass(module = "lalarand", frozen, get_all)]
pub struct JobResult {
    pub task: String,
    /// The job's index within its task (0, 1, ...).
    pub job: u64,
    /// The last stage's tensors by the model's output names (ordered as the model), each a
    /// numpy array of the dtype the model declares (float32, int64, int32, uint8 or bool).
    pub outputs: Py<PyDict>,
    /// When `submit` was called (sporadic), or the nominal release (periodic).
    pub submitted_ns: Time,
    /// The release the analysis covers (a sporadic job's earliest legal release).
    pub release_ns: Time,
    pub start_ns: Time,
    pub finish_ns: Time,
    /// finish - release.
    pub response_ns: Time,
    /// The analysis' bound on the task's response (None: a forced server without one).
    pub bound_ns: Option<Time>,
    /// Absolute deadline, release + the task's deadline.
    pub deadline_ns: Time,
    /// Finished by the deadline.
    pub met: bool,
    /// How long the machine ran outside the analysis' assumptions while the job was in flight
    /// (stages past their planned cost, late wake-ups and releases): a response past the bound
    /// by no more than this was made late by the machine, not the server.
    pub stalled_ns: Time,
}

impl JobResult {
    fn new(py: Python<'_>, r: CoreResult) -> PyResult<Self> {
        let outputs = PyDict::new(py);
        for t in r.outputs {
            let name = t.name.clone();
            outputs.set_item(name, crate::outputs::output_array(py, t)?)?;
        }
        let timing = r.timing;
        Ok(Self {
            task: r.task,
            job: r.job,
            outputs: outputs.unbind(),
            submitted_ns: timing.submitted,
            release_ns: timing.release,
            start_ns: timing.start,
            finish_ns: timing.finish,
            response_ns: timing.response,
            bound_ns: timing.bound,
            deadline_ns: timing.deadline,
            met: timing.met,
            stalled_ns: timing.stalled,
        })
    }
}

#[pymethods]
impl JobResult {
    /// The single output, when the model has exactly one.
    #[getter]
    fn output<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let outputs = self.outputs.bind(py);
        if outputs.len() != 1 {
            let names: Vec<String> = outputs.keys().iter().map(|k| k.to_string()).collect();
            return Err(PyValueError::new_err(format!(
                "task {:?} has {} outputs ({}); take one from .outputs",
                self.task,
                outputs.len(),
                names.join(", ")
            )));
        }
        outputs.values().get_item(0)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let names: Vec<String> = self.outputs.bind(py).keys().iter().map(|k| k.to_string()).collect();
        format!(
            "<JobResult {} #{}: response {:.3} ms, bound {}, {}; outputs {}>",
            self.task,
            self.job,
            self.response_ns as f64 / 1e6,
            self.bound_ns.map_or("none".into(), |b| format!("{:.3} ms", b as f64 / 1e6)),
            if self.met { "met" } else { "MISSED" },
            names.join(", ")
        )
    }
}

/// How long a blocking wait waits without the GIL before it checks for signals (Ctrl-C): well
/// under the 100 ms a person notices, and rare enough to cost nothing measurable.
const WAIT_SLICE: Duration = Duration::from_millis(20);

/// The next slice of a wait that ends at `deadline` (None: never).
fn slice_until(deadline: Option<Instant>) -> Duration {
    deadline.map_or(WAIT_SLICE, |d| d.saturating_duration_since(Instant::now()).min(WAIT_SLICE))
}

/// Python's `TimeoutError` (what `Future.result` raises) for a wait of `timeout` seconds.
fn not_done(task: &str, job: u64, timeout: f64) -> PyErr {
    PyTimeoutError::new_err(format!(
        "task {task:?} job {job}: not done after {timeout} s (a handle can be waited on again; the job goes on)"
    ))
}

/// Where a job's outcome lands, once: taken from the library's handle by a wait (on the waiting
/// thread, which reads the outputs), or handed to the completion callback the first Python
/// done-callback registers (on the server's delivery thread); either wakes the other waiters
/// and runs the Python done-callbacks.
#[derive(Default)]
struct Outcome {
    state: Mutex<OutcomeState>,
    cv: Condvar,
}

#[derive(Default)]
struct OutcomeState {
    /// The library's outcome, until a Python wait converts it.
    raw: Option<Result<CoreResult, ServeError>>,
    fired: bool,
    callbacks: Vec<Py<PyAny>>,
    /// The handle's Python object, held while callbacks wait for it (they are called with it).
    owner: Option<Py<JobHandle>>,
    /// A completion callback is registered with the library's handle.
    registered: bool,
}

impl Outcome {
    /// The library's completion callback (the delivery thread, or the submitting thread for a
    /// job that resolved at once). Takes the GIL only when Python callbacks wait.
    fn deliver(&self, r: Result<CoreResult, ServeError>) {
        let (callbacks, owner) = {
            let mut state = lock(&self.state);
            if state.fired {
                return;
            }
            state.raw = Some(r);
            state.fired = true;
            (std::mem::take(&mut state.callbacks), state.owner.take())
        };
        self.cv.notify_all();
        if let Some(owner) = owner {
            Python::attach(|py| {
                for cb in callbacks {
                    call_done_callback(py, &cb, owner.bind(py).as_any());
                }
            });
        }
    }

    /// Waits at most `slice` for the outcome; whether it is there.
    fn wait_fired(&self, slice: Duration) -> bool {
        let state = lock(&self.state);
        let (state, _) = self.cv.wait_timeout_while(state, slice, |s| !s.fired).unwrap_or_else(|e| e.into_inner());
        state.fired
    }
}

/// A sporadic job's future, behaving as a `concurrent.futures.Future`: `result(timeout)`,
/// `exception(timeout)`, `done()`, `add_done_callback(fn)`, `cancel()`; `await handle` in a
/// coroutine. The result (or exception) is the same object on every call.
#[pyclass(module = "lalarand", frozen)]
pub struct JobHandle {
    task: String,
    job: u64,
    admission: Admission,
    /// The library's handle, which a wait takes the result from.
    core: CoreHandle,
    outcome: Arc<Outcome>,
    /// The outcome as Python objects, once a wait converted it.
    converted: Mutex<Option<Result<Py<JobResult>, PyErr>>>,
}

impl JobHandle {
    fn new(handle: CoreHandle) -> Self {
        Self {
            task: handle.task().to_string(),
            job: handle.job(),
            admission: handle.admission(),
            core: handle,
            outcome: Arc::new(Outcome::default()),
            converted: Mutex::new(None),
        }
    }

    /// Waits at most `slice` for the outcome (call without the GIL); whether it is there.
    fn wait_slice(&self, slice: Duration) -> bool {
        let registered = {
            let state = lock(&self.outcome.state);
            if state.fired {
                return true;
            }
            state.registered
        };
        if !registered {
            match self.core.wait_timeout(slice) {
                Err(ServeError::Timeout { .. }) => return false,
                // Taken by another waiting thread, or bound for a done-callback registered
                // meanwhile: it lands in `outcome`.
                Err(ServeError::AlreadyTaken { .. }) => {}
                r => {
                    self.outcome.deliver(r);
                    return true;
                }
            }
        }
        self.outcome.wait_fired(slice)
    }

    /// Waits (in slices without the GIL, checking for signals between them) until the job
    /// resolved or `timeout` ran out (Python's `TimeoutError`, as `Future.result` raises).
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let deadline = timeout.map(seconds).transpose()?.map(|t| Instant::now() + t);
        loop {
            if py.detach(|| self.wait_slice(slice_until(deadline))) {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(not_done(&self.task, self.job, timeout.unwrap_or_default()));
            }
            py.check_signals()?;
        }
    }

    /// The outcome as Python objects (converted once); the job must have resolved.
    fn outcome(&self, py: Python<'_>) -> PyResult<Result<Py<JobResult>, PyErr>> {
        let mut converted = lock(&self.converted);
        if converted.is_none() {
            let raw = lock(&self.outcome.state).raw.take();
            let raw = raw.ok_or_else(|| PyRuntimeError::new_err("the job has not resolved"))?;
            *converted = Some(match raw {
                Ok(r) => Ok(Py::new(py, JobResult::new(py, r)?)?),
                Err(e) => Err(serve_error(e)),
            });
        }
        Ok(match converted.as_ref().expect("converted above") {
            Ok(r) => Ok(r.clone_ref(py)),
            Err(e) => Err(e.clone_ref(py)),
        })
    }
}

#[pymethods]
impl JobHandle {
    /// The task's name.
    #[getter]
    fn task(&self) -> &str {
        &self.task
    }

    /// The job's index within its task.
    #[getter]
    fn job(&self) -> u64 {
        self.job
    }

    /// What the submission became: ("released", release_ns), ("delayed", release_ns) or
    /// ("rejected", earliest_ns).
    #[getter]
    fn admission(&self) -> (&'static str, Time) {
        match self.admission {
            Admission::Released { release } => ("released", release),
            Admission::Delayed { release, .. } => ("delayed", release),
            Admission::Rejected { earliest } => ("rejected", earliest),
        }
    }

    /// Whether the job has resolved (with a result or an error).
    fn done(&self) -> bool {
        lock(&self.outcome.state).fired || self.core.is_done()
    }

    /// Whether the job is still pending (admitted and not resolved), as `Future.running`.
    fn running(&self) -> bool {
        !self.done()
    }

    /// Always False: a job the server admitted runs to its end (its deadline depends on it
    /// being accounted for); `server.stop("cancel")` cancels jobs that have not run, and their
    /// handles then raise `StoppedError`.
    fn cancel(&self) -> bool {
        false
    }

    /// Always False (see `cancel`).
    fn cancelled(&self) -> bool {
        false
    }

    /// Waits (Ctrl-C interrupts it) for the job and returns its `JobResult`, the same object on
    /// every call, or raises its error: `JobError` (a failed stage or source, with the Python
    /// traceback of a raising source), `StoppedError` (cancelled by stop), `RejectedError` (too
    /// early); `TimeoutError` after `timeout` seconds (the handle can be waited on again).
    #[pyo3(signature = (timeout=None))]
    fn result(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<JobResult>> {
        self.wait(py, timeout)?;
        self.outcome(py)?
    }

    /// Waits as `result` does and returns the job's exception, or None if it succeeded.
    #[pyo3(signature = (timeout=None))]
    fn exception(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        self.wait(py, timeout)?;
        Ok(self.outcome(py)?.err().map(|e| e.value(py).clone().into_any().unbind()))
    }

    /// Calls `fn(handle)` once the job resolves: on the server's delivery thread, or on the
    /// thread whose `result()` took it, or here at once if it has; `fn` may call `handle.result()`. A raising callback is reported with
    /// `sys.unraisablehook` and does not stop the server.
    fn add_done_callback(slf: &Bound<'_, Self>, callback: Py<PyAny>) {
        let this = slf.get();
        let mut state = lock(&this.outcome.state);
        if state.fired {
            drop(state);
            call_done_callback(slf.py(), &callback, slf.as_any());
            return;
        }
        state.callbacks.push(callback);
        if state.owner.is_none() {
            state.owner = Some(slf.clone().unbind());
        }
        let register = !std::mem::replace(&mut state.registered, true);
        drop(state);
        if register {
            // From now on the delivery thread resolves it (or this thread at once, if it ended).
            let delivered = this.outcome.clone();
            this.core.on_complete(move |r| {
                // Taken by a waiting thread, which delivers it.
                if !matches!(r, Err(ServeError::AlreadyTaken { .. })) {
                    delivered.deliver(r)
                }
            });
        }
    }

    /// `await handle` in a coroutine: the result, or the job's exception raised.
    fn __await__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("lalarand._aio")?.call_method1("await_handle", (slf,))
    }

    fn __repr__(&self) -> String {
        let (kind, at) = self.admission();
        format!(
            "<JobHandle {} #{}: {kind} at {:.3} ms, {}>",
            self.task,
            self.job,
            at as f64 / 1e6,
            if self.done() { "done" } else { "pending" }
        )
    }
}

fn call_done_callback(py: Python<'_>, callback: &Py<PyAny>, handle: &Bound<'_, PyAny>) {
    if let Err(e) = callback.call1(py, (handle,)) {
        e.write_unraisable(py, Some(callback.bind(py)));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn seconds(s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| PyValueError::new_err(format!("timeout {s} is not a number of seconds >= 0")))
}

/// A periodic task's latest-value slot: `put(array)` makes `array` the input of the next
/// release (replacing one no release took).
#[pyclass(module = "lalarand", frozen)]
pub struct InputSlot {
    slot: CoreSlot,
    expected: String,
}

#[pymethods]
impl InputSlot {
    /// Makes `array` (float32, the task's input shape) the latest input; shared, not copied.
    fn put(&self, py: Python<'_>, array: &Bound<'_, PyAny>) -> PyResult<()> {
        let input = to_input(self.slot.task(), || self.expected.clone(), array).map_err(serve_error)?;
        py.detach(|| self.slot.put(input)).map_err(serve_error)
    }

    #[getter]
    fn task(&self) -> &str {
        self.slot.task()
    }
}

/// The results of a periodic task, oldest first (a bounded queue: the oldest are dropped and
/// counted when nobody reads them).
#[pyclass(module = "lalarand", frozen)]
pub struct ResultStream {
    stream: CoreStream,
}

/// What a sliced wait on a result stream found.
enum Next {
    Item(Result<CoreResult, ServeError>),
    /// The server stopped and every result was read.
    Closed,
    TimedOut,
}

impl ResultStream {
    /// The next result, waiting at most `timeout` (None: forever) in slices without the GIL,
    /// checking for signals between them.
    fn wait_next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Next> {
        let deadline = timeout.map(seconds).transpose()?.map(|t| Instant::now() + t);
        loop {
            let slice = slice_until(deadline);
            let started = Instant::now();
            if let Some(r) = py.detach(|| self.stream.recv_timeout(slice)) {
                return Ok(Next::Item(r));
            }
            // `recv_timeout` returns None before its slice ran out only when the stream closed.
            if started.elapsed() < slice {
                return Ok(Next::Closed);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Next::TimedOut);
            }
            py.check_signals()?;
        }
    }
}

#[pymethods]
impl ResultStream {
    /// The next result (waiting at most `timeout` seconds, forever with None; Ctrl-C interrupts
    /// it); None when the server stopped and every result was read, or on timeout. A failed
    /// job raises its error.
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<JobResult>> {
        match self.wait_next(py, timeout)? {
            Next::Item(r) => JobResult::new(py, r.map_err(serve_error)?).map(Some),
            Next::Closed | Next::TimedOut => Ok(None),
        }
    }

    /// `for result in stream:` yields every result until the server stopped and every result
    /// was read; a failed job raises its error (the loop can be entered again after it).
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<JobResult>> {
        match self.wait_next(py, None)? {
            Next::Item(r) => JobResult::new(py, r.map_err(serve_error)?).map(Some),
            Next::Closed | Next::TimedOut => Ok(None),
        }
    }

    /// `async for result in stream:` as `for`, each wait on a worker thread of the running loop.
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("lalarand._aio")?.call_method1("stream_anext", (slf,))
    }

    /// For `async for`: the next result within `timeout` seconds, None on timeout, False once
    /// the stream ended.
    fn _poll<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        use pyo3::IntoPyObjectExt;
        match self.wait_next(py, Some(timeout))? {
            Next::Item(r) => Bound::new(py, JobResult::new(py, r.map_err(serve_error)?)?).map(|b| b.into_any()),
            Next::Closed => false.into_bound_py_any(py),
            Next::TimedOut => Ok(py.None().into_bound(py)),
        }
    }

    /// Every result waiting now, oldest first, without blocking; a failed job is its
    /// exception object in the list.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = py.detach(|| self.stream.drain());
        let list = PyList::empty(py);
        for r in items {
            match r {
                Ok(r) => list.append(Py::new(py, JobResult::new(py, r)?)?)?,
                Err(e) => list.append(serve_error(e).value(py))?,
            }
        }
        Ok(list)
    }

    #[getter]
    fn task(&self) -> &str {
        self.stream.task()
    }
}

/// A running server: the system's tasks served under the proven schedule. Start it with
/// `lalarand.serve(...)`; use it as a context manager to stop it on exit.
#[pyclass(module = "lalarand", frozen)]
pub struct Server {
    server: AnyServer,
    /// Whether every worker and the release thread run under SCHED_FIFO.
    realtime: bool,
    /// `serve(calibration=...)` on a server whose tasks can change: every load's admitted mode
    /// is measured end to end too.
    checked: Option<CheckedModes>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stopping joins threads that may be waiting for the GIL (a source callable, a
        // done-callback): let them have it.
        Python::attach(|py| {
            py.detach(|| {
                let _ = self.server.stop(StopPolicy::Cancel);
            })
        });
    }
}

#[pymethods]
impl Server {
    /// Submits `array` (float32, the task's input shape; copied here, so the array can be
    /// reused at once) as a job of sporadic task `task`. A model with several inputs takes a
    /// dict `{name: array}` (as onnxruntime's `run`), each array of the input's dtype (float32,
    /// int64, int32, uint8 or bool).
    /// Returns at once with a `JobHandle`. Raises `InputError` (unknown task, wrong shape or
    /// dtype), `StoppedError` (after stop) or `RejectedError` (backlog full); a submission
    /// before the task's minimum inter-arrival time waits for its legal release or is rejected,
    /// as the task's `early` policy says (see the handle's `admission`).
    fn submit(&self, py: Python<'_>, task: &str, array: &Bound<'_, PyAny>) -> PyResult<JobHandle> {
        let input = to_input(task, || expected_shape(&self.server, task), array).map_err(serve_error)?;
        py.detach(|| self.server.submit(task, input).map(JobHandle::new)).map_err(serve_error)
    }

    /// `submit` then `result(timeout)`: blocks until the job resolves (without the GIL; Ctrl-C
    /// interrupts the wait, and the job still resolves inside the server).
    #[pyo3(signature = (task, array, timeout=None))]
    fn infer(&self, py: Python<'_>, task: &str, array: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<JobResult> {
        let input = to_input(task, || expected_shape(&self.server, task), array).map_err(serve_error)?;
        let deadline = timeout.map(seconds).transpose()?.map(|t| Instant::now() + t);
        let handle = py.detach(|| self.server.submit(task, input)).map_err(serve_error)?;
        loop {
            match py.detach(|| handle.wait_timeout(slice_until(deadline))) {
                Err(ServeError::Timeout { .. }) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(not_done(task, handle.job(), timeout.unwrap_or_default()));
                    }
                    py.check_signals()?
                }
                result => return JobResult::new(py, result.map_err(serve_error)?),
            }
        }
    }

    /// The latest-value slot of periodic task `task` (served with `lalarand.SLOT`).
    fn slot(&self, task: &str) -> PyResult<InputSlot> {
        let slot = with_server!(&self.server, s => s.input_slot(task)).map_err(serve_error)?;
        Ok(InputSlot { slot, expected: expected_shape(&self.server, task) })
    }

    /// The results of periodic task `task`.
    fn results(&self, task: &str) -> PyResult<ResultStream> {
        let stream = with_server!(&self.server, s => s.results(task)).map_err(serve_error)?;
        Ok(ResultStream { stream })
    }

    /// Live statistics (workers are not paused), as a dict: per task (`tasks`) jobs, misses,
    /// `response_{min,mean,p99,max}_ns`, `bound_ns`, `deadline_ns`, `period_ns`;
    /// `dispatch_latency`, `handoff` and `release_jitter` (`samples`, `median_ns`, `p99_ns`,
    /// `max_ns`), `overruns`, `stalls` (`*_ns`), `uptime_ns`, `realtime`, `stopped`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = py.detach(|| with_server!(&self.server, s => serde_json::to_value(s.stats())));
        json_to_py(py, &with_units(stats.map_err(|e| PyValueError::new_err(e.to_string()))?))
    }

    /// The last `trace_window_ms` of stage executions as a Chrome/Perfetto trace (a dict to
    /// `json.dump`), or None when the server keeps no trace.
    fn trace<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let trace = py.detach(|| with_server!(&self.server, s => s.chrome_trace()));
        trace.map(|t| json_to_py(py, &t)).transpose()
    }

    /// Stops: "drain" lets every admitted job end, "cancel" cancels what has not run. Resolves
    /// every pending handle, joins every thread and returns the final statistics (the dict
    /// `stats()` returns, with `policy` and `every_job_accounted`: every admitted job resolved);
    /// the same dict again on a later call.
    #[pyo3(signature = (policy="drain"))]
    fn stop<'py>(&self, py: Python<'py>, policy: &str) -> PyResult<Bound<'py, PyAny>> {
        let policy = match policy {
            "drain" => StopPolicy::Drain,
            "cancel" => StopPolicy::Cancel,
            other => return Err(PyValueError::new_err(format!("stop policy {other:?}: use \"drain\" or \"cancel\""))),
        };
        let report = py.detach(|| self.server.stop(policy)).map_err(serve_error)?;
        let mut stats = serde_json::to_value(&report.stats).map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let serde_json::Value::Object(map) = &mut stats {
            map.insert("policy".into(), serde_json::to_value(report.policy).unwrap_or_default());
            map.insert("every_job_accounted".into(), report.every_job_accounted.into());
        }
        json_to_py(py, &with_units(stats))
    }

    /// Loads task `name` while the server serves: `profile` (a `Profile`, or the path of its
    /// JSON), `model` (its ONNX file; default `<profile folder>/<profile model>.onnx`; none
    /// with `busy=True`), `period_ms` (its minimum inter-arrival time), `deadline_ms` (default:
    /// the period) and `priority` ("rate-monotonic", "deadline-monotonic" or a rank, 0 the
    /// highest). Admitted only if the analysis proves every task under a new allocation within
    /// the accuracy budget; then the running jobs drain and the new mode starts
    /// (docs/runtime.md, "Mode changes"). Returns the change's report. Raises
    /// `AdmissionError` (name taken, a task that would miss and by how much, the accuracy
    /// budget), `ValueError` (an argument, named: a model that does not match its profile, a
    /// missing file), `ServerError` (a server whose task set cannot change); a refusal changes
    /// nothing.
    ///
    /// On a server started with `serve(calibration=...)`, the admitted mode's int8 layers are
    /// also measured end to end, on the running tasks' inputs and `calibration` (the path of
    /// this task's inputs, as `serve` takes them), and over the budget the load is refused
    /// (`AdmissionError`); a load that gives the new task int8 layers needs `calibration`.
    #[pyo3(signature = (name, *, profile, period_ms, model=None, deadline_ms=None, priority=None, calibration=None))]
    #[allow(clippy::too_many_arguments)]
    fn load<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        profile: &Bound<'py, PyAny>,
        period_ms: f64,
        model: Option<PathBuf>,
        deadline_ms: Option<f64>,
        priority: Option<&Bound<'py, PyAny>>,
        calibration: Option<PathBuf>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = crate::modes::LoadArgs { name, profile, period_ms, model, deadline_ms, priority, calibration };
        let report = crate::modes::load(py, &self.server, self.checked.as_ref(), request)?;
        json_to_py(py, &report)
    }

    /// Unloads task `name` (always admitted: the other tasks' bounds cannot grow); its jobs in
    /// flight finish first. Returns the change's report; `AdmissionError` for a task that does
    /// not run.
    fn unload<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let report = crate::modes::unload(py, &self.server, self.checked.as_ref(), name)?;
        json_to_py(py, &report)
    }

    /// The tasks' names, in task set order.
    #[getter]
    fn tasks(&self) -> Vec<String> {
        with_server!(&self.server, s => s.task_names().to_vec())
    }

    /// The input shape task `task` takes, as text (`*` for a free dimension).
    fn input_shape(&self, task: &str) -> PyResult<String> {
        with_server!(&self.server, s => s.input_spec(task).map(|spec| spec.shape_text())).map_err(serve_error)
    }

    /// Nanoseconds since the server's time 0.
    fn now_ns(&self) -> Time {
        with_server!(&self.server, s => s.now())
    }

    /// Whether the server runs real-time: every worker and the release thread under
    /// SCHED_FIFO. False with `realtime=False`, and where the OS refused SCHED_FIFO (`serve`
    /// then warned with a `RuntimeWarning`).
    #[getter]
    fn realtime(&self) -> bool {
        self.realtime
    }

    /// Whether the server was stopped.
    #[getter]
    fn stopped(&self) -> bool {
        with_server!(&self.server, s => s.is_stopped())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Stops on leaving the block: draining after a normal exit, cancelling after an exception.
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.stop(py, if exc_type.is_some() { "cancel" } else { "drain" })?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let names = self.tasks();
        format!("<Server: tasks {}{}>", names.join(", "), if self.stopped() { ", stopped" } else { "" })
    }
}

/// For the overhead benchmarks (bench/infer_overhead.py, bench/call_overhead.py): `n` Rust
/// `Server::infer` calls of task `task` on a Rust-owned zero input of `shape`, `gap_s` seconds
/// apart (so that each is released at once), timed around the call alone, without the GIL;
/// per call (nanoseconds the call took, the job's response time).
#[pyfunction]
pub fn _bench_rust_infer(
    py: Python<'_>,
    server: &Server,
    task: &str,
    shape: Vec<usize>,
    n: usize,
    gap_s: f64,
) -> PyResult<Vec<(u64, Time)>> {
    let gap = seconds(gap_s)?;
    let values: usize = shape.iter().product();
    let input = Input::from_vec(shape, vec![0.0; values]).map_err(PyValueError::new_err)?;
    py.detach(|| {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            std::thread::sleep(gap);
            let started = Instant::now();
            let result = server.server.submit(task, input.clone()).and_then(|h| h.wait());
            let took = started.elapsed().as_nanos() as u64;
            times.push((took, result?.timing.response));
        }
        Ok(times)
    })
    .map_err(serve_error)
}

/// Marks a periodic task whose inputs come from a latest-value slot (`Server.slot(task)`).
#[pyclass(module = "lalarand", frozen)]
pub struct Slot;

#[pymethods]
impl Slot {
    fn __repr__(&self) -> &'static str {
        "lalarand.SLOT"
    }
}

/// Starts a server for `system` under `allocation` (refused, like `lalarand run`, when the
/// analysis cannot prove it unless `force`).
///
/// `models` maps a task name (or a profile's model name) to its ONNX model; a task without one
/// uses `<its profile's folder>/<model>.onnx`. Each model must be the file its profile measured
/// (sha256) with the profile's stages; int8 stages are the profiled ones.
///
/// `periodic` maps a task name to its input source: a callable `f(job_index) -> array | None`
/// (called on the task's own source thread ahead of each release; None is "nothing new"; a
/// raising callable fails that job with its traceback), or `lalarand.SLOT` (the application
/// puts frames with `server.slot(task).put(array)`). Every other task is sporadic (`submit`,
/// `infer`). `stale`: what a periodic release with nothing new does, "reuse" the last input or
/// "skip". `early`: a sporadic submission before the task's minimum inter-arrival time "wait"s
/// for its legal release or is "reject"ed. `late`: a job still running at its deadline
/// "continue"s or is "abort"ed at its next stage boundary.
///
/// `realtime`: True runs the workers and the release thread under SCHED_FIFO where the OS
/// allows it, and warns (`RuntimeWarning`) where it refuses; "required" refuses to start
/// instead; False runs at normal priority. `server.realtime` says which the server got.
///
/// `busy=True` runs each stage as a busy wait of its planned time and echoes the input as the
/// output "output" (no models needed: a stand-in with known times).
///
/// `calibration` maps a task name to the path of its inputs (a `.npy` array, a folder of
/// images, raw fp32 or a labeled CSV): the allocation's int8 layers are measured end to end on
/// them against `budget` (percentage points; the default budget where not given) before the
/// server starts, and over it the start is refused (`ServerError`). On a server whose tasks
/// can change, every `Server.load` is measured the same way.
#[pyfunction]
#[pyo3(signature = (system, allocation, models=None, *, periodic=None, busy=false, stale="reuse", early="wait", late="continue", force=false, realtime=RealtimeArg::On, max_backlog=4, results_capacity=64, trace_window_ms=None, drain_timeout_ms=10_000.0, warm_up=true, calibration=None, budget=None))]
#[pyo3(
    text_signature = "(system, allocation, models=None, *, periodic=None, busy=False, stale='reuse', early='wait', late='continue', force=False, realtime=True, max_backlog=4, results_capacity=64, trace_window_ms=None, drain_timeout_ms=10000.0, warm_up=True, calibration=None, budget=None)"
)]
#[allow(clippy::too_many_arguments)]
pub fn serve(
    py: Python<'_>,
    system: &System,
    allocation: &Allocation,
    models: Option<HashMap<String, PathBuf>>,
    periodic: Option<&Bound<'_, PyDict>>,
    busy: bool,
    stale: &str,
    early: &str,
    late: &str,
    force: bool,
    realtime: RealtimeArg,
    max_backlog: usize,
    results_capacity: usize,
    trace_window_ms: Option<f64>,
    drain_timeout_ms: f64,
    warm_up: bool,
    calibration: Option<HashMap<String, PathBuf>>,
    budget: Option<f64>,
) -> PyResult<Server> {
    // Before any server thread starts: the real-time fallback's warning is logged by the first
    // thread refused SCHED_FIFO.
    crate::logs::forward_to_python();
    let stale = match stale {
        "reuse" => StalePolicy::Reuse,
        "skip" => StalePolicy::Skip,
        other => return Err(PyValueError::new_err(format!("stale {other:?}: use \"reuse\" or \"skip\""))),
    };
    let early = match early {
        "wait" => EarlyPolicy::Wait,
        "reject" => EarlyPolicy::Reject,
        other => return Err(PyValueError::new_err(format!("early {other:?}: use \"wait\" or \"reject\""))),
    };
    let late = match late {
        "continue" => LatePolicy::Continue,
        "abort" => LatePolicy::Abort,
        other => return Err(PyValueError::new_err(format!("late {other:?}: use \"continue\" or \"abort\""))),
    };
    let ms = |name: &str, v: f64| -> PyResult<Time> {
        if v.is_finite() && v >= 0.0 {
            Ok(lalarand_model::ms_to_time(v))
        } else {
            Err(PyValueError::new_err(format!("{name} {v} is not a number of milliseconds >= 0")))
        }
    };
    let config = ServeConfig {
        force,
        realtime: realtime != RealtimeArg::Off,
        late,
        max_backlog,
        results_capacity,
        trace_window: trace_window_ms.map(|v| ms("trace_window_ms", v)).transpose()?,
        drain_timeout: ms("drain_timeout_ms", drain_timeout_ms)?,
        early,
        warm_up,
        ..ServeConfig::default()
    };
    let core_system = system.inner.clone();
    let alloc = allocation.for_system(&core_system)?.clone();
    let mut sources: Vec<(String, Source)> = Vec::new();
    // The expected shape for the callables' messages, known once the server started.
    let mut shapes: Vec<(String, Arc<OnceLock<String>>)> = Vec::new();
    if let Some(periodic) = periodic {
        for (name, source) in periodic.iter() {
            let name: String = name.extract()?;
            let source = if source.is_instance_of::<Slot>() {
                Source::Slot
            } else if source.is_callable() {
                let shape = Arc::new(OnceLock::new());
                shapes.push((name.clone(), shape.clone()));
                Source::Callback(Box::new(python_source(name.clone(), source.clone().unbind(), shape)))
            } else {
                return Err(PyValueError::new_err(format!(
                    "periodic[{name:?}]: a callable f(job) -> array | None, or lalarand.SLOT"
                )));
            };
            sources.push((name, source));
        }
    }
    // Every task sporadic and the allocation proven: tasks can load and unload (`Server.load`).
    let loadable = if sources.is_empty() { Proven::new((*core_system).clone(), alloc.clone()).ok() } else { None };
    if busy && calibration.is_some() {
        return Err(PyValueError::new_err(
            "serve(calibration=...): a busy server runs no models, so there is no int8 to check; fix: leave calibration out, or serve the models (busy=False)",
        ));
    }
    let mut checked = None;
    let server = if busy {
        let plan = lalarand_model::ExecutionPlan::new(&core_system, &alloc).map_err(crate::errors::format_error)?;
        let exec = BusyWait::from_plan(&plan, &core_system.platform, BusyTime::Wcet);
        match loadable {
            Some(proven) => AnyServer::BusyModes(
                py.detach(|| ModeServer::start(proven, exec, config, AdmissionOptions::default()))
                    .map_err(serve_error)?,
            ),
            None => {
                let builder = CoreServer::builder(&core_system, &alloc, exec).config(config);
                AnyServer::Busy(py.detach(|| start(builder, sources, stale)).map_err(serve_error)?)
            }
        }
    } else {
        let models = models.unwrap_or_default();
        check_model_keys(&core_system, &models)?;
        let tasks_file = system.tasks_file.clone().unwrap_or_default();
        let paths = model_paths(&core_system, &tasks_file, &models).map_err(engine_error)?;
        if let Some(calibration) = &calibration {
            let (budget, checks) =
                check_end_to_end(py, &core_system, &alloc, system.tasks_file.as_deref(), calibration, &models, budget)?;
            if loadable.is_some() {
                let tasks = core_system.tasks.iter().zip(checks).filter_map(|(t, c)| Some((t.name.clone(), c?)));
                checked = Some(CheckedModes::new(budget, tasks, CHECK_WORDS));
            }
        }
        // Loading and warming up the models takes a while: without the GIL.
        let exec = py.detach(|| EngineExecutor::new(&core_system, &alloc, &paths)).map_err(engine_error)?;
        match loadable {
            Some(proven) => AnyServer::EngineModes(
                py.detach(|| ModeServer::start(proven, exec, config, AdmissionOptions::default()))
                    .map_err(serve_error)?,
            ),
            None => {
                let builder = CoreServer::builder(&core_system, &alloc, exec).config(config);
                AnyServer::Engine(py.detach(|| start(builder, sources, stale)).map_err(serve_error)?)
            }
        }
    };
    for (name, shape) in shapes {
        let _ = shape.set(expected_shape(&server, &name));
    }
    // Every worker asked for SCHED_FIFO as it started (the warm-up ran on each); the release
    // thread as it started.
    let granted = realtime != RealtimeArg::Off && with_server!(&server, s => s.stats().realtime);
    let server = Server { server, realtime: granted, checked };
    if realtime != RealtimeArg::Off && !granted {
        let refused = "the OS refused SCHED_FIFO (no CAP_SYS_NICE and RLIMIT_RTPRIO is 0, as in most containers), \
                       so the server runs at normal priority and a loaded machine can delay its jobs past their bounds";
        let fix = "run as root or with CAP_SYS_NICE, or raise RLIMIT_RTPRIO (ulimit -r 99)";
        if realtime == RealtimeArg::Required {
            py.detach(|| {
                let _ = server.server.stop(StopPolicy::Cancel);
            });
            return Err(crate::errors::ServerError::new_err(format!(
                "cannot start the server: realtime=\"required\" but {refused}; fix: {fix}, or pass realtime=True to accept the fallback"
            )));
        }
        let warning = std::ffi::CString::new(format!(
            "lalarand.serve: {refused}; fix: {fix}, or pass realtime=False to run at normal priority without this warning \
             (realtime=\"required\" refuses to start instead)"
        ))?;
        PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &warning, 1)?;
    }
    Ok(server)
}

/// `serve(realtime=...)`: True (SCHED_FIFO where the OS allows it, else a `RuntimeWarning`),
/// False (normal priority), or "required" (refuse to start without SCHED_FIFO).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RealtimeArg {
    On,
    Off,
    Required,
}

impl<'py> FromPyObject<'_, 'py> for RealtimeArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(on) = obj.extract::<bool>() {
            return Ok(if on { Self::On } else { Self::Off });
        }
        match obj.extract::<String>().as_deref() {
            Ok("required") => Ok(Self::Required),
            _ => Err(PyValueError::new_err(format!("realtime={}: use True, False or \"required\"", obj.str()?))),
        }
    }
}

fn start<E: lalarand_runtime::StageExecutor>(
    mut builder: ServerBuilder<E>,
    sources: Vec<(String, Source)>,
    stale: StalePolicy,
) -> Result<CoreServer<E>, ServeError> {
    for (name, source) in sources {
        builder = builder.periodic(&name, source, stale);
    }
    builder.start()
}

/// Every key of `models` names a task or a profile's model: a typo would otherwise fall back to
/// the default path and fail there, naming a file the caller never meant.
fn check_model_keys(system: &lalarand_model::System, models: &HashMap<String, PathBuf>) -> PyResult<()> {
    let known = |key: &str| system.tasks.iter().any(|t| t.name == key || t.dnn.model == key);
    let mut unknown: Vec<&String> = models.keys().filter(|k| !known(k)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    let tasks: Vec<&str> = system.tasks.iter().map(|t| t.name.as_str()).collect();
    let mut model_names: Vec<&str> = system.tasks.iter().map(|t| t.dnn.model.as_str()).collect();
    model_names.dedup();
    Err(PyValueError::new_err(format!(
        "serve(models=...): {} names no task and no profile's model; fix: key models by a task name ({}) or a model name ({}), e.g. models={{{:?}: \"model.onnx\"}}",
        unknown.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", "),
        tasks.join(", "),
        model_names.join(", "),
        tasks.first().copied().unwrap_or_default(),
    )))
}

/// How this package's refusals name the loaded task's inputs and the budget.
const CHECK_WORDS: CheckWords = CheckWords { inputs: "Server.load(calibration=...)", budget: "serve(budget=...)" };

/// `serve(calibration=...)`: the allocation's int8 measured end to end against `budget` (the
/// default accuracy budget where not given) before the server starts; over it, refused. Returns
/// the budget and each task's check, for the loads to come.
fn check_end_to_end(
    py: Python<'_>,
    system: &lalarand_model::System,
    alloc: &lalarand_model::Allocation,
    tasks_file: Option<&std::path::Path>,
    calibration: &HashMap<String, PathBuf>,
    models: &HashMap<String, PathBuf>,
    budget: Option<f64>,
) -> PyResult<(f64, Vec<Option<TaskCheck>>)> {
    let budget = budget.unwrap_or(lalarand_alloc::AllocOptions::default().accuracy_budget);
    if !(budget.is_finite() && budget >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "budget {budget} is not a finite accuracy budget >= 0 (percentage points)"
        )));
    }
    let checks = crate::checked::task_checks(py, system, tasks_file, calibration, Some(models.clone()))?;
    let check = py
        .detach(|| {
            lalarand_engine::end_to_end::check_allocation(
                system,
                alloc,
                budget,
                &checks.iter().map(Option::as_ref).collect::<Vec<_>>(),
                &lalarand_engine::ExecConfig::default(),
            )
        })
        .map_err(engine_error)?;
    if !check.within_budget {
        return Err(crate::errors::ServerError::new_err(format!(
            "cannot start the server: the allocation's int8 layers cost {:.3} pp measured end to end (the per-stage sum estimated {:.3}), over the budget of {budget} pp; fix: allocate with System.allocate(..., budget={budget}, calibration=...), which moves int8 stages back to fp32 until the measured cost is within, or raise budget",
            check.measured_pp, check.estimated_pp
        )));
    }
    Ok((budget, checks))
}

/// The engine's errors (a model missing, changed since profiling, not matching its profile)
/// refuse the start, with the engine's message; its fixes name the command line's `--models`,
/// said here as the keyword argument.
fn engine_error(err: lalarand_engine::error::EngineError) -> PyErr {
    use lalarand_engine::error::EngineError;
    let message = match err {
        EngineError::Serving { task, problem, fix } => {
            let fix = fix
                .replace(
                    &format!("--models {task}=MODEL.onnx"),
                    &format!("serve(..., models={{{task:?}: \"path/to/model.onnx\"}})"),
                )
                .replace("point --models at", "point serve(models=...) at");
            format!("task {task:?}: {problem}; fix: {fix}")
        }
        other => other.to_string(),
    };
    crate::errors::ServerError::new_err(format!("cannot start the server: {message}"))
}

/// A Python callable as a periodic task's source: called with the job index on the task's
/// source thread (taking the GIL there); its array is the job's input, None is "nothing new",
/// an exception fails the job with the formatted traceback.
fn python_source(
    task: String,
    callable: Py<PyAny>,
    expected: Arc<OnceLock<String>>,
) -> impl FnMut(u64) -> Result<Option<Input>, String> + Send + 'static {
    move |job| {
        Python::attach(|py| {
            let value = callable.call1(py, (job,)).map_err(|e| traceback_text(py, &e))?;
            let value = value.bind(py);
            if value.is_none() {
                return Ok(None);
            }
            let shape = expected.get().map_or("the task's input shape", |s| s.as_str());
            to_input(&task, || shape.to_string(), value).map(Some).map_err(|e| e.to_string())
        })
    }
}

/// The exception with its Python traceback, as `traceback.format_exception` writes it.
fn traceback_text(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        let lines = tb.call_method1("format_exception", (err.get_type(py), err.value(py), err.traceback(py)))?;
        lines.extract::<Vec<String>>()
    });
    match formatted {
        Ok(lines) => lines.concat().trim_end().to_string(),
        Err(_) => err.to_string(),
    }
}

/// The server's statistics with the unit in every time's name, as everywhere in the Python
/// API: the library's `response_p99`, `bound`, `uptime`, a latency's `median`... are
/// nanoseconds, named `response_p99_ns`, `bound_ns`, `uptime_ns`, `median_ns`.
fn with_units(value: serde_json::Value) -> serde_json::Value {
    const NANOSECONDS: [&str; 11] = [
        "response_min",
        "response_mean",
        "response_p99",
        "response_max",
        "bound",
        "deadline",
        "period",
        "median",
        "p99",
        "max",
        "uptime",
    ];
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| {
                let k = if NANOSECONDS.contains(&k.as_str()) { format!("{k}_ns") } else { k };
                (k, with_units(v))
            })
            .collect(),
        serde_json::Value::Array(items) => items.into_iter().map(with_units).collect(),
        other => other,
    }
}

/// serde JSON as Python values (dicts, lists, numbers, strings, None).
pub(crate) fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::IntoPyObjectExt;
    Ok(match value {
        serde_json::Value::Null => py.None().into_bound(py),
        serde_json::Value::Bool(b) => b.into_bound_py_any(py)?,
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_bound_py_any(py)?,
            (_, Some(i)) => i.into_bound_py_any(py)?,
            _ => n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py)?,
        },
        serde_json::Value::String(s) => s.into_bound_py_any(py)?,
        serde_json::Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        serde_json::Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}
