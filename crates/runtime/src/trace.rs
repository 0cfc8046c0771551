//! The run as a Chrome/Perfetto trace (trace event format) and as the simulator's Gantt chart.

use crate::report::{RunReport, RunTrace};
use crate::RuntimeError;
use lalarand_model::{ExecutionPlan, Time};
use lalarand_sim::{GanttLabels, JobRecord as SimJob, SimResult, TaskStats, Trace, TraceSlot};
use serde_json::{json, Value};
use std::path::Path;

impl RunTrace {
    /// Trace event JSON: one track (thread) per resource, each stage an "X" event with
    /// task/job/stage args; times in microseconds. Opens in ui.perfetto.dev or chrome://tracing.
    pub fn chrome_trace(&self, labels: &GanttLabels) -> Value {
        let mut events: Vec<Value> = labels
            .resources
            .iter()
            .enumerate()
            .map(|(r, name)| json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": r, "args": {"name": name}}))
            .collect();
        for (r, slots) in self.resources.iter().enumerate() {
            for s in slots {
                let task = labels.tasks.get(s.task).map_or("?", String::as_str);
                events.push(json!({
                    "name": format!("{task} L{}", s.stage),
                    "cat": "stage",
                    "ph": "X",
                    "pid": 1,
                    "tid": r,
                    "ts": s.start as f64 / 1_000.0,
                    "dur": (s.end - s.start) as f64 / 1_000.0,
                    "args": {"task": task, "task_index": s.task, "job": s.job, "stage": s.stage},
                }));
            }
        }
        json!({"traceEvents": events, "displayTimeUnit": "ms"})
    }

    pub fn write_chrome_trace(&self, labels: &GanttLabels, path: &Path) -> Result<(), RuntimeError> {
        let text = serde_json::to_string(&self.chrome_trace(labels)).expect("trace serializes");
        std::fs::write(path, text).map_err(|error| RuntimeError::Write { path: path.to_path_buf(), error })
    }

    /// The run in the simulator's terms, for its Gantt writer and for comparisons.
    pub fn to_sim_result(&self, plan: &ExecutionPlan, report: &RunReport) -> SimResult {
        let trace = Trace {
            resources: self
                .resources
                .iter()
                .map(|slots| {
                    slots
                        .iter()
                        .map(|s| TraceSlot { task: s.task, job: s.job, layer: s.stage, start: s.start, end: s.end })
                        .collect()
                })
                .collect(),
        };
        let jobs = self
            .jobs
            .iter()
            .map(|j| SimJob {
                task: j.task,
                job: j.job,
                release: j.release,
                deadline: j.deadline,
                finish: j.response().map(|_| j.finish.expect("completed")),
                missed: j.missed(report.end),
            })
            .collect();
        let tasks = report
            .tasks
            .iter()
            .map(|t| TaskStats {
                jobs: t.released,
                completed: t.completed,
                misses: t.misses,
                min_response: t.response_min,
                mean_response: t.response_mean,
                max_response: t.response_max,
                oldest_incomplete: None,
            })
            .collect();
        SimResult { end: report.end, jobs, tasks, trace: Some(trace), hyperperiod: hyperperiod(plan) }
    }

    /// SVG Gantt chart of `window` (`[start, end)` ns), by default the first hyperperiod
    /// (cut to the simulator's slot limit), drawn by `lalarand_sim::write_gantt`.
    pub fn write_gantt(
        &self,
        plan: &ExecutionPlan,
        report: &RunReport,
        labels: &GanttLabels,
        path: &Path,
        window: Option<(Time, Time)>,
    ) -> Result<(), RuntimeError> {
        Ok(lalarand_sim::write_gantt(&self.to_sim_result(plan, report), labels, path, window)?)
    }
}

fn hyperperiod(plan: &ExecutionPlan) -> Option<Time> {
    fn gcd(a: Time, b: Time) -> Time {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    plan.tasks.iter().try_fold(1 as Time, |h, t| (h / gcd(h, t.period)).checked_mul(t.period))
}
