//! Layer allocations: a mode and a resource for every layer of every task.

use crate::error::{read_file, toml_error, FormatError, ModelError};
use crate::platform::ResourceId;
use crate::profile::{DnnProfile, Mode};
use crate::task::System;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Placement {
    pub mode: Mode,
    pub resource: ResourceId,
}

/// `tasks[i][j]` places layer `j` of task `i` of the [`System`] it was made for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Allocation {
    pub tasks: Vec<Vec<Placement>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocationFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
    #[serde(rename = "task")]
    tasks: Vec<TaskAllocationFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskAllocationFile {
    name: String,
    /// One `mode@resource` per layer, in execution order.
    layers: Vec<String>,
}

impl Allocation {
    /// Every layer in `mode` on the first resource of that mode's kind.
    pub fn uniform(system: &System, mode: Mode) -> Result<Self, ModelError> {
        let resource = system.platform.of_kind(mode.kind()).next().ok_or_else(|| {
            ModelError::mismatch(
                format!("the platform has no {} resource for mode {mode}", mode.kind()),
                "add one to the platform",
            )
        })?;
        let tasks = system
            .tasks
            .iter()
            .map(|t| {
                t.dnn
                    .layers
                    .iter()
                    .map(|l| {
                        l.mode(mode).map(|_| Placement { mode, resource }).ok_or_else(|| {
                            ModelError::mismatch(
                                format!("layer {:?} of task {:?} has no {mode} mode", l.name, t.name),
                                "profile that mode, or choose another policy",
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { tasks })
    }

    /// Checks that the allocation fits `system`: shapes, modes, resources.
    pub fn validate(&self, system: &System) -> Result<(), ModelError> {
        if self.tasks.len() != system.tasks.len() {
            return Err(ModelError::mismatch(
                format!("allocation has {} tasks, the task set {}", self.tasks.len(), system.tasks.len()),
                "allocate the same task set (lalarand allocate)",
            ));
        }
        for (t, places) in system.tasks.iter().zip(&self.tasks) {
            if places.len() != t.dnn.layers.len() {
                return Err(ModelError::mismatch(
                    format!(
                        "task {:?}: allocation has {} layers, its profile {}",
                        t.name,
                        places.len(),
                        t.dnn.layers.len()
                    ),
                    "re-allocate after changing the profile",
                ));
            }
            for (l, p) in t.dnn.layers.iter().zip(places) {
                let r = system.platform.resources.get(p.resource).ok_or_else(|| {
                    ModelError::mismatch(
                        format!("task {:?} layer {:?}: resource #{} does not exist", t.name, l.name, p.resource),
                        "use a platform resource",
                    )
                })?;
                if r.kind != p.mode.kind() {
                    return Err(ModelError::mismatch(
                        format!(
                            "task {:?} layer {:?}: mode {} on {} resource {:?}",
                            t.name, l.name, p.mode, r.kind, r.name
                        ),
                        format!("place {} layers on a {} resource", p.mode, p.mode.kind()),
                    ));
                }
                if l.mode(p.mode).is_none() {
                    return Err(ModelError::mismatch(
                        format!("task {:?} layer {:?} has no {} mode in its profile", t.name, l.name, p.mode),
                        "choose a mode the profile lists",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Sum of the int8 accuracy costs of the int8 layers, in percentage points (negative
    /// measured costs count as zero, so the sum is never optimistic).
    pub fn accuracy_cost(&self, system: &System) -> f64 {
        self.task_accuracy_costs(system).into_iter().sum()
    }

    /// Per task: the sum of its int8 layers' accuracy costs.
    pub fn task_accuracy_costs(&self, system: &System) -> Vec<f64> {
        system.tasks.iter().zip(&self.tasks).map(|(t, ps)| placements_accuracy_cost(&t.dnn, ps)).collect()
    }

    pub fn int8_layers(&self) -> usize {
        self.tasks.iter().flatten().filter(|p| p.mode.is_int8()).count()
    }

    /// int8 layers whose accuracy cost is not known (the profile has `null` there, e.g. one
    /// made without a labeled dataset): they count as `0` in [`Self::accuracy_cost`], so that
    /// sum is a lower bound whenever this is above zero.
    pub fn unknown_accuracy_layers(&self, system: &System) -> usize {
        self.task_unknown_accuracy_layers(system).into_iter().sum()
    }

    /// Per task: its int8 layers whose accuracy cost is not known.
    pub fn task_unknown_accuracy_layers(&self, system: &System) -> Vec<usize> {
        system
            .tasks
            .iter()
            .zip(&self.tasks)
            .map(|(t, ps)| {
                ps.iter().enumerate().filter(|(j, p)| p.mode.is_int8() && !t.dnn.int8_accuracy_known(*j)).count()
            })
            .collect()
    }

    pub fn load(path: &Path, system: &System) -> Result<Self, FormatError> {
        Self::parse(&read_file(path)?, path, system)
    }

    /// Parses allocation TOML against `system`. A layer is `mode@resource`, or just `mode`
    /// where the platform has exactly one resource of that mode's kind.
    pub fn parse(text: &str, origin: &Path, system: &System) -> Result<Self, FormatError> {
        let file: AllocationFile = toml::from_str(text).map_err(|e| toml_error(origin, e))?;
        let mut by_name: HashMap<&str, (usize, &TaskAllocationFile)> = HashMap::new();
        for (i, t) in file.tasks.iter().enumerate() {
            if by_name.insert(t.name.as_str(), (i, t)).is_some() {
                return Err(FormatError::new(
                    origin,
                    format!("task[{i}].name"),
                    format!("task {:?} allocated twice", t.name),
                    "list each task once",
                ));
            }
            if !system.tasks.iter().any(|s| s.name == t.name) {
                return Err(FormatError::new(
                    origin,
                    format!("task[{i}].name"),
                    format!("no task {:?} in the task set", t.name),
                    "allocate the tasks of this task set (lalarand allocate)",
                ));
            }
        }
        let mut tasks = Vec::with_capacity(system.tasks.len());
        for task in &system.tasks {
            let Some((i, t)) = by_name.get(task.name.as_str()) else {
                return Err(FormatError::new(
                    origin,
                    "task",
                    format!("task {:?} of the task set is not allocated", task.name),
                    "add a [[task]] for it, or re-run lalarand allocate",
                ));
            };
            if t.layers.len() != task.dnn.layers.len() {
                return Err(FormatError::new(
                    origin,
                    format!("task[{i}].layers"),
                    format!(
                        "{} layers, but task {:?}'s profile has {}",
                        t.layers.len(),
                        task.name,
                        task.dnn.layers.len()
                    ),
                    "give one mode@resource per profiled layer",
                ));
            }
            let mut places = Vec::with_capacity(t.layers.len());
            for (j, (text, layer)) in t.layers.iter().zip(&task.dnn.layers).enumerate() {
                let field = format!("task[{i}].layers[{j}]");
                let bad = |problem: String, fix: String| FormatError::new(origin, field.clone(), problem, fix);
                let (mode_text, resource_text) = match text.split_once('@') {
                    Some((m, r)) => (m, Some(r)),
                    None => (text.as_str(), None),
                };
                let mode: Mode =
                    mode_text.parse().map_err(|e: String| bad(e, "use gpu, cpu-fp32 or cpu-int8".into()))?;
                let resource = match resource_text {
                    Some(name) => system.platform.resource_by_name(name).ok_or_else(|| {
                        let known: Vec<_> = system.platform.resources.iter().map(|r| r.name.as_str()).collect();
                        bad(format!("unknown resource {name:?}"), format!("use one of {known:?}"))
                    })?,
                    None => {
                        let mut of_kind = system.platform.of_kind(mode.kind());
                        match (of_kind.next(), of_kind.next()) {
                            (Some(r), None) => r,
                            _ => {
                                return Err(bad(
                                    format!("no unique {} resource for {text:?}", mode.kind()),
                                    "write mode@resource".into(),
                                ))
                            }
                        }
                    }
                };
                if system.platform.resources[resource].kind != mode.kind() {
                    return Err(bad(
                        format!("mode {mode} cannot run on resource {:?}", system.platform.resources[resource].name),
                        format!("place it on a {} resource", mode.kind()),
                    ));
                }
                if layer.mode(mode).is_none() {
                    return Err(bad(
                        format!("layer {:?} has no {mode} mode in its profile", layer.name),
                        "choose a profiled mode".into(),
                    ));
                }
                places.push(Placement { mode, resource });
            }
            tasks.push(places);
        }
        Ok(Self { tasks })
    }

    pub fn to_toml(&self, system: &System, policy: Option<&str>) -> String {
        let file = AllocationFile {
            policy: policy.map(str::to_string),
            tasks: system
                .tasks
                .iter()
                .zip(&self.tasks)
                .map(|(t, ps)| TaskAllocationFile {
                    name: t.name.clone(),
                    layers: ps
                        .iter()
                        .map(|p| format!("{}@{}", p.mode, system.platform.resources[p.resource].name))
                        .collect(),
                })
                .collect(),
        };
        toml::to_string_pretty(&file).expect("allocation serializes")
    }
}

/// The budgeted accuracy cost ([`crate::LayerProfile::budgeted_int8_cost`]) of `dnn`'s layers
/// that `places` runs in int8.
pub fn placements_accuracy_cost(dnn: &DnnProfile, places: &[Placement]) -> f64 {
    dnn.layers.iter().zip(places).filter(|(_, p)| p.mode.is_int8()).map(|(l, _)| l.budgeted_int8_cost()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples::demo_system;

    #[test]
    fn round_trips_and_validates() {
        let sys = demo_system();
        let a = Allocation::uniform(&sys, Mode::Gpu).unwrap();
        a.validate(&sys).unwrap();
        let text = a.to_toml(&sys, Some("gpu-only"));
        assert_eq!(Allocation::parse(&text, Path::new("a.toml"), &sys).unwrap(), a);
    }

    #[test]
    fn rejects_mismatches() {
        let sys = demo_system();
        let a = Allocation::uniform(&sys, Mode::Gpu).unwrap();
        let text = a.to_toml(&sys, None);
        let p = |t: &str| Allocation::parse(t, Path::new("a.toml"), &sys).unwrap_err();
        let e = p(&text.replacen("gpu@gpu", "gpu@npu", 1));
        assert_eq!(e.field, "task[0].layers[0]");
        assert!(e.problem.contains("npu"));
        let e = p(&text.replacen("gpu@gpu", "cpu-fp32@gpu", 1));
        assert_eq!(e.field, "task[0].layers[0]");
        let e = p(&text.replacen("\"gpu@gpu\",", "", 1));
        assert_eq!(e.field, "task[0].layers");
        let e = p(&text.replacen(&format!("name = \"{}\"", sys.tasks[0].name), "name = \"ghost\"", 1));
        assert_eq!(e.field, "task[0].name");
    }

    #[test]
    fn counts_int8_layers_of_unknown_accuracy_cost() {
        let mut sys = demo_system();
        let int8 = Allocation::uniform(&sys, Mode::CpuInt8).unwrap();
        assert_eq!(int8.unknown_accuracy_layers(&sys), 0, "the library's costs are known");
        let mut dnn = (*sys.tasks[0].dnn).clone();
        dnn.int8_accuracy_unknown = [0, 2].into();
        dnn.layers[0].int8_accuracy_cost = 0.0;
        dnn.layers[2].int8_accuracy_cost = 0.0;
        sys.tasks[0].dnn = std::sync::Arc::new(dnn);
        assert_eq!(int8.unknown_accuracy_layers(&sys), 2);
        let mut per_task = vec![0; sys.tasks.len()];
        per_task[0] = 2;
        assert_eq!(int8.task_unknown_accuracy_layers(&sys), per_task);
        // Only int8 layers count: layer 0 on the gpu does not.
        let mut mixed = int8.clone();
        mixed.tasks[0][0] = Allocation::uniform(&sys, Mode::Gpu).unwrap().tasks[0][0];
        assert_eq!(mixed.unknown_accuracy_layers(&sys), 1);
        assert_eq!(Allocation::uniform(&sys, Mode::Gpu).unwrap().unknown_accuracy_layers(&sys), 0);
    }
}
