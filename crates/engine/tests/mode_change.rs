//! The executor of a running server's next mode (`EngineExecutor::for_mode`): pipelines kept
//! where a task's modes did not change (also when its stages moved to another resource), a new
//! task's built from its model, and a model checked against its profile (`open_model`).

use lalarand_engine::mode_change::{servable, Rebuilt};
use lalarand_engine::serving::{open_model, EngineExecutor, ModelProblem, TaskModel};
use lalarand_engine::StagedModel;
use lalarand_model::examples::chain_profile;
use lalarand_model::{
    Allocation, DnnProfile, LayerProfile, Mode, ModeTiming, Placement, Platform, PriorityPolicy, Resource,
    ResourceKind, System, Task, TaskSet,
};
use lalarand_runtime::os;
use lalarand_runtime::StageExecutor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn mnist_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mnist_resnet.onnx")
}

fn profile(staged: &StagedModel) -> DnnProfile {
    let layers: Vec<LayerProfile> =
        staged.stage_names().iter().map(|n| LayerProfile::gpu_cpu(*n, 1_000_000, 1_000_000)).collect();
    chain_profile(&staged.name, &layers)
}

/// Tasks `names`, each the MNIST model with every stage in cpu-fp32 on `resources[i]`.
fn system(staged: &StagedModel, names: &[&str], resources: &[usize]) -> (System, Allocation) {
    let cores = os::available_cores();
    let resource = |n: &str, core: usize| Resource { cores: vec![core], ..Resource::new(n, ResourceKind::Cpu) };
    let platform = Platform { resources: vec![resource("cpu0", cores[0]), resource("cpu1", *cores.last().unwrap())] };
    let dnn = Arc::new(profile(staged));
    let tasks = names.iter().map(|n| Task::new(*n, 100_000_000, dnn.clone())).collect();
    let n = staged.stage_count();
    let alloc =
        resources.iter().map(|&r| (0..n).map(|_| Placement { mode: Mode::CpuFp32, resource: r }).collect()).collect();
    (System::new(platform, TaskSet::new(tasks, PriorityPolicy::RateMonotonic)), Allocation { tasks: alloc })
}

#[test]
fn a_load_keeps_the_running_pipelines_and_builds_the_new_one() {
    let staged = StagedModel::load(&mnist_path()).unwrap();
    let (sys, alloc) = system(&staged, &["a"], &[0]);
    let old =
        EngineExecutor::from_models(&sys, &alloc, vec![TaskModel { staged: staged.clone(), int8: None }]).unwrap();
    // `a` moves to cpu1 in the same modes: its pipeline is kept (sessions are not bound to a
    // resource); `b` is new.
    let (sys2, alloc2) = system(&staged, &["a", "b"], &[1, 0]);
    let added = HashMap::from([("b".to_string(), staged.clone())]);
    let (new, rebuilt) = old.for_mode(&sys2, &alloc2, added).unwrap();
    assert_eq!(rebuilt, Rebuilt { kept: vec!["a".into()], rebuilt: vec![], added: vec!["b".into()] });
    assert!(new.shares_pipeline(0, &old, 0), "a's pipeline is the old one");
    assert!(!new.shares_pipeline(1, &old, 0));
    assert_eq!(new.output_specs(1), old.output_specs(0));
    // Both serve: the same model gives the same outputs on the same input.
    let input = new.run_input(0);
    let run = |task: usize| {
        let mut job = new.start_job(task, 0, &input).unwrap();
        for stage in 0..staged.stage_count() {
            new.run_stage(task, stage, 0, &mut job).unwrap();
        }
        new.outputs(task, job).unwrap()
    };
    assert_eq!(run(0)[0].data, run(1)[0].data);

    // An unload keeps the rest; a new task needs its model, and a model needs its task.
    let (sys3, alloc3) = system(&staged, &["b"], &[0]);
    let (after, rebuilt) = new.for_mode(&sys3, &alloc3, HashMap::new()).unwrap();
    assert_eq!(rebuilt.kept, ["b"]);
    assert!(after.shares_pipeline(0, &new, 1));
    let e = old.for_mode(&sys2, &alloc2, HashMap::new()).unwrap_err().to_string();
    assert!(e.contains("\"b\"") && e.contains("no model given"), "{e}");
    let stray = HashMap::from([("c".to_string(), staged.clone())]);
    let e = old.for_mode(&sys, &alloc, stray).unwrap_err().to_string();
    assert!(e.contains("\"c\"") && e.contains("does not have"), "{e}");
}

#[test]
fn a_model_that_does_not_match_its_profile_is_named() {
    let path = mnist_path();
    let staged = StagedModel::load(&path).unwrap();
    let task = |dnn: DnnProfile| Task::new("t", 100_000_000, Arc::new(dnn));
    assert!(open_model(&task(profile(&staged)), &path).is_ok());
    let e = open_model(&task(profile(&staged)), Path::new("/nonexistent/m.onnx")).unwrap_err();
    assert!(matches!(e, ModelProblem::Missing { .. }) && e.to_string().contains("no such file"), "{e}");
    let mut other = profile(&staged);
    other.model_sha256 = Some("0".repeat(64));
    let e = open_model(&task(other), &path).unwrap_err();
    assert!(matches!(e, ModelProblem::Digest { .. }) && e.to_string().contains("changed since it was profiled"), "{e}");
    let mut renamed = profile(&staged);
    renamed.layers[2].name = "not-a-stage".into();
    let e = open_model(&task(renamed), &path).unwrap_err();
    assert!(matches!(e, ModelProblem::Stages { .. }), "{e}");
    let mut fewer = profile(&staged);
    fewer.layers.pop();
    assert!(matches!(open_model(&task(fewer), &path), Err(ModelProblem::Stages { .. })));
}

#[test]
fn without_a_calibration_only_the_fp32_modes_are_servable() {
    let staged = StagedModel::load(&mnist_path()).unwrap();
    let mut p = profile(&staged);
    p.layers[0].modes[Mode::CpuInt8.index()] = Some(ModeTiming::from_wcet(1));
    let only_int8 = &mut p.layers[1];
    only_int8.modes = [None, None, Some(ModeTiming::from_wcet(1))];
    let s = servable(&p);
    assert!(s.layers[0].modes[Mode::CpuInt8.index()].is_none(), "no calibration to rebuild it from");
    assert!(s.layers[1].modes[Mode::CpuInt8.index()].is_some(), "its only mode is kept (the refusal says why)");
    assert_eq!(s.layers[0].modes[Mode::CpuFp32.index()], p.layers[0].modes[Mode::CpuFp32.index()]);
}

/// A running task whose modes change is rebuilt from the model it has, its int8 stages from
/// its profile's saved calibration: its outputs are then those of a pipeline built from the
/// same ranges, and the other task keeps its pipeline.
#[test]
fn a_task_whose_modes_change_is_rebuilt_with_its_profiled_int8_stages() {
    let dir = tempfile::tempdir().unwrap();
    let model = mnist_path();
    let opts = lalarand_engine::profile::ProfileOptions {
        runs: 2,
        warmup: 1,
        modes: vec![Mode::CpuFp32, Mode::CpuInt8],
        progress: false,
        cold_cache: false,
        ..Default::default()
    };
    let staged = StagedModel::load(&model).unwrap();
    let inputs = lalarand_engine::profile::synthetic_inputs(&staged, 4);
    let out = dir.path().join("mnist.json");
    let profiled = lalarand_engine::profile::profile_to_file(&model, &inputs, &opts, &out).unwrap().profile;
    let ranges = profiled.calibration.as_ref().expect("the profiler saves the calibration").ranges.clone();
    let (sys, _) = system(&staged, &["a", "b"], &[0, 1]);
    let sys = System::new(
        sys.platform.clone(),
        TaskSet::new(
            ["a", "b"].iter().map(|n| Task::new(*n, 100_000_000, Arc::new(profiled.clone()))).collect(),
            PriorityPolicy::RateMonotonic,
        ),
    );
    let n = staged.stage_count();
    let places = |modes: &dyn Fn(usize) -> Mode, r: usize| -> Vec<Placement> {
        (0..n).map(|j| Placement { mode: modes(j), resource: r }).collect()
    };
    let fp32 = Allocation { tasks: vec![places(&|_| Mode::CpuFp32, 0), places(&|_| Mode::CpuFp32, 1)] };
    let old = EngineExecutor::new(&sys, &fp32, &[model.clone(), model.clone()]).unwrap();
    // `a` now runs its first half in cpu-int8.
    let half_int8 = |j: usize| if j < n / 2 { Mode::CpuInt8 } else { Mode::CpuFp32 };
    let mixed = Allocation { tasks: vec![places(&half_int8, 0), places(&|_| Mode::CpuFp32, 1)] };
    let (new, rebuilt) = old.for_mode(&sys, &mixed, HashMap::new()).unwrap();
    assert_eq!(rebuilt, Rebuilt { kept: vec!["b".into()], rebuilt: vec!["a".into()], added: vec![] });
    assert!(new.shares_pipeline(1, &old, 1) && !new.shares_pipeline(0, &old, 0));
    let input = new.run_input(0);
    let mut job = new.start_job(0, 0, &input).unwrap();
    for stage in 0..n {
        new.run_stage(0, stage, 0, &mut job).unwrap();
    }
    let served = new.outputs(0, job).unwrap();
    let ranges = ranges.iter().map(|(k, r)| (k.clone(), (r[0], r[1]))).collect();
    let int8 = lalarand_engine::quantize_stages(&staged, &ranges);
    let modes: Vec<Mode> = (0..n).map(half_int8).collect();
    let pipeline =
        lalarand_engine::Pipeline::new(&staged, &modes, Some(&int8), &lalarand_engine::ExecConfig::default()).unwrap();
    let dims = staged.input_shape(1);
    let x = lalarand_engine::profile::synthetic_inputs(&staged, 1).pop().unwrap();
    assert_eq!(served[0].data, pipeline.run(&dims, x).unwrap().1, "the profiled int8 stages");
}
