//! A resource's worker: parks on its queue, pops the highest-priority ready stage, runs it to
//! completion (non-preemptive) and queues the job's next stage on its resource at once.

use super::{ensure_state, panic_text, Core, Ending, Sink, WORKER_FIFO};
use crate::config::LatePolicy;
use crate::executor::{StageError, StageExecutor};
use crate::os;
use lalarand_model::StageSlot;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

/// The SCHED_FIFO priority a worker runs a stage of a task of priority rank `rank` at.
fn worker_fifo(rank: u32) -> i32 {
    (WORKER_FIFO - rank.min(78) as i32).max(2)
}

impl<E: StageExecutor, S: Sink<E>> Core<'_, E, S> {
    /// Resource `r`'s worker, pinned to `cores`, until [`Core::exit`]; returns its log.
    pub fn worker(&self, r: usize, cores: &[usize]) -> S::Log {
        if let Err(e) = os::pin_current_thread(cores) {
            tracing::warn!("resource {r}: cannot pin its worker to cores {cores:?} ({e}); it runs unpinned");
        }
        os::set_timer_slack();
        let fifo = self.fifo(WORKER_FIFO);
        // Before the warm-up jobs can reach this worker: the log's memory, so that no push
        // reallocates or faults in a page while jobs run.
        let mut log = self.sink.log(Some(r));
        let mut fifo_priority = WORKER_FIFO;
        let queue = &self.queues[r];
        let plan = &self.plan;
        let wakeup_charge = self.wakeup_charge[r];
        let stalls = &self.stalls;
        loop {
            let (entry, woken_by) = {
                let mut q = queue.lock();
                loop {
                    if self.exit.load(Ordering::SeqCst) {
                        return log;
                    }
                    if let Some(e) = q.heap.pop() {
                        break (e, q.woken_by.take());
                    }
                    q.parked = true;
                    q = queue.cv.wait(q).unwrap_or_else(|e| e.into_inner());
                    q.parked = false;
                }
            };
            let popped = self.now();
            let mut job = entry.job;
            let (i, stage) = (job.task, job.stage);
            if let Some(queued) = woken_by.filter(|_| !job.warm_up) {
                // Woken from its empty queue: the wake-up past the charge is the machine's.
                stalls.add(&stalls.wakeup, popped.saturating_sub(queued).saturating_sub(wakeup_charge));
            }
            // Before the start is taken: switching priority is the runtime's cost, not the stage's.
            if fifo {
                let p = worker_fifo(plan.tasks[i].priority);
                if p != fifo_priority {
                    os::set_fifo(p);
                    fifo_priority = p;
                }
            }
            if job.warm_up {
                let ok = catch_unwind(AssertUnwindSafe(|| {
                    ensure_state(&*self.exec, &mut job)?;
                    let index = job.job;
                    self.exec.warm_up(i, stage, index, job.state.as_mut().expect("made above"))
                }))
                .is_ok_and(|r| r.is_ok());
                job.stage += 1;
                if ok && job.stage < plan.tasks[i].layers.len() {
                    self.queue(job);
                } else {
                    self.warming.fetch_sub(1, Ordering::SeqCst);
                }
                continue;
            }
            let start = self.now();
            if entry.woke_idle {
                self.sink.dispatched(&mut log, start.saturating_sub(entry.ready));
            }
            if self.cancel.load(Ordering::SeqCst) {
                self.end(&mut log, job, start, Err(Ending::Cancelled));
                continue;
            }
            if self.config.late == LatePolicy::Abort && start > job.deadline {
                self.end(&mut log, job, start, Err(Ending::Aborted { stage }));
                continue;
            }
            if stage == 0 {
                job.start = Some(start);
            }
            // A new job's state is made here, on the first stage's worker, as part of that stage.
            let result = catch_unwind(AssertUnwindSafe(|| {
                ensure_state(&*self.exec, &mut job)?;
                let index = job.job;
                self.exec.run_stage(i, stage, index, job.state.as_mut().expect("made above"))
            }))
            .unwrap_or_else(|p| Err(StageError(format!("panicked: {}", panic_text(&p)))));
            let end = self.now();
            let layer = &plan.tasks[i].layers[stage];
            if end - start > layer.wcet {
                self.overruns.fetch_add(1, Ordering::Relaxed);
            }
            // The stage's work from its pop (priority change included) to its end against its
            // planned cost less the wake-up charge (counted above): past it, the machine took the
            // core away (steal, interrupts) or the work overran its profile. Its hand-off's excess
            // (below) is the runtime's own, counted apart.
            let budget = layer.wcet.saturating_sub(layer.wakeup);
            let run_excess = (end - popped).saturating_sub(budget);
            stalls.add(&stalls.stage, run_excess);
            self.sink.stage_ran(&mut log, r, StageSlot { task: i, job: job.job, stage, start, end });
            let leftover = match result {
                Err(e) => {
                    tracing::error!(task = i, stage, job = job.job, "stage failed: {e}");
                    self.end(&mut log, job, end, Err(Ending::Failed { stage, error: e.0 }))
                }
                Ok(()) => {
                    job.stage += 1;
                    if job.stage == plan.tasks[i].layers.len() {
                        self.end(&mut log, job, end, Ok(()))
                    } else if self.cancel.load(Ordering::SeqCst) {
                        self.end(&mut log, job, end, Err(Ending::Cancelled))
                    } else if self.config.late == LatePolicy::Abort && end > job.deadline {
                        let stage = job.stage;
                        self.end(&mut log, job, end, Err(Ending::Aborted { stage }))
                    } else {
                        self.queue(job);
                        None
                    }
                }
            };
            let handed = self.now();
            self.sink.handed_off(&mut log, handed.saturating_sub(end));
            stalls.add(&stalls.handoff, (handed - popped).saturating_sub(budget).saturating_sub(run_excess));
            // The job's tensors are freed after the hand-off is timed: not the runtime's per-stage work.
            drop(leftover);
        }
    }
}
