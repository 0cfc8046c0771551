//! Periodic DNN tasks and task sets.

use crate::error::{read_file, toml_error, FormatError};
use crate::platform::Platform;
use crate::profile::DnnProfile;
use crate::time::{ms_to_time, time_to_ms, Time};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How priorities are assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PriorityPolicy {
    /// Shorter period, higher priority (ties: file order).
    #[default]
    RateMonotonic,
    /// Shorter deadline, higher priority (ties: file order).
    DeadlineMonotonic,
    /// The `priority` field of each task; smaller is higher; values must be distinct.
    Explicit,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub name: String,
    pub period: Time,
    /// Relative deadline, `<= period`.
    pub deadline: Time,
    /// Release time of the first job.
    pub offset: Time,
    /// Rank: 0 is the highest priority; distinct across a task set.
    pub priority: u32,
    pub dnn: Arc<DnnProfile>,
    /// Where the profile was read from, if from a file (kept for writing the set back).
    pub profile_path: Option<PathBuf>,
}

impl Task {
    /// A task with D = T, no offset, priority to be assigned by [`TaskSet::assign_priorities`].
    pub fn new(name: impl Into<String>, period: Time, dnn: Arc<DnnProfile>) -> Self {
        Self { name: name.into(), period, deadline: period, offset: 0, priority: 0, dnn, profile_path: None }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskSet {
    pub tasks: Vec<Task>,
    pub policy: PriorityPolicy,
}

/// A platform with tasks on it: the unit the analysis, allocators and simulator work on.
#[derive(Debug, Clone, PartialEq)]
pub struct System {
    pub platform: Platform,
    pub tasks: Vec<Task>,
}

impl System {
    pub fn new(platform: Platform, set: TaskSet) -> Self {
        Self { platform, tasks: set.tasks }
    }

    /// Task indices from highest to lowest priority.
    pub fn by_priority(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.tasks.len()).collect();
        order.sort_by_key(|&i| self.tasks[i].priority);
        order
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskSetFile {
    #[serde(default)]
    priority: PriorityPolicy,
    #[serde(rename = "task")]
    tasks: Vec<TaskFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    name: String,
    profile: PathBuf,
    period_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deadline_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offset_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<i64>,
}

impl TaskSet {
    pub fn new(tasks: Vec<Task>, policy: PriorityPolicy) -> Self {
        let mut set = Self { tasks, policy };
        set.assign_priorities();
        set
    }

    /// Re-ranks priorities by the policy; with [`PriorityPolicy::Explicit`] keeps the given
    /// order of `priority` values, compressed to ranks 0..n.
    pub fn assign_priorities(&mut self) {
        let mut order: Vec<usize> = (0..self.tasks.len()).collect();
        match self.policy {
            PriorityPolicy::RateMonotonic => order.sort_by_key(|&i| (self.tasks[i].period, i)),
            PriorityPolicy::DeadlineMonotonic => order.sort_by_key(|&i| (self.tasks[i].deadline, i)),
            PriorityPolicy::Explicit => order.sort_by_key(|&i| (self.tasks[i].priority, i)),
        }
        for (rank, i) in order.into_iter().enumerate() {
            self.tasks[i].priority = rank as u32;
        }
    }

    /// Loads a task set; profile paths are relative to the task set file.
    pub fn load(path: &Path) -> Result<Self, FormatError> {
        let text = read_file(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut cache: HashMap<PathBuf, Arc<DnnProfile>> = HashMap::new();
        Self::parse_with(&text, path, |i, p| {
            let full = base.join(p);
            if let Some(d) = cache.get(&full) {
                return Ok(d.clone());
            }
            if !full.exists() {
                return Err(FormatError::new(
                    path,
                    format!("task[{i}].profile"),
                    format!("profile {} does not exist", full.display()),
                    "give a path relative to the task set file, e.g. profiles/resnet18.json",
                ));
            }
            let d = Arc::new(DnnProfile::load(&full)?);
            cache.insert(full, d.clone());
            Ok(d)
        })
    }

    /// Parses task set TOML, resolving each task's `profile` through `resolve(task index, path)`.
    pub fn parse_with(
        text: &str,
        origin: &Path,
        mut resolve: impl FnMut(usize, &Path) -> Result<Arc<DnnProfile>, FormatError>,
    ) -> Result<Self, FormatError> {
        let file: TaskSetFile = toml::from_str(text).map_err(|e| toml_error(origin, e))?;
        if file.tasks.is_empty() {
            return Err(FormatError::new(origin, "task", "no tasks", "add at least one [[task]] table"));
        }
        let mut names = HashSet::new();
        let mut given_priorities = HashMap::new();
        let mut tasks = Vec::with_capacity(file.tasks.len());
        for (i, t) in file.tasks.into_iter().enumerate() {
            let at = |f: &str| format!("task[{i}].{f}");
            let err = |f: &str, problem: String, fix: &str| FormatError::new(origin, at(f), problem, fix);
            if t.name.trim().is_empty() {
                return Err(err("name", "empty name".into(), "name the task, e.g. \"detector\""));
            }
            if !names.insert(t.name.clone()) {
                return Err(err(
                    "name",
                    format!("duplicate task name {:?}", t.name),
                    "give every task a distinct name",
                ));
            }
            let positive = |f: &str, v: f64| -> Result<Time, FormatError> {
                if crate::time::in_range(v, 1e6) && v > 0.0 {
                    Ok(ms_to_time(v))
                } else {
                    Err(err(
                        f,
                        format!("{v} is not a positive time of at most 13 days"),
                        "use a time in milliseconds > 0",
                    ))
                }
            };
            let period = positive("period_ms", t.period_ms)?;
            let deadline = match t.deadline_ms {
                Some(d) => positive("deadline_ms", d)?,
                None => period,
            };
            if deadline > period {
                return Err(err(
                    "deadline_ms",
                    format!("deadline {} ms exceeds period {} ms", time_to_ms(deadline), t.period_ms),
                    "use a deadline <= period (constrained deadlines), or omit it for D = T",
                ));
            }
            let offset = match t.offset_ms {
                Some(o) if crate::time::in_range(o, 1e6) => ms_to_time(o),
                Some(o) => {
                    return Err(err(
                        "offset_ms",
                        format!("{o} is not a non-negative time"),
                        "use an offset in milliseconds >= 0",
                    ))
                }
                None => 0,
            };
            let priority = match (file.priority, t.priority) {
                (PriorityPolicy::Explicit, Some(p)) => {
                    if p < 0 || p > u32::MAX as i64 {
                        return Err(err(
                            "priority",
                            format!("{p} is out of range"),
                            "use 0 (highest) or a larger whole number",
                        ));
                    }
                    if let Some(other) = given_priorities.insert(p, i) {
                        return Err(err(
                            "priority",
                            format!("priority {p} is also task[{other}]'s"),
                            "give every task a distinct priority (smaller = higher)",
                        ));
                    }
                    p as u32
                }
                (PriorityPolicy::Explicit, None) => {
                    return Err(err(
                        "priority",
                        "missing with priority = \"explicit\"".into(),
                        "give each task a priority (0 = highest)",
                    ))
                }
                (_, Some(_)) => {
                    return Err(err(
                        "priority",
                        "given, but priorities are assigned by the task set's policy".into(),
                        "set priority = \"explicit\" at the top of the file, or remove the task's priority",
                    ))
                }
                (_, None) => 0,
            };
            let dnn = resolve(i, &t.profile)?;
            tasks.push(Task { name: t.name, period, deadline, offset, priority, dnn, profile_path: Some(t.profile) });
        }
        Ok(Self::new(tasks, file.priority))
    }

    /// Writes the set as TOML; tasks without a profile path get `profiles/<model>.json`.
    pub fn to_toml(&self) -> String {
        let file = TaskSetFile {
            priority: self.policy,
            tasks: self
                .tasks
                .iter()
                .map(|t| TaskFile {
                    name: t.name.clone(),
                    profile: t
                        .profile_path
                        .clone()
                        .unwrap_or_else(|| PathBuf::from(format!("profiles/{}.json", t.dnn.model))),
                    period_ms: time_to_ms(t.period),
                    deadline_ms: (t.deadline != t.period).then(|| time_to_ms(t.deadline)),
                    offset_ms: (t.offset != 0).then(|| time_to_ms(t.offset)),
                    priority: (self.policy == PriorityPolicy::Explicit).then_some(t.priority as i64),
                })
                .collect(),
        };
        toml::to_string_pretty(&file).expect("task set serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::LayerProfile;

    fn dnn() -> Arc<DnnProfile> {
        Arc::new(crate::examples::chain_profile("m", &[LayerProfile::gpu_cpu("l0", 1_000, 10_000)]))
    }

    fn parse(s: &str) -> Result<TaskSet, FormatError> {
        TaskSet::parse_with(s, Path::new("set.toml"), |_, _| Ok(dnn()))
    }

    #[test]
    fn assigns_rate_monotonic_priorities() {
        let s = parse(
            "[[task]]\nname='a'\nprofile='m.json'\nperiod_ms=20\n[[task]]\nname='b'\nprofile='m.json'\nperiod_ms=10\n",
        )
        .unwrap();
        assert_eq!(s.tasks[0].priority, 1);
        assert_eq!(s.tasks[1].priority, 0);
        assert_eq!(s.tasks[0].deadline, 20_000_000);
    }

    #[test]
    fn explicit_and_deadline_monotonic() {
        let s = parse("priority='explicit'\n[[task]]\nname='a'\nprofile='m'\nperiod_ms=5\npriority=7\n[[task]]\nname='b'\nprofile='m'\nperiod_ms=10\npriority=3\n").unwrap();
        assert_eq!((s.tasks[0].priority, s.tasks[1].priority), (1, 0));
        let s = parse("priority='deadline-monotonic'\n[[task]]\nname='a'\nprofile='m'\nperiod_ms=5\n[[task]]\nname='b'\nprofile='m'\nperiod_ms=10\ndeadline_ms=2\n").unwrap();
        assert_eq!((s.tasks[0].priority, s.tasks[1].priority), (1, 0));
    }

    #[test]
    fn rejects_bad_input() {
        let cases = [
            ("[[task]]\nname='a'\nprofile='m'\nperiod_ms=0\n", "task[0].period_ms"),
            ("[[task]]\nname='a'\nprofile='m'\nperiod_ms=-3\n", "task[0].period_ms"),
            ("[[task]]\nname='a'\nprofile='m'\nperiod_ms=nan\n", "task[0].period_ms"),
            ("[[task]]\nname='a'\nprofile='m'\nperiod_ms=5\ndeadline_ms=6\n", "task[0].deadline_ms"),
            ("[[task]]\nname='a'\nprofile='m'\nperiod_ms=5\n[[task]]\nname='a'\nprofile='m'\nperiod_ms=5\n", "task[1].name"),
            ("[[task]]\nname='a'\nprofile='m'\nperiod_ms=5\npriority=1\n", "task[0].priority"),
            ("priority='explicit'\n[[task]]\nname='a'\nprofile='m'\nperiod_ms=5\npriority=1\n[[task]]\nname='b'\nprofile='m'\nperiod_ms=5\npriority=1\n", "task[1].priority"),
            ("[[task]]\nname='a'\nprofile='m'\nperiod_ms=5\noffset_ms=-1\n", "task[0].offset_ms"),
        ];
        for (text, field) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().starts_with("set.toml: "), "{e}");
        }
        assert!(parse("task = 3").is_err());
    }

    #[test]
    fn missing_profile_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set.toml");
        std::fs::write(&path, "[[task]]\nname='a'\nprofile='nope.json'\nperiod_ms=5\n").unwrap();
        let e = TaskSet::load(&path).unwrap_err();
        assert_eq!(e.field, "task[0].profile");
    }
}
