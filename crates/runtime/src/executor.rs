//! What a stage does: the [`StageExecutor`] trait, and [`BusyWait`], which spins for a given
//! time so that runs can be checked against the simulator and the analysis.

use crate::serve::{DataType, HostTensor, Input, InputSpec, Tensor};
use lalarand_model::{ExecutionPlan, Platform, Time};

/// A stage's failure: it fails its job, which is reported with task and stage; other jobs and
/// tasks go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{0}")]
pub struct StageError(pub String);

/// What the stages of jobs do, for `lalarand run` ([`crate::Runtime::run`]) and for the server
/// ([`crate::serve::Server`]) alike. One executor serves every worker thread at once; the
/// per-job state (`Job`, e.g. the tensors in flight) moves between workers with the job,
/// without copies.
pub trait StageExecutor: Send + Sync + 'static {
    type Job: Send + 'static;

    /// The input task `task` takes (checked on every submission and release).
    fn input_spec(&self, task: usize) -> InputSpec;

    /// The input of every job of `task` in a run ([`crate::Runtime::run`]: nothing feeds it
    /// inputs). Default: zeros of [`InputSpec::example_input`].
    fn run_input(&self, task: usize) -> Input {
        self.input_spec(task).example_input()
    }

    /// State of job `job` of `task` from its input (checked against [`Self::input_spec`]),
    /// made on the worker of the job's first stage just before that stage runs, and timed as
    /// part of it (the release thread only enqueues). It may keep `input`'s buffer (an `Arc`)
    /// instead of copying it. An error fails the job at its first stage.
    fn start_job(&self, task: usize, job: u64, input: &Input) -> Result<Self::Job, StageError>;

    /// Runs stage `stage` of `task` on the calling worker (already pinned to the stage's
    /// resource).
    fn run_stage(&self, task: usize, stage: usize, job: u64, state: &mut Self::Job) -> Result<(), StageError>;

    /// The job's outputs after its last stage, never on a worker (not timed: the copy to the
    /// host is not part of any stage; a run does not read them): on the thread that takes a
    /// handle's result ([`crate::serve::JobHandle::wait`], the task awaiting it), or on the
    /// server's delivery thread (result streams, completion callbacks). Several threads may
    /// call it at once, for different jobs.
    fn outputs(&self, task: usize, state: Self::Job) -> Result<Vec<HostTensor>, StageError>;

    /// Runs stage `stage` of `task` before time 0, untimed and unrecorded, on the stage's
    /// worker (pinned, under the scheduling policy), once in each warm-up job (two per task,
    /// one round after the other). Each round queues a job of every task before any runs (as
    /// at a simultaneous release; `start_job` with an input of zeros on the first stage's
    /// worker) and hands it from stage to stage through the resources' queues as the jobs that
    /// follow are, so `state` has been through the warm-ups of stages `0..stage`. What a stage
    /// costs only the first times (allocations and page faults in the thread that runs it,
    /// lazily built state) is then paid before anything is measured. An error or a panic ends
    /// that job's warm-up (the jobs that follow report their own failures). Default: nothing
    /// ([`BusyWait`] has no first-run costs).
    fn warm_up(&self, task: usize, stage: usize, job: u64, state: &mut Self::Job) -> Result<(), StageError> {
        let _ = (task, stage, job, state);
        Ok(())
    }
}

/// How long a [`BusyWait`] stage spins.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum BusyTime {
    /// The stage's planned cost (less the dispatch overhead the runtime itself spends).
    #[default]
    Wcet,
    /// Uniform in `[min_fraction, 1] * wcet`, drawn from `(seed, task, job, stage)` so runs
    /// replay.
    Uniform { min_fraction: f64, seed: u64 },
}

/// Stages that busy-wait: a stand-in for inference with known execution times.
#[derive(Debug, Clone, PartialEq)]
pub struct BusyWait {
    /// `[task][stage]`, nanoseconds.
    wcet: Vec<Vec<Time>>,
    time: BusyTime,
}

impl BusyWait {
    /// Spins for each stage's cost in `plan` minus the overheads the plan charges for the
    /// runtime's own work: its resource's `dispatch_overhead`, and its `wakeup_overhead` where
    /// the plan charges it (first stage, or after another resource's).
    pub fn from_plan(plan: &ExecutionPlan, platform: &Platform, time: BusyTime) -> Self {
        let wcet = plan
            .tasks
            .iter()
            .map(|t| {
                t.layers
                    .iter()
                    .map(|l| l.wcet.saturating_sub(platform.resources[l.resource].dispatch_overhead + l.wakeup))
                    .collect()
            })
            .collect();
        Self { wcet, time }
    }

    /// Explicit times, `[task][stage]` in nanoseconds.
    pub fn new(wcet: Vec<Vec<Time>>, time: BusyTime) -> Self {
        Self { wcet, time }
    }

    /// The time stage `stage` of job `job` of `task` spins.
    pub fn duration(&self, task: usize, stage: usize, job: u64) -> Time {
        let w = self.wcet.get(task).and_then(|t| t.get(stage)).copied().unwrap_or(0);
        match self.time {
            BusyTime::Wcet => w,
            BusyTime::Uniform { min_fraction, seed } => {
                let low = ((min_fraction.clamp(0.0, 1.0) * w as f64).ceil() as Time).min(w);
                let h = splitmix(seed ^ splitmix(task as u64 ^ splitmix(job ^ splitmix(stage as u64))));
                low + h % (w - low + 1)
            }
        }
    }

    /// Spins for [`Self::duration`].
    pub fn spin(&self, task: usize, stage: usize, job: u64) {
        let end = crate::os::monotonic_ns() + self.duration(task, stage, job);
        while crate::os::monotonic_ns() < end {
            std::hint::spin_loop();
        }
    }
}

/// SplitMix64: a stateless, well-mixed hash, so draws need no shared generator.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Busy-waiting stages that hand the input back as the output (named `output`): a stand-in
/// for inference with known times, and a check that every job gets its own input back.
impl StageExecutor for BusyWait {
    type Job = Input;

    fn input_spec(&self, _task: usize) -> InputSpec {
        InputSpec::any()
    }

    fn start_job(&self, _task: usize, _job: u64, input: &Input) -> Result<Input, StageError> {
        Ok(input.clone())
    }

    fn run_stage(&self, task: usize, stage: usize, job: u64, _state: &mut Input) -> Result<(), StageError> {
        self.spin(task, stage, job);
        Ok(())
    }

    fn outputs(&self, _task: usize, state: Input) -> Result<Vec<HostTensor>, StageError> {
        Ok(echo(&state))
    }
}

/// The busy-wait output: a single input back as `output`, several under their own names, each
/// in its own datatype.
fn echo(input: &Input) -> Vec<HostTensor> {
    let echo = |name: &str, t: &Tensor| match t.dtype() {
        DataType::Fp32 => HostTensor::f32(name, t.dims().to_vec(), t.f32().unwrap_or(&[]).to_vec()),
        d => HostTensor::typed(name, t.dims().to_vec(), d, t.bytes().to_vec()),
    };
    match input.tensors() {
        [only] => vec![echo("output", only)],
        all => all.iter().map(|t| echo(t.name(), t)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_draws_stay_within_bounds_and_replay() {
        let b = BusyWait::new(vec![vec![1_000, 0]], BusyTime::Uniform { min_fraction: 0.5, seed: 7 });
        let draws: Vec<Time> = (0..200).map(|j| b.duration(0, 0, j)).collect();
        assert!(draws.iter().all(|d| (500..=1_000).contains(d)));
        assert!(draws.iter().any(|&d| d < 900), "draws spread below the WCET");
        assert_eq!(draws, (0..200).map(|j| b.duration(0, 0, j)).collect::<Vec<_>>());
        assert_eq!(b.duration(0, 1, 3), 0);
        assert_eq!(BusyWait::new(vec![vec![42]], BusyTime::Wcet).duration(0, 0, 9), 42);
    }

    #[test]
    fn spins_at_least_its_time() {
        let b = BusyWait::new(vec![vec![2_000_000]], BusyTime::Wcet);
        let t0 = crate::os::monotonic_ns();
        b.spin(0, 0, 0);
        assert!(crate::os::monotonic_ns() - t0 >= 2_000_000);
    }
}
