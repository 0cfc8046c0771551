//! From (system, allocation) to per-layer costs: the one place transitions and the runtime's
//! overheads are charged.
//!
//! Rule (docs/formats.md, "How transitions are charged"; why: docs/analysis.md, section 1):
//! layer `j`'s inputs come from the layers the profile says it reads (`DnnProfile::sources`:
//! by default layer `j-1`, or for the first layer the host's fp32 input; a residual add also
//! reads an earlier layer). Its cost on its own resource, run non-preemptively, is
//!
//! `wcet(mode) + dispatch_overhead(resource)`
//! `+ wakeup_overhead(resource)` if the layer is the first or its predecessor ran on another
//!                   resource (the worker may be asleep; after its own predecessor it is not)
//! `+ copy_in`       if an input lives in another memory (host vs. a gpu, or another gpu;
//!                   all cpu resources share host memory)
//! `+ quantize_in`   if an input is fp32 and the layer int8
//! `+ dequantize_in` if an input is int8 and the layer fp32
//! and, for the last layer, `+ copy_out` if it runs on a gpu and `+ dequantize_out` if int8,
//! since the output is handed to the application as fp32 in host memory.

use crate::allocation::{Allocation, Placement};
use crate::error::ModelError;
use crate::platform::{Platform, ResourceId, ResourceKind};
use crate::profile::{DnnProfile, Mode};
use crate::task::{System, Task};
use crate::time::Time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedLayer {
    pub resource: ResourceId,
    pub mode: Mode,
    /// Worst-case cost including transitions and the runtime's overheads (dispatch, and wake-up
    /// where charged).
    pub wcet: Time,
    /// The wake-up overhead inside `wcet` (0 where none is charged). The analysis counts it as
    /// waiting, not as the layer's non-preemptive execution: a higher-priority layer queued while
    /// the worker wakes runs first (docs/analysis.md, "The runtime's overheads").
    pub wakeup: Time,
}

impl PlannedLayer {
    /// The layer's non-preemptive execution once it starts: its cost less its wake-up overhead.
    pub fn execution(&self) -> Time {
        self.wcet.saturating_sub(self.wakeup)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTask {
    pub period: Time,
    pub deadline: Time,
    pub offset: Time,
    /// 0 = highest; distinct.
    pub priority: u32,
    pub layers: Vec<PlannedLayer>,
}

/// What the analysis and the simulator see: chains of (resource, cost) per task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionPlan {
    pub resources: usize,
    pub tasks: Vec<PlannedTask>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Memory {
    Host,
    Device(ResourceId),
}

fn memory(platform: &Platform, resource: ResourceId) -> Memory {
    match platform.resources[resource].kind {
        ResourceKind::Cpu => Memory::Host,
        ResourceKind::Gpu => Memory::Device(resource),
    }
}

/// Cost of layer `j` of `dnn` placed as `places`, per the rule above. `places` must be valid
/// for `dnn` (see [`Allocation::validate`]).
pub fn layer_cost(platform: &Platform, dnn: &DnnProfile, places: &[Placement], j: usize) -> Time {
    layer_cost_with(platform, dnn, places, j, j + 1 == dnn.layers.len())
}

/// [`layer_cost`] over a prefix of the chain (`places` may be shorter than the DNN), with the
/// output charges applied only if `is_last`. Exact searches cost partial allocations with it.
pub fn layer_cost_with(platform: &Platform, dnn: &DnnProfile, places: &[Placement], j: usize, is_last: bool) -> Time {
    let previous = j.checked_sub(1).map(|p| places[p]);
    // Costs are computed in the allocators' inner loops: no allocation for the chain rule.
    match dnn.layer_sources.get(&j) {
        Some(read) => {
            let sources = read.layers.iter().map(|&k| places[k]);
            cost_reading(platform, dnn, j, sources, read.graph_input, previous, places[j], is_last)
        }
        None => cost_reading(platform, dnn, j, previous.into_iter(), previous.is_none(), previous, places[j], is_last),
    }
}

/// The wake-up overhead in layer `j`'s cost: its resource's `wakeup_overhead` if it is the first
/// layer or its predecessor ran on another resource, else 0 (the rule in the module
/// documentation).
pub fn layer_wakeup(platform: &Platform, places: &[Placement], j: usize) -> Time {
    wakeup_charge(platform, j.checked_sub(1).map(|p| places[p]), places[j])
}

/// The wake-up overhead of a layer at `place` whose predecessor sits at `previous`.
fn wakeup_charge(platform: &Platform, previous: Option<Placement>, place: Placement) -> Time {
    match previous {
        Some(prev) if prev.resource == place.resource => 0,
        _ => platform.resources[place.resource].wakeup_overhead,
    }
}

/// The cost of layer `j` at `place` when its predecessor sits at `previous` (`None`: the
/// input comes from the host), as if it read its predecessor only: the chain rule. Searches
/// that place one layer at a time estimate with it; [`layer_cost`] charges the conversions of
/// every input the layer reads (`DnnProfile::sources`), which is what the analysis sees.
pub fn placed_cost(
    platform: &Platform,
    dnn: &DnnProfile,
    j: usize,
    previous: Option<Placement>,
    place: Placement,
    is_last: bool,
) -> Time {
    cost_reading(platform, dnn, j, previous.into_iter(), previous.is_none(), previous, place, is_last)
}

/// The cost of layer `j` at `place` reading the outputs of layers placed at `sources` (and the
/// host's fp32 input if `reads_host_input`): the rule in the module documentation, with a
/// transition charged when *any* input needs it (the profile's `copy_in`, `quantize_in` and
/// `dequantize_in` cover all the layer's inputs).
#[allow(clippy::too_many_arguments)]
fn cost_reading(
    platform: &Platform,
    dnn: &DnnProfile,
    j: usize,
    sources: impl Iterator<Item = Placement> + Clone,
    reads_host_input: bool,
    previous: Option<Placement>,
    place: Placement,
    is_last: bool,
) -> Time {
    let layer = &dnn.layers[j];
    let here = memory(platform, place.resource);
    let mut cost = layer.wcet(place.mode).expect("validated allocation")
        + platform.resources[place.resource].dispatch_overhead
        + wakeup_charge(platform, previous, place);
    let elsewhere = sources.clone().any(|s| memory(platform, s.resource) != here);
    if elsewhere || (reads_host_input && here != Memory::Host) {
        cost += layer.transitions.copy_in;
    }
    let some_int8 = sources.clone().any(|s| s.mode.is_int8());
    let some_fp32 = reads_host_input || sources.clone().any(|s| !s.mode.is_int8());
    if place.mode.is_int8() && some_fp32 {
        cost += layer.transitions.quantize_in;
    }
    if !place.mode.is_int8() && some_int8 {
        cost += layer.transitions.dequantize_in;
    }
    if is_last {
        if here != Memory::Host {
            cost += dnn.output.copy_out;
        }
        if place.mode.is_int8() {
            cost += dnn.output.dequantize_out;
        }
    }
    cost
}

impl PlannedTask {
    /// Task `task` with its layers placed as `places` (a prefix of its chain is allowed: the
    /// output charges then wait for the real last layer).
    pub fn new(platform: &Platform, task: &Task, places: &[Placement]) -> Self {
        let n = task.dnn.layers.len();
        PlannedTask {
            period: task.period,
            deadline: task.deadline,
            offset: task.offset,
            priority: task.priority,
            layers: (0..places.len())
                .map(|j| PlannedLayer {
                    resource: places[j].resource,
                    mode: places[j].mode,
                    wcet: layer_cost_with(platform, &task.dnn, places, j, j + 1 == n),
                    wakeup: layer_wakeup(platform, places, j),
                })
                .collect(),
        }
    }
}

impl ExecutionPlan {
    pub fn new(system: &System, alloc: &Allocation) -> Result<Self, ModelError> {
        alloc.validate(system)?;
        Ok(Self::new_unchecked(system, alloc))
    }

    /// As [`ExecutionPlan::new`] for an allocation known to be valid (allocators' inner loops).
    pub fn new_unchecked(system: &System, alloc: &Allocation) -> Self {
        let tasks = system
            .tasks
            .iter()
            .zip(&alloc.tasks)
            .map(|(t, places)| PlannedTask::new(&system.platform, t, places))
            .collect();
        Self { resources: system.platform.resources.len(), tasks }
    }

    /// Utilization of each resource: sum over tasks of (cost on it / period).
    pub fn utilization(&self) -> Vec<f64> {
        let mut u = vec![0.0; self.resources];
        for t in &self.tasks {
            for l in &t.layers {
                u[l.resource] += l.wcet as f64 / t.period as f64;
            }
        }
        u
    }

    /// The least common multiple of the periods, if it fits a [`Time`].
    pub fn hyperperiod(&self) -> Option<Time> {
        fn gcd(a: Time, b: Time) -> Time {
            if b == 0 {
                a
            } else {
                gcd(b, a % b)
            }
        }
        self.tasks.iter().try_fold(1 as Time, |h, t| (h / gcd(h, t.period)).checked_mul(t.period))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples::chain_profile;
    use crate::platform::Resource;
    use crate::profile::{LayerProfile, ModeTiming, OutputTransitions, Transitions};

    fn layer(name: &str) -> LayerProfile {
        LayerProfile {
            name: name.into(),
            modes: [
                Some(ModeTiming::from_wcet(100)),
                Some(ModeTiming::from_wcet(1_000)),
                Some(ModeTiming::from_wcet(400)),
            ],
            int8_accuracy_cost: 0.1,
            transitions: Transitions { copy_in: 10, quantize_in: 3, dequantize_in: 2 },
        }
    }

    fn costs(platform: &Platform, dnn: &DnnProfile, places: &[Placement]) -> Vec<Time> {
        (0..places.len()).map(|j| layer_cost(platform, dnn, places, j)).collect()
    }

    #[test]
    fn charges_transitions_on_the_receiving_layer() {
        let mut dnn = chain_profile("m", &[layer("a"), layer("b"), layer("c")]);
        dnn.output = OutputTransitions { copy_out: 7, dequantize_out: 5 };
        let mut platform = Platform::default_cpu_gpu(); // 0 = gpu, 1 = cpu
        let gpu = |_| Placement { mode: Mode::Gpu, resource: 0 };
        let all_gpu: Vec<_> = (0..3).map(gpu).collect();
        // Host input copied to the gpu for the first layer, output copied back by the last.
        assert_eq!(costs(&platform, &dnn, &all_gpu), vec![110, 100, 107]);
        let mixed = [
            Placement { mode: Mode::CpuInt8, resource: 1 },
            Placement { mode: Mode::CpuFp32, resource: 1 },
            Placement { mode: Mode::CpuInt8, resource: 1 },
        ];
        // int8 from fp32 host input: quantize; back to fp32: dequantize; int8 output: dequantize_out.
        assert_eq!(costs(&platform, &dnn, &mixed), vec![403, 1_002, 408]);
        platform.resources[1].dispatch_overhead = 1;
        let cpu_then_gpu =
            [Placement { mode: Mode::CpuInt8, resource: 1 }, gpu(0), Placement { mode: Mode::CpuFp32, resource: 1 }];
        // cpu int8 -> gpu: copy + dequantize; gpu -> cpu: copy.
        assert_eq!(costs(&platform, &dnn, &cpu_then_gpu), vec![404, 112, 1_011]);
        // Two cpu resources share host memory: no copy between them.
        platform.resources.push(Resource::new("cpu2", ResourceKind::Cpu));
        let two_cpus = [
            Placement { mode: Mode::CpuFp32, resource: 1 },
            Placement { mode: Mode::CpuFp32, resource: 2 },
            Placement { mode: Mode::CpuFp32, resource: 1 },
        ];
        assert_eq!(costs(&platform, &dnn, &two_cpus), vec![1_001, 1_000, 1_001]);
        // The wake-up overhead: the first layer and every layer after another resource's, not a
        // layer after its predecessor on the same resource.
        platform.resources[1].wakeup_overhead = 20;
        platform.resources[2].wakeup_overhead = 30;
        assert_eq!(costs(&platform, &dnn, &two_cpus), vec![1_021, 1_030, 1_021]);
        let stay = [two_cpus[0], two_cpus[0], two_cpus[1]];
        assert_eq!(costs(&platform, &dnn, &stay), vec![1_021, 1_001, 1_030]);
    }

    /// A residual add (`c`) reads `a` as well as `b`: with `a` int8 and `b`, `c` fp32, `c`
    /// dequantizes `a`'s output and is charged for it, though its predecessor is fp32 (the
    /// chain rule missed this); with `a` on the gpu, `c` on the cpu pays the copy too.
    #[test]
    fn charges_transitions_of_every_input_read() {
        let mut dnn = chain_profile("m", &[layer("a"), layer("b"), layer("c")]);
        let platform = Platform::default_cpu_gpu(); // 0 = gpu, 1 = cpu
        let places = [
            Placement { mode: Mode::CpuInt8, resource: 1 },
            Placement { mode: Mode::CpuFp32, resource: 1 },
            Placement { mode: Mode::CpuFp32, resource: 1 },
        ];
        assert_eq!(costs(&platform, &dnn, &places), vec![403, 1_002, 1_000], "the chain rule");
        dnn.layer_sources.insert(2, crate::profile::LayerSources { layers: vec![0, 1], graph_input: false });
        assert_eq!(costs(&platform, &dnn, &places), vec![403, 1_002, 1_002], "c dequantizes a's output");
        // The chain-rule estimate searches use does not see it; the plan does.
        assert_eq!(placed_cost(&platform, &dnn, 2, Some(places[1]), places[2], true), 1_000);
        let from_gpu = [Placement { mode: Mode::Gpu, resource: 0 }, places[1], places[2]];
        assert_eq!(costs(&platform, &dnn, &from_gpu), vec![110, 1_010, 1_010], "c copies a's output");
        // A middle layer reading the graph input quantizes it when int8.
        dnn.layer_sources.insert(1, crate::profile::LayerSources { layers: vec![0], graph_input: true });
        let int8 = [places[0], places[0], places[0]];
        assert_eq!(costs(&platform, &dnn, &int8)[1], 403);
    }
}
