use super::*;
use crate::Policy;
use lalarand_model::examples::{chain_profile, demo_system};
use lalarand_model::{
    ms_to_time, LayerProfile, ModeTiming, Placement, PriorityPolicy, Resource, ResourceKind, TaskSet, Transitions,
};
use proptest::prelude::*;
use std::sync::Arc;

fn layer(gpu_ms: Option<f64>, fp32_ms: Option<f64>, int8: Option<(f64, f64)>) -> LayerProfile {
    let t = |ms: Option<f64>| ms.map(|m| ModeTiming::from_wcet(ms_to_time(m)));
    LayerProfile {
        name: "l".into(),
        modes: [t(gpu_ms), t(fp32_ms), t(int8.map(|(ms, _)| ms))],
        int8_accuracy_cost: int8.map_or(0.0, |(_, cost)| cost),
        transitions: Transitions::default(),
    }
}

fn task(name: &str, period_ms: f64, layers: Vec<LayerProfile>) -> Task {
    Task::new(name, ms_to_time(period_ms), Arc::new(chain_profile(name, &layers)))
}

fn gpu_only_platform() -> Platform {
    Platform { resources: vec![Resource::new("gpu", ResourceKind::Gpu)] }
}

/// `tasks` placed as `places` (one placement per task, every layer there), proven.
fn proven(platform: Platform, tasks: Vec<Task>, places: &[Placement]) -> Proven {
    let system = System::new(platform, TaskSet::new(tasks, PriorityPolicy::RateMonotonic));
    let allocation =
        Allocation { tasks: system.tasks.iter().zip(places).map(|(t, &p)| vec![p; t.dnn.layers.len()]).collect() };
    Proven::new(system, allocation).unwrap()
}

const GPU: Placement = Placement { mode: lalarand_model::Mode::Gpu, resource: 0 };
const CPU: Placement = Placement { mode: lalarand_model::Mode::CpuFp32, resource: 1 };

fn load(running: &Proven, task: Task, options: &AdmissionOptions) -> Result<Admitted, AdmissionError> {
    admit_load(running, LoadRequest { task, priority: LoadPriority::RateMonotonic }, options)
}

/// What every admitted change must satisfy.
fn check_admitted(admitted: &Admitted, budget: f64) {
    let p = &admitted.proven;
    p.allocation().validate(p.system()).unwrap();
    assert_eq!(p.analysis(), &analyze(&ExecutionPlan::new(p.system(), p.allocation()).unwrap()));
    assert!(p.analysis().schedulable());
    assert!(p.allocation().accuracy_cost(p.system()) <= budget + 1e-9);
    let mut ranks: Vec<u32> = p.system().tasks.iter().map(|t| t.priority).collect();
    ranks.sort();
    assert_eq!(ranks, (0..ranks.len() as u32).collect::<Vec<_>>(), "ranks stay 0..n");
}

#[test]
fn a_load_that_fits_moves_no_running_layer() {
    let running =
        proven(Platform::default_cpu_gpu(), vec![task("a", 10.0, vec![layer(Some(2.0), Some(3.0), None)])], &[GPU]);
    let admitted =
        load(&running, task("b", 20.0, vec![layer(Some(1.0), Some(1.0), None)]), &Default::default()).unwrap();
    check_admitted(&admitted, 1.0);
    assert_eq!(admitted.moves, vec![TaskMoves { task: "a".into(), moved_layers: 0, layers: 1 }]);
    assert_eq!(admitted.proven.allocation().tasks[0], running.allocation().tasks[0]);
    assert_eq!(admitted.drain_bound, ms_to_time(2.0), "a's bound");
}

#[test]
fn a_load_into_the_demo_reports_the_layers_it_moves() {
    let sys = demo_system();
    let outcome = Policy::Lalarand.allocate(&sys, &AllocOptions::default()).unwrap();
    let running = Proven::new(sys, outcome.allocation).unwrap();
    let lenet = running.system().tasks.iter().find(|t| t.name == "digits").unwrap().dnn.clone();
    let admitted = load(&running, Task::new("parking", ms_to_time(50.0), lenet), &Default::default()).unwrap();
    check_admitted(&admitted, 1.0);
    assert_eq!(admitted.moves.len(), 4, "one entry per running task");
    for (i, m) in admitted.moves.iter().enumerate() {
        let (old, new) = (&running.allocation().tasks[i], &admitted.proven.allocation().tasks[i]);
        assert_eq!(m.moved_layers, old.iter().zip(new).filter(|(a, b)| a != b).count());
    }
    // The longest period: rate-monotonic puts it last.
    assert_eq!(admitted.proven.system().tasks[4].priority, 4);
    assert_eq!(admitted.drain_bound, *running.bounds().iter().max().unwrap());
    let frozen = AdmissionOptions { max_moved_layers: Some(0), ..Default::default() };
    let lenet = running.system().tasks[3].dnn.clone();
    match load(&running, Task::new("parking", ms_to_time(50.0), lenet), &frozen) {
        Ok(a) => assert_eq!(a.moved_layers(), 0),
        Err(e) => assert!(matches!(e, AdmissionError::Rejected(_)), "{e}"),
    }
}

#[test]
fn a_rejected_load_names_the_task_that_would_miss_and_by_how_much() {
    let running = proven(gpu_only_platform(), vec![task("a", 10.0, vec![layer(Some(6.0), None, None)])], &[GPU]);
    let e =
        load(&running, task("b", 10.0, vec![layer(Some(6.0), None, None)]), &AdmissionOptions::default()).unwrap_err();
    let AdmissionError::Rejected(r) = &e else { panic!("{e}") };
    // b ranks below a (equal periods: the running task first) and waits for it, 6 + 6 = 12 ms;
    // a itself may find b's layer started (non-preemptive blocking): 6 + 6 too.
    let miss = |task: &str| Miss { task: task.into(), response_estimate: ms_to_time(12.0), deadline: ms_to_time(10.0) };
    assert_eq!(r.misses, vec![miss("a"), miss("b")], "highest priority first");
    assert_eq!(r.misses[0].over(), ms_to_time(2.0));
    let text = e.to_string();
    assert!(text.contains("\"a\" would miss its 10.000 ms deadline by 2.000 ms") && text.contains("fix:"), "{text}");
}

#[test]
fn the_move_cap_decides_whether_running_layers_may_make_room() {
    // a can run on the cpu too; b only on the gpu. Both fit only if a moves to the cpu.
    let running =
        proven(Platform::default_cpu_gpu(), vec![task("a", 10.0, vec![layer(Some(6.0), Some(7.0), None)])], &[GPU]);
    let b = || task("b", 10.0, vec![layer(Some(6.0), None, None)]);
    let capped = |max| AdmissionOptions { max_moved_layers: max, ..AdmissionOptions::default() };
    assert!(matches!(load(&running, b(), &capped(Some(0))), Err(AdmissionError::Rejected(_))));
    for cap in [Some(1), None] {
        let admitted = load(&running, b(), &capped(cap)).unwrap();
        check_admitted(&admitted, 1.0);
        assert_eq!(admitted.moves, vec![TaskMoves { task: "a".into(), moved_layers: 1, layers: 1 }]);
        assert_eq!(admitted.proven.allocation().tasks, vec![vec![CPU], vec![GPU]]);
    }
}

#[test]
fn priorities_follow_the_requested_rule_and_keep_the_running_order() {
    let running = proven(
        gpu_only_platform(),
        vec![
            task("fast", 10.0, vec![layer(Some(0.1), None, None)]),
            task("slow", 40.0, vec![layer(Some(0.1), None, None)]),
        ],
        &[GPU, GPU],
    );
    let rank_of = |priority, period_ms, deadline_ms: f64| {
        let mut t = task("new", period_ms, vec![layer(Some(0.1), None, None)]);
        t.deadline = ms_to_time(deadline_ms);
        let admitted = admit_load(&running, LoadRequest { task: t, priority }, &AdmissionOptions::default()).unwrap();
        admitted.proven.system().tasks.iter().map(|t| t.priority).collect::<Vec<_>>()
    };
    assert_eq!(rank_of(LoadPriority::RateMonotonic, 20.0, 20.0), vec![0, 2, 1]);
    assert_eq!(rank_of(LoadPriority::RateMonotonic, 10.0, 10.0), vec![0, 2, 1], "ties: below the running task");
    assert_eq!(rank_of(LoadPriority::DeadlineMonotonic, 50.0, 5.0), vec![1, 2, 0]);
    assert_eq!(rank_of(LoadPriority::Rank(2), 5.0, 5.0), vec![0, 1, 2]);
}

#[test]
fn bad_requests_are_errors_that_name_the_fix() {
    let running = proven(gpu_only_platform(), vec![task("a", 10.0, vec![layer(Some(1.0), None, None)])], &[GPU]);
    let ok_layer = || vec![layer(Some(1.0), None, None)];
    let opts = AdmissionOptions::default();
    let e = load(&running, task("a", 20.0, ok_layer()), &opts).unwrap_err();
    assert_eq!(e, AdmissionError::NameTaken { name: "a".into() });
    let e = admit_unload(&running, "ghost").unwrap_err();
    assert_eq!(e, AdmissionError::UnknownTask { name: "ghost".into(), running: vec!["a".into()] });
    let mut late = task("b", 10.0, ok_layer());
    late.deadline = ms_to_time(11.0);
    assert!(matches!(load(&running, late, &opts), Err(AdmissionError::InvalidRequest { field: "deadline", .. })));
    let e =
        admit_load(&running, LoadRequest { task: task("b", 10.0, ok_layer()), priority: LoadPriority::Rank(2) }, &opts)
            .unwrap_err();
    assert!(matches!(e, AdmissionError::InvalidRequest { field: "priority", .. }), "{e}");
    let nan = AdmissionOptions { alloc: AllocOptions { accuracy_budget: f64::NAN, ..AllocOptions::default() }, ..opts };
    assert!(matches!(
        load(&running, task("b", 10.0, ok_layer()), &nan),
        Err(AdmissionError::InvalidRequest { field: "accuracy_budget", .. })
    ));
    for e in [e, admit_unload(&running, "ghost").unwrap_err()] {
        assert!(e.to_string().contains("fix:"), "{e}");
    }
}

#[test]
fn a_load_past_the_accuracy_budget_is_refused() {
    // The new task's only layer has no fp32 mode: int8 on the cpu costs 0.8 points.
    let platform = Platform::default_cpu_gpu();
    let running = proven(platform, vec![task("a", 10.0, vec![layer(Some(1.0), None, None)])], &[GPU]);
    let int8_only = || task("b", 10.0, vec![layer(None, None, Some((1.0, 0.8)))]);
    let tight = AdmissionOptions {
        alloc: AllocOptions { accuracy_budget: 0.5, ..AllocOptions::default() },
        ..Default::default()
    };
    let e = load(&running, int8_only(), &tight).unwrap_err();
    assert!(matches!(e, AdmissionError::AccuracyBudget { needed, .. } if (needed - 0.8).abs() < 1e-12), "{e}");
    assert!(e.to_string().contains("fix:"));
    let admitted = load(&running, int8_only(), &AdmissionOptions::default()).unwrap();
    check_admitted(&admitted, 1.0);
}

#[test]
fn a_task_the_platform_cannot_run_is_refused() {
    let running = proven(gpu_only_platform(), vec![task("a", 10.0, vec![layer(Some(1.0), None, None)])], &[GPU]);
    let cpu_only = task("b", 10.0, vec![layer(None, Some(1.0), None)]);
    let e = load(&running, cpu_only, &Default::default()).unwrap_err();
    assert!(matches!(e, AdmissionError::Alloc(AllocError::Unplaceable { .. })), "{e}");
    assert!(e.to_string().contains("fix:"), "{e}");
}

#[test]
fn an_unproven_running_system_is_refused() {
    let system = System::new(
        gpu_only_platform(),
        TaskSet::new(vec![task("a", 10.0, vec![layer(Some(11.0), None, None)])], PriorityPolicy::RateMonotonic),
    );
    let allocation = Allocation { tasks: vec![vec![GPU]] };
    assert!(matches!(Proven::new(system, allocation), Err(AdmissionError::NotProven { .. })));
}

#[test]
fn an_empty_system_admits_its_first_task_at_once() {
    let running = Proven::empty(Platform::default_cpu_gpu());
    assert_eq!(running.drain_bound(), 0);
    let admitted =
        load(&running, task("a", 10.0, vec![layer(Some(1.0), Some(2.0), None)]), &Default::default()).unwrap();
    check_admitted(&admitted, 1.0);
    assert_eq!((admitted.drain_bound, admitted.moves.len()), (0, 0));
    let back = admit_unload(&admitted.proven, "a").unwrap();
    assert!(back.proven.system().tasks.is_empty());
}

fn arb_layer() -> impl Strategy<Value = LayerProfile> {
    (0.1f64..3.0, prop::option::of(0.2f64..6.0), prop::option::of((0.1f64..4.0, 0.0f64..0.4))).prop_map(
        |(gpu, fp32, int8)| {
            // Every layer runs on the gpu; some also on the cpu.
            layer(Some(gpu), fp32, int8)
        },
    )
}

fn arb_task(name: &'static str) -> impl Strategy<Value = Task> {
    (5.0f64..40.0, 0.6f64..=1.0, prop::collection::vec(arb_layer(), 1..5)).prop_map(move |(period, d, layers)| {
        let mut t = task(name, period, layers);
        t.deadline = ((t.period as f64 * d) as Time).max(1);
        t
    })
}

/// A proven running system on a gpu and a cpu (lalarand's allocation; tasks it cannot prove are
/// dropped lowest priority first).
fn arb_running() -> impl Strategy<Value = Proven> {
    let names = ["t0", "t1", "t2", "t3"];
    prop::collection::vec(0usize..4, 1..5).prop_flat_map(move |picks| {
        let tasks: Vec<_> = picks.iter().enumerate().map(|(i, _)| arb_task(names[i])).collect();
        tasks.prop_map(|tasks| {
            let mut tasks = tasks;
            loop {
                if tasks.is_empty() {
                    break Proven::empty(Platform::default_cpu_gpu());
                }
                let sys = System::new(
                    Platform::default_cpu_gpu(),
                    TaskSet::new(tasks.clone(), PriorityPolicy::DeadlineMonotonic),
                );
                let outcome = Policy::Lalarand.allocate(&sys, &AllocOptions::default()).unwrap();
                if outcome.schedulable() {
                    break Proven::new(sys, outcome.allocation).unwrap();
                }
                let lowest = sys.tasks.iter().enumerate().max_by_key(|(_, t)| t.priority).unwrap().0;
                tasks.remove(lowest);
            }
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Lemma 5: an unload keeps every placement and never raises a remaining task's bound.
    #[test]
    fn an_unload_never_raises_a_bound(running in arb_running(), pick in any::<prop::sample::Index>()) {
        let Some(victim) = running.system().tasks.get(pick.index(running.system().tasks.len().max(1))) else {
            return Ok(());
        };
        let admitted = admit_unload(&running, &victim.name).unwrap();
        check_admitted(&admitted, f64::INFINITY);
        prop_assert_eq!(admitted.moved_layers(), 0);
        for (i, t) in admitted.proven.system().tasks.iter().enumerate() {
            let old = running.system().tasks.iter().position(|o| o.name == t.name).unwrap();
            prop_assert_eq!(&admitted.proven.allocation().tasks[i], &running.allocation().tasks[old]);
            prop_assert!(admitted.proven.bounds()[i] <= running.bounds()[old], "{} grew", t.name);
        }
    }

    /// An admitted load is proven, within the budget and the move cap; a rejected one names a
    /// task that would miss.
    #[test]
    fn a_load_is_proven_within_its_caps_or_rejected_with_a_miss(
        running in arb_running(),
        new in arb_task("new"),
        cap in prop::option::of(0usize..4),
        budget in 0.0f64..1.0,
    ) {
        let opts = AdmissionOptions {
            alloc: AllocOptions { accuracy_budget: budget, ..AllocOptions::default() },
            max_moved_layers: cap,
        };
        match load(&running, new, &opts) {
            Ok(admitted) => {
                check_admitted(&admitted, budget);
                if let Some(cap) = cap {
                    prop_assert!(admitted.moved_layers() <= cap);
                }
                prop_assert_eq!(admitted.drain_bound, running.drain_bound());
            }
            Err(AdmissionError::Rejected(r)) => {
                prop_assert!(r.misses.first().is_some_and(|m| m.over() > 0), "{:?}", r);
            }
            Err(AdmissionError::AccuracyBudget { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
