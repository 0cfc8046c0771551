//! Built-in example systems, for the demo, docs and tests.

use crate::library::{artifact_profiles, ArtifactSet, Int8Model};
use crate::platform::{Platform, Resource, ResourceKind};
use crate::profile::{DnnProfile, LayerProfile, OutputTransitions};
use crate::task::{PriorityPolicy, System, Task, TaskSet};
use crate::time::us_to_time;
use std::sync::Arc;

/// A profile with the given layers and no transition or output costs.
pub fn chain_profile(model: &str, layers: &[LayerProfile]) -> DnnProfile {
    DnnProfile {
        model: model.into(),
        source: "built in".into(),
        wcet_margin: None,
        model_sha256: None,
        layers: layers.to_vec(),
        output: OutputTransitions::default(),
        int8_accuracy_unknown: Default::default(),
        calibration: None,
        input_shapes: Default::default(),
        int8_notes: Default::default(),
        int8_cost_kind: Default::default(),
        stage_grouping: None,
        layer_sources: Default::default(),
    }
}

/// The demo: four DNNs from the LaLaRAND artifact (set A, cpu-int8 modelled) on one GPU and one
/// CPU, with periods that overload the GPU when every layer runs there, and a host<->GPU copy
/// cost on every layer.
pub fn demo_system() -> System {
    let library = artifact_profiles(ArtifactSet::A, Some(Int8Model::default()));
    let get = |name: &str| {
        let mut p = library.iter().find(|p| p.model == name).expect("artifact model").clone();
        for l in &mut p.layers {
            l.transitions.copy_in = us_to_time(5.0);
            l.transitions.quantize_in = us_to_time(2.0);
            l.transitions.dequantize_in = us_to_time(2.0);
        }
        p.output.copy_out = us_to_time(5.0);
        Arc::new(p)
    };
    let tasks = vec![
        Task::new("detector", us_to_time(DEMO_PERIODS_US[0]), get("yolov3-tiny")),
        Task::new("classifier", us_to_time(DEMO_PERIODS_US[1]), get("resnet18")),
        Task::new("features", us_to_time(DEMO_PERIODS_US[2]), get("extraction")),
        Task::new("digits", us_to_time(DEMO_PERIODS_US[3]), get("lenet")),
    ];
    System::new(Platform::default_cpu_gpu(), TaskSet::new(tasks, PriorityPolicy::RateMonotonic))
}

/// [`demo_system`] for a machine without a GPU: the same four DNNs on two `cpu` resources, the
/// second (`accel`, `accelerator = true`) standing in for the GPU as in the demo's stand-in
/// platform. Each task's period is [`CPU_ONLY_PERIOD_PER_FP32_WCET`] times its model's whole
/// `cpu-fp32` time (rounded up to 0.1 ms): all-fp32 work then needs both cpus in full, so the
/// set is schedulable only with `cpu-int8` layers.
pub fn demo_system_cpu_only() -> System {
    let tasks = demo_system()
        .tasks
        .into_iter()
        .map(|task| {
            let fp32_us: f64 =
                task.dnn.layers.iter().filter_map(|l| l.wcet(crate::Mode::CpuFp32)).map(crate::time::time_to_us).sum();
            let period_us = (fp32_us * CPU_ONLY_PERIOD_PER_FP32_WCET / 100.0).ceil() * 100.0;
            Task::new(task.name, us_to_time(period_us), task.dnn)
        })
        .collect();
    let cpu = Resource::new("cpu", ResourceKind::Cpu);
    let mut accel = Resource::new("accel", ResourceKind::Cpu);
    accel.accelerator = true;
    System::new(Platform { resources: vec![cpu, accel] }, TaskSet::new(tasks, PriorityPolicy::RateMonotonic))
}

/// [`demo_system_cpu_only`]'s period over each model's whole `cpu-fp32` time: with four tasks,
/// their fp32 utilization sums to 2, the capacity of the two cpus.
pub const CPU_ONLY_PERIOD_PER_FP32_WCET: f64 = 2.0;

/// Periods of [`demo_system`]'s tasks, microseconds.
pub const DEMO_PERIODS_US: [f64; 4] = [3_000.0, 4_000.0, 12_000.0, 5_000.0];
