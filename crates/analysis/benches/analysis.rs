//! Target (issue 2): analysis of a 10-task set of 30-layer DNNs in under 50 microseconds.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use lalarand_analysis::analyze;
use lalarand_model::{ExecutionPlan, Mode, PlannedLayer, PlannedTask};

/// 10 tasks x 30 layers on gpu (0) and cpu (1), layers placed in runs so that each task visits
/// both resources several times; periods leave the set schedulable so every fixed point runs
/// to convergence (the expensive case).
fn ten_by_thirty() -> ExecutionPlan {
    let tasks = (0..10u32)
        .map(|i| {
            let layers = (0..30u64)
                .map(|j| {
                    let resource = ((j / (3 + i as u64 % 4)) % 2) as usize;
                    let wcet = 20_000 + ((j * 7919 + i as u64 * 104_729) % 50) * 1_000;
                    PlannedLayer {
                        resource,
                        mode: if resource == 0 { Mode::Gpu } else { Mode::CpuInt8 },
                        wcet,
                        wakeup: 0,
                    }
                })
                .collect();
            let period = 20_000_000 * (i as u64 + 2);
            PlannedTask { period, deadline: period, offset: 0, priority: i, layers }
        })
        .collect();
    ExecutionPlan { resources: 2, tasks }
}

fn bench(c: &mut Criterion) {
    let plan = ten_by_thirty();
    assert!(analyze(&plan).schedulable(), "benchmark set must exercise converging fixed points");
    c.bench_function("analyze 10 tasks x 30 layers", |b| b.iter(|| analyze(black_box(&plan))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
