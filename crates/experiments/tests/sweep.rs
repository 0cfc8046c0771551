//! End-to-end sweeps and the arithmetic of results and summaries.

use lalarand_alloc::{AllocOptions, Policy};
use lalarand_experiments::*;
use lalarand_model::{Platform, Resource, ResourceKind};

fn tiny() -> SweepConfig {
    SweepConfig {
        tasks: 3,
        sets_per_point: 6,
        utilizations: vec![0.3, 1.2],
        policies: vec![Policy::GpuOnly, Policy::CpuOnly, Policy::Dart, Policy::Lalarand],
        ..SweepConfig::default()
    }
}

#[test]
fn tiny_sweep_runs_end_to_end_and_writes_reports() {
    let cfg =
        SweepConfig { optimal: true, options: AllocOptions { node_limit: 2_000, ..Default::default() }, ..tiny() };
    let result = run_schedulability(&cfg, false).unwrap();
    assert_eq!(result.points.len(), 2);
    assert_eq!(result.policies(), &[Policy::GpuOnly, Policy::CpuOnly, Policy::Dart, Policy::Lalarand, Policy::Optimal]);
    for pt in &result.points {
        assert_eq!(pt.sets, 6);
        let finished = pt.optimal_finished.unwrap();
        for p in &pt.policies {
            assert!(p.schedulable <= pt.sets && p.errors == 0, "{p:?}");
            assert!(p.schedulable_where_optimal_finished.unwrap() <= finished.min(p.schedulable));
        }
    }
    // All-GPU load 0.3 with 3 tasks fits under rate-monotonic scheduling more often than 1.2,
    // which overloads the GPU: gpu-only can schedule nothing there.
    let gpu = |i: usize| result.points[i].policy(Policy::GpuOnly).unwrap().schedulable;
    assert!(gpu(0) > 0 && gpu(1) == 0, "{} {}", gpu(0), gpu(1));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/out");
    let paths = result.write_all(&out).unwrap();
    let csv = std::fs::read_to_string(&paths[0]).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 2 * 5);
    assert!(lines[0].starts_with("utilization,policy,sets,schedulable,ratio,"));
    assert!(lines[1].starts_with("0.3,gpu-only,6,"), "{}", lines[1]);
    assert!(lines.iter().all(|l| l.split(',').count() == 12), "{csv}");
    let svg = std::fs::read_to_string(&paths[1]).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("lalarand") && svg.contains("Total utilization"));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&paths[2]).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 10);
    assert_eq!(json["settings"]["tasks"], 3);
    assert!(json["summary"]["lalarand_vs_dart"].is_object());
    let text = std::fs::read_to_string(&paths[3]).unwrap();
    assert!(text.contains("paper: +56.0%") && text.contains("paper: +80.0%") && text.contains("optimal finished"));
}

#[test]
fn same_config_same_counts_whatever_the_order_of_points() {
    let a = run_schedulability(&tiny(), false).unwrap();
    let b = run_schedulability(&SweepConfig { utilizations: vec![1.2, 0.3], ..tiny() }, false).unwrap();
    assert_eq!(
        a.points[0].policies.iter().map(|p| p.schedulable).collect::<Vec<_>>(),
        b.points[1].policies.iter().map(|p| p.schedulable).collect::<Vec<_>>()
    );
    assert!(a.points.iter().all(|p| p.optimal_finished.is_none()));
}

#[test]
fn allocator_errors_are_counted_not_fatal() {
    let platform = Platform { resources: vec![Resource::new("gpu", ResourceKind::Gpu)] };
    let cfg = SweepConfig { platform, sets_per_point: 2, utilizations: vec![0.5], ..tiny() };
    let r = run_schedulability(&cfg, false).unwrap();
    let cpu = r.points[0].policy(Policy::CpuOnly).unwrap();
    assert_eq!((cpu.errors, cpu.schedulable), (2, 0));
    assert!(cpu.first_error.as_deref().unwrap().contains("no cpu resource"), "{cpu:?}");
}

#[test]
fn unwritable_paths_are_named() {
    let r = run_schedulability(&SweepConfig { sets_per_point: 1, utilizations: vec![0.5], ..tiny() }, false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    // A directory below a plain file can never be created.
    let e = r.write_all(&file.join("out")).unwrap_err();
    assert!(e.to_string().contains(&file.join("out").display().to_string()), "{e}");
    assert!(std::error::Error::source(&e).is_none(), "the I/O error is printed once, in the message: {e}");
    assert!(r.write_svg(&file.join("x.svg")).is_err());
    let e = run_schedulability(&SweepConfig { utilizations: vec![3.0], ..tiny() }, false).unwrap_err();
    assert!(e.to_string().starts_with("utilizations:"), "{e}");
}

fn point(u: f64, sets: u64, finished: Option<u64>, counts: &[(Policy, u64, Option<u64>, f64)]) -> PointResult {
    PointResult {
        utilization: u,
        sets,
        optimal_finished: finished,
        policies: counts
            .iter()
            .map(|&(policy, schedulable, on_finished, cost)| PolicyPoint {
                policy,
                schedulable,
                errors: 0,
                first_error: None,
                incomplete: 0,
                schedulable_where_optimal_finished: on_finished,
                accuracy_cost_sum: cost,
                alloc_seconds: 0.0,
            })
            .collect(),
    }
}

fn hand_made() -> SweepResult {
    use Policy::*;
    let settings = run_schedulability(&SweepConfig { sets_per_point: 1, utilizations: vec![0.5], ..tiny() }, false)
        .unwrap()
        .settings;
    let settings = SweepSettings { policies: vec![GpuOnly, Dart, Lalarand, Optimal], sets_per_point: 10, ..settings };
    SweepResult {
        settings,
        points: vec![
            point(
                0.5,
                10,
                Some(8),
                &[
                    (GpuOnly, 6, Some(5), 0.0),
                    (Dart, 8, Some(7), 0.0),
                    (Lalarand, 10, Some(8), 1.5),
                    (Optimal, 8, Some(8), 0.0),
                ],
            ),
            point(
                1.5,
                10,
                Some(4),
                &[
                    (GpuOnly, 0, Some(0), 0.0),
                    (Dart, 2, Some(1), 0.0),
                    (Lalarand, 4, Some(3), 0.0),
                    (Optimal, 4, Some(4), 0.0),
                ],
            ),
        ],
        wall_seconds: 0.0,
    }
}

#[test]
fn ratios_and_headline_are_computed_right() {
    let r = hand_made();
    let p = &r.points[0];
    assert_eq!(p.ratio(Policy::Dart), Some(0.8));
    assert_eq!(p.ratio(Policy::Optimal), Some(1.0)); // 8 of the 8 finished, not of 10
    assert_eq!(p.ratio_where_optimal_finished(Policy::GpuOnly), Some(5.0 / 8.0));
    assert_eq!(p.mean_accuracy_cost(Policy::Lalarand), Some(0.15));
    assert_eq!(r.points[1].mean_accuracy_cost(Policy::GpuOnly), None);
    assert_eq!(p.ratio(Policy::CpuOnly), None);

    let s = r.summary();
    let total = |pol: Policy| s.totals.iter().find(|t| t.policy == pol).unwrap().clone();
    assert_eq!((total(Policy::Lalarand).schedulable, total(Policy::Lalarand).sets), (14, 20));
    assert_eq!((total(Policy::Optimal).schedulable, total(Policy::Optimal).sets), (12, 12));
    let d = s.lalarand_vs_dart.unwrap();
    assert_eq!((d.ours, d.theirs), (14, 10));
    assert!((d.more_percent.unwrap() - 40.0).abs() < 1e-9 && (d.ratio.unwrap() - 1.4).abs() < 1e-12);
    let g = s.lalarand_vs_gpu_only.unwrap();
    assert!((g.more_percent.unwrap() - 100.0 * (14.0 / 6.0 - 1.0)).abs() < 1e-9);
    let o = s.lalarand_vs_optimal.unwrap();
    assert_eq!((o.ours, o.theirs), (11, 12));
    assert_eq!(s.optimal_finished, Some((12, 20)));
    let text = s.to_string();
    assert!(text.contains("14 vs 10 sets: +40.0% more (1.40x); largest gap at U = "), "{text}");
    assert!(text.contains("; paper: +56.0%"), "{text}");
    assert!(text.contains("91.7% of optimal, over the 12 of 20 sets"), "{text}");

    let csv = r.to_csv();
    assert!(csv.lines().any(|l| l.starts_with("0.5,optimal,10,8,1,0,0,8,8,1,")), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("1.5,gpu-only,10,0,0,0,0,4,0,0,,")), "{csv}");
}

#[test]
fn headline_is_absent_without_a_baseline_count() {
    let mut r = hand_made();
    for pt in &mut r.points {
        pt.policies.retain(|p| p.policy != Policy::Optimal);
        pt.optimal_finished = None;
        for p in &mut pt.policies {
            p.schedulable_where_optimal_finished = None;
            if p.policy == Policy::GpuOnly {
                p.schedulable = 0;
            }
        }
    }
    r.settings.policies.retain(|&p| p != Policy::Optimal);
    let s = r.summary();
    assert_eq!(s.lalarand_vs_gpu_only.unwrap().more_percent, None);
    assert!(s.lalarand_vs_optimal.is_none() && s.optimal_finished.is_none());
    assert!(s.to_string().contains("lalarand vs gpu-only  : 14 vs 0 sets: n/a more (n/a)"), "{s}");
}
