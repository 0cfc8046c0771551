//! What the protocol says about the models: one model per task, named after it, with its
//! inputs and outputs and its timing (period, deadline, the analysis' bound).

use lalarand_model::Time;
use lalarand_runtime::serve::{DataType, InputSpec, Server, TensorSpec};
use lalarand_runtime::StageExecutor;

/// One served model (= task).
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub name: String,
    /// The inputs it takes (`None`: any, busy-wait stages).
    pub inputs: InputSpec,
    /// The outputs it returns (dims `None`: free, reported as -1).
    pub outputs: Vec<TensorSpec>,
    /// Minimum inter-arrival time of its releases, ns.
    pub period: Time,
    pub deadline: Time,
    /// The analysis' response-time bound, ns (`None`: a forced server without one).
    pub bound: Option<Time>,
    /// Periodic tasks are fed by the server itself: not ready for infer requests.
    pub periodic: bool,
}

impl ModelInfo {
    /// The declared input called `name`.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.tensors.as_ref()?.iter().find(|t| t.name == name)
    }
}

/// Every model the front end serves.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub models: Vec<ModelInfo>,
    /// The platform's resources, in order (metrics label their busy time with these).
    pub resources: Vec<String>,
}

impl Catalog {
    /// The models of `server`; `outputs[i]` are task `i`'s outputs (the executor knows them:
    /// the engine's `EngineExecutor::output_specs`, [`Self::busy_outputs`]).
    pub fn of_server<E: StageExecutor>(server: &Server<E>, outputs: Vec<Vec<TensorSpec>>) -> Self {
        let plan = server.runtime().plan();
        let analysis = server.runtime().analysis();
        let models = server
            .task_names()
            .iter()
            .enumerate()
            .map(|(i, name)| ModelInfo {
                name: name.clone(),
                inputs: server.input_spec(name).cloned().unwrap_or_else(|_| InputSpec::any()),
                outputs: outputs.get(i).cloned().unwrap_or_default(),
                period: plan.tasks[i].period,
                deadline: plan.tasks[i].deadline,
                bound: analysis.tasks[i].bound,
                periodic: server.is_periodic(name).unwrap_or(false),
            })
            .collect();
        let resources = server.runtime().system().platform.resources.iter().map(|r| r.name.clone()).collect();
        Self { models, resources }
    }

    /// What the busy-wait executor returns: its input back, as `output`.
    pub fn busy_outputs() -> Vec<TensorSpec> {
        vec![TensorSpec { name: "output".into(), dtype: DataType::Fp32, dims: vec![None] }]
    }

    pub fn get(&self, name: &str) -> Option<&ModelInfo> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.name.as_str()).collect()
    }
}
