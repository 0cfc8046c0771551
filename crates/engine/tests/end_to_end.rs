//! The chosen allocation is checked end to end: a profile whose per-stage int8 costs say 0
//! (assumed for costs not measured) lets the allocator run every stage int8; the chained
//! output then differs from fp32 by more than the budget, and the check moves stages back to
//! fp32 until the measured cost is within it.

use lalarand_alloc::{AllocOptions, Policy};
use lalarand_engine::accuracy::chained_outputs;
use lalarand_engine::end_to_end::{
    allocate_checked, allocate_checked_with, output_cost, Compared, CostMeasure, LabelFree, TaskCheck,
};
use lalarand_engine::profile::seeded_inputs;
use lalarand_engine::quant::build_int8;
use lalarand_engine::stage::ExecConfig;
use lalarand_engine::StagedModel;
use lalarand_model::examples::chain_profile;
use lalarand_model::{
    ms_to_time, Int8CostKind, LayerProfile, Mode, ModeTiming, Platform, PriorityPolicy, System, Task, TaskSet,
    Transitions,
};
use lalarand_onnx::builder::{attr, GraphBuilder};
use lalarand_onnx::proto::tensor_proto::DataType;
use lalarand_onnx::quantize::CalibrationMethod;
use std::path::PathBuf;
use std::sync::Arc;

/// Seeded values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    seeded_inputs(1, n, seed).remove(0).into_iter().map(|v| scale * (2.0 * v - 1.0)).collect()
}

/// input [1,3,16,16] -> 5 x (3x3 conv with bias, relu), weights scaled to keep activations
/// of order 1, so that every stage has an int8 model and their errors add up along the chain.
fn conv_chain() -> StagedModel {
    let mut b = GraphBuilder::new("conv_chain");
    b.input("input", DataType::Float, &[1, 3, 16, 16]);
    let (mut x, mut cin) = ("input".to_string(), 3i64);
    for i in 0..5u64 {
        let fan_in = (cin * 9) as f32;
        let w = b.f32_initializer(
            &format!("conv{i}.weight"),
            &[8, cin, 3, 3],
            &values(8 * cin as usize * 9, 20 + i, 1.7 / fan_in.sqrt()),
        );
        let bias = b.f32_initializer(&format!("conv{i}.bias"), &[8], &values(8, 40 + i, 0.1));
        let conv = vec![attr::ints("pads", &[1; 4]), attr::ints("kernel_shape", &[3, 3])];
        let y = b.op("Conv", &format!("conv{i}"), &[&x, &w, &bias], conv);
        x = if i == 4 {
            b.node("Relu", "relu4", &[&y], &["output"], vec![]);
            "output".into()
        } else {
            b.op("Relu", &format!("relu{i}"), &[&y], vec![])
        };
        cin = 8;
    }
    b.output("output", DataType::Float, &[1, 8, 16, 16]);
    StagedModel::from_model("conv_chain", b.finish(), PathBuf::from("conv_chain")).unwrap()
}

/// One task running `staged`, every stage offered int8 at an unknown cost; int8 is the only
/// mode fast enough (fp32 takes 100 ms a stage, int8 1 ms, the period is 4 ms a stage).
fn system(staged: &StagedModel) -> System {
    let t = |ms: f64| Some(ModeTiming::from_wcet(ms_to_time(ms)));
    let layers: Vec<LayerProfile> = staged
        .stage_names()
        .iter()
        .map(|n| LayerProfile {
            name: n.to_string(),
            modes: [t(100.0), t(100.0), t(1.0)],
            int8_accuracy_cost: 0.0,
            transitions: Transitions::default(),
        })
        .collect();
    let mut dnn = chain_profile("conv_chain", &layers);
    dnn.int8_accuracy_unknown = (0..layers.len()).collect();
    dnn.int8_cost_kind = Int8CostKind::Distortion;
    let period = ms_to_time(4.0 * layers.len() as f64);
    let task = Task::new("chain", period, Arc::new(dnn));
    System::new(Platform::default_cpu_gpu(), TaskSet::new(vec![task], PriorityPolicy::RateMonotonic))
}

#[test]
fn an_allocation_over_its_budget_measured_end_to_end_is_repaired() {
    let (system, checks, all_int8_cost) = checked_chain();
    let n = system.tasks[0].dnn.layers.len();
    let cfg = ExecConfig::default();
    assert!(all_int8_cost > 0.0, "int8 changes the output");

    // Assumed free, every stage goes int8: within the budget on paper, a quarter of the
    // all-int8 distortion over it measured.
    let options =
        AllocOptions { accuracy_budget: all_int8_cost / 4.0, assume_int8_cost: Some(0.0), ..AllocOptions::default() };
    let plain = Policy::Lalarand.allocate(&system, &options).unwrap();
    assert_eq!(plain.allocation.int8_layers(), n, "the allocator alone runs every stage int8");

    let checked = allocate_checked(&system, Policy::Lalarand, &options, &checks, &cfg).unwrap();
    let check = &checked.check;
    eprintln!("{check:#?}");
    assert!(!check.repairs.is_empty(), "the first allocation was over its budget");
    assert!((check.repairs[0].measured_pp - all_int8_cost).abs() < 1e-9, "round 1 measured the all-int8 chain");
    assert!(check.within_budget && check.measured_pp <= options.accuracy_budget + 1e-9, "{check:?}");
    assert_eq!(check.estimated_pp, 0.0, "the budgeted sum never saw it");
    let int8_left = checked.outcome.allocation.int8_layers();
    assert!(int8_left < n && int8_left == check.tasks[0].int8_layers);
    let moved: usize = check.repairs.iter().map(|r| r.moved_to_fp32.len()).sum();
    assert!(moved + int8_left <= n && moved <= n.div_ceil(2), "a round moves at most half the int8 stages");
    for (j, l) in checked.system.tasks[0].dnn.layers.iter().enumerate() {
        let was_moved = check.repairs.iter().flat_map(|r| &r.moved_to_fp32).any(|(_, name, _)| *name == l.name);
        assert_eq!(l.mode(Mode::CpuInt8).is_none(), was_moved, "layer {j}: int8 forbidden exactly where repaired");
    }
}

/// The conv chain's task, its int8 stages and 8 seeded inputs; the all-int8 chain's label-free
/// cost.
fn checked_chain() -> (System, Vec<Option<TaskCheck>>, f64) {
    let staged = conv_chain();
    let dims = staged.input_shape(1);
    let inputs: Vec<(Vec<usize>, Vec<f32>)> =
        seeded_inputs(8, dims.iter().product(), 3).into_iter().map(|x| (dims.clone(), x)).collect();
    let int8 = build_int8(&staged, &inputs, CalibrationMethod::Percentile(99.99), &mut || false).unwrap();
    let n = staged.stage_count();
    assert!((0..n).all(|i| int8.get(i).is_some()), "every stage has an int8 model");
    let cfg = ExecConfig::default();
    let fp32 = chained_outputs(&staged, &vec![Mode::CpuFp32; n], None, &inputs, &cfg, "test").unwrap();
    let all_int8 = chained_outputs(&staged, &vec![Mode::CpuInt8; n], Some(&int8), &inputs, &cfg, "test").unwrap();
    let cost = output_cost(Int8CostKind::Distortion, false, &fp32, &all_int8);
    (system(&staged), vec![Some(TaskCheck { staged, int8, inputs })], cost)
}

/// A user's metric in a unit ten times the label-free one's (what a task's accuracy drop can
/// be next to its output's distortion, docs/evaluation.md §15); records what it was given.
struct TenfoldDistortion {
    seen: Vec<(usize, String, usize, usize)>,
}

impl CostMeasure for TenfoldDistortion {
    fn name(&self) -> &str {
        "tenfold distortion"
    }

    fn cost(&mut self, c: &Compared<'_>) -> lalarand_engine::Result<f64> {
        self.seen.push((c.task, c.name.to_string(), c.outputs_per_input, c.got.len()));
        Ok(10.0 * LabelFree.cost(c)?)
    }
}

#[test]
fn the_budget_holds_on_the_measure_given_where_the_label_free_cost_sees_no_excess() {
    let (system, checks, all_int8_cost) = checked_chain();
    let n = system.tasks[0].dnn.layers.len();
    // All-int8 is within twice its label-free cost, and ten times over it in the user's unit.
    let options =
        AllocOptions { accuracy_budget: 2.0 * all_int8_cost, assume_int8_cost: Some(0.0), ..AllocOptions::default() };
    let cfg = ExecConfig::default();
    let label_free = allocate_checked(&system, Policy::Lalarand, &options, &checks, &cfg).unwrap();
    assert!(label_free.check.repairs.is_empty() && label_free.check.within_budget, "{:?}", label_free.check);
    assert_eq!(label_free.outcome.allocation.int8_layers(), n);
    assert_eq!(label_free.check.tasks[0].measure, "label-free");

    let mut measure = TenfoldDistortion { seen: Vec::new() };
    let checked = allocate_checked_with(&system, Policy::Lalarand, &options, &checks, &cfg, &mut measure).unwrap();
    let check = &checked.check;
    assert!(!check.repairs.is_empty(), "the measure saw the excess: {check:?}");
    assert!((check.repairs[0].measured_pp - 10.0 * all_int8_cost).abs() < 1e-9, "{check:?}");
    assert!(check.within_budget && check.measured_pp <= options.accuracy_budget + 1e-9, "{check:?}");
    assert!(checked.outcome.allocation.int8_layers() < n);
    assert_eq!(check.tasks[0].measure, "tenfold distortion");
    assert_eq!(measure.seen[0], (0, "chain".to_string(), 1, 8), "task 0, one output for each of 8 inputs");
}

/// A measure that cannot say a number.
struct Undefined;

impl CostMeasure for Undefined {
    fn name(&self) -> &str {
        "undefined"
    }

    fn cost(&mut self, _: &Compared<'_>) -> lalarand_engine::Result<f64> {
        Ok(f64::NAN)
    }
}

#[test]
fn a_measure_returning_no_number_is_an_error_naming_the_task_and_the_fix() {
    let (system, checks, _) = checked_chain();
    let options = AllocOptions { assume_int8_cost: Some(0.0), ..AllocOptions::default() };
    let err =
        allocate_checked_with(&system, Policy::Lalarand, &options, &checks, &ExecConfig::default(), &mut Undefined)
            .err()
            .expect("NaN is no cost")
            .to_string();
    assert!(
        err.contains("\"chain\"") && err.contains("undefined") && err.contains("NaN") && err.contains("fix:"),
        "{err}"
    );
}

#[test]
fn a_task_running_int8_without_a_model_to_check_is_an_error_naming_the_fix() {
    let staged = conv_chain();
    let system = system(&staged);
    let options = AllocOptions { assume_int8_cost: Some(0.0), ..AllocOptions::default() };
    let err = allocate_checked(&system, Policy::Lalarand, &options, &[None], &ExecConfig::default())
        .err()
        .expect("an int8 task without a model cannot be checked")
        .to_string();
    assert!(err.contains("\"chain\"") && err.contains("cpu-int8") && err.contains("fix:"), "{err}");
}
