//! Mode changes on a running server (busy-wait stages): tasks load and unload while others
//! run at high load, and every job responds within the bound that held at its release.

mod common;
use common::soak::unexplained;
use common::{serial, system, Spec, MS};
use lalarand_alloc::admission::{AdmissionError, AdmissionOptions, LoadPriority, LoadRequest, Proven};
use lalarand_model::{Allocation, ExecutionPlan, System, Task, Time};
use lalarand_runtime::serve::modes::{ModeChange, ModeChangeError, ModeServer};
use lalarand_runtime::serve::{Admission, EarlyPolicy, Input, JobTiming, ServeConfig, ServeError, StopPolicy};
use lalarand_runtime::{BusyTime, BusyWait};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Charged per stage by the plan but not spun: slack for OS interference on a loaded machine,
/// so the bound (which includes it) holds.
const OVERHEAD: Time = MS;

/// The executor for a new system: spins each stage's time without the overhead.
fn busy(sys: &System, alloc: &Allocation, _old: &BusyWait) -> Result<BusyWait, String> {
    let mut plan = ExecutionPlan::new(sys, alloc).map_err(|e| e.to_string())?;
    plan.tasks.iter_mut().flat_map(|t| &mut t.layers).for_each(|l| l.wcet -= OVERHEAD);
    Ok(BusyWait::from_plan(&plan, &sys.platform, BusyTime::Wcet))
}

fn input() -> Input {
    Input::from_vec(vec![1, 3], vec![1.0, 2.0, 3.0]).unwrap()
}

/// Two tasks on two cpu resources, r1 about 60% busy (with the overhead).
fn running() -> (Proven, BusyWait) {
    let (sys, alloc) = system(
        2,
        OVERHEAD,
        &[
            Spec { name: "a", period: 20 * MS, offset: 0, stages: &[(0, 3 * MS), (1, 3 * MS)] },
            Spec { name: "b", period: 10 * MS, offset: 0, stages: &[(1, 2 * MS)] },
        ],
    );
    let exec = busy(&sys, &alloc, &BusyWait::new(Vec::new(), BusyTime::Wcet)).unwrap();
    (Proven::new(sys, alloc).unwrap(), exec)
}

/// A task shaped like the test systems' (its own name, period and stage times).
fn task(name: &str, period: Time, stages: &[(usize, Time)]) -> Task {
    let (sys, _) = system(2, OVERHEAD, &[Spec { name, period, offset: 0, stages }]);
    sys.tasks.into_iter().next().unwrap()
}

fn load(name: &str, period: Time, stages: &[(usize, Time)]) -> LoadRequest {
    LoadRequest { task: task(name, period, stages), priority: LoadPriority::RateMonotonic }
}

fn config() -> ServeConfig {
    ServeConfig { warm_up: false, ..ServeConfig::default() }
}

/// Every job's timing, by task.
type Log = Arc<Mutex<Vec<(String, JobTiming)>>>;

/// Submits jobs of `task` back to back until `done` or the task is gone.
fn client(server: Arc<ModeServer<BusyWait>>, task: &'static str, done: Arc<AtomicBool>, log: Log) {
    while !done.load(Ordering::SeqCst) {
        match server.infer(task, input()) {
            Ok(r) => lock(&log).push((task.to_string(), r.timing)),
            Err(ServeError::UnknownTask { .. }) => return,
            Err(ServeError::Stopped { .. }) => return,
            Err(e) => panic!("task {task}: {e}"),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bound_of(change: &ModeChange, task: &str) -> Option<Time> {
    change.new_bounds.iter().find(|(n, _)| n == task).map(|(_, b)| *b)
}

#[test]
fn tasks_load_and_unload_under_load_and_every_job_keeps_the_bound_of_its_release() {
    let _turn = serial();
    let (proven, exec) = running();
    let start_bounds: Vec<(String, Time)> =
        proven.system().tasks.iter().map(|t| t.name.clone()).zip(proven.bounds()).collect();
    let server = Arc::new(ModeServer::start(proven, exec, config(), AdmissionOptions::default()).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let log: Log = Arc::default();
    let spawn = |task: &'static str| {
        let (s, d, l) = (server.clone(), done.clone(), log.clone());
        std::thread::spawn(move || client(s, task, d, l))
    };
    let mut clients = vec![spawn("a"), spawn("b")];
    std::thread::sleep(Duration::from_millis(200));

    let loaded = server.load_task(load("c", 40 * MS, &[(0, 4 * MS), (1, 2 * MS)]), busy).unwrap();
    assert_eq!(loaded.task, "c");
    assert!(loaded.decided <= loaded.switched && loaded.switched <= loaded.resumed, "{loaded:?}");
    assert!(loaded.old_mode.every_job_accounted, "{:?}", loaded.old_mode);
    clients.push(spawn("c"));
    std::thread::sleep(Duration::from_millis(200));

    let unloaded = server.unload_task("b", busy).unwrap();
    assert_eq!(unloaded.moved_layers, 0, "an unload moves nothing: {unloaded:?}");
    assert!(bound_of(&unloaded, "b").is_none());
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let report = server.stop(StopPolicy::Drain).unwrap();
    assert!(report.every_job_accounted, "{report:?}");
    for c in [&loaded, &unloaded] {
        eprintln!(
            "{:?} {}: decision {} ns, drain {} ns (bound {} ns), first release {} ns after the request",
            c.kind,
            c.task,
            c.decision_ns(),
            c.switched - c.requested,
            c.drain_bound,
            c.to_first_release_ns()
        );
    }

    // Which bound held at each release: the start's, the load's, the unload's.
    let modes: [(Time, Vec<(String, Time)>); 3] = [
        (0, start_bounds),
        (loaded.switched, loaded.new_bounds.clone()),
        (unloaded.switched, unloaded.new_bounds.clone()),
    ];
    let log = lock(&log);
    let mut per_task: HashMap<&str, usize> = HashMap::new();
    for (task, t) in log.iter() {
        *per_task.entry(task).or_default() += 1;
        let mode = modes.iter().rposition(|(from, _)| t.release >= *from).unwrap();
        // A job released before a switch belongs to the mode drained at that switch.
        let (_, bounds) = &modes[mode];
        let held = bounds.iter().find(|(n, _)| n == task).map(|(_, b)| *b);
        assert_eq!(t.bound, held, "task {task}: bound of its release's mode {mode}: {t:?}");
        assert!(!unexplained(t), "task {task} past its bound beyond the machine's stalls: {t:?}");
        for (from, _) in &modes[1..] {
            assert!(!(t.release < *from && t.finish > *from), "an old-mode job ran past the switch: {t:?}");
        }
    }
    for task in ["a", "b", "c"] {
        assert!(per_task.get(task).copied().unwrap_or(0) >= 3, "task {task} ran: {per_task:?}");
    }
    // b left at the unload: none of its jobs released after it.
    assert!(log.iter().filter(|(n, _)| n == "b").all(|(_, t)| t.release < unloaded.switched));
    // c joined at the load: its first release is not before the switch.
    assert!(log.iter().filter(|(n, _)| n == "c").all(|(_, t)| t.release >= loaded.resumed));
}

#[test]
fn bad_changes_are_refused_and_change_nothing() {
    let _turn = serial();
    let (proven, exec) = running();
    let before = proven.clone();
    let server = ModeServer::start(proven, exec, config(), AdmissionOptions::default()).unwrap();

    let e = server.load_task(load("a", 40 * MS, &[(0, MS)]), busy).unwrap_err();
    assert!(matches!(e, ModeChangeError::Admission(AdmissionError::NameTaken { .. })), "{e}");
    let e = server.unload_task("nobody", busy).unwrap_err();
    assert!(matches!(e, ModeChangeError::Admission(AdmissionError::UnknownTask { .. })), "{e}");
    assert!(e.to_string().contains("\"nobody\""), "{e}");
    // Two 6 ms layers (+ overhead) cannot respond within a 10 ms deadline wherever they go.
    let e = server.load_task(load("heavy", 10 * MS, &[(0, 5 * MS), (1, 5 * MS)]), busy).unwrap_err();
    let ModeChangeError::Admission(AdmissionError::Rejected(r)) = &e else { panic!("{e}") };
    assert!(!r.misses.is_empty() && r.misses.iter().all(|m| m.over() > 0), "{r:?}");
    assert!(e.to_string().contains("would miss"), "{e}");
    let e = server.load_task(load("c", 40 * MS, &[(0, MS)]), |_, _, _| Err("no model file".into())).unwrap_err();
    assert!(matches!(e, ModeChangeError::Executor { .. }) && e.to_string().contains("no model file"), "{e}");
    // The server's own check of the admitted system (int8 measured end to end) refuses it.
    let over = |_: &_, _: &_| Err("int8 measured over the budget".to_string());
    let e = server.load_task_checked(load("c", 40 * MS, &[(0, MS)]), over, busy).unwrap_err();
    assert!(matches!(e, ModeChangeError::Refused { ref task, .. } if task == "c"), "{e}");
    assert!(e.to_string().contains("the analysis admits") && e.to_string().contains("over the budget"), "{e}");

    assert_eq!(server.proven(), before, "nothing changed");
    assert_eq!(server.current().task_names(), ["a", "b"]);
    server.infer("b", input()).unwrap();
    assert!(matches!(server.infer("c", input()), Err(ServeError::UnknownTask { .. })));
    server.stop(StopPolicy::Drain).unwrap();
    assert!(matches!(server.unload_task("a", busy), Err(ModeChangeError::Stopped)));
}

#[test]
fn concurrent_changes_take_turns() {
    let _turn = serial();
    let (proven, exec) = running();
    let server = Arc::new(ModeServer::start(proven, exec, config(), AdmissionOptions::default()).unwrap());
    let changes: Vec<_> = ["c", "d"]
        .into_iter()
        .map(|name| {
            let s = server.clone();
            std::thread::spawn(move || s.load_task(load(name, 80 * MS, &[(0, MS)]), busy).unwrap())
        })
        .collect();
    let mut done: Vec<ModeChange> = changes.into_iter().map(|h| h.join().unwrap()).collect();
    done.sort_by_key(|c| c.switched);
    // The second waited for the first: it switched only after the first's new mode resumed.
    assert!(done[1].switched >= done[0].resumed, "{done:?}");
    let mut names = server.current().task_names().to_vec();
    names.sort();
    assert_eq!(names, ["a", "b", "c", "d"]);
    server.infer("d", input()).unwrap();
    server.stop(StopPolicy::Drain).unwrap();
}

#[test]
fn a_job_waiting_for_its_release_at_the_request_is_released_by_the_new_mode() {
    let _turn = serial();
    let (proven, exec) = running();
    let config = ServeConfig { early: EarlyPolicy::Wait, ..config() };
    let server = ModeServer::start(proven, exec, config, AdmissionOptions::default()).unwrap();
    let first = server.submit("b", input()).unwrap();
    let waiting = server.submit("b", input()).unwrap();
    let Admission::Delayed { release: planned, .. } = waiting.admission() else { panic!("{:?}", waiting.admission()) };
    let gone = server.submit("a", input()).unwrap();
    let gone_waiting = server.submit("a", input()).unwrap();
    assert!(matches!(gone_waiting.admission(), Admission::Delayed { .. }));
    let change = server.unload_task("a", busy).unwrap();
    assert!(change.requested < planned, "the test submits within b's period: {change:?}");

    let first = first.wait().unwrap().timing;
    assert!(first.release < change.requested && first.finish <= change.switched, "old mode: {first:?}");
    gone.wait().unwrap();
    // P1: not released by the old mode; the new mode releases it a period after the last one.
    let carried = waiting.wait().unwrap().timing;
    assert!(carried.release >= change.resumed && carried.release >= first.release + 10 * MS, "{carried:?}");
    assert_eq!(carried.bound, bound_of(&change, "b"), "the new mode's bound");
    let e = gone_waiting.wait().unwrap_err();
    assert!(matches!(e, ServeError::UnknownTask { .. }), "its task left: {e}");
    server.stop(StopPolicy::Drain).unwrap();
}

#[test]
fn statistics_are_totals_across_changes_and_never_go_backwards() {
    let _turn = serial();
    let (proven, exec) = running();
    let server = ModeServer::start(proven, exec, config(), AdmissionOptions::default()).unwrap();
    let task = |name: &str| server.current().stats().tasks.into_iter().find(|t| t.name == name);
    for _ in 0..3 {
        server.infer("a", input()).unwrap();
        server.infer("b", input()).unwrap();
    }
    let (a, b) = (task("a").unwrap(), task("b").unwrap());
    assert_eq!((a.completed, b.completed, a.released), (3, 3, 3));
    let busy_before = server.current().stats().resource_busy;

    let change = server.load_task(load("c", 80 * MS, &[(0, MS)]), busy).unwrap();
    assert_eq!(change.old_mode.stats.tasks[0].completed, 3, "the old mode's report: its totals");
    let after = server.current().stats();
    let a2 = after.tasks.iter().find(|t| t.name == "a").unwrap();
    assert_eq!((a2.completed, a2.released, a2.misses), (a.completed, a.released, a.misses), "continued, not reset");
    assert_eq!((a2.response_min, a2.response_max), (a.response_min, a.response_max), "the histogram carried on");
    assert!(after.resource_busy.iter().zip(&busy_before).all(|(now, then)| now >= then), "{after:?}");
    let job = server.infer("a", input()).unwrap();
    assert_eq!(job.job, 3, "job numbers continue");
    assert_eq!(task("a").unwrap().completed, 4);

    // An unloaded task leaves the statistics; loaded again, it continues its totals.
    server.unload_task("b", busy).unwrap();
    assert!(task("b").is_none());
    server.load_task(load("b", 10 * MS, &[(1, 2 * MS)]), busy).unwrap();
    assert_eq!(task("b").unwrap().completed, 3);
    assert_eq!(server.infer("b", input()).unwrap().job, 3);
    let report = server.stop(StopPolicy::Drain).unwrap();
    assert!(report.every_job_accounted, "{report:?}");
    let b = report.stats.tasks.iter().find(|t| t.name == "b").unwrap();
    assert_eq!((b.completed, b.released), (4, 4));
}
