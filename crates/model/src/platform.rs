//! Platforms: named resources, each executing one layer at a time, non-preemptively.

use crate::error::{read_file, toml_error, FormatError};
use crate::time::{us_to_time, Time};
use crate::Mode;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// What a resource is; decides which [`crate::Mode`]s it can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Cpu,
    Gpu,
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResourceKind::Cpu => "cpu",
            ResourceKind::Gpu => "gpu",
        })
    }
}

/// Index of a resource in its [`Platform`].
pub type ResourceId = usize;

#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    pub kind: ResourceKind,
    /// Scheduling overhead charged to every layer dispatched on this resource (the runtime's
    /// measured dispatch cost); part of each layer's worst-case time in the analysis.
    pub dispatch_overhead: Time,
    /// Charged, on top, to a layer that may find this resource's worker asleep: the first layer
    /// of a job and any layer whose predecessor ran on another resource (the runtime's wake-up
    /// latency). A layer following its predecessor on the same resource is queued by the
    /// worker itself, which does not sleep in between.
    pub wakeup_overhead: Time,
    /// CPU cores the resource's worker may use (cpu resources; empty = unpinned).
    pub cores: Vec<usize>,
    /// Intra-op threads for layers on this resource (cpu resources).
    pub threads: usize,
    /// CUDA device index (gpu resources).
    pub device: u32,
    /// A `cpu` resource standing in for the accelerator on a platform without a `gpu`: the
    /// baselines built around a gpu (`gpu-only`, `dart`) use it, in `cpu-fp32`, where they
    /// would use the gpu. Placement is otherwise unaffected.
    pub accelerator: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Platform {
    pub resources: Vec<Resource>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformFile {
    #[serde(rename = "resource")]
    resources: Vec<ResourceFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceFile {
    name: String,
    kind: ResourceKind,
    #[serde(default, skip_serializing_if = "is_zero")]
    dispatch_overhead_us: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    wakeup_overhead_us: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cores: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    accelerator: bool,
}

fn is_false(x: &bool) -> bool {
    !*x
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl Resource {
    pub fn new(name: impl Into<String>, kind: ResourceKind) -> Self {
        Self {
            name: name.into(),
            kind,
            dispatch_overhead: 0,
            wakeup_overhead: 0,
            cores: Vec::new(),
            threads: 1,
            device: 0,
            accelerator: false,
        }
    }
}

impl Platform {
    /// One `gpu` and one `cpu`: the platform of the paper.
    pub fn default_cpu_gpu() -> Self {
        Self { resources: vec![Resource::new("gpu", ResourceKind::Gpu), Resource::new("cpu", ResourceKind::Cpu)] }
    }

    pub fn resource_by_name(&self, name: &str) -> Option<ResourceId> {
        self.resources.iter().position(|r| r.name == name)
    }

    /// Resources of a kind, in platform order.
    pub fn of_kind(&self, kind: ResourceKind) -> impl Iterator<Item = ResourceId> + '_ {
        self.resources.iter().enumerate().filter(move |(_, r)| r.kind == kind).map(|(i, _)| i)
    }

    /// The resource the gpu-based baselines use, with the mode they run there: the first `gpu`
    /// in `gpu` mode, else the `cpu` marked `accelerator` in `cpu-fp32`.
    pub fn accelerator(&self) -> Option<(ResourceId, Mode)> {
        self.of_kind(ResourceKind::Gpu)
            .next()
            .map(|r| (r, Mode::Gpu))
            .or_else(|| self.resources.iter().position(|r| r.accelerator).map(|r| (r, Mode::CpuFp32)))
    }

    /// The `cpu` resources that do not stand in for the accelerator, in platform order.
    pub fn host_cpus(&self) -> impl Iterator<Item = ResourceId> + '_ {
        self.of_kind(ResourceKind::Cpu).filter(|&r| !self.resources[r].accelerator)
    }

    pub fn load(path: &Path) -> Result<Self, FormatError> {
        Self::parse(&read_file(path)?, path)
    }

    /// Parses platform TOML; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, FormatError> {
        let file: PlatformFile = toml::from_str(text).map_err(|e| toml_error(origin, e))?;
        let err = |i: usize, field: &str, problem: String, fix: &str| {
            FormatError::new(origin, format!("resource[{i}].{field}"), problem, fix)
        };
        if file.resources.is_empty() {
            return Err(FormatError::new(origin, "resource", "no resources", "add at least one [[resource]] table"));
        }
        let mut names = HashSet::new();
        let mut resources = Vec::with_capacity(file.resources.len());
        for (i, r) in file.resources.into_iter().enumerate() {
            if r.name.trim().is_empty() {
                return Err(err(i, "name", "empty name".into(), "give the resource a name such as \"gpu\""));
            }
            if !names.insert(r.name.clone()) {
                return Err(err(
                    i,
                    "name",
                    format!("duplicate resource name {:?}", r.name),
                    "give every resource a distinct name",
                ));
            }
            if !crate::time::in_range(r.dispatch_overhead_us, 1e3) {
                return Err(err(
                    i,
                    "dispatch_overhead_us",
                    format!("{} is not a non-negative number", r.dispatch_overhead_us),
                    "use a time in microseconds >= 0",
                ));
            }
            if !crate::time::in_range(r.wakeup_overhead_us, 1e3) {
                return Err(err(
                    i,
                    "wakeup_overhead_us",
                    format!("{} is not a non-negative number", r.wakeup_overhead_us),
                    "use a time in microseconds >= 0",
                ));
            }
            if r.threads == Some(0) {
                return Err(err(i, "threads", "0 threads".into(), "use at least 1 thread"));
            }
            if r.kind == ResourceKind::Gpu && (!r.cores.is_empty() || r.threads.is_some()) {
                return Err(err(
                    i,
                    "cores",
                    "cores/threads given for a gpu resource".into(),
                    "remove them, or set kind = \"cpu\"",
                ));
            }
            if r.kind == ResourceKind::Cpu && r.device.is_some() {
                return Err(err(
                    i,
                    "device",
                    "device given for a cpu resource".into(),
                    "remove it, or set kind = \"gpu\"",
                ));
            }
            if r.accelerator && r.kind == ResourceKind::Gpu {
                return Err(err(
                    i,
                    "accelerator",
                    "a gpu resource marked as standing in for the accelerator".into(),
                    "remove `accelerator`: only a cpu resource can stand in for a gpu",
                ));
            }
            let mut seen = HashSet::new();
            if let Some(c) = r.cores.iter().find(|c| !seen.insert(**c)) {
                return Err(err(i, "cores", format!("core {c} listed twice"), "list each core once"));
            }
            resources.push(Resource {
                name: r.name,
                kind: r.kind,
                dispatch_overhead: us_to_time(r.dispatch_overhead_us),
                wakeup_overhead: us_to_time(r.wakeup_overhead_us),
                cores: r.cores,
                threads: r.threads.unwrap_or(1),
                device: r.device.unwrap_or(0),
                accelerator: r.accelerator,
            });
        }
        let stand_ins: Vec<usize> = (0..resources.len()).filter(|&i| resources[i].accelerator).collect();
        if let Some(&i) = stand_ins.get(1) {
            return Err(err(
                i,
                "accelerator",
                format!("{} resources are marked `accelerator = true`", stand_ins.len()),
                "mark one cpu resource at most",
            ));
        }
        if let (Some(&i), true) = (stand_ins.first(), resources.iter().any(|r| r.kind == ResourceKind::Gpu)) {
            return Err(err(
                i,
                "accelerator",
                "the platform has a gpu resource, which the baselines use".into(),
                "remove `accelerator = true`: it is for platforms without a gpu",
            ));
        }
        Ok(Self { resources })
    }

    pub fn to_toml(&self) -> String {
        let file = PlatformFile {
            resources: self
                .resources
                .iter()
                .map(|r| ResourceFile {
                    name: r.name.clone(),
                    kind: r.kind,
                    dispatch_overhead_us: crate::time::time_to_us(r.dispatch_overhead),
                    wakeup_overhead_us: crate::time::time_to_us(r.wakeup_overhead),
                    cores: r.cores.clone(),
                    threads: (r.kind == ResourceKind::Cpu).then_some(r.threads),
                    device: (r.kind == ResourceKind::Gpu).then_some(r.device),
                    accelerator: r.accelerator,
                })
                .collect(),
        };
        toml::to_string_pretty(&file).expect("platform serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Platform, FormatError> {
        Platform::parse(s, Path::new("p.toml"))
    }

    #[test]
    fn parses_and_round_trips() {
        let p = parse(
            "[[resource]]\nname='gpu'\nkind='gpu'\n[[resource]]\nname='big'\nkind='cpu'\ncores=[0,1]\nthreads=2\ndispatch_overhead_us=5\nwakeup_overhead_us=50\n",
        )
        .unwrap();
        assert_eq!(p.resources.len(), 2);
        assert_eq!(p.resources[1].dispatch_overhead, 5_000);
        assert_eq!(p.resources[1].wakeup_overhead, 50_000);
        assert_eq!(parse(&p.to_toml()).unwrap(), p);
    }

    #[test]
    fn rejects_bad_input_with_field_and_fix() {
        let e = parse("[[resource]]\nname='a'\nkind='cpu'\n[[resource]]\nname='a'\nkind='gpu'\n").unwrap_err();
        assert_eq!(e.field, "resource[1].name");
        assert!(e.to_string().contains("p.toml"));
        let e = parse("[[resource]]\nname='a'\nkind='tpu'\n").unwrap_err();
        assert!(e.problem.contains("tpu"), "{e}");
        assert!(parse("resource = []").is_err());
        assert!(parse("[[resource]]\nname='a'\nkind='cpu'\nthreads=0\n").is_err());
        assert!(parse("[[resource]]\nname='a'\nkind='cpu'\ndispatch_overhead_us=-1\n").is_err());
        assert_eq!(
            parse("[[resource]]\nname='a'\nkind='cpu'\nwakeup_overhead_us=-1\n").unwrap_err().field,
            "resource[0].wakeup_overhead_us"
        );
    }

    #[test]
    fn a_cpu_resource_can_stand_in_for_the_accelerator() {
        let two_cpus =
            "[[resource]]\nname='cpu'\nkind='cpu'\n[[resource]]\nname='accel'\nkind='cpu'\naccelerator=true\n";
        let p = parse(two_cpus).unwrap();
        assert_eq!(p.accelerator(), Some((1, Mode::CpuFp32)));
        assert_eq!(p.host_cpus().collect::<Vec<_>>(), vec![0]);
        assert_eq!(parse(&p.to_toml()).unwrap(), p);
        assert_eq!(Platform::default_cpu_gpu().accelerator(), Some((0, Mode::Gpu)));
        assert_eq!(parse("[[resource]]\nname='cpu'\nkind='cpu'\n").unwrap().accelerator(), None);

        let e = parse("[[resource]]\nname='g'\nkind='gpu'\naccelerator=true\n").unwrap_err();
        assert_eq!(e.field, "resource[0].accelerator");
        let e = parse(&format!("{two_cpus}[[resource]]\nname='g'\nkind='gpu'\n")).unwrap_err();
        assert_eq!(e.field, "resource[1].accelerator");
        assert!(e.fix.contains("without a gpu"), "{e}");
        let e = parse(&format!("{two_cpus}[[resource]]\nname='c2'\nkind='cpu'\naccelerator=true\n")).unwrap_err();
        assert_eq!(e.field, "resource[2].accelerator");
    }
}
