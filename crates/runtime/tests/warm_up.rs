//! The warm-up: before time 0 every stage runs twice ([`StageExecutor::warm_up`]) on its
//! resource's worker, with its task's job handed from stage to stage, and none of it is
//! measured.

mod common;
use common::{serial, system, untimed, Spec, MS};
use lalarand_runtime::serve::{HostTensor, Input, InputSpec};
use lalarand_runtime::{RunHorizon, Runtime, StageError, StageExecutor};
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Start { task: usize, thread: String },
    WarmUp { task: usize, stage: usize, thread: String, warmed_before: usize },
    Run { task: usize, stage: usize },
}

/// Writes every call down; a job's state counts the warm-ups it has been through.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
}

impl Recorder {
    fn push(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or_default().to_string()
}

impl StageExecutor for Recorder {
    type Job = usize;

    fn input_spec(&self, _task: usize) -> InputSpec {
        InputSpec::any()
    }

    fn start_job(&self, task: usize, _job: u64, _input: &Input) -> Result<usize, StageError> {
        self.push(Call::Start { task, thread: thread_name() });
        Ok(0)
    }

    fn run_stage(&self, task: usize, stage: usize, _job: u64, _state: &mut usize) -> Result<(), StageError> {
        self.push(Call::Run { task, stage });
        Ok(())
    }

    fn warm_up(&self, task: usize, stage: usize, _job: u64, state: &mut usize) -> Result<(), StageError> {
        let thread = thread_name();
        self.push(Call::WarmUp { task, stage, thread, warmed_before: *state });
        *state += 1;
        Ok(())
    }

    fn outputs(&self, _task: usize, _state: usize) -> Result<Vec<HostTensor>, StageError> {
        Ok(Vec::new())
    }
}

#[test]
fn every_stage_warms_up_on_its_worker_before_the_first_release() {
    let _turn = serial();
    let specs = [
        Spec { name: "cam", period: 10 * MS, offset: 0, stages: &[(0, MS), (1, MS), (0, MS)] },
        Spec { name: "lidar", period: 20 * MS, offset: 0, stages: &[(1, MS)] },
    ];
    let (sys, alloc) = system(2, 0, &specs);
    let rt = Runtime::new(&sys, &alloc, untimed(RunHorizon::Jobs(3))).unwrap();
    let exec = Recorder::default();
    let out = rt.run(&exec).unwrap();
    let calls = exec.calls.into_inner().unwrap();

    let first_run = calls.iter().position(|c| matches!(c, Call::Run { .. })).expect("stages ran");
    let (before, after) = calls.split_at(first_run);
    // Every job, warm-up or not, is started on the worker of its first stage, never on the
    // release thread (which outranks the workers on their cores).
    let starts: Vec<_> = calls
        .iter()
        .filter_map(|c| if let Call::Start { task, thread } = c { Some((*task, thread)) } else { None })
        .collect();
    assert_eq!(starts.len(), 2 * 2 + 2 * 3, "two warm-up jobs and three run jobs per task: {starts:?}");
    for (task, thread) in starts {
        assert_eq!(
            thread,
            &format!("lalarand-r{}", specs[task].stages[0].0),
            "task {task} started off its first worker"
        );
    }
    let mut warmed: Vec<(usize, usize)> = before
        .iter()
        .filter_map(|c| match c {
            Call::WarmUp { task, stage, thread, warmed_before } => {
                let resource = specs[*task].stages[*stage].0;
                assert_eq!(thread, &format!("lalarand-r{resource}"), "stage warmed on its resource's worker");
                assert_eq!(*warmed_before, *stage, "the job went through the earlier stages' warm-ups");
                Some((*task, *stage))
            }
            _ => None,
        })
        .collect();
    warmed.sort_unstable();
    let twice = vec![(0, 0), (0, 0), (0, 1), (0, 1), (0, 2), (0, 2), (1, 0), (1, 0)];
    assert_eq!(warmed, twice, "every stage twice (two warm-up jobs), before the first release");
    assert!(!after.iter().any(|c| matches!(c, Call::WarmUp { .. })), "no warm-up during the run");

    // None of it is measured or reported: 3 jobs per task, every slot a real stage at or after 0.
    assert!(out.report.tasks.iter().all(|t| t.released == 3 && t.completed == 3 && t.failed == 0));
    let slots: Vec<_> = out.trace.resources.iter().flatten().collect();
    assert_eq!(slots.len(), 3 * 3 + 3);
    assert!(slots.iter().all(|s| s.job < 3));
}

/// A failing warm-up ends its task's warm-up job; the run itself goes on and reports only its own
/// stages.
#[test]
fn a_failing_warm_up_does_not_fail_the_run() {
    struct Failing(Recorder);
    impl StageExecutor for Failing {
        type Job = usize;
        fn input_spec(&self, task: usize) -> InputSpec {
            self.0.input_spec(task)
        }
        fn start_job(&self, task: usize, job: u64, input: &Input) -> Result<usize, StageError> {
            self.0.start_job(task, job, input)
        }
        fn outputs(&self, task: usize, state: usize) -> Result<Vec<HostTensor>, StageError> {
            self.0.outputs(task, state)
        }
        fn run_stage(&self, task: usize, stage: usize, job: u64, state: &mut usize) -> Result<(), StageError> {
            self.0.run_stage(task, stage, job, state)
        }
        fn warm_up(&self, task: usize, stage: usize, job: u64, state: &mut usize) -> Result<(), StageError> {
            self.0.warm_up(task, stage, job, state)?;
            if stage == 0 {
                panic!("first use fails");
            }
            Ok(())
        }
    }
    let _turn = serial();
    let (sys, alloc) = system(2, 0, &[Spec { name: "cam", period: 10 * MS, offset: 0, stages: &[(0, MS), (1, MS)] }]);
    let rt = Runtime::new(&sys, &alloc, untimed(RunHorizon::Jobs(2))).unwrap();
    let exec = Failing(Recorder::default());
    let out = rt.run(&exec).unwrap();
    let calls = exec.0.calls.into_inner().unwrap();
    assert_eq!(calls.iter().filter(|c| matches!(c, Call::WarmUp { .. })).count(), 2, "{calls:?}");
    assert_eq!(calls.iter().filter(|c| matches!(c, Call::Run { .. })).count(), 4);
    assert!(out.report.failures.is_empty() && out.report.tasks[0].completed == 2);
}
