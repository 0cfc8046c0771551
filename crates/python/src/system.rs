//! The timing core from Python: platforms, profiles, tasks and systems (from the files
//! `lalarand` writes or built in code), allocations, the analysis, the allocators and the
//! simulator.
//!
//! Values built in code go through the same parsers as the files (as the TOML/JSON those files
//! would hold), so they are checked by the library's rules and their errors name the field and
//! the fix exactly as for a file.

use crate::errors::{argument_error, code_format_error, format_error, AllocationError, SimulationError};
use lalarand_alloc::{AllocOptions, Outcome, Policy};
use lalarand_analysis::{analyze, Analysis as CoreAnalysis};
use lalarand_engine::end_to_end::{CostMeasure, LabelFree};
use lalarand_model::examples::chain_profile;
use lalarand_model::{
    ms_to_time, Allocation as CoreAllocation, DnnProfile, ExecutionPlan, LayerProfile, Platform as CorePlatform,
    System as CoreSystem, TaskSet, Time,
};
use lalarand_sim::{simulate, ExecutionTimeModel, Horizon, SimConfig, SimReport};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A resource of a platform, as one `[[resource]]` table of a platform file.
#[pyclass(module = "lalarand", frozen)]
#[derive(Clone)]
pub struct Resource {
    table: toml::Table,
}

#[pymethods]
impl Resource {
    /// A resource: `kind` is "cpu" or "gpu"; the keywords are the platform file's fields
    /// (docs/formats.md): overheads in microseconds, the cores a cpu worker is pinned to, its
    /// intra-op threads, the CUDA device of a gpu, and whether a cpu stands in for the accelerator.
    #[new]
    #[pyo3(signature = (name, kind, *, dispatch_overhead_us=0.0, wakeup_overhead_us=0.0, cores=Vec::new(), threads=None, device=None, accelerator=false))]
    #[pyo3(
        text_signature = "(name, kind, *, dispatch_overhead_us=0.0, wakeup_overhead_us=0.0, cores=(), threads=None, device=None, accelerator=False)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: String,
        kind: String,
        dispatch_overhead_us: f64,
        wakeup_overhead_us: f64,
        cores: Vec<i64>,
        threads: Option<i64>,
        device: Option<i64>,
        accelerator: bool,
    ) -> PyResult<Self> {
        let call = format!("Resource({name:?}, {kind:?})");
        let mut table = toml::Table::new();
        table.insert("name".into(), name.into());
        table.insert("kind".into(), kind.into());
        table.insert("dispatch_overhead_us".into(), dispatch_overhead_us.into());
        table.insert("wakeup_overhead_us".into(), wakeup_overhead_us.into());
        table.insert("cores".into(), toml::Value::Array(cores.into_iter().map(toml::Value::from).collect()));
        if let Some(t) = threads {
            table.insert("threads".into(), t.into());
        }
        if let Some(d) = device {
            table.insert("device".into(), d.into());
        }
        table.insert("accelerator".into(), accelerator.into());
        // Checked now by the platform file's rules, as a platform of this one resource.
        platform_of(std::slice::from_ref(&table)).map_err(|e| argument_error(&call, &e))?;
        Ok(Self { table })
    }

    fn __repr__(&self) -> String {
        format!("Resource({})", inline_table(&self.table))
    }
}

/// A platform of these `[[resource]]` tables, by the platform file's parser.
fn platform_of(tables: &[toml::Table]) -> Result<CorePlatform, lalarand_model::FormatError> {
    let mut doc = toml::Table::new();
    doc.insert("resource".into(), toml::Value::Array(tables.iter().cloned().map(toml::Value::Table).collect()));
    CorePlatform::parse(&toml::to_string(&doc).unwrap_or_default(), Path::new("Platform(...)"))
}

fn inline_table(table: &toml::Table) -> String {
    let fields: Vec<String> = table.iter().map(|(k, v)| format!("{k}={v}")).collect();
    fields.join(", ")
}

/// Resources (GPUs and CPU clusters), each running one layer at a time, non-preemptively.
#[pyclass(module = "lalarand", frozen)]
#[derive(Clone)]
pub struct Platform {
    pub(crate) inner: CorePlatform,
}

#[pymethods]
impl Platform {
    /// A platform of the given resources; checked as a platform file would be.
    #[new]
    fn new(resources: Vec<PyRef<'_, Resource>>) -> PyResult<Self> {
        let tables: Vec<toml::Table> = resources.iter().map(|r| r.table.clone()).collect();
        let inner = platform_of(&tables).map_err(|e| argument_error("Platform(...)", &e))?;
        Ok(Self { inner })
    }

    /// Loads a platform TOML file.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        Ok(Self { inner: CorePlatform::load(&path).map_err(format_error)? })
    }

    /// One `gpu` and one `cpu`: the platform the command line assumes without `--platform`.
    #[staticmethod]
    fn default() -> Self {
        Self { inner: CorePlatform::default_cpu_gpu() }
    }

    /// The resources' names, in file order.
    #[getter]
    fn resources(&self) -> Vec<String> {
        self.inner.resources.iter().map(|r| r.name.clone()).collect()
    }

    /// The platform as a platform file.
    fn to_toml(&self) -> String {
        self.inner.to_toml()
    }

    fn __repr__(&self) -> String {
        let rs: Vec<String> = self.inner.resources.iter().map(|r| format!("{} ({})", r.name, r.kind)).collect();
        format!("<Platform: {}>", rs.join(", "))
    }
}

/// A DNN's per-layer profile: each layer's worst-case time in every mode it can run in.
#[pyclass(module = "lalarand", frozen)]
#[derive(Clone)]
pub struct Profile {
    pub(crate) inner: Arc<DnnProfile>,
    /// The file it was loaded from (absolute): a server finds the model beside it.
    pub(crate) path: Option<PathBuf>,
}

#[pymethods]
impl Profile {
    /// Loads a profile JSON file (as `lalarand profile` writes).
    #[staticmethod]
    pub(crate) fn load(path: PathBuf) -> PyResult<Self> {
        let inner = Arc::new(DnnProfile::load(&path).map_err(format_error)?);
        Ok(Self { inner, path: std::path::absolute(&path).ok() })
    }

    /// Parses profile JSON text.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Self> {
        let inner = Arc::new(DnnProfile::parse(text, Path::new("<Profile.from_json>")).map_err(format_error)?);
        Ok(Self { inner, path: None })
    }

    /// A chain of layers given as `(name, gpu_ms, cpu_ms)`: fp32 worst-case times on a gpu and
    /// on a cpu, no transition costs (the library's `chain_profile`).
    #[staticmethod]
    fn chain(model: &str, layers: Vec<(String, f64, f64)>) -> PyResult<Self> {
        let layers: Vec<LayerProfile> = layers
            .into_iter()
            .map(|(name, gpu, cpu)| LayerProfile::gpu_cpu(name, ms_to_time(gpu.max(0.0)), ms_to_time(cpu.max(0.0))))
            .collect();
        // Through the JSON parser, so that the values obey the file's rules (and its messages).
        let json = chain_profile(model, &layers).to_json();
        Self::from_json(&json)
    }

    /// The model's name.
    #[getter]
    fn model(&self) -> String {
        self.inner.model.clone()
    }

    /// The layers' names, in execution order.
    #[getter]
    fn layers(&self) -> Vec<String> {
        self.inner.layers.iter().map(|l| l.name.clone()).collect()
    }

    /// The profile as profile JSON.
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    fn __repr__(&self) -> String {
        format!("<Profile {}: {} layers>", self.inner.model, self.inner.layers.len())
    }
}

/// A periodic (or, when served, sporadic) DNN task, as one `[[task]]` table of a task set file.
#[pyclass(module = "lalarand", frozen)]
#[derive(Clone)]
pub struct Task {
    table: toml::Table,
    profile: Arc<DnnProfile>,
    profile_path: Option<PathBuf>,
}

#[pymethods]
impl Task {
    /// A task running `profile`'s DNN every `period_ms` (its minimum inter-arrival time when
    /// served sporadically); the deadline defaults to the period. `priority` only with a
    /// system's `priority="explicit"` (0 is the highest).
    #[new]
    #[pyo3(signature = (name, profile, period_ms, *, deadline_ms=None, offset_ms=None, priority=None))]
    fn new(
        name: String,
        profile: PyRef<'_, Profile>,
        period_ms: f64,
        deadline_ms: Option<f64>,
        offset_ms: Option<f64>,
        priority: Option<i64>,
    ) -> PyResult<Self> {
        let call = format!("Task({name:?}, period_ms={period_ms})");
        let mut table = toml::Table::new();
        table.insert("name".into(), name.into());
        table.insert("period_ms".into(), period_ms.into());
        if let Some(d) = deadline_ms {
            table.insert("deadline_ms".into(), d.into());
        }
        if let Some(o) = offset_ms {
            table.insert("offset_ms".into(), o.into());
        }
        if let Some(p) = priority {
            table.insert("priority".into(), p.into());
        }
        let task = Self { table, profile: profile.inner.clone(), profile_path: profile.path.clone() };
        // Checked now by the task set file's rules, as a task set of this one task (a priority
        // is checked against the other tasks by `System`).
        let policy = if priority.is_some() { "explicit" } else { "rate-monotonic" };
        task_set_of(std::slice::from_ref(&task), policy).map_err(|e| argument_error(&call, &e))?;
        Ok(task)
    }

    fn __repr__(&self) -> String {
        format!("Task({}, profile={})", inline_table(&self.table), self.profile.model)
    }
}

/// A task set of `tasks` under priority policy `priority`, by the task set file's parser.
fn task_set_of(tasks: &[Task], priority: &str) -> Result<TaskSet, lalarand_model::FormatError> {
    let mut doc = toml::Table::new();
    doc.insert("priority".into(), priority.into());
    let tables = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut table = t.table.clone();
            // The resolver below hands task i its own profile.
            table.insert("profile".into(), format!("<task {i}'s profile>").into());
            toml::Value::Table(table)
        })
        .collect();
    doc.insert("task".into(), toml::Value::Array(tables));
    let text = toml::to_string(&doc).unwrap_or_default();
    TaskSet::parse_with(&text, Path::new("System(...)"), |i, _| Ok(tasks[i].profile.clone()))
}

/// Static facts about one task of a system.
#[pyclass(module = "lalarand", frozen, get_all)]
pub struct TaskInfo {
    pub name: String,
    pub model: String,
    /// 0 is the highest.
    pub priority: u32,
    pub period_ns: Time,
    pub deadline_ns: Time,
    pub offset_ns: Time,
    pub layers: Vec<String>,
}

#[pymethods]
impl TaskInfo {
    fn __repr__(&self) -> String {
        format!(
            "<TaskInfo {}: {} ({} layers), priority {}, period {} ns, deadline {} ns>",
            self.name,
            self.model,
            self.layers.len(),
            self.priority,
            self.period_ns,
            self.deadline_ns
        )
    }
}

/// A platform with tasks on it: what the analysis, the allocators, the simulator and the server
/// work on.
#[pyclass(module = "lalarand", frozen)]
pub struct System {
    pub(crate) inner: Arc<CoreSystem>,
    /// The task set file it was loaded from (profile paths are relative to it).
    pub(crate) tasks_file: Option<PathBuf>,
}

#[pymethods]
impl System {
    /// A system built in code; `priority` is the task set's policy: "rate-monotonic",
    /// "deadline-monotonic" or "explicit" (then every task gives its `priority`).
    #[new]
    #[pyo3(signature = (platform, tasks, *, priority="rate-monotonic"))]
    fn new(platform: PyRef<'_, Platform>, tasks: Vec<PyRef<'_, Task>>, priority: &str) -> PyResult<Self> {
        let owned: Vec<Task> = tasks.iter().map(|t| (**t).clone()).collect();
        let mut set = task_set_of(&owned, priority).map_err(|e| code_format_error("System(...)", &e))?;
        // Where each profile really is (a server looks for its model beside it), not the
        // placeholder the parser was given.
        for (task, given) in set.tasks.iter_mut().zip(&tasks) {
            task.profile_path = given.profile_path.clone();
        }
        Ok(Self { inner: Arc::new(CoreSystem::new(platform.inner.clone(), set)), tasks_file: None })
    }

    /// Loads a task set TOML (profile paths relative to it) on a platform TOML, or on one `gpu`
    /// and one `cpu` without `platform`, as the command line's `--tasks` and `--platform`.
    #[staticmethod]
    #[pyo3(signature = (tasks, platform=None))]
    fn load(tasks: PathBuf, platform: Option<PathBuf>) -> PyResult<Self> {
        let platform = match platform {
            Some(p) => CorePlatform::load(&p).map_err(format_error)?,
            None => CorePlatform::default_cpu_gpu(),
        };
        let set = TaskSet::load(&tasks).map_err(format_error)?;
        Ok(Self { inner: Arc::new(CoreSystem::new(platform, set)), tasks_file: std::path::absolute(&tasks).ok() })
    }

    /// The system's platform.
    #[getter]
    fn platform(&self) -> Platform {
        Platform { inner: self.inner.platform.clone() }
    }

    /// The tasks, in task set order.
    #[getter]
    fn tasks(&self) -> Vec<TaskInfo> {
        self.inner
            .tasks
            .iter()
            .map(|t| TaskInfo {
                name: t.name.clone(),
                model: t.dnn.model.clone(),
                priority: t.priority,
                period_ns: t.period,
                deadline_ns: t.deadline,
                offset_ns: t.offset,
                layers: t.dnn.layers.iter().map(|l| l.name.clone()).collect(),
            })
            .collect()
    }

    /// Loads an allocation TOML and checks that it fits this system.
    fn load_allocation(&self, path: PathBuf) -> PyResult<Allocation> {
        let alloc = CoreAllocation::load(&path, &self.inner).map_err(format_error)?;
        Allocation::checked(self.inner.clone(), alloc, &path)
    }

    /// An allocation written in code: per task name, one "mode@resource" per layer, as in an
    /// allocation file (e.g. `{"digits": ["cpu-fp32@cpu"] * 4}`).
    fn allocation(&self, layers: &Bound<'_, PyDict>) -> PyResult<Allocation> {
        let origin = Path::new("<System.allocation(...)>");
        let mut tables = Vec::with_capacity(layers.len());
        for (name, places) in layers.iter() {
            let mut table = toml::Table::new();
            table.insert("name".into(), name.extract::<String>()?.into());
            let places: Vec<String> = places.extract()?;
            table.insert("layers".into(), toml::Value::Array(places.into_iter().map(toml::Value::from).collect()));
            tables.push(toml::Value::Table(table));
        }
        let mut doc = toml::Table::new();
        doc.insert("task".into(), toml::Value::Array(tables));
        let text = toml::to_string(&doc).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let alloc = CoreAllocation::parse(&text, origin, &self.inner).map_err(format_error)?;
        Allocation::checked(self.inner.clone(), alloc, origin)
    }

    /// Proves (or fails to prove) every deadline of `allocation`: the response-time analysis.
    fn analyze(&self, py: Python<'_>, allocation: PyRef<'_, Allocation>) -> PyResult<Analysis> {
        let alloc = allocation.for_system(&self.inner)?;
        let system = &self.inner;
        py.detach(|| {
            let plan = ExecutionPlan::new(system, alloc).map_err(format_error)?;
            Ok(Analysis::new(system, alloc, &plan, &analyze(&plan)))
        })
    }

    /// Runs one allocation policy (see `policies()`); `budget` is the largest allowed sum of
    /// the int8 layers' accuracy costs in percentage points, `node_limit` caps the exact search.
    /// A layer whose int8 cost is unknown (`null` in its profile) is not placed in int8 unless
    /// `assume_int8_cost` budgets it (percentage points). `calibration` ({task: inputs file},
    /// raw fp32 samples or a CSV dataset, as `lalarand profile --calibration` reads them) checks
    /// the allocation end to end, repairing it until its measured cost is within the budget;
    /// `models` ({task or model name: ONNX path}) where a model is not beside its profile.
    /// The check's report is `result.end_to_end` (a dict, as `lalarand allocate --json`).
    ///
    /// The check's cost is label-free by default (the profile's kind: top-1 disagreement or
    /// 100 x (1 - cosine) to fp32), not in the unit of a task's accuracy. Where the inputs are
    /// labeled, `accuracy` (`fn(task_name, outputs) -> percent`; `outputs`: the model's
    /// output for each calibration input, in order, a numpy array, or a tuple of them for a
    /// model of several outputs) scores them, and the cost is the task's accuracy drop, fp32's
    /// chain's minus the allocation's, in percentage points (a rise counts as 0): the budget
    /// then holds on measured accuracy. What `accuracy` raises propagates, noted with the task.
    ///
    /// ```python
    /// labels = np.loadtxt("digits.csv", delimiter=",", usecols=0)
    /// def top1(task, outputs):
    ///     return 100.0 * np.mean([o.argmax() == y for o, y in zip(outputs, labels)])
    /// result = system.allocate("lalarand", budget=1.0,
    ///                          calibration={"digits": "digits.csv"}, accuracy=top1)
    /// result.end_to_end["measured_pp"]  # the measured top-1 drop, <= 1.0 where within_budget
    /// ```
    #[pyo3(signature = (policy, *, budget=None, node_limit=None, assume_int8_cost=None, calibration=None, models=None, accuracy=None))]
    #[allow(clippy::too_many_arguments)]
    fn allocate(
        &self,
        py: Python<'_>,
        policy: &str,
        budget: Option<f64>,
        node_limit: Option<u64>,
        assume_int8_cost: Option<f64>,
        calibration: Option<std::collections::HashMap<String, PathBuf>>,
        models: Option<std::collections::HashMap<String, PathBuf>>,
        accuracy: Option<Py<PyAny>>,
    ) -> PyResult<AllocationResult> {
        let policy: Policy = policy.parse().map_err(PyValueError::new_err)?;
        let defaults = AllocOptions::default();
        let options = AllocOptions {
            accuracy_budget: budget.unwrap_or(defaults.accuracy_budget),
            node_limit: node_limit.unwrap_or(defaults.node_limit),
            assume_int8_cost,
            ..defaults
        };
        if !(options.accuracy_budget.is_finite() && options.accuracy_budget >= 0.0) {
            return Err(PyValueError::new_err(format!(
                "budget {} is not a finite accuracy budget >= 0 (percentage points)",
                options.accuracy_budget
            )));
        }
        if let Some(pp) = assume_int8_cost.filter(|pp| !(pp.is_finite() && *pp >= 0.0)) {
            return Err(PyValueError::new_err(format!(
                "assume_int8_cost {pp} is not a cost >= 0 (percentage points); fix: give one, or None to refuse int8 for layers of unknown cost"
            )));
        }
        if let Some(score) = &accuracy {
            if calibration.is_none() {
                return Err(PyValueError::new_err(
                    "allocate(accuracy=...): needs the labeled inputs it scores; fix: give calibration={task: inputs file} too",
                ));
            }
            if !score.bind(py).is_callable() {
                return Err(PyTypeError::new_err(
                    "allocate(accuracy=...): not callable; fix: give fn(task_name, outputs) -> accuracy in percent",
                ));
            }
        }
        let system = self.inner.clone();
        let (outcome, end_to_end) = match calibration {
            None => {
                let outcome: Outcome = py
                    .detach(|| policy.allocate(&system, &options))
                    .map_err(|e| AllocationError::new_err(format!("policy {policy}: {e}")))?;
                (outcome, None)
            }
            Some(calibration) => {
                let checks =
                    crate::checked::task_checks(py, &system, self.tasks_file.as_deref(), &calibration, models)?;
                let mut labeled = accuracy.map(crate::checked::AccuracyDrop::new);
                let mut label_free = LabelFree;
                let checked = py.detach(|| {
                    let cfg = lalarand_engine::ExecConfig::default();
                    let measure: &mut dyn CostMeasure = match labeled.as_mut() {
                        Some(m) => m,
                        None => &mut label_free,
                    };
                    lalarand_engine::end_to_end::allocate_checked_with(
                        &system, policy, &options, &checks, &cfg, measure,
                    )
                });
                if let Some(raised) = labeled.and_then(|m| m.raised) {
                    return Err(raised);
                }
                let checked = checked
                    .map_err(|e| AllocationError::new_err(format!("policy {policy}, checked end to end: {e}")))?;
                let report = serde_json::to_value(&checked.check).map_err(|e| PyValueError::new_err(e.to_string()))?;
                (checked.outcome, Some(crate::serving::json_to_py(py, &report)?.unbind()))
            }
        };
        let plan = ExecutionPlan::new(&system, &outcome.allocation).map_err(format_error)?;
        let analysis = Analysis::new(&system, &outcome.allocation, &plan, &outcome.analysis);
        Ok(AllocationResult {
            policy: policy.name().to_string(),
            allocation: Py::new(py, Allocation { system, inner: outcome.allocation })?,
            analysis: Py::new(py, analysis)?,
            evaluations: outcome.evaluations,
            complete: outcome.complete,
            end_to_end,
        })
    }

    /// Runs `allocation` in the discrete-event simulator. `horizon_ms`: simulated time (default:
    /// two hyperperiods after the largest offset, at most 100 longest periods). `execution`:
    /// "wcet" (every layer takes its WCET), "uniform" (uniform in [min_fraction x WCET, WCET])
    /// or "two-point" (WCET with probability `wcet_probability`, else min_fraction x WCET).
    #[pyo3(signature = (allocation, *, horizon_ms=None, execution="wcet", min_fraction=0.5, wcet_probability=0.5, seed=0))]
    #[allow(clippy::too_many_arguments)]
    fn simulate(
        &self,
        py: Python<'_>,
        allocation: PyRef<'_, Allocation>,
        horizon_ms: Option<f64>,
        execution: &str,
        min_fraction: f64,
        wcet_probability: f64,
        seed: u64,
    ) -> PyResult<Simulation> {
        let execution = match execution {
            "wcet" => ExecutionTimeModel::Wcet,
            "uniform" => ExecutionTimeModel::Uniform { min_fraction },
            "two-point" => ExecutionTimeModel::TwoPoint { min_fraction, wcet_probability },
            other => {
                return Err(PyValueError::new_err(format!(
                    "execution {other:?}: use \"wcet\", \"uniform\" or \"two-point\""
                )))
            }
        };
        let horizon = match horizon_ms {
            None => Horizon::Auto,
            Some(h) if h.is_finite() && h > 0.0 => Horizon::Until(ms_to_time(h)),
            Some(h) => return Err(PyValueError::new_err(format!("horizon_ms {h} is not a positive number"))),
        };
        let config =
            SimConfig { horizon, execution, seed, record_jobs: false, record_trace: false, ..SimConfig::default() };
        let alloc = allocation.for_system(&self.inner)?;
        let system = &self.inner;
        py.detach(|| {
            let plan = ExecutionPlan::new(system, alloc).map_err(format_error)?;
            let bounds = analyze(&plan);
            let result = simulate(&plan, &config).map_err(|e| SimulationError::new_err(e.to_string()))?;
            Ok(Simulation::from(SimReport::new(system, &result, &bounds)))
        })
    }

    fn __repr__(&self) -> String {
        let names: Vec<&str> = self.inner.tasks.iter().map(|t| t.name.as_str()).collect();
        format!("<System: {} resources, tasks {}>", self.inner.platform.resources.len(), names.join(", "))
    }
}

/// A mode and a resource for every layer of every task of the system it was made for.
#[pyclass(module = "lalarand", frozen)]
pub struct Allocation {
    pub(crate) system: Arc<CoreSystem>,
    pub(crate) inner: CoreAllocation,
}

impl Allocation {
    fn checked(system: Arc<CoreSystem>, inner: CoreAllocation, origin: &Path) -> PyResult<Self> {
        inner
            .validate(&system)
            .map_err(|e| format_error(format!("{}: does not fit the task set: {e}", origin.display())))?;
        Ok(Self { system, inner })
    }

    /// The allocation, if it was made for `system` (the same tasks and platform).
    pub(crate) fn for_system(&self, system: &CoreSystem) -> PyResult<&CoreAllocation> {
        if *self.system == *system {
            Ok(&self.inner)
        } else {
            Err(format_error("this allocation was made for another system; fix: load or allocate it for this one"))
        }
    }
}

#[pymethods]
impl Allocation {
    /// Per task name, one "mode@resource" per layer, in execution order.
    #[getter]
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let platform = &self.system.platform;
        let dict = PyDict::new(py);
        for (t, places) in self.system.tasks.iter().zip(&self.inner.tasks) {
            let layers: Vec<String> =
                places.iter().map(|p| format!("{}@{}", p.mode, platform.resources[p.resource].name)).collect();
            dict.set_item(&t.name, layers)?;
        }
        Ok(dict)
    }

    /// The allocation as an allocation file (`policy` is written as a comment field).
    #[pyo3(signature = (policy=None))]
    fn to_toml(&self, policy: Option<&str>) -> String {
        self.inner.to_toml(&self.system, policy)
    }

    /// Writes the allocation file to `path`.
    #[pyo3(signature = (path, policy=None))]
    fn save(&self, path: PathBuf, policy: Option<&str>) -> PyResult<()> {
        std::fs::write(&path, self.inner.to_toml(&self.system, policy))
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("{}: cannot write: {e}", path.display())))
    }

    fn __repr__(&self) -> String {
        format!("<Allocation: {} int8 layers>", self.inner.int8_layers())
    }
}

/// One task's proof, as `lalarand analyze --json` reports it (times in integer nanoseconds).
#[pyclass(module = "lalarand", frozen, get_all)]
#[derive(Clone)]
pub struct TaskAnalysis {
    pub name: String,
    pub model: String,
    pub priority: u32,
    pub period_ns: Time,
    pub deadline_ns: Time,
    /// The proven response-time bound (the smaller of the two below); None if not proven.
    pub bound_ns: Option<Time>,
    pub job_level_ns: Option<Time>,
    pub segment_level_ns: Option<Time>,
    pub slack_ns: Option<Time>,
    /// Where the analysis gave up (unschedulable tasks only): how far over, not a bound.
    pub estimate_ns: Option<Time>,
    pub schedulable: bool,
    pub layers: usize,
    pub int8_layers: usize,
    pub accuracy_cost_pp: f64,
    pub int8_layers_unknown_cost: usize,
}

#[pymethods]
impl TaskAnalysis {
    fn __repr__(&self) -> String {
        let bound = self.bound_ns.map_or("none".into(), |b| format!("{:.3} ms", b as f64 / 1e6));
        format!(
            "<TaskAnalysis {}: bound {bound}, deadline {:.3} ms, {}>",
            self.name,
            self.deadline_ns as f64 / 1e6,
            if self.schedulable { "schedulable" } else { "not proven" }
        )
    }
}

/// One resource's load under an allocation.
#[pyclass(module = "lalarand", frozen, get_all)]
#[derive(Clone)]
pub struct ResourceUse {
    pub name: String,
    pub kind: String,
    /// Sum over tasks of (cost on this resource / period), transitions included.
    pub utilization: f64,
}

#[pymethods]
impl ResourceUse {
    fn __repr__(&self) -> String {
        format!("<ResourceUse {} ({}): {:.3}>", self.name, self.kind, self.utilization)
    }
}

/// The analysis of an allocation, as `lalarand analyze --json` reports it.
#[pyclass(module = "lalarand", frozen, get_all)]
pub struct Analysis {
    /// Every task proven to meet its deadline.
    pub schedulable: bool,
    pub accuracy_cost_pp: f64,
    pub int8_layers: usize,
    pub int8_layers_unknown_cost: usize,
    pub resources: Vec<ResourceUse>,
    pub tasks: Vec<TaskAnalysis>,
}

impl Analysis {
    /// The library's report ([`lalarand_analysis::report::Report`], what `lalarand analyze --json`
    /// prints), as Python objects.
    fn new(system: &CoreSystem, alloc: &CoreAllocation, plan: &ExecutionPlan, analysis: &CoreAnalysis) -> Self {
        let r = lalarand_analysis::report::Report::new(system, alloc, plan, analysis);
        let tasks = r
            .tasks
            .into_iter()
            .map(|t| TaskAnalysis {
                name: t.name,
                model: t.model,
                priority: t.priority,
                period_ns: t.period_ns,
                deadline_ns: t.deadline_ns,
                bound_ns: t.bound_ns,
                job_level_ns: t.job_level_ns,
                segment_level_ns: t.segment_level_ns,
                slack_ns: t.slack_ns,
                estimate_ns: t.estimate_ns,
                schedulable: t.schedulable,
                layers: t.layers,
                int8_layers: t.int8_layers,
                accuracy_cost_pp: t.accuracy_cost_pp,
                int8_layers_unknown_cost: t.int8_layers_unknown_cost,
            })
            .collect();
        let resources = r
            .resources
            .into_iter()
            .map(|u| ResourceUse { name: u.name, kind: u.kind, utilization: u.utilization })
            .collect();
        Self {
            schedulable: r.schedulable,
            accuracy_cost_pp: r.accuracy_cost_pp,
            int8_layers: r.int8_layers,
            int8_layers_unknown_cost: r.int8_layers_unknown_cost,
            resources,
            tasks,
        }
    }
}

#[pymethods]
impl Analysis {
    /// The task named `name`.
    fn task(&self, name: &str) -> PyResult<TaskAnalysis> {
        task_named(&self.tasks, name, |t| &t.name)
    }

    fn __repr__(&self) -> String {
        let proven = self.tasks.iter().filter(|t| t.schedulable).count();
        format!("<Analysis: {} of {} tasks proven, schedulable={}>", proven, self.tasks.len(), self.schedulable)
    }
}

/// The entry of `tasks` named `name`, or a KeyError listing the names there are.
fn task_named<T: Clone>(tasks: &[T], name: &str, name_of: impl Fn(&T) -> &String) -> PyResult<T> {
    tasks.iter().find(|t| name_of(t) == name).cloned().ok_or_else(|| {
        let names: Vec<&str> = tasks.iter().map(|t| name_of(t).as_str()).collect();
        pyo3::exceptions::PyKeyError::new_err(format!("no task {name:?}; the tasks are {}", names.join(", ")))
    })
}

/// What an allocation policy settled on: the allocation with its analysis.
#[pyclass(module = "lalarand", frozen, get_all)]
pub struct AllocationResult {
    pub policy: String,
    pub allocation: Py<Allocation>,
    pub analysis: Py<Analysis>,
    /// Analyses the policy ran while searching.
    pub evaluations: u64,
    /// False only when an exact search stopped at its node limit.
    pub complete: bool,
    /// With `calibration`: the end-to-end check (measured cost, budget, repairs) as a dict;
    /// None without.
    pub end_to_end: Option<Py<PyAny>>,
}

#[pymethods]
impl AllocationResult {
    /// The allocation is proven schedulable.
    #[getter]
    fn schedulable(&self, py: Python<'_>) -> bool {
        self.analysis.borrow(py).schedulable
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("<AllocationResult {}: {}>", self.policy, self.analysis.borrow(py).__repr__())
    }
}

/// One task in the simulator, next to its bound (`lalarand_sim::SimTaskReport`).
#[pyclass(module = "lalarand", frozen, get_all)]
#[derive(Clone)]
pub struct TaskSimulation {
    pub name: String,
    pub jobs: u64,
    pub completed: u64,
    pub misses: u64,
    pub min_response_ns: Option<Time>,
    pub mean_response_ns: Option<f64>,
    pub max_response_ns: Option<Time>,
    pub oldest_incomplete_ns: Option<Time>,
    pub bound_ns: Option<Time>,
    /// Some job responded later than the proven bound (an analysis bug: please report it).
    pub exceeds_bound: bool,
}

/// A simulation's result, as `lalarand simulate --json` reports it.
#[pyclass(module = "lalarand", frozen, get_all)]
pub struct Simulation {
    pub end_ns: Time,
    pub hyperperiod_ns: Option<Time>,
    pub misses: u64,
    pub tasks: Vec<TaskSimulation>,
}

impl From<SimReport> for Simulation {
    fn from(r: SimReport) -> Self {
        let tasks = r
            .tasks
            .into_iter()
            .map(|t| TaskSimulation {
                name: t.name,
                jobs: t.jobs,
                completed: t.completed,
                misses: t.misses,
                min_response_ns: t.min_response_ns,
                mean_response_ns: t.mean_response_ns,
                max_response_ns: t.max_response_ns,
                oldest_incomplete_ns: t.oldest_incomplete_ns,
                bound_ns: t.bound_ns,
                exceeds_bound: t.exceeds_bound,
            })
            .collect();
        Self { end_ns: r.end_ns, hyperperiod_ns: r.hyperperiod_ns, misses: r.misses, tasks }
    }
}

#[pymethods]
impl Simulation {
    /// The task named `name`.
    fn task(&self, name: &str) -> PyResult<TaskSimulation> {
        task_named(&self.tasks, name, |t| &t.name)
    }

    fn __repr__(&self) -> String {
        format!("<Simulation: 0..{:.3} ms, {} misses>", self.end_ns as f64 / 1e6, self.misses)
    }
}

#[pymethods]
impl TaskSimulation {
    fn __repr__(&self) -> String {
        let ms = |v: Option<Time>| v.map_or("-".into(), |v| format!("{:.3} ms", v as f64 / 1e6));
        format!(
            "<TaskSimulation {}: {} jobs, {} misses, max {}, bound {}>",
            self.name,
            self.jobs,
            self.misses,
            ms(self.max_response_ns),
            ms(self.bound_ns)
        )
    }
}

/// The allocation policies the library has, in the order reports list them.
#[pyfunction]
pub fn policies() -> Vec<&'static str> {
    Policy::ALL.iter().map(|p| p.name()).collect()
}
