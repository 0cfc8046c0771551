//! The server from Python: `serve(...)` starts a `lalarand_runtime::serve::Server`; numpy
//! arrays go in without a copy and come out as arrays; handles are future-like.
//!
//! The GIL is released around every call that waits or works in Rust (`py.detach`), and is
//! taken only on the threads that run Python code: the caller's, a periodic task's source
//! thread (its callable), and the server's delivery thread (done-callbacks). No resource worker
//! ever takes it, so Python cannot delay a stage.

use crate::errors::serve_error;
use crate::system::{Allocation, System};
use lalarand_engine::serving::{model_paths, EngineExecutor};
use lalarand_model::Time;
use lalarand_runtime::serve::ServerBuilder;
use lalarand_runtime::serve::{
    Admission, EarlyPolicy, Input, InputBuffer, InputSlot as CoreSlot, JobHandle as CoreHandle,
    JobResult as CoreResult, ResultStream as CoreStream, ServeConfig, ServeError, Server as CoreServer, Source,
    StalePolicy, StopPolicy,
};
use lalarand_runtime::{BusyTime, BusyWait, LatePolicy};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// A C-contiguous float32 numpy array lent to the server as a job's input: the array object is
/// kept alive (a reference held) and its memory read in place, so nothing is copied.
struct NumpyBuffer {
    _array: Py<PyArrayDyn<f32>>,
    data: *const f32,
    len: usize,
}

// SAFETY: the pointer is into the memory of the array held by `_array`, which stays allocated
// and in place while the reference is held (numpy refuses to resize an array others refer
// to); the server only reads it. Writing into the array while its job runs is the
// application's race, as documented on `InputBuffer` and `Server.submit`.
unsafe impl Send for NumpyBuffer {}
unsafe impl Sync for NumpyBuffer {}

impl InputBuffer for NumpyBuffer {
    fn as_f32(&self) -> &[f32] {
        // SAFETY: see the Send/Sync impls; `len` elements were contiguous at construction.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// A numpy array as task `task`'s input: a C-contiguous float32 array is shared, any other
/// float32 array copied once into a contiguous buffer; another dtype or type is an error naming
/// the task and what it expects (the server checks the shape).
fn to_input(task: &str, expected: impl FnOnce() -> String, obj: &Bound<'_, PyAny>) -> Result<Input, ServeError> {
    let bad = |problem: String| ServeError::Input { task: task.to_string(), problem };
    let Ok(array) = obj.cast::<PyArrayDyn<f32>>() else {
        let what = match obj.getattr("dtype") {
            Ok(dtype) => format!("an array of dtype {dtype}"),
            Err(_) => format!("a {}", obj.get_type().name().map_or("?".into(), |n| n.to_string())),
        };
        return Err(bad(format!("got {what}, expected a float32 numpy array, shape {}", expected())));
    };
    let dims = array.shape().to_vec();
    let input = if array.is_c_contiguous() {
        let buffer = NumpyBuffer { data: array.data() as *const f32, len: array.len(), _array: array.clone().unbind() };
        Input::new(dims, Arc::new(buffer))
    } else {
        let values: Vec<f32> = array.to_owned_array().iter().copied().collect();
        Input::from_vec(dims, values)
    };
    input.map_err(bad)
}

/// The expected input shape of `task`, as text, for messages.
fn expected_shape(server: &AnyServer, task: &str) -> String {
    with_server!(server, s => s.input_spec(task).map(|spec| spec.shape_text()).unwrap_or_else(|_| "?".into()))
}

/// A server over any of the executors the bindings offer.
enum AnyServer {
    Engine(CoreServer<EngineExecutor>),
    Busy(CoreServer<BusyWait>),
}

/// Runs `$body` with `$s` bound to the concrete server.
macro_rules! with_server {
    ($server:expr, $s:ident => $body:expr) => {
        match $server {
            AnyServer::Engine($s) => $body,
            AnyServer::Busy($s) => $body,
        }
    };
}
use with_server;

/// One job's outputs and timing. Times are nanoseconds since the server's time 0.
#[pyclass(module = "lalarand", frozen, get_all)]
pub struct JobResult {
    pub task: String,
    /// The job's index within its task (0, 1, ...).
    pub job: u64,
    /// The last stage's tensors, fp32, by the model's output names (ordered as the model).
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
            // The vector becomes the array's memory: no copy.
            let array = numpy::PyArray1::from_vec(py, t.data).reshape(t.dims)?;
            outputs.set_item(t.name, array)?;
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

/// Where the result of a handle with done-callbacks goes: the library hands it to one
/// completion callback, kept here for `result()`.
#[derive(Default)]
struct Delivered {
    state: Mutex<DeliveredState>,
    cv: Condvar,
}

#[derive(Default)]
struct DeliveredState {
    result: Option<Result<CoreResult, ServeError>>,
    fired: bool,
    callbacks: Vec<Py<PyAny>>,
}

/// A sporadic job's future: `result(timeout=None)`, `done()`, `add_done_callback(fn)`.
///
/// As in the library, the result is taken once: a second `result()` raises
/// `AlreadyTakenError`.
#[pyclass(module = "lalarand", frozen)]
pub struct JobHandle {
    handle: CoreHandle,
    delivered: Arc<Delivered>,
    /// Whether a done-callback was registered (then the result goes through `delivered`).
    registered: Mutex<bool>,
}

#[pymethods]
impl JobHandle {
    /// The task's name.
    #[getter]
    fn task(&self) -> &str {
        self.handle.task()
    }

    /// The job's index within its task.
    #[getter]
    fn job(&self) -> u64 {
        self.handle.job()
    }

    /// What the submission became: ("released", release_ns), ("delayed", release_ns) or
    /// ("rejected", earliest_ns).
    #[getter]
    fn admission(&self) -> (&'static str, Time) {
        match self.handle.admission() {
            Admission::Released { release } => ("released", release),
            Admission::Delayed { release, .. } => ("delayed", release),
            Admission::Rejected { earliest } => ("rejected", earliest),
        }
    }

    /// Whether the job has resolved.
    fn done(&self) -> bool {
        if *lock(&self.registered) {
            lock(&self.delivered.state).fired
        } else {
            self.handle.is_done()
        }
    }

    /// Waits (without the GIL) for the job and returns its `JobResult`, or raises its error:
    /// `JobError` (a failed stage or source, with the Python traceback of a raising source),
    /// `StoppedError` (cancelled by stop), `RejectedError` (too early), `TimeoutError` after
    /// `timeout` seconds (the handle can be waited on again), `AlreadyTakenError` if taken.
    #[pyo3(signature = (timeout=None))]
    fn result(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<JobResult> {
        let timeout = timeout.map(seconds).transpose()?;
        let outcome = if *lock(&self.registered) {
            py.detach(|| self.wait_delivered(timeout))
        } else {
            py.detach(|| match timeout {
                None => self.handle.wait(),
                Some(t) => self.handle.wait_timeout(t),
            })
        };
        JobResult::new(py, outcome.map_err(serve_error)?)
    }

    /// Calls `fn(handle)` once the job resolves: on the server's delivery thread (or here at
    /// once if it has); `fn` may call `handle.result()`. A raising callback is reported with
    /// `sys.unraisablehook` and does not stop the server.
    fn add_done_callback(slf: &Bound<'_, Self>, callback: Py<PyAny>) -> PyResult<()> {
        let this = slf.get();
        let mut registered = lock(&this.registered);
        let mut state = lock(&this.delivered.state);
        if state.fired {
            drop(state);
            drop(registered);
            call_done_callback(slf.py(), &callback, slf.as_any());
            return Ok(());
        }
        state.callbacks.push(callback);
        drop(state);
        let first = !*registered;
        *registered = true;
        // Released before `on_complete`, which runs the callbacks here at once when the job
        // already resolved, and they may call `done()` or `result()`.
        drop(registered);
        if first {
            let delivered = this.delivered.clone();
            let handle_obj: Py<JobHandle> = slf.clone().unbind();
            this.handle.on_complete(move |r| {
                let callbacks = {
                    let mut state = lock(&delivered.state);
                    state.result = Some(r);
                    state.fired = true;
                    std::mem::take(&mut state.callbacks)
                };
                delivered.cv.notify_all();
                Python::attach(|py| {
                    for cb in callbacks {
                        call_done_callback(py, &cb, handle_obj.bind(py).as_any());
                    }
                });
            });
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        let (kind, at) = self.admission();
        format!(
            "<JobHandle {} #{}: {kind} at {:.3} ms, {}>",
            self.handle.task(),
            self.handle.job(),
            at as f64 / 1e6,
            if self.done() { "done" } else { "pending" }
        )
    }
}

impl JobHandle {
    fn wait_delivered(&self, timeout: Option<Duration>) -> Result<CoreResult, ServeError> {
        let started = std::time::Instant::now();
        let mut state = lock(&self.delivered.state);
        loop {
            if state.fired {
                return state.result.take().unwrap_or_else(|| {
                    Err(ServeError::AlreadyTaken { task: self.handle.task().into(), job: self.handle.job() })
                });
            }
            state = match timeout {
                None => self.delivered.cv.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(t) => {
                    let waited = started.elapsed();
                    if waited >= t {
                        return Err(ServeError::Timeout {
                            task: self.handle.task().into(),
                            job: self.handle.job(),
                            waited: waited.as_nanos() as Time,
                        });
                    }
                    self.delivered.cv.wait_timeout(state, t - waited).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
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

#[pymethods]
impl ResultStream {
    /// The next result (waiting at most `timeout` seconds, forever with None); None when the
    /// server stopped and every result was read, or on timeout. A failed job raises its error.
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<JobResult>> {
        let timeout = timeout.map(seconds).transpose()?;
        let r = py.detach(|| match timeout {
            None => self.stream.recv(),
            Some(t) => self.stream.recv_timeout(t),
        });
        r.map(|r| JobResult::new(py, r.map_err(serve_error)?)).transpose()
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
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stopping joins threads that may be waiting for the GIL (a source callable, a
        // done-callback): let them have it.
        Python::attach(|py| py.detach(|| with_server!(&self.server, s => { let _ = s.stop(StopPolicy::Cancel); })));
    }
}

#[pymethods]
impl Server {
    /// Submits `array` (float32, the task's input shape; a contiguous array is shared, not
    /// copied: do not write into it until its job resolved) as a job of sporadic task `task`.
    /// Returns at once with a `JobHandle`. Raises `InputError` (unknown task, wrong shape or
    /// dtype), `StoppedError` (after stop) or `RejectedError` (backlog full); a submission
    /// before the task's minimum inter-arrival time waits for its legal release or is rejected,
    /// as the task's `early` policy says (see the handle's `admission`).
    fn submit(&self, py: Python<'_>, task: &str, array: &Bound<'_, PyAny>) -> PyResult<JobHandle> {
        let input = to_input(task, || expected_shape(&self.server, task), array).map_err(serve_error)?;
        let handle = py.detach(|| with_server!(&self.server, s => s.submit(task, input))).map_err(serve_error)?;
        Ok(JobHandle { handle, delivered: Arc::default(), registered: Mutex::new(false) })
    }

    /// `submit` then `result(timeout)`: blocks (without the GIL) until the job resolves.
    #[pyo3(signature = (task, array, timeout=None))]
    fn infer(&self, py: Python<'_>, task: &str, array: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<JobResult> {
        let input = to_input(task, || expected_shape(&self.server, task), array).map_err(serve_error)?;
        let timeout = timeout.map(seconds).transpose()?;
        let result = py
            .detach(|| {
                with_server!(&self.server, s => match timeout {
                    None => s.infer(task, input),
                    Some(t) => s.submit(task, input).and_then(|h| h.wait_timeout(t)),
                })
            })
            .map_err(serve_error)?;
        JobResult::new(py, result)
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

    /// Live statistics (workers are not paused), as a dict: per task jobs, misses, response
    /// min/mean/p99/max and bound (ns); dispatch latency, overruns, uptime.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = py.detach(|| with_server!(&self.server, s => serde_json::to_value(s.stats())));
        json_to_py(py, &stats.map_err(|e| PyValueError::new_err(e.to_string()))?)
    }

    /// The last `trace_window_ms` of stage executions as a Chrome/Perfetto trace (a dict to
    /// `json.dump`), or None when the server keeps no trace.
    fn trace<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let trace = py.detach(|| with_server!(&self.server, s => s.chrome_trace()));
        trace.map(|t| json_to_py(py, &t)).transpose()
    }

    /// Stops: "drain" lets every admitted job end, "cancel" cancels what has not run. Resolves
    /// every pending handle, joins every thread and returns the final report (a dict; the same
    /// one again on a later call).
    #[pyo3(signature = (policy="drain"))]
    fn stop<'py>(&self, py: Python<'py>, policy: &str) -> PyResult<Bound<'py, PyAny>> {
        let policy = match policy {
            "drain" => StopPolicy::Drain,
            "cancel" => StopPolicy::Cancel,
            other => return Err(PyValueError::new_err(format!("stop policy {other:?}: use \"drain\" or \"cancel\""))),
        };
        let report = py.detach(|| with_server!(&self.server, s => s.stop(policy))).map_err(serve_error)?;
        json_to_py(py, &serde_json::to_value(report).map_err(|e| PyValueError::new_err(e.to_string()))?)
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

/// For the overhead benchmark (bench/infer_overhead.py): `n` Rust `Server::infer` calls of
/// task `task` on a Rust-owned zero input of `shape`, `gap_s` seconds apart (so that each is
/// released at once), timed around the call alone, without the GIL; nanoseconds per call.
#[pyfunction]
pub fn _bench_rust_infer(
    py: Python<'_>,
    server: &Server,
    task: &str,
    shape: Vec<usize>,
    n: usize,
    gap_s: f64,
) -> PyResult<Vec<u64>> {
    let gap = seconds(gap_s)?;
    let values: usize = shape.iter().product();
    let input = Input::from_vec(shape, vec![0.0; values]).map_err(PyValueError::new_err)?;
    py.detach(|| {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            std::thread::sleep(gap);
            let started = std::time::Instant::now();
            let result = with_server!(&server.server, s => s.infer(task, input.clone()));
            times.push(started.elapsed().as_nanos() as u64);
            result?;
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
/// `busy=True` runs each stage as a busy wait of its planned time and echoes the input as the
/// output "output" (no models needed: a stand-in with known times).
#[pyfunction]
#[pyo3(signature = (system, allocation, models=None, *, periodic=None, busy=false, stale="reuse", early="wait", late="continue", force=false, realtime=true, max_backlog=4, results_capacity=64, trace_window_ms=None, drain_timeout_ms=10_000.0, warm_up=true))]
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
    realtime: bool,
    max_backlog: usize,
    results_capacity: usize,
    trace_window_ms: Option<f64>,
    drain_timeout_ms: f64,
    warm_up: bool,
) -> PyResult<Server> {
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
        realtime,
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
    let server = if busy {
        let plan = lalarand_model::ExecutionPlan::new(&core_system, &alloc).map_err(crate::errors::format_error)?;
        let exec = BusyWait::from_plan(&plan, &core_system.platform, BusyTime::Wcet);
        let builder = CoreServer::builder(&core_system, &alloc, exec).config(config);
        AnyServer::Busy(py.detach(|| start(builder, sources, stale)).map_err(serve_error)?)
    } else {
        let tasks_file = system.tasks_file.clone().unwrap_or_default();
        let paths = model_paths(&core_system, &tasks_file, &models.unwrap_or_default()).map_err(engine_error)?;
        // Loading and warming up the models takes a while: without the GIL.
        let exec = py.detach(|| EngineExecutor::new(&core_system, &alloc, &paths)).map_err(engine_error)?;
        let builder = CoreServer::builder(&core_system, &alloc, exec).config(config);
        AnyServer::Engine(py.detach(|| start(builder, sources, stale)).map_err(serve_error)?)
    };
    for (name, shape) in shapes {
        let _ = shape.set(expected_shape(&server, &name));
    }
    Ok(Server { server })
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

/// The engine's errors (a model missing, changed since profiling, not matching its profile)
/// refuse the start, with the engine's message.
fn engine_error(err: lalarand_engine::error::EngineError) -> PyErr {
    crate::errors::ServerError::new_err(format!("cannot start the server: {err}"))
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

/// serde JSON as Python values (dicts, lists, numbers, strings, None).
fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
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
