//! The lalarand heuristic and the exact search against brute force on tiny systems.

use lalarand_alloc::{search::all_placements, AllocOptions, Allocator, Lalarand, Optimal, Policy};
use lalarand_analysis::analyze;
use lalarand_model::examples::{chain_profile, demo_system};
use lalarand_model::{
    Allocation, ExecutionPlan, LayerProfile, ModeTiming, Platform, PriorityPolicy, System, Task, TaskSet, Transitions,
};
use proptest::prelude::*;
use std::sync::Arc;

/// Every allocation of a tiny system, by counting in mixed radix.
/// The least accuracy cost of a schedulable allocation within budget, if any.
fn brute_force(system: &System, options: &AllocOptions) -> Option<f64> {
    let choices = all_placements(system, options).unwrap();
    let flat: Vec<(usize, usize)> =
        choices.iter().enumerate().flat_map(|(i, ls)| (0..ls.len()).map(move |j| (i, j))).collect();
    let mut digits = vec![0usize; flat.len()];
    let mut best: Option<f64> = None;
    loop {
        let mut tasks: Vec<Vec<_>> = choices.iter().map(|ls| Vec::with_capacity(ls.len())).collect();
        for (d, &(i, j)) in digits.iter().zip(&flat) {
            tasks[i].push(choices[i][j][*d]);
        }
        let alloc = Allocation { tasks };
        let cost = alloc.accuracy_cost(system);
        if cost <= options.accuracy_budget + 1e-12
            && analyze(&ExecutionPlan::new(system, &alloc).unwrap()).schedulable()
        {
            best = Some(best.map_or(cost, |b: f64| b.min(cost)));
        }
        let mut k = 0;
        loop {
            if k == digits.len() {
                return best;
            }
            digits[k] += 1;
            let (i, j) = flat[k];
            if digits[k] < choices[i][j].len() {
                break;
            }
            digits[k] = 0;
            k += 1;
        }
    }
}

/// Per layer: gpu, cpu-fp32 and cpu-int8 times, and the int8 cost in tenths of a point.
type LayerSpec = (u64, u64, u64, u32);

fn tiny_system(specs: &[(u64, Vec<LayerSpec>)]) -> System {
    let tasks = specs
        .iter()
        .enumerate()
        .map(|(i, (period, layers))| {
            let layers: Vec<LayerProfile> = layers
                .iter()
                .enumerate()
                .map(|(j, &(g, c, q, cost))| LayerProfile {
                    name: format!("l{j}"),
                    modes: [
                        Some(ModeTiming::from_wcet(g)),
                        Some(ModeTiming::from_wcet(c)),
                        Some(ModeTiming::from_wcet(q)),
                    ],
                    int8_accuracy_cost: cost as f64 / 10.0,
                    transitions: Transitions { copy_in: 1, quantize_in: 1, dequantize_in: 1 },
                })
                .collect();
            Task::new(format!("t{i}"), *period, Arc::new(chain_profile("m", &layers)))
        })
        .collect();
    System::new(Platform::default_cpu_gpu(), TaskSet::new(tasks, PriorityPolicy::RateMonotonic))
}

fn arb_tiny() -> impl Strategy<Value = System> {
    let layer = (1u64..20, 5u64..80, 2u64..40, 0u32..5);
    let task = (20u64..120, prop::collection::vec(layer, 1..4));
    prop::collection::vec(task, 1..3).prop_map(|specs| tiny_system(&specs))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn optimal_matches_brute_force_and_lalarand_is_sound(system in arb_tiny()) {
        let options = AllocOptions { accuracy_budget: 0.5, ..AllocOptions::default() };
        let truth = brute_force(&system, &options);
        let exact = Optimal.allocate(&system, &options).unwrap();
        prop_assert!(exact.complete);
        prop_assert_eq!(exact.schedulable(), truth.is_some());
        if let Some(best) = truth {
            prop_assert!((exact.allocation.accuracy_cost(&system) - best).abs() < 1e-9);
        }
        let heuristic = Lalarand.allocate(&system, &options).unwrap();
        heuristic.allocation.validate(&system).unwrap();
        prop_assert!(heuristic.allocation.accuracy_cost(&system) <= options.accuracy_budget + 1e-9);
        if heuristic.schedulable() {
            prop_assert!(truth.is_some());
        }
    }
}

#[test]
fn lalarand_schedules_the_demo_that_the_gpu_alone_cannot() {
    let system = demo_system();
    let options = AllocOptions::default();
    let gpu = Policy::GpuOnly.allocate(&system, &options).unwrap();
    assert!(!gpu.schedulable());
    let ours = Policy::Lalarand.allocate(&system, &options).unwrap();
    assert!(ours.schedulable(), "{:?}", ours.analysis);
    assert!(ours.allocation.accuracy_cost(&system) <= options.accuracy_budget);
    // Layer-level fp32 alone does not suffice here: quantization is what makes it schedulable.
    let fp32 = Policy::LalarandFp32.allocate(&system, &options).unwrap();
    assert_eq!(fp32.allocation.int8_layers(), 0);
    assert!(!fp32.schedulable());
    assert!(ours.allocation.int8_layers() > 0);
    assert!(!Policy::Dart.allocate(&system, &options).unwrap().schedulable());
}
