//! `lalarand serve --inputs` and `--outputs`: the user's own inputs fed to a task, and what the
//! served jobs returned, saved as JSON lines.

use anyhow::{bail, Context, Result};
use lalarand_model::System;
use lalarand_runtime::serve::{Input, JobResult};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Jobs saved per task at most (the first ones): enough to see what a model returns for each
/// of a few inputs, without a file that grows with the run.
pub(super) const OUTPUTS_PER_TASK: usize = 64;

/// `--inputs TASK=FILE`: each named task's inputs (read as `lalarand profile --calibration`
/// reads them: `.npy`, a folder of images, CSV or raw fp32), by task index.
pub(super) fn load_task_inputs(
    system: &System,
    exec: &crate::engine_exec::EngineExecutor,
    given: &[(String, PathBuf)],
) -> Result<Vec<Option<Vec<Input>>>> {
    let mut inputs = vec![None; system.tasks.len()];
    for (name, path) in given {
        let Some(i) = system.tasks.iter().position(|t| &t.name == name) else {
            let names: Vec<&str> = system.tasks.iter().map(|t| t.name.as_str()).collect();
            bail!("--inputs {name}=...: no task is called {name:?} (tasks: {})", names.join(", "));
        };
        let staged = exec.pipeline(i).model();
        let values = lalarand_engine::profile::load_inputs(path, staged)
            .with_context(|| format!("--inputs {name}={}", path.display()))?;
        let dims = staged.input_shape(1);
        let task_inputs = values
            .into_iter()
            .map(|v| Input::from_vec(dims.clone(), v).map_err(anyhow::Error::msg))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("--inputs {name}={}", path.display()))?;
        inputs[i] = Some(task_inputs);
    }
    Ok(inputs)
}

/// One saved job.
#[derive(Serialize)]
struct Line<'a> {
    task: &'a str,
    job: u64,
    /// Which of the task's `--inputs` it ran (0 without them: the synthetic input).
    input: usize,
    release_ns: u64,
    response_ns: u64,
    outputs: &'a [lalarand_runtime::serve::HostTensor],
}

/// `--outputs FILE`: the first [`OUTPUTS_PER_TASK`] jobs of every task, one JSON line each.
pub(super) struct OutputLog {
    path: PathBuf,
    state: Mutex<LogState>,
}

/// The open file, the jobs saved per task, and the first write error.
type LogState = (BufWriter<std::fs::File>, HashMap<String, usize>, Option<String>);

impl OutputLog {
    pub fn create(path: &Path) -> Result<Self> {
        let file =
            std::fs::File::create(path).with_context(|| format!("--outputs {}: cannot create it", path.display()))?;
        Ok(Self { path: path.to_path_buf(), state: Mutex::new((BufWriter::new(file), HashMap::new(), None)) })
    }

    /// Saves `result` (which ran the task's input `input`) unless its task has its share.
    pub fn record(&self, result: &JobResult, input: usize) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (out, counts, failed) = &mut *state;
        let count = counts.entry(result.task.clone()).or_default();
        if *count >= OUTPUTS_PER_TASK || failed.is_some() {
            return;
        }
        *count += 1;
        let line = Line {
            task: &result.task,
            job: result.job,
            input,
            release_ns: result.timing.release,
            response_ns: result.timing.response,
            outputs: &result.outputs,
        };
        let written =
            serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from).and_then(|_| out.write_all(b"\n"));
        if let Err(e) = written {
            *failed = Some(e.to_string());
        }
    }

    /// Flushes the file; the first write error, if any, naming the file.
    pub fn finish(&self) -> Result<usize> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (out, counts, failed) = &mut *state;
        if let Some(e) = failed.take() {
            bail!("--outputs {}: {e}", self.path.display());
        }
        out.flush().with_context(|| format!("--outputs {}", self.path.display()))?;
        Ok(counts.values().sum())
    }
}
