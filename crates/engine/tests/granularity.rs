//! `--granularity`: a profile at `block` or `auto` records how it merged the layer stages, and
//! whatever loads the model for that profile (run, serve) gets the very stages it measured,
//! computing what the model computes; a grouping that does not fit the model is refused.

use lalarand_engine::profile::{profile_to_file, synthetic_inputs, ProfileOptions};
use lalarand_engine::serving::EngineExecutor;
use lalarand_engine::stage::ExecConfig;
use lalarand_engine::{Pipeline, StagedModel};
use lalarand_model::{
    Allocation, DnnProfile, Mode, Placement, Platform, PriorityPolicy, Resource, ResourceKind, System, Task, TaskSet,
};
use lalarand_onnx::granularity::Granularity;
use lalarand_runtime::os;
use lalarand_runtime::serve::{Input, ServeConfig, Server, StopPolicy};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn mnist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mnist_resnet.onnx")
}

fn profile_at(granularity: Granularity, out: &Path) -> DnnProfile {
    let opts = ProfileOptions {
        runs: 2,
        warmup: 1,
        modes: vec![Mode::CpuFp32, Mode::CpuInt8],
        progress: false,
        cold_cache: false,
        granularity,
        ..ProfileOptions::default()
    };
    let staged = StagedModel::load(&mnist()).unwrap();
    profile_to_file(&mnist(), &synthetic_inputs(&staged, 4), &opts, out).unwrap().profile
}

/// One task, its first half int8 on one core, the rest fp32 on another.
fn system(profile: DnnProfile) -> (System, Allocation, Vec<Mode>) {
    let cores = os::available_cores();
    let resource = |name: &str, core: usize| Resource { cores: vec![core], ..Resource::new(name, ResourceKind::Cpu) };
    let platform = Platform { resources: vec![resource("cpu0", cores[0]), resource("cpu1", *cores.last().unwrap())] };
    let n = profile.layers.len();
    let modes: Vec<Mode> = (0..n).map(|j| if j < n / 2 { Mode::CpuInt8 } else { Mode::CpuFp32 }).collect();
    let places = (0..n).map(|j| Placement { mode: modes[j], resource: usize::from(j >= n / 2) }).collect();
    let task = Task::new("digits", 1_000_000_000, Arc::new(profile));
    (
        System::new(platform, TaskSet::new(vec![task], PriorityPolicy::RateMonotonic)),
        Allocation { tasks: vec![places] },
        modes,
    )
}

#[test]
fn a_grouped_profile_serves_the_stages_it_measured() {
    let dir = tempfile::tempdir().unwrap();
    let layer_stages = StagedModel::load(&mnist()).unwrap().stage_count();
    for granularity in [Granularity::Block, Granularity::Auto] {
        let out = dir.path().join(format!("{granularity}.json"));
        let profile = profile_at(granularity, &out);
        let grouping = profile.stage_grouping.clone().expect("recorded");
        assert_eq!(grouping.granularity, granularity.to_string());
        assert_eq!(grouping.groups.len(), profile.layers.len());
        assert_eq!(grouping.groups.iter().sum::<usize>(), layer_stages);
        assert_eq!(DnnProfile::load(&out).unwrap().stage_grouping, profile.stage_grouping, "the file keeps it");
        if granularity == Granularity::Block {
            assert!(profile.layers.len() < layer_stages, "the residual blocks are merged: {grouping:?}");
        }

        let staged = StagedModel::load_for_profile(&mnist(), &profile).unwrap();
        let names: Vec<&str> = profile.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(staged.stage_names(), names, "{granularity}: the profiled stages, by name");

        let (system, alloc, modes) = system(profile.clone());
        let exec = EngineExecutor::new(&system, &alloc, &[mnist()]).unwrap();
        let server = Server::builder(&system, &alloc, exec)
            .config(ServeConfig { realtime: false, ..ServeConfig::default() })
            .start()
            .unwrap();
        let dims = staged.input_shape(1);
        let x: Vec<f32> = (0..784).map(|i| (i % 11) as f32 / 11.0).collect();
        let served = server.infer("digits", Input::from_vec(dims.clone(), x.clone()).unwrap()).unwrap();
        server.stop(StopPolicy::Drain).unwrap();
        // The same stages built from the profile's calibration compute the same numbers.
        let cal = profile.calibration.as_ref().unwrap();
        let ranges = cal.ranges.iter().map(|(k, r)| (k.clone(), (r[0], r[1]))).collect();
        let int8 = lalarand_engine::quantize_stages(&staged, &ranges);
        let pipeline = Pipeline::new(&staged, &modes, Some(&int8), &ExecConfig::default()).unwrap();
        assert_eq!(served.outputs[0].data, pipeline.run(&dims, x).unwrap().1, "{granularity}");
    }
}

#[test]
fn a_grouping_that_does_not_fit_the_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut profile = profile_at(Granularity::Block, &dir.path().join("p.json"));
    let g = profile.stage_grouping.as_mut().unwrap();
    // One layer stage more in the first group: no longer the model's stage count.
    g.groups[0] += 1;
    let e = StagedModel::load_for_profile(&mnist(), &profile).unwrap_err().to_string();
    assert!(e.contains("stage_grouping") && e.contains("profile this model again"), "{e}");
}
