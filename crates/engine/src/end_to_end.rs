//! The chosen allocation, checked end to end (docs/engine.md): the budget is a sum of per-stage
//! int8 costs, each measured with that stage alone in int8, and per-stage errors compound along
//! a chain (issue 20: a detector whose every int8 stage passed its own check had a cosine of
//! 0.84 to fp32 served all-int8). So before an allocation is called within budget, each task's
//! stages run chained in the allocation's modes next to fp32 on the task's inputs, and the
//! measured cost, in the profile's own kind, is compared with the budget. Over it, the int8
//! stages with the largest per-stage cost move back to fp32 (their `cpu-int8` mode taken away,
//! [`System::without_int8`]) and the policy allocates again, until the measured cost is within
//! the budget.
//!
//! The measured cost is label-free by default ([`LabelFree`]: the profile's own kind, which is
//! not the unit of a task's accuracy, docs/evaluation.md §15). Where the user has labels and a
//! metric, a [`CostMeasure`] of theirs measures it instead (the Python binding's
//! `allocate(accuracy=...)`: the accuracy drop of the allocation's chain from fp32's, in pp),
//! and the same repair loop holds the budget on it.

use crate::accuracy::chained_outputs;
use crate::calibration::profiled_int8_stages;
use crate::error::{EngineError, Result};
use crate::quant::{Agreement, Int8Stages};
use crate::serving::{open_model, ModelProblem};
use crate::stage::ExecConfig;
use crate::staged::StagedModel;
use crate::tensor::argmax_rows;
use lalarand_alloc::{AllocOptions, Outcome, Policy};
use lalarand_model::{Allocation, Int8CostKind, Mode, System, Task};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// One `(shape, values)` per input (and graph output).
type Samples = Vec<(Vec<usize>, Vec<f32>)>;

/// Accuracy sums are compared with this slack, as the allocators compare theirs.
const BUDGET_EPS: f64 = 1e-9;

/// What one task's allocation is checked with: its model, the int8 stages its profile measured
/// ([`crate::calibration::profiled_int8_stages`]) and the inputs it runs on (the user's
/// calibration inputs; each `(dims, values)`).
pub struct TaskCheck {
    pub staged: StagedModel,
    pub int8: Int8Stages,
    pub inputs: Vec<(Vec<usize>, Vec<f32>)>,
}

impl TaskCheck {
    /// Task `task`'s check: its model at `model` (the file its profile measured, with the
    /// profile's stages, [`open_model`]), the int8 stages its profile saved the calibration of
    /// (where it offers any layer in cpu-int8) and `inputs`, whole samples of the model's
    /// input.
    pub fn open(task: &Task, model: &Path, inputs: Vec<Vec<f32>>) -> Result<Self> {
        let (staged, int8) = Self::model(task, model)?;
        Self::with_inputs(task, staged, int8, inputs)
    }

    /// [`Self::open`] with the inputs read from `inputs` ([`crate::profile::load_inputs`]: a
    /// `.npy` array, a folder of images, a CSV dataset's rows or raw little-endian fp32).
    pub fn open_file(task: &Task, model: &Path, inputs: &Path) -> Result<Self> {
        let (staged, int8) = Self::model(task, model)?;
        let values = crate::profile::load_inputs(inputs, &staged)?;
        Self::with_inputs(task, staged, int8, values)
    }

    fn model(task: &Task, model: &Path) -> Result<(StagedModel, Int8Stages)> {
        let staged = open_model(task, model).map_err(|problem| match problem {
            ModelProblem::Unreadable(e) => e,
            other => EngineError::Serving {
                task: task.name.clone(),
                problem: other.to_string(),
                fix: "give the model its profile measured (lalarand profile it again if it changed)".into(),
            },
        })?;
        let offers_int8 = task.dnn.layers.iter().any(|l| l.mode(Mode::CpuInt8).is_some());
        let int8 =
            if offers_int8 { profiled_int8_stages(&staged, &task.dnn, &task.name)? } else { Int8Stages::default() };
        Ok((staged, int8))
    }

    fn with_inputs(task: &Task, staged: StagedModel, int8: Int8Stages, inputs: Vec<Vec<f32>>) -> Result<Self> {
        if inputs.is_empty() {
            return Err(EngineError::tensor(
                format!("task {:?}: end-to-end int8 check", task.name),
                &staged.input_name,
                "no inputs given",
            ));
        }
        let dims = staged.input_shape(1);
        Ok(Self { staged, int8, inputs: inputs.into_iter().map(|x| (dims.clone(), x)).collect() })
    }
}

/// The graph outputs of `staged`'s chain in `modes` on `inputs`, one `(shape, values)` per
/// input and output; gpu stages run as cpu-fp32 (both fp32).
fn outputs(
    staged: &StagedModel,
    int8: &Int8Stages,
    modes: &[Mode],
    inputs: &[(Vec<usize>, Vec<f32>)],
    cfg: &ExecConfig,
) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
    let modes: Vec<Mode> = modes.iter().map(|&m| if m == Mode::Gpu { Mode::CpuFp32 } else { m }).collect();
    chained_outputs(staged, &modes, Some(int8), inputs, cfg, "end-to-end int8 check")
}

/// Whether `reference` (one `(shape, values)` per input) is a classifier's: one graph output of
/// shape `[batch, classes]`, `classes >= 2` (the rule of the label-free costs).
pub fn is_classifier(staged: &StagedModel, reference: &[(Vec<usize>, Vec<f32>)]) -> bool {
    staged.partition.graph_outputs.len() == 1 && reference.iter().all(|(shape, _)| shape.len() == 2 && shape[1] >= 2)
}

/// The cost of `got` against `reference`, percentage points, in the unit a profile of `kind`
/// budgets: top-1 disagreement for a classifier (a labeled `top1-drop` profile too: on inputs
/// without labels, the share of inputs whose class changed bounds the drop from above), and
/// `100 x (1 - cosine)` otherwise.
pub fn output_cost(
    kind: Int8CostKind,
    classifier: bool,
    reference: &[(Vec<usize>, Vec<f32>)],
    got: &[(Vec<usize>, Vec<f32>)],
) -> f64 {
    if classifier && kind != Int8CostKind::Distortion {
        let (mut differ, mut rows) = (0usize, 0usize);
        for ((shape, want), (_, have)) in reference.iter().zip(got) {
            let (a, b) = (argmax_rows(want, shape[1]), argmax_rows(have, shape[1]));
            differ += a.iter().zip(&b).filter(|(x, y)| x != y).count();
            rows += a.len();
        }
        100.0 * differ as f64 / rows.max(1) as f64
    } else {
        let mut sum = Agreement::default();
        for ((_, want), (_, have)) in reference.iter().zip(got) {
            sum.add(want, have);
        }
        100.0 * (1.0 - sum.cosine())
    }
}

/// What a [`CostMeasure`] is given for one task's chain in an allocation's modes.
pub struct Compared<'a> {
    /// The task's index in the system, and its name.
    pub task: usize,
    pub name: &'a str,
    /// The profile's int8 cost kind, and whether the output is a classifier's
    /// ([`is_classifier`]): what the label-free cost goes by.
    pub kind: Int8CostKind,
    pub classifier: bool,
    /// Graph outputs per input: `reference` and `got` hold, input after input, this many
    /// `(shape, values)` each.
    pub outputs_per_input: usize,
    /// The fp32 chain's outputs on the task's inputs (the same for every allocation), and the
    /// allocation's chain's.
    pub reference: &'a [(Vec<usize>, Vec<f32>)],
    pub got: &'a [(Vec<usize>, Vec<f32>)],
}

/// How the end-to-end check measures a task's cost, in percentage points: higher is worse, and
/// the budget bounds the sum over tasks of the positive ones.
pub trait CostMeasure {
    /// What the cost measures, as the report names it (`"label-free"`, `"accuracy drop"`).
    fn name(&self) -> &str;
    /// The cost of `compared.got` against `compared.reference`.
    fn cost(&mut self, compared: &Compared<'_>) -> Result<f64>;
}

/// The default measure: [`output_cost`] in the profile's kind, without labels.
pub struct LabelFree;

impl CostMeasure for LabelFree {
    fn name(&self) -> &str {
        "label-free"
    }

    fn cost(&mut self, c: &Compared<'_>) -> Result<f64> {
        Ok(output_cost(c.kind, c.classifier, c.reference, c.got))
    }
}

/// One task of the checked allocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskCost {
    pub task: String,
    pub int8_layers: usize,
    /// The sum of its int8 layers' per-stage costs (what the allocator budgeted).
    pub estimated_pp: f64,
    /// Its chain in the allocation's modes against fp32, on its inputs (0 without int8 layers;
    /// a measured accuracy drop may be negative, and counts as 0 in the sum).
    pub measured_pp: f64,
    /// The profile's `int8_cost_kind` (what the label-free measure measures).
    pub kind: Int8CostKind,
    /// What `measured_pp` measures: [`CostMeasure::name`].
    pub measure: String,
    pub inputs: usize,
}

/// One repair round: what was measured, and the layers moved back to fp32 for the next round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Repair {
    pub measured_pp: f64,
    /// `(task, layer, per-stage cost)`, largest cost first.
    pub moved_to_fp32: Vec<(String, String, f64)>,
}

/// The end-to-end check of the allocation finally chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndToEnd {
    pub budget_pp: f64,
    /// Sum over tasks of [`TaskCost::estimated_pp`].
    pub estimated_pp: f64,
    /// Sum over tasks of the positive [`TaskCost::measured_pp`], compared with the budget.
    pub measured_pp: f64,
    pub within_budget: bool,
    pub tasks: Vec<TaskCost>,
    /// The rounds that found the measured cost over the budget, in order (empty: the first
    /// allocation was within it).
    pub repairs: Vec<Repair>,
}

/// An allocation whose measured end-to-end cost was checked against the budget.
pub struct Checked {
    pub outcome: Outcome,
    /// The system the final allocation was chosen on: `system` with the unknown costs resolved
    /// as the options say and the repaired layers' `cpu-int8` mode taken away. Its plan is
    /// the original system's; its accuracy costs are the ones budgeted.
    pub system: System,
    pub check: EndToEnd,
}

/// Allocates `system` with `policy`, then checks the allocation end to end and repairs it until
/// its measured cost is within `options.accuracy_budget` (see the module doc). `checks[i]` is
/// task `i`'s model and inputs; a task whose allocation has int8 layers needs one. Each round
/// moves back to fp32 the offending tasks' int8 layers with the largest per-stage cost (ties:
/// the lowest build-check cosine first) until their costs cover the excess, at most half of
/// those layers (at least one): every round forbids int8 somewhere, so the loop ends, at the
/// latest with no int8 left.
pub fn allocate_checked(
    system: &System,
    policy: Policy,
    options: &AllocOptions,
    checks: &[Option<TaskCheck>],
    cfg: &ExecConfig,
) -> Result<Checked> {
    allocate_checked_with(system, policy, options, checks, cfg, &mut LabelFree)
}

/// [`allocate_checked`] with the cost measured by `measure` (a user's metric on labeled
/// inputs) instead of the label-free one.
pub fn allocate_checked_with(
    system: &System,
    policy: Policy,
    options: &AllocOptions,
    checks: &[Option<TaskCheck>],
    cfg: &ExecConfig,
    measure: &mut dyn CostMeasure,
) -> Result<Checked> {
    let offered = system.with_unknown_int8_costs(options.assume_int8_cost).into_owned();
    let mut measurer = Measurer::new(system, checks.iter().map(Option::as_ref).collect(), measure)?;
    let mut forbidden = BTreeSet::new();
    let mut repairs = Vec::new();
    loop {
        let system = offered.without_int8(&forbidden);
        let outcome = policy
            .allocate(&system, options)
            .map_err(|e| EngineError::Graph { context: format!("policy {policy}"), message: e.to_string() })?;
        let mut check = measurer.measure(&system, &outcome.allocation, options.accuracy_budget, cfg)?;
        if check.within_budget {
            check.repairs = repairs;
            return Ok(Checked { outcome, system, check });
        }
        let excess = check.measured_pp - check.budget_pp;
        let moved = layers_to_move(&system, &outcome, &check.tasks, excess);
        if moved.is_empty() {
            // Still over with nothing that can move back to fp32 (int8 is those layers' only
            // mode): reported over the budget.
            check.repairs = repairs;
            return Ok(Checked { outcome, system, check });
        }
        repairs.push(Repair {
            measured_pp: check.measured_pp,
            moved_to_fp32: moved
                .iter()
                .map(|&(i, j)| {
                    let dnn = &system.tasks[i].dnn;
                    (system.tasks[i].name.clone(), dnn.layers[j].name.clone(), dnn.layers[j].budgeted_int8_cost())
                })
                .collect(),
        });
        tracing::info!(
            measured = check.measured_pp,
            excess,
            moved = moved.len(),
            "end-to-end int8 cost over the budget: repairing"
        );
        forbidden.extend(moved);
    }
}

/// The end-to-end check of an allocation already chosen (`lalarand serve`): measured, compared
/// with `budget`, not repaired. `system` is the one `allocation` was chosen on.
pub fn check_allocation(
    system: &System,
    allocation: &Allocation,
    budget: f64,
    checks: &[Option<&TaskCheck>],
    cfg: &ExecConfig,
) -> Result<EndToEnd> {
    Measurer::new(system, checks.to_vec(), &mut LabelFree)?.measure(system, allocation, budget, cfg)
}

/// Measures allocations of one system, each task's fp32 outputs computed once.
struct Measurer<'a, 'm> {
    checks: Vec<Option<&'a TaskCheck>>,
    measure: &'m mut dyn CostMeasure,
    /// Per task: whether its output is a classifier's, and its fp32 chain's outputs.
    references: Vec<Option<(bool, Samples)>>,
}

impl<'a, 'm> Measurer<'a, 'm> {
    fn new(system: &System, checks: Vec<Option<&'a TaskCheck>>, measure: &'m mut dyn CostMeasure) -> Result<Self> {
        if checks.len() != system.tasks.len() {
            return Err(EngineError::Serving {
                task: "(all)".into(),
                problem: format!("{} models to check for {} tasks", checks.len(), system.tasks.len()),
                fix: "give one model (or none) per task".into(),
            });
        }
        let references = vec![None; checks.len()];
        Ok(Self { checks, measure, references })
    }

    /// Every task's chain in `allocation`'s modes against fp32, the sum against `budget`.
    fn measure(&mut self, system: &System, allocation: &Allocation, budget: f64, cfg: &ExecConfig) -> Result<EndToEnd> {
        let mut tasks = Vec::with_capacity(system.tasks.len());
        for (i, (task, places)) in system.tasks.iter().zip(&allocation.tasks).enumerate() {
            let int8_layers = places.iter().filter(|p| p.mode.is_int8()).count();
            let estimated_pp = lalarand_model::placements_accuracy_cost(&task.dnn, places) + 0.0;
            let kind = task.dnn.int8_cost_kind;
            let mut cost = TaskCost {
                task: task.name.clone(),
                int8_layers,
                estimated_pp,
                measured_pp: 0.0,
                kind,
                measure: self.measure.name().to_string(),
                inputs: 0,
            };
            if int8_layers > 0 {
                let check = self.checks[i].ok_or_else(|| EngineError::Serving {
                    task: task.name.clone(),
                    problem: format!("the allocation runs {int8_layers} of its layers in cpu-int8, and without its model and inputs its end-to-end cost cannot be measured"),
                    fix: "give its ONNX model and its calibration inputs, or a budget of 0".into(),
                })?;
                if self.references[i].is_none() {
                    let fp32 = vec![Mode::CpuFp32; check.staged.stage_count()];
                    let reference = outputs(&check.staged, &check.int8, &fp32, &check.inputs, cfg)?;
                    self.references[i] = Some((is_classifier(&check.staged, &reference), reference));
                }
                let (classifier, reference) = self.references[i].as_ref().expect("computed above");
                let modes: Vec<Mode> = places.iter().map(|p| p.mode).collect();
                let got = outputs(&check.staged, &check.int8, &modes, &check.inputs, cfg)?;
                cost.measured_pp = self.measure.cost(&Compared {
                    task: i,
                    name: &task.name,
                    kind,
                    classifier: *classifier,
                    outputs_per_input: check.staged.partition.graph_outputs.len(),
                    reference,
                    got: &got,
                })?;
                if !cost.measured_pp.is_finite() {
                    return Err(EngineError::Serving {
                        task: task.name.clone(),
                        problem: format!("its end-to-end cost ({}) measured {}", cost.measure, cost.measured_pp),
                        fix: "make the cost measure return a finite number of percentage points".into(),
                    });
                }
                cost.inputs = check.inputs.len();
            }
            tasks.push(cost);
        }
        // A task whose measured accuracy rose does not pay for another's drop.
        let measured_pp = tasks.iter().map(|t| t.measured_pp.max(0.0)).sum::<f64>() + 0.0;
        // `+ 0.0`: a sum of no costs is -0.0, printed as such.
        let estimated_pp = tasks.iter().map(|t| t.estimated_pp).sum::<f64>() + 0.0;
        let within_budget = measured_pp <= budget + BUDGET_EPS;
        Ok(EndToEnd { budget_pp: budget, estimated_pp, measured_pp, within_budget, tasks, repairs: Vec::new() })
    }
}

/// The int8 layers of the tasks whose measured cost is positive (and that have an fp32 mode
/// on this platform), largest per-stage cost first (ties: lowest build-check cosine), until
/// their costs cover `excess`, at most half of them and at least one; none when none can move.
fn layers_to_move(system: &System, outcome: &Outcome, tasks: &[TaskCost], excess: f64) -> Vec<(usize, usize)> {
    let mut candidates: Vec<(usize, usize, f64, f64)> = Vec::new();
    for (i, places) in outcome.allocation.tasks.iter().enumerate() {
        if tasks[i].measured_pp <= 0.0 {
            continue;
        }
        let dnn = &system.tasks[i].dnn;
        for (j, p) in places.iter().enumerate() {
            // A layer with no other mode on this platform cannot move back to fp32.
            let has_fp32 = dnn.layers[j]
                .available_modes()
                .any(|m| !m.is_int8() && system.platform.of_kind(m.kind()).next().is_some());
            if p.mode.is_int8() && has_fp32 {
                let cosine = dnn.int8_notes.get(&j).and_then(|n| n.cosine).unwrap_or(1.0);
                candidates.push((i, j, dnn.layers[j].budgeted_int8_cost(), cosine));
            }
        }
    }
    candidates.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.3.total_cmp(&b.3)).then((a.0, a.1).cmp(&(b.0, b.1))));
    let most = candidates.len().div_ceil(2).max(1);
    let mut covered = 0.0;
    let mut moved = Vec::new();
    for &(i, j, cost, _) in candidates.iter().take(most) {
        moved.push((i, j));
        covered += cost;
        if covered >= excess {
            break;
        }
    }
    moved
}
