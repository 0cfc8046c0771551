//! Baseline allocators: validity, hand-computed answers, errors, and random systems.

use lalarand_alloc::{
    AllocError, AllocOptions, Allocator, CpuOnly, Dart, DartUtil, GpuOnly, Outcome, Preferable, TaskLevel,
};
use lalarand_analysis::analyze;
use lalarand_model::examples::{chain_profile, demo_system};
use lalarand_model::{
    ms_to_time, us_to_time, ExecutionPlan, LayerProfile, Mode, ModeTiming, Platform, PriorityPolicy, Resource,
    ResourceKind, System, Task, TaskSet, Transitions,
};
use proptest::prelude::*;
use std::sync::Arc;

const ALL: [&dyn Allocator; 6] = [&GpuOnly, &CpuOnly, &TaskLevel, &DartUtil, &Preferable, &Dart];

fn layer(name: &str, gpu_ms: Option<f64>, fp32_ms: Option<f64>, int8_ms: Option<f64>) -> LayerProfile {
    let t = |ms: Option<f64>| ms.map(|m| ModeTiming::from_wcet(ms_to_time(m)));
    LayerProfile {
        name: name.into(),
        modes: [t(gpu_ms), t(fp32_ms), t(int8_ms)],
        int8_accuracy_cost: 0.0,
        transitions: Transitions::default(),
    }
}

fn task(name: &str, period_ms: f64, layers: Vec<LayerProfile>) -> Task {
    Task::new(name, ms_to_time(period_ms), Arc::new(chain_profile(name, &layers)))
}

fn platform(kinds: &[(&str, ResourceKind)]) -> Platform {
    Platform { resources: kinds.iter().map(|(n, k)| Resource::new(*n, *k)).collect() }
}

fn system(platform: Platform, tasks: Vec<Task>) -> System {
    System::new(platform, TaskSet::new(tasks, PriorityPolicy::RateMonotonic))
}

/// Checks what every outcome must satisfy and returns it.
fn checked(system: &System, outcome: Outcome) -> Outcome {
    outcome.allocation.validate(system).unwrap();
    let plan = ExecutionPlan::new(system, &outcome.allocation).unwrap();
    assert_eq!(outcome.analysis, analyze(&plan), "the outcome carries the analysis of its allocation");
    assert!(outcome.complete);
    outcome
}

fn run(policy: &dyn Allocator, system: &System, options: &AllocOptions) -> Outcome {
    checked(system, policy.allocate(system, options).unwrap())
}

/// Which (mode, resource) each layer of task `i` got.
fn places(o: &Outcome, i: usize) -> Vec<(Mode, usize)> {
    o.allocation.tasks[i].iter().map(|p| (p.mode, p.resource)).collect()
}

fn key(o: &Outcome) -> (usize, f64) {
    (o.analysis.unschedulable_count(), o.analysis.max_normalized())
}

#[test]
fn demo_system_gets_valid_allocations_of_the_right_shape() {
    let sys = demo_system();
    let opts = AllocOptions::default();
    let gpu = run(&GpuOnly, &sys, &opts);
    let cpu = run(&CpuOnly, &sys, &opts);
    let task_level = run(&TaskLevel, &sys, &opts);
    let dart = run(&DartUtil, &sys, &opts);
    let (g, c) = (0, 1); // default_cpu_gpu: gpu first
    for (i, t) in sys.tasks.iter().enumerate() {
        assert!(places(&gpu, i).iter().all(|&p| p == (Mode::Gpu, g)));
        assert!(places(&cpu, i).iter().all(|&p| p == (Mode::CpuFp32, c)));
        let first = places(&task_level, i)[0];
        assert!(places(&task_level, i).iter().all(|&p| p == first), "task-level splits {}", t.name);
        // DART's utilization rule: a gpu prefix, then a cpu-fp32 suffix.
        let d = places(&dart, i);
        let k = d.iter().take_while(|p| **p == (Mode::Gpu, g)).count();
        assert!(d[k..].iter().all(|&p| p == (Mode::CpuFp32, c)), "dart cut of {}: {d:?}", t.name);
    }
    // The demo overloads the gpu; task-level's exhaustive search (3^4 assignments) includes
    // both uniform ones, so it is at least as good as either.
    assert!(!gpu.schedulable());
    for other in [&gpu, &cpu] {
        let (a, b) = (key(&task_level), key(other));
        assert!(a.0 < b.0 || (a.0 == b.0 && a.1 <= b.1), "task-level {a:?} vs {b:?}");
    }
    assert!(task_level.allocation.accuracy_cost(&sys) <= opts.accuracy_budget + 1e-9);
    assert!(task_level.evaluations >= 81);
}

#[test]
fn uniform_baselines_report_the_missing_mode_or_resource() {
    let sys = system(
        Platform::default_cpu_gpu(),
        vec![
            task("a", 10.0, vec![layer("a0", Some(1.0), Some(2.0), None)]),
            task("b", 20.0, vec![layer("b0", Some(1.0), Some(2.0), None), layer("b1", None, Some(2.0), None)]),
            task("c", 30.0, vec![layer("c0", Some(1.0), None, Some(1.0))]),
        ],
    );
    let opts = AllocOptions::default();
    let err = GpuOnly.allocate(&sys, &opts).unwrap_err();
    assert_eq!(
        err,
        AllocError::MissingMode { policy: "gpu-only", task: "b".into(), layer: "b1".into(), mode: Mode::Gpu }
    );
    let err = CpuOnly.allocate(&sys, &opts).unwrap_err();
    assert_eq!(
        err,
        AllocError::MissingMode { policy: "cpu-only", task: "c".into(), layer: "c0".into(), mode: Mode::CpuFp32 }
    );
    let cpu_only_platform = system(
        platform(&[("cpu", ResourceKind::Cpu)]),
        vec![task("a", 10.0, vec![layer("a0", Some(1.0), Some(2.0), None)])],
    );
    assert_eq!(
        GpuOnly.allocate(&cpu_only_platform, &opts).unwrap_err(),
        AllocError::NoAccelerator { policy: "gpu-only" }
    );
    assert_eq!(Dart.allocate(&cpu_only_platform, &opts).unwrap_err(), AllocError::NoAccelerator { policy: "dart" });
    // Task-level needs no gpu: the only task goes whole to the cpu.
    let o = run(&TaskLevel, &cpu_only_platform, &opts);
    assert_eq!(places(&o, 0), vec![(Mode::CpuFp32, 0)]);
}

#[test]
fn a_cpu_standing_in_for_the_accelerator_takes_the_gpu_role() {
    // cpu, accel (a cpu marked `accelerator`): the gpu baselines use accel in cpu-fp32.
    let mut p = platform(&[("cpu", ResourceKind::Cpu), ("accel", ResourceKind::Cpu)]);
    p.resources[1].accelerator = true;
    let tasks = vec![
        task("a", 10.0, vec![layer("a0", None, Some(2.0), None), layer("a1", None, Some(2.0), None)]),
        task("b", 20.0, vec![layer("b0", None, Some(4.0), None), layer("b1", None, Some(4.0), None)]),
    ];
    let sys = system(p, tasks);
    let opts = AllocOptions::default();
    let vanilla = run(&GpuOnly, &sys, &opts);
    assert!((0..2).all(|i| places(&vanilla, i).iter().all(|&p| p == (Mode::CpuFp32, 1))));
    let host = run(&CpuOnly, &sys, &opts);
    assert!((0..2).all(|i| places(&host, i).iter().all(|&p| p == (Mode::CpuFp32, 0))));
    // DART's utilization rule cuts each chain between the stand-in (prefix) and the host cpu.
    let dart = run(&DartUtil, &sys, &opts);
    for i in 0..2 {
        let p = places(&dart, i);
        let cut = p.iter().take_while(|&&(_, r)| r == 1).count();
        assert!(p[cut..].iter().all(|&(m, r)| (m, r) == (Mode::CpuFp32, 0)), "{p:?}");
    }
}

#[test]
fn task_level_moves_a_task_off_an_overloaded_gpu() {
    // Alone each fits anywhere; both on the gpu need 12 ms every 10 ms.
    let sys = system(
        Platform::default_cpu_gpu(),
        vec![
            task("a", 10.0, vec![layer("a0", Some(6.0), Some(8.0), None)]),
            task("b", 10.0, vec![layer("b0", Some(6.0), Some(8.0), None)]),
        ],
    );
    let opts = AllocOptions { allow_int8: false, ..AllocOptions::default() };
    assert!(!run(&GpuOnly, &sys, &opts).schedulable());
    assert!(!run(&CpuOnly, &sys, &opts).schedulable());
    let o = run(&TaskLevel, &sys, &opts);
    assert!(o.schedulable(), "{:?}", o.analysis);
    let mut got = [places(&o, 0)[0], places(&o, 1)[0]];
    got.sort();
    assert_eq!(got, [(Mode::Gpu, 0), (Mode::CpuFp32, 1)]);
}

#[test]
fn task_level_search_beats_uniform_when_too_large_to_enumerate() {
    // 13 tasks x 2 placements = 8192 > the exhaustive limit: greedy + improvement passes only.
    let tasks: Vec<Task> =
        (0..13).map(|i| task(&format!("t{i}"), 20.0, vec![layer("l", Some(2.0), Some(2.5), None)])).collect();
    let sys = system(Platform::default_cpu_gpu(), tasks);
    let opts = AllocOptions { allow_int8: false, ..AllocOptions::default() };
    let gpu = run(&GpuOnly, &sys, &opts);
    let cpu = run(&CpuOnly, &sys, &opts);
    let o = run(&TaskLevel, &sys, &opts);
    assert!(o.evaluations < 8_192, "did not enumerate: {}", o.evaluations);
    let on_gpu = (0..13).filter(|&i| places(&o, i)[0].0 == Mode::Gpu).count();
    assert!((1..13).contains(&on_gpu), "{on_gpu} tasks on the gpu");
    assert!(key(&o).0 < key(&gpu).0 && key(&o).0 < key(&cpu).0, "{:?} {:?} {:?}", key(&o), key(&gpu), key(&cpu));
}

#[test]
fn task_level_uses_int8_only_when_allowed_and_within_budget() {
    // "g" has only a gpu mode and takes 8 of every 10 ms there, so "q" must go to the cpu,
    // where only int8 (5 ms) meets its 10 ms deadline.
    let mut q = layer("q0", Some(9.0), Some(12.0), Some(5.0));
    q.int8_accuracy_cost = 0.5;
    let sys = system(
        Platform::default_cpu_gpu(),
        vec![task("g", 10.0, vec![layer("g0", Some(8.0), None, None)]), task("q", 10.0, vec![q])],
    );
    let q = 1;
    let o = run(&TaskLevel, &sys, &AllocOptions { allow_int8: true, accuracy_budget: 1.0, ..AllocOptions::default() });
    assert!(o.schedulable(), "{:?}", o.analysis);
    assert_eq!(places(&o, q), vec![(Mode::CpuInt8, 1)]);
    assert!((o.allocation.accuracy_cost(&sys) - 0.5).abs() < 1e-12);
    for opts in [
        AllocOptions { allow_int8: false, accuracy_budget: 1.0, ..AllocOptions::default() },
        AllocOptions { allow_int8: true, accuracy_budget: 0.4, ..AllocOptions::default() },
    ] {
        let o = run(&TaskLevel, &sys, &opts);
        assert_eq!(o.allocation.int8_layers(), 0, "{opts:?}");
        assert!(!o.schedulable());
    }
}

#[test]
fn task_level_spreads_over_several_resources() {
    // Each task needs most of a resource; three resources, three tasks.
    let sys = system(
        platform(&[("gpu", ResourceKind::Gpu), ("big", ResourceKind::Cpu), ("little", ResourceKind::Cpu)]),
        (0..3).map(|i| task(&format!("t{i}"), 10.0, vec![layer("l", Some(8.0), Some(9.0), None)])).collect(),
    );
    let o = run(&TaskLevel, &sys, &AllocOptions::default());
    assert!(o.schedulable(), "{:?}", o.analysis);
    let mut used: Vec<usize> = (0..3).map(|i| places(&o, i)[0].1).collect();
    used.sort();
    assert_eq!(used, vec![0, 1, 2]);
    // The uniform baselines use the first resource of their kind.
    assert_eq!(places(&run(&CpuOnly, &sys, &AllocOptions::default()), 2), vec![(Mode::CpuFp32, 1)]);
}

#[test]
fn task_level_reports_a_task_no_single_mode_covers() {
    let sys = system(
        Platform::default_cpu_gpu(),
        vec![task("split", 10.0, vec![layer("a", Some(1.0), None, None), layer("b", None, Some(1.0), None)])],
    );
    assert_eq!(
        TaskLevel.allocate(&sys, &AllocOptions::default()).unwrap_err(),
        AllocError::MissingMode { policy: "task-level", task: "split".into(), layer: "b".into(), mode: Mode::Gpu }
    );
    // DART can run it: the one valid cut puts "a" on the gpu and "b" on the cpu.
    let o = run(&DartUtil, &sys, &AllocOptions::default());
    assert_eq!(places(&o, 0), vec![(Mode::Gpu, 0), (Mode::CpuFp32, 1)]);
    let o = run(&Dart, &sys, &AllocOptions::default());
    assert_eq!(places(&o, 0), vec![(Mode::Gpu, 0), (Mode::CpuFp32, 1)]);
    // Reversed, no cut works: "b" would have to run on the cpu after a gpu-only layer.
    let sys = system(
        Platform::default_cpu_gpu(),
        vec![task("rev", 10.0, vec![layer("a", None, Some(1.0), None), layer("b", Some(1.0), None, None)])],
    );
    assert_eq!(
        DartUtil.allocate(&sys, &AllocOptions::default()).unwrap_err(),
        AllocError::MissingMode { policy: "dart-util", task: "rev".into(), layer: "b".into(), mode: Mode::CpuFp32 }
    );
    // DART's pipeline may visit the cpu first: "a" on the cpu, "b" on the gpu.
    let o = run(&Dart, &sys, &AllocOptions::default());
    assert_eq!(places(&o, 0), vec![(Mode::CpuFp32, 1), (Mode::Gpu, 0)]);
}

/// Four layers: 1 ms on the gpu, 2 ms on the cpu, 0.5 ms to copy an input across, and 0.5 ms
/// to copy a gpu output back. Part costs (ms) per gpu-prefix length k, by hand:
/// k=0: gpu 0, cpu 8 (host input, no copy); k=1: 1.5 / 6.5; k=2: 2.5 / 4.5; k=3: 3.5 / 2.5;
/// k=4: 4 + 0.5 copy-in + 0.5 copy-out = 5 / 0.
fn dart_dnn(name: &str, period_ms: f64) -> Task {
    let layers: Vec<_> = (0..4)
        .map(|j| {
            let mut l = layer(&format!("l{j}"), Some(1.0), Some(2.0), None);
            l.transitions.copy_in = us_to_time(500.0);
            l
        })
        .collect();
    let mut dnn = chain_profile(name, &layers);
    dnn.output.copy_out = us_to_time(500.0);
    Task::new(name, ms_to_time(period_ms), Arc::new(dnn))
}

fn util(ms: f64, period_ms: f64) -> f64 {
    ms_to_time(ms) as f64 / ms_to_time(period_ms) as f64
}

#[test]
fn dart_cut_balances_utilization_with_transitions() {
    let sys = system(Platform::default_cpu_gpu(), vec![dart_dnn("a", 10.0)]);
    let cuts = DartUtil::cuts(&sys, 0).unwrap();
    let by_k = |k: usize| *cuts.iter().find(|c| c.gpu_layers == k).unwrap();
    for (k, gpu_ms, cpu_ms) in [(0, 0.0, 8.0), (1, 1.5, 6.5), (2, 2.5, 4.5), (3, 3.5, 2.5), (4, 5.0, 0.0)] {
        assert!((by_k(k).gpu_util - util(gpu_ms, 10.0)).abs() < 1e-12, "k={k}: {:?}", by_k(k));
        assert!((by_k(k).cpu_util - util(cpu_ms, 10.0)).abs() < 1e-12, "k={k}: {:?}", by_k(k));
    }
    // max(gpu, cpu) is smallest at k=3 (0.35).
    let chosen = DartUtil::choose_cuts(&sys).unwrap();
    assert_eq!(chosen[0].gpu_layers, 3);
    let o = run(&DartUtil, &sys, &AllocOptions::default());
    assert_eq!(
        places(&o, 0),
        vec![(Mode::Gpu, 0), (Mode::Gpu, 0), (Mode::Gpu, 0), (Mode::CpuFp32, 1)],
        "allocation follows the cut"
    );
    let plan = ExecutionPlan::new(&sys, &o.allocation).unwrap();
    let u = plan.utilization();
    assert!((u[0] - 0.35).abs() < 1e-9 && (u[1] - 0.25).abs() < 1e-9, "{u:?}");
}

#[test]
fn dart_cuts_tasks_in_decreasing_utilization_against_accumulated_load() {
    // "heavy" (period 5) has twice the utilization of "light" (period 10) but, by deadline,
    // lower priority. Heavy first: k=3 (gpu 0.7, cpu 0.5). Then light: k=2 gives
    // max(0.7 + 0.25, 0.5 + 0.45) = 0.95, better than k=3's max(1.05, 0.75).
    // (Light first would give both k=3.)
    let mut light = dart_dnn("light", 10.0);
    light.deadline = ms_to_time(4.0);
    let sys = System::new(
        Platform::default_cpu_gpu(),
        TaskSet::new(vec![dart_dnn("heavy", 5.0), light], PriorityPolicy::DeadlineMonotonic),
    );
    assert!(sys.tasks[1].priority < sys.tasks[0].priority);
    let cuts = DartUtil::choose_cuts(&sys).unwrap();
    assert_eq!((cuts[0].gpu_layers, cuts[1].gpu_layers), (3, 2));
    run(&DartUtil, &sys, &AllocOptions::default());
}

#[test]
fn dart_balances_across_two_cpu_clusters() {
    // Heavy first on (gpu, big) at k=3; the light one then prefers the idle little cluster,
    // where k=2 gives max(0.35 + 0.25, 0.45) = 0.6 (on big, k=2 would give 0.7).
    let sys = system(
        platform(&[("gpu", ResourceKind::Gpu), ("big", ResourceKind::Cpu), ("little", ResourceKind::Cpu)]),
        vec![dart_dnn("heavy", 10.0), dart_dnn("light", 10.0)],
    );
    let cuts = DartUtil::choose_cuts(&sys).unwrap();
    assert_eq!((cuts[0].gpu_layers, cuts[0].cpu), (3, 1));
    assert_eq!((cuts[1].gpu_layers, cuts[1].cpu), (2, 2));
    let o = run(&DartUtil, &sys, &AllocOptions::default());
    assert_eq!(places(&o, 1)[3], (Mode::CpuFp32, 2));
}

// ---- random systems -------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RandomLayer {
    /// Per mode: the wcet in microseconds, if the mode exists.
    modes: [Option<u32>; 3],
    copy_us: u32,
    q_us: u32,
    cost: f64,
}

fn random_layer() -> impl Strategy<Value = RandomLayer> {
    (
        proptest::option::weighted(0.85, 1u32..3_000),
        proptest::option::weighted(0.85, 1u32..6_000),
        proptest::option::weighted(0.6, 1u32..3_000),
        0u32..200,
        0u32..100,
        -0.1f64..0.5,
    )
        .prop_map(|(g, c, q, copy_us, q_us, cost)| {
            // At least one mode per layer, as profiles require.
            let modes = if g.is_none() && c.is_none() && q.is_none() { [Some(1_000), None, None] } else { [g, c, q] };
            RandomLayer { modes, copy_us, q_us, cost }
        })
}

fn random_system() -> impl Strategy<Value = System> {
    let tasks = proptest::collection::vec((proptest::collection::vec(random_layer(), 1..5), 1u32..40), 1..5);
    (tasks, 0usize..3, 0usize..3, any::<bool>()).prop_filter_map(
        "a platform needs a resource",
        |(tasks, gpus, cpus, dm)| {
            if gpus + cpus == 0 {
                return None;
            }
            let mut resources: Vec<Resource> =
                (0..gpus).map(|i| Resource::new(format!("gpu{i}"), ResourceKind::Gpu)).collect();
            resources.extend((0..cpus).map(|i| Resource::new(format!("cpu{i}"), ResourceKind::Cpu)));
            let tasks = tasks
                .into_iter()
                .enumerate()
                .map(|(i, (layers, period_ms))| {
                    let layers: Vec<LayerProfile> = layers
                        .iter()
                        .enumerate()
                        .map(|(j, l)| LayerProfile {
                            name: format!("l{j}"),
                            modes: l.modes.map(|m| m.map(|us| ModeTiming::from_wcet(us_to_time(us as f64)))),
                            int8_accuracy_cost: l.cost,
                            transitions: Transitions {
                                copy_in: us_to_time(l.copy_us as f64),
                                quantize_in: us_to_time(l.q_us as f64),
                                dequantize_in: us_to_time(l.q_us as f64),
                            },
                        })
                        .collect();
                    let mut t = task(&format!("t{i}"), period_ms as f64, layers);
                    if dm {
                        t.deadline = t.period * 3 / 4;
                    }
                    t
                })
                .collect();
            let policy = if dm { PriorityPolicy::DeadlineMonotonic } else { PriorityPolicy::RateMonotonic };
            Some(System::new(Platform { resources }, TaskSet::new(tasks, policy)))
        },
    )
}

/// Whether layers `from..` of `t` can be covered by contiguous stages on distinct resources not
/// in `used`, each in the fp32 mode of its resource's kind (brute force, for small systems).
fn dart_pipeline_exists(sys: &System, t: &Task, from: usize, used: &mut Vec<bool>) -> bool {
    let n = t.dnn.layers.len();
    if from == n {
        return true;
    }
    for r in 0..used.len() {
        if used[r] {
            continue;
        }
        let mode = if sys.platform.resources[r].kind == ResourceKind::Gpu { Mode::Gpu } else { Mode::CpuFp32 };
        used[r] = true;
        let mut end = from;
        while end < n && t.dnn.layers[end].mode(mode).is_some() {
            end += 1;
            if dart_pipeline_exists(sys, t, end, used) {
                used[r] = false;
                return true;
            }
        }
        used[r] = false;
    }
    false
}

/// Contiguous fp32 stages, each resource visited at most once.
fn is_pipeline(places: &[lalarand_model::Placement]) -> bool {
    let mut seen = Vec::new();
    for (j, p) in places.iter().enumerate() {
        if p.mode.is_int8() {
            return false;
        }
        if j == 0 || places[j - 1] != *p {
            if seen.contains(&p.resource) {
                return false;
            }
            seen.push(p.resource);
        }
    }
    true
}

fn has(sys: &System, kind: ResourceKind) -> bool {
    sys.platform.of_kind(kind).next().is_some()
}

fn all_have(t: &Task, mode: Mode) -> bool {
    t.dnn.layers.iter().all(|l| l.mode(mode).is_some())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_baseline_is_valid_or_fails_exactly_when_it_must(
        sys in random_system(),
        allow_int8 in any::<bool>(),
        budget in 0.0f64..1.5,
    ) {
        let opts = AllocOptions { allow_int8, accuracy_budget: budget, ..AllocOptions::default() };
        let gpu = has(&sys, ResourceKind::Gpu);
        let cpu = has(&sys, ResourceKind::Cpu);
        let whole_int8 = |t: &Task| {
            let cost: f64 = t.dnn.layers.iter().map(|l| l.budgeted_int8_cost()).sum();
            allow_int8 && cost <= budget && all_have(t, Mode::CpuInt8)
        };
        let pipeline = |t: &Task| dart_pipeline_exists(&sys, t, 0, &mut vec![false; sys.platform.resources.len()]);
        let dart_cut = |t: &Task| {
            let n = t.dnn.layers.len();
            (0..=n).any(|k| {
                t.dnn.layers[..k].iter().all(|l| l.mode(Mode::Gpu).is_some())
                    && t.dnn.layers[k..].iter().all(|l| l.mode(Mode::CpuFp32).is_some())
            })
        };
        let feasible = [
            gpu && sys.tasks.iter().all(|t| all_have(t, Mode::Gpu)),
            cpu && sys.tasks.iter().all(|t| all_have(t, Mode::CpuFp32)),
            sys.tasks.iter().all(|t| {
                (gpu && all_have(t, Mode::Gpu)) || (cpu && (all_have(t, Mode::CpuFp32) || whole_int8(t)))
            }),
            gpu && cpu && sys.tasks.iter().all(dart_cut),
            sys.tasks.iter().all(|t| (gpu && all_have(t, Mode::Gpu)) || (cpu && all_have(t, Mode::CpuFp32))),
            gpu && sys.tasks.iter().all(pipeline),
        ];
        for (policy, ok) in ALL.iter().zip(feasible) {
            match policy.allocate(&sys, &opts) {
                Ok(o) => {
                    prop_assert!(ok, "{} succeeded on an infeasible system", policy.name());
                    let o = checked(&sys, o);
                    prop_assert_eq!(o.analysis.tasks.len(), sys.tasks.len());
                    if policy.name() != "task-level" || !allow_int8 {
                        prop_assert_eq!(o.allocation.int8_layers(), 0, "{}", policy.name());
                    }
                    if policy.name() == "dart" {
                        for ps in &o.allocation.tasks {
                            prop_assert!(is_pipeline(ps), "not a DART pipeline: {:?}", ps);
                        }
                        // It starts from the vanilla allocation, so it is never worse.
                        if let Ok(vanilla) = GpuOnly.allocate(&sys, &opts) {
                            prop_assert!(vanilla.analysis.unschedulable_count() >= o.analysis.unschedulable_count());
                        }
                    }
                    if policy.name() == "task-level" {
                        for (i, ps) in o.allocation.tasks.iter().enumerate() {
                            prop_assert!(ps.iter().all(|p| *p == ps[0]), "task {} split", i);
                        }
                        // With an fp32 home for every task, the budget is always respected.
                        let fp32_everywhere = sys.tasks.iter().all(|t| {
                            (gpu && all_have(t, Mode::Gpu)) || (cpu && all_have(t, Mode::CpuFp32))
                        });
                        if fp32_everywhere {
                            prop_assert!(o.allocation.accuracy_cost(&sys) <= budget + 1e-9);
                        }
                    }
                }
                Err(e) => {
                    prop_assert!(!ok, "{} failed on a feasible system: {}", policy.name(), e);
                    let named = matches!(
                        &e,
                        AllocError::MissingMode { policy: p, .. }
                            | AllocError::NoResource { policy: p, .. }
                            | AllocError::NoAccelerator { policy: p }
                            if *p == policy.name()
                    );
                    prop_assert!(named, "{}: unexpected error {:?}", policy.name(), e);
                }
            }
        }
    }
}

// ---- DART by the analysis, and preferable ----------------------------------------------------

#[test]
fn dart_keeps_the_vanilla_allocation_when_it_is_schedulable() {
    // All on the gpu is proven; the utilization rule would move layers to the slow cpu anyway.
    let sys = system(Platform::default_cpu_gpu(), vec![dart_dnn("a", 10.0), dart_dnn("b", 20.0)]);
    let opts = AllocOptions::default();
    assert!(run(&GpuOnly, &sys, &opts).schedulable());
    let o = run(&Dart, &sys, &opts);
    assert!(o.schedulable());
    for i in 0..2 {
        assert!(places(&o, i).iter().all(|&p| p == (Mode::Gpu, 0)), "{:?}", places(&o, i));
    }
    assert!(run(&DartUtil, &sys, &opts).allocation.tasks.iter().flatten().any(|p| p.mode == Mode::CpuFp32));
}

#[test]
fn dart_moves_a_blocking_suffix_off_the_gpu_when_the_analysis_needs_it() {
    // "short" (period 4) cannot wait behind "long"'s 3 ms gpu layer; "long"'s first layer has
    // no cpu mode, so only a two-stage pipeline (that layer moved to the cpu) is proven.
    let sys = system(
        Platform::default_cpu_gpu(),
        vec![
            task("short", 4.0, vec![layer("s", Some(1.5), Some(10.0), None)]),
            task("long", 40.0, vec![layer("l0", Some(1.0), None, None), layer("l1", Some(3.0), Some(6.0), None)]),
        ],
    );
    let opts = AllocOptions::default();
    assert!(!run(&GpuOnly, &sys, &opts).schedulable());
    let o = run(&Dart, &sys, &opts);
    assert!(o.schedulable(), "{:?}", o.analysis);
    assert_eq!(places(&o, 0), vec![(Mode::Gpu, 0)]);
    assert_eq!(places(&o, 1), vec![(Mode::Gpu, 0), (Mode::CpuFp32, 1)]);
}

#[test]
fn dart_pipelines_are_contiguous_stages_on_distinct_nodes() {
    // Two layers, gpu + one cpu: 2 one-stage pipelines (accelerator first) and 2 two-stage.
    let two = system(Platform::default_cpu_gpu(), vec![dart_dnn("a", 10.0)]);
    let p = Dart::pipelines(&two, 0).unwrap();
    assert_eq!(p.len(), 2 + 2 * 3);
    assert!(p[0].iter().all(|p| p.resource == 0 && p.mode == Mode::Gpu));
    assert!(p.iter().all(|ps| is_pipeline(ps)));
    // With two cpu resources a DNN may pass through three stages.
    let three = system(
        platform(&[("gpu", ResourceKind::Gpu), ("big", ResourceKind::Cpu), ("little", ResourceKind::Cpu)]),
        vec![dart_dnn("a", 10.0)],
    );
    let p = Dart::pipelines(&three, 0).unwrap();
    // 3 one-stage + 6 orders x 3 cuts + 6 orders x C(3, 2) = 3 + 18 + 18.
    assert_eq!(p.len(), 39);
    let stages = |ps: &Vec<lalarand_model::Placement>| 1 + ps.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(p.iter().filter(|ps| stages(ps) == 3).count(), 18);
    assert!(p.iter().all(|ps| is_pipeline(ps)));
}

#[test]
fn preferable_puts_each_whole_dnn_on_its_fastest_resource_in_fp32() {
    let mut fast_int8 = layer("q", Some(9.0), Some(6.0), Some(1.0));
    fast_int8.int8_accuracy_cost = 0.0;
    let sys = system(
        Platform::default_cpu_gpu(),
        vec![
            task("g", 10.0, vec![layer("g0", Some(2.0), Some(5.0), None)]),
            task("c", 20.0, vec![fast_int8]),
            task("tie", 30.0, vec![layer("t0", Some(3.0), Some(3.0), None)]),
        ],
    );
    let o = run(&Preferable, &sys, &AllocOptions::default());
    assert_eq!(places(&o, 0), vec![(Mode::Gpu, 0)]);
    assert_eq!(places(&o, 1), vec![(Mode::CpuFp32, 1)], "fp32 only, even where int8 is faster");
    assert_eq!(places(&o, 2), vec![(Mode::Gpu, 0)], "ties go to the gpu");
}

/// The task set of `task_level_uses_int8_only_when_allowed_and_within_budget`, with "q"'s int8
/// cost unknown (`null` in its profile): no policy may count it as 0 against the budget; only
/// an assumed cost lets int8 in, budgeted at that cost.
#[test]
fn no_policy_places_a_layer_of_unknown_int8_cost_in_int8_unless_a_cost_is_assumed() {
    let g = task("g", 10.0, vec![layer("g0", Some(8.0), None, None)]);
    let mut q = task("q", 10.0, vec![layer("q0", Some(9.0), Some(12.0), Some(5.0))]);
    Arc::make_mut(&mut q.dnn).int8_accuracy_unknown.insert(0);
    let sys = system(Platform::default_cpu_gpu(), vec![g, q]);
    for policy in lalarand_alloc::Policy::ALL {
        let Ok(o) = policy.allocate(&sys, &AllocOptions::default()) else { continue };
        assert_eq!(o.allocation.int8_layers(), 0, "{policy}: an unknown cost is not a free one");
    }
    let assumed = AllocOptions { assume_int8_cost: Some(0.5), ..AllocOptions::default() };
    let o = lalarand_alloc::Policy::Lalarand.allocate(&sys, &assumed).unwrap();
    assert!(o.schedulable() && o.allocation.int8_layers() == 1, "{:?}", o.analysis);
    let offered = sys.with_unknown_int8_costs(assumed.assume_int8_cost);
    assert!((o.allocation.accuracy_cost(&offered) - 0.5).abs() < 1e-12, "budgeted at the assumed cost");
    let tight = AllocOptions { accuracy_budget: 0.4, ..assumed };
    assert_eq!(lalarand_alloc::Policy::Lalarand.allocate(&sys, &tight).unwrap().allocation.int8_layers(), 0);
}

/// `lalarand init --cpu-only`'s system: on two cpus, all-fp32 work fills both, so every fp32
/// policy fails and only an allocation with `cpu-int8` layers (within the budget) is proven.
#[test]
fn the_cpu_only_template_needs_int8_and_lalarand_proves_it() {
    use lalarand_alloc::Policy;
    let sys = lalarand_model::examples::demo_system_cpu_only();
    assert!(sys.platform.of_kind(ResourceKind::Gpu).next().is_none());
    let opts = AllocOptions::default();
    for fp32_only in [Policy::GpuOnly, Policy::CpuOnly, Policy::LalarandFp32] {
        assert!(!fp32_only.allocate(&sys, &opts).unwrap().schedulable(), "{fp32_only}");
    }
    let proven = checked(&sys, Policy::Lalarand.allocate(&sys, &opts).unwrap());
    assert!(proven.schedulable());
    assert!(proven.allocation.tasks.iter().flatten().any(|p| p.mode == Mode::CpuInt8));
}
