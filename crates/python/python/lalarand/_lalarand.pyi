"""Type stubs of lalarand's native module (crates/python/src).

Units: every duration's name says its unit. Results and statistics are integer nanoseconds
(``*_ns``), as in the command line's ``--json`` output; arguments are ``*_ms``/``*_us``
(milliseconds/microseconds) as in the files; ``timeout`` is seconds (float), as everywhere in
Python's standard library."""

from os import PathLike
from typing import Any, AsyncIterator, Callable, Generator, Iterator, Literal, Mapping, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, PathLike[str]]

__version__: str

class LalarandError(Exception):
    """Base class of every error lalarand raises; the message is the library's (what, where, fix)."""

class FormatError(LalarandError):
    """A file or a value built in code is malformed or does not fit the system."""

class AllocationError(LalarandError):
    """An allocation policy cannot run on this system."""

class SimulationError(LalarandError):
    """The simulator refused its settings or the plan."""

def policies() -> list[str]:
    """The allocation policies the library has, in the order reports list them."""

def profile(
    model: _Path,
    out: Optional[_Path] = None,
    *,
    input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
    modes: Sequence[Literal["gpu", "cpu-fp32", "cpu-int8"]] = ("gpu", "cpu-fp32", "cpu-int8"),
    calibration: Union[_Path, npt.NDArray[np.float32], Sequence[npt.NDArray[np.float32]], None] = None,
    dataset: Optional[_Path] = None,
    train_per_class: int = 400,
    runs: int = 100,
    min_cold_runs: int = 10,
    warmup: int = 10,
    cores: Sequence[int] = (),
    threads: int = 1,
    margin: float = 1.2,
    warm_cache: bool = False,
    granularity: Literal["layer", "block", "auto"] = "layer",
) -> Profile:
    """Profiles ``model`` stage by stage (as ``lalarand profile``), writes the profile JSON to
    ``out`` (default: beside the model) and returns it. ``calibration``: a file or numpy
    float32 samples of batch 1 (unlabeled inputs); ``dataset``: a labeled CSV that measures
    each stage's int8 accuracy cost."""

def run_stages(
    model: _Path,
    profile: Profile,
    inputs: Union[npt.NDArray[np.float32], Sequence[npt.NDArray[np.float32]]],
    modes: Sequence[str],
    *,
    threads: int = 1,
) -> list[npt.NDArray[np.float32]]:
    """Runs ``model``'s stages as ``profile`` cut them, stage ``i`` in ``modes[i]`` ("cpu-fp32",
    "cpu-int8", "gpu"; "mode@resource" as an allocation's ``layers[task]`` gives them), on every
    sample of ``inputs`` (float32, batch 1); returns the model's output for each. int8 stages are
    rebuilt from the profile's saved calibration. For measuring an allocation's accuracy with
    your own metric::

        outputs = lalarand.run_stages("rec.onnx", profile, samples, result.allocation.layers["ocr"])
    """

def zoo(architecture: str, out: _Path, *, seed: int = 0) -> _Path:
    """Writes a standard architecture with seeded random weights as ONNX (as ``lalarand zoo``)."""

def zoo_architectures() -> list[str]: ...

class Resource:
    """A resource of a platform, as one ``[[resource]]`` table of a platform file; checked at
    once (``ValueError`` naming the argument)."""

    def __init__(
        self,
        name: str,
        kind: Literal["cpu", "gpu"],
        *,
        dispatch_overhead_us: float = 0.0,
        wakeup_overhead_us: float = 0.0,
        cores: Sequence[int] = (),
        threads: Optional[int] = None,
        device: Optional[int] = None,
        accelerator: bool = False,
    ) -> None: ...

class Platform:
    """Resources (GPUs and CPU clusters), each running one layer at a time, non-preemptively."""

    def __init__(self, resources: Sequence[Resource]) -> None: ...
    @staticmethod
    def load(path: _Path) -> Platform: ...
    @staticmethod
    def default() -> Platform:
        """One ``gpu`` and one ``cpu``."""
    @property
    def resources(self) -> list[str]: ...
    def to_toml(self) -> str: ...

class Profile:
    """A DNN's per-layer profile: each layer's worst-case time in every mode it can run in."""

    @staticmethod
    def load(path: _Path) -> Profile: ...
    @staticmethod
    def from_json(text: str) -> Profile: ...
    @staticmethod
    def chain(model: str, layers: Sequence[tuple[str, float, float]]) -> Profile:
        """Layers given as ``(name, gpu_ms, cpu_ms)``."""
    @property
    def model(self) -> str: ...
    @property
    def layers(self) -> list[str]: ...
    def to_json(self) -> str: ...

class Task:
    """A DNN task: periodic, or sporadic with ``period_ms`` as its minimum inter-arrival time;
    checked at once (``ValueError`` naming the argument)."""

    def __init__(
        self,
        name: str,
        profile: Profile,
        period_ms: float,
        *,
        deadline_ms: Optional[float] = None,
        offset_ms: Optional[float] = None,
        priority: Optional[int] = None,
    ) -> None: ...

class TaskInfo:
    name: str
    model: str
    priority: int
    period_ns: int
    deadline_ns: int
    offset_ns: int
    layers: list[str]

class TaskAnalysis:
    name: str
    model: str
    priority: int
    period_ns: int
    deadline_ns: int
    bound_ns: Optional[int]
    job_level_ns: Optional[int]
    segment_level_ns: Optional[int]
    slack_ns: Optional[int]
    estimate_ns: Optional[int]
    schedulable: bool
    layers: int
    int8_layers: int
    accuracy_cost_pp: float
    int8_layers_unknown_cost: int

class ResourceUse:
    name: str
    kind: str
    utilization: float

class Analysis:
    """The analysis of an allocation, as ``lalarand analyze --json`` reports it."""

    schedulable: bool
    accuracy_cost_pp: float
    int8_layers: int
    int8_layers_unknown_cost: int
    resources: list[ResourceUse]
    tasks: list[TaskAnalysis]
    def task(self, name: str) -> TaskAnalysis: ...

class Allocation:
    """A mode and a resource for every layer of every task of the system it was made for."""

    @property
    def layers(self) -> dict[str, list[str]]:
        """Per task name, one ``"mode@resource"`` per layer."""
    def to_toml(self, policy: Optional[str] = None) -> str: ...
    def save(self, path: _Path, policy: Optional[str] = None) -> None: ...

class AllocationResult:
    policy: str
    allocation: Allocation
    analysis: Analysis
    evaluations: int
    complete: bool
    # allocate(calibration=...): the end-to-end check (budget_pp, measured_pp, estimated_pp,
    # within_budget, tasks, repairs), as `lalarand allocate --json` prints it.
    end_to_end: Optional[dict[str, Any]]
    @property
    def schedulable(self) -> bool: ...

class TaskSimulation:
    name: str
    jobs: int
    completed: int
    misses: int
    min_response_ns: Optional[int]
    mean_response_ns: Optional[float]
    max_response_ns: Optional[int]
    oldest_incomplete_ns: Optional[int]
    bound_ns: Optional[int]
    exceeds_bound: bool

class Simulation:
    end_ns: int
    hyperperiod_ns: Optional[int]
    misses: int
    tasks: list[TaskSimulation]
    def task(self, name: str) -> TaskSimulation: ...

class System:
    """A platform with tasks on it."""

    def __init__(
        self,
        platform: Platform,
        tasks: Sequence[Task],
        *,
        priority: Literal["rate-monotonic", "deadline-monotonic", "explicit"] = "rate-monotonic",
    ) -> None: ...
    @staticmethod
    def load(tasks: _Path, platform: Optional[_Path] = None) -> System: ...
    @property
    def platform(self) -> Platform: ...
    @property
    def tasks(self) -> list[TaskInfo]: ...
    def load_allocation(self, path: _Path) -> Allocation: ...
    def allocation(self, layers: dict[str, list[str]]) -> Allocation: ...
    def analyze(self, allocation: Allocation) -> Analysis: ...
    def allocate(
        self,
        policy: str,
        *,
        budget: Optional[float] = None,
        node_limit: Optional[int] = None,
        assume_int8_cost: Optional[float] = None,
        calibration: Optional[Mapping[str, Union[str, PathLike[str]]]] = None,
        models: Optional[Mapping[str, Union[str, PathLike[str]]]] = None,
        accuracy: Optional[Callable[[str, list[Union[_Array, tuple[_Array, ...]]]], float]] = None,
    ) -> AllocationResult:
        """Runs one allocation policy. With ``calibration`` ({task: inputs file}) the chosen
        allocation is checked end to end on those inputs and repaired until its measured cost is
        within ``budget`` (``result.end_to_end``). The cost is label-free by default; with
        ``accuracy`` (``fn(task_name, outputs) -> accuracy in percent``, ``outputs`` one numpy
        array per input, in order, a tuple for a model of several outputs) it is the task's
        accuracy drop from fp32's, in percentage points::

            def top1(task, outputs):
                return 100.0 * np.mean([o.argmax() == y for o, y in zip(outputs, labels)])
            system.allocate("lalarand", budget=1.0, calibration={"digits": "in.f32"}, accuracy=top1)
        """
        ...
    def simulate(
        self,
        allocation: Allocation,
        *,
        horizon_ms: Optional[float] = None,
        execution: Literal["wcet", "uniform", "two-point"] = "wcet",
        min_fraction: float = 0.5,
        wcet_probability: float = 0.5,
        seed: int = 0,
    ) -> Simulation: ...

# ---- serving -------------------------------------------------------------------------------

_Array = npt.NDArray[np.float32]

class ServerError(LalarandError):
    """The server refused to start, or a call does not fit how a task is served."""

class InputError(ServerError):
    """Unknown task, wrong shape or dtype; the message names the task and what it expects."""

class StoppedError(ServerError):
    """The server is stopped, or stopping cancelled the job."""

class RejectedError(ServerError):
    """A submission rejected: too early for its task, or its backlog full."""

class JobError(ServerError):
    """A job failed: a stage, its input source (with the Python traceback), or aborted late."""

class AdmissionError(ServerError):
    """A load or unload refused by admission control: a name taken, an unknown task, a task that
    would miss (which, and by how much), the accuracy budget. Nothing changed."""

class AlreadyTakenError(ServerError):
    """Kept for compatibility: a handle's result is now the same on every call."""

class Slot:
    """The type of ``SLOT``."""

SLOT: Slot
"""Marks a periodic task fed through ``Server.slot(task).put(array)``."""

class JobResult:
    """One job's outputs (the last stage's tensors by the model's output names, each of the
    dtype the model declares) and timing, in nanoseconds since the server's time 0."""

    task: str
    job: int
    outputs: dict[str, _Array]
    submitted_ns: int
    release_ns: int
    start_ns: int
    finish_ns: int
    response_ns: int
    bound_ns: Optional[int]
    deadline_ns: int
    met: bool
    stalled_ns: int
    @property
    def output(self) -> _Array:
        """The single output, when the model has exactly one."""

class JobHandle:
    """A sporadic job's future, behaving as a ``concurrent.futures.Future`` (the result or
    exception is the same object on every call; Ctrl-C interrupts a wait); ``await handle``
    in a coroutine."""

    @property
    def task(self) -> str: ...
    @property
    def job(self) -> int: ...
    @property
    def admission(self) -> tuple[Literal["released", "delayed", "rejected"], int]: ...
    def done(self) -> bool: ...
    def running(self) -> bool:
        """Admitted and not resolved."""
    def cancel(self) -> bool:
        """Always False: an admitted job runs to its end (``Server.stop("cancel")`` cancels
        jobs that have not run; their handles raise ``StoppedError``)."""
    def cancelled(self) -> bool: ...
    def result(self, timeout: Optional[float] = None) -> JobResult:
        """Raises ``TimeoutError`` after ``timeout`` seconds, or the job's error."""
    def exception(self, timeout: Optional[float] = None) -> Optional[ServerError]: ...
    def add_done_callback(self, callback: Callable[[JobHandle], Any]) -> None: ...
    def __await__(self) -> Generator[Any, None, JobResult]: ...

class InputSlot:
    @property
    def task(self) -> str: ...
    def put(self, array: _Array) -> None: ...

class ResultStream:
    """A periodic task's results, oldest first: ``for r in stream`` / ``async for r in stream``
    until the server stopped and every result was read (a failed job raises its error)."""

    @property
    def task(self) -> str: ...
    def next(self, timeout: Optional[float] = None) -> Optional[JobResult]: ...
    def drain(self) -> list[Union[JobResult, ServerError]]: ...
    def __iter__(self) -> Iterator[JobResult]: ...
    def __next__(self) -> JobResult: ...
    def __aiter__(self) -> AsyncIterator[JobResult]: ...
    async def __anext__(self) -> JobResult: ...

class Server:
    """A running server; a context manager that stops it on exit (drain, or cancel after an
    exception)."""

    def submit(self, task: str, array: Union[_Array, Mapping[str, npt.NDArray[Any]]]) -> JobHandle:
        """One float32 array, or for a model with several inputs a dict ``{name: array}`` (as
        onnxruntime's ``run``), each of its input's dtype: float32, int64, int32, uint8, bool."""
    def infer(
        self, task: str, array: Union[_Array, Mapping[str, npt.NDArray[Any]]], timeout: Optional[float] = None
    ) -> JobResult: ...
    def slot(self, task: str) -> InputSlot: ...
    def results(self, task: str) -> ResultStream: ...
    def stats(self) -> dict[str, Any]: ...
    def trace(self) -> Optional[dict[str, Any]]: ...
    def stop(self, policy: Literal["drain", "cancel"] = "drain") -> dict[str, Any]:
        """The final ``stats()``, with ``policy`` and ``every_job_accounted``."""
    @property
    def tasks(self) -> list[str]: ...
    @property
    def realtime(self) -> bool:
        """Every worker and the release thread run under SCHED_FIFO."""
    def load(
        self,
        name: str,
        *,
        profile: Union[Profile, _Path],
        period_ms: float,
        model: Optional[_Path] = None,
        deadline_ms: Optional[float] = None,
        priority: Union[int, Literal["rate-monotonic", "deadline-monotonic"], None] = None,
        calibration: Optional[_Path] = None,
    ) -> dict[str, Any]:
        """Loads a task while serving (every task sporadic, the allocation proven): admitted
        only if the analysis proves the new task set, then drain-then-switch. Returns the
        change's report (``moved_layers``, ``moves``, ``decision_ns``, ``drain_ns``,
        ``to_first_release_ns``, ``bounds_ns``, ``pipelines``, ...). Raises ``AdmissionError``,
        ``ValueError`` naming the argument, or ``ServerError``; a refusal changes nothing. On a
        server started with ``calibration``, the new mode's int8 is measured end to end too,
        ``calibration`` being this task's inputs file (needed when its profile offers
        cpu-int8); over the budget, ``AdmissionError``."""
    def unload(self, name: str) -> dict[str, Any]:
        """Unloads a task (always admitted); its jobs in flight finish first."""
    def input_shape(self, task: str) -> str: ...
    def now_ns(self) -> int: ...
    @property
    def stopped(self) -> bool: ...
    def __enter__(self) -> Server: ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool: ...

def serve(
    system: System,
    allocation: Allocation,
    models: Optional[Mapping[str, _Path]] = None,
    *,
    periodic: Optional[Mapping[str, Union[Callable[[int], Optional[_Array]], Slot]]] = None,
    busy: bool = False,
    stale: Literal["reuse", "skip"] = "reuse",
    early: Literal["wait", "reject"] = "wait",
    late: Literal["continue", "abort"] = "continue",
    force: bool = False,
    realtime: Union[bool, Literal["required"]] = True,
    max_backlog: int = 4,
    results_capacity: int = 64,
    trace_window_ms: Optional[float] = None,
    drain_timeout_ms: float = 10000.0,
    warm_up: bool = True,
    calibration: Optional[Mapping[str, _Path]] = None,
    budget: Optional[float] = None,
) -> Server:
    """Starts a server for ``system`` under ``allocation`` (refused when not proven, unless
    ``force``). ``realtime=True`` warns (``RuntimeWarning``) where the OS refuses SCHED_FIFO,
    ``"required"`` refuses to start instead. A ``models`` key must name a task or a profile's
    model (``ValueError`` otherwise). ``calibration`` ({task: inputs file}) measures the
    allocation's int8 end to end first and refuses (``ServerError``) over ``budget``
    (percentage points, default 1); on a server whose tasks can change, every
    ``Server.load`` too."""
