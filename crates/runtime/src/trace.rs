//! The run as a Chrome/Perfetto trace (trace event format). Charts are drawn by the layers
//! above from the same records (the CLI: `lalarand_sim::write_schedule_gantt`).

use crate::report::RunTrace;
use crate::RuntimeError;
use lalarand_model::System;
use serde_json::{json, Value};
use std::path::Path;

impl RunTrace {
    /// Trace event JSON: one track (thread) per resource, each stage an "X" event with
    /// task/job/stage args, each track named `resource (kind)` after `system`'s platform; times
    /// in microseconds. Opens in ui.perfetto.dev or chrome://tracing.
    pub fn chrome_trace(&self, system: &System) -> Value {
        let mut events: Vec<Value> = system
            .platform
            .resources
            .iter()
            .enumerate()
            .map(|(r, res)| {
                let name = format!("{} ({})", res.name, res.kind);
                json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": r, "args": {"name": name}})
            })
            .collect();
        for (r, slots) in self.resources.iter().enumerate() {
            for s in slots {
                let task = system.tasks.get(s.task).map_or("?", |t| t.name.as_str());
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

    pub fn write_chrome_trace(&self, system: &System, path: &Path) -> Result<(), RuntimeError> {
        let text = serde_json::to_string(&self.chrome_trace(system)).expect("trace serializes");
        std::fs::write(path, text).map_err(|error| RuntimeError::Write { path: path.to_path_buf(), error })
    }
}
