//! What a run writes: the JSON report, the Chrome/Perfetto trace and the Gantt chart.

mod common;
use common::{serial, system, untimed, Spec, MS};
use lalarand_runtime::{BusyTime, RunHorizon, Runtime};
use lalarand_sim::{write_schedule_gantt, GanttLabels, Schedule};

#[test]
fn report_trace_and_gantt_describe_every_stage() {
    let _turn = serial();
    let (sys, alloc) = system(
        2,
        0,
        &[
            Spec { name: "cam", period: 10 * MS, offset: 0, stages: &[(0, MS), (1, MS)] },
            Spec { name: "lidar", period: 20 * MS, offset: 2 * MS, stages: &[(1, 2 * MS)] },
        ],
    );
    let rt = Runtime::new(&sys, &alloc, untimed(RunHorizon::Jobs(4))).unwrap();
    let out = rt.run(&rt.busy_wait(BusyTime::Wcet)).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let report: serde_json::Value = serde_json::to_value(&out.report).unwrap();
    assert_eq!(report["tasks"][1]["name"], "lidar");
    assert_eq!(report["tasks"][0]["released"], 4);
    assert!(report["tasks"][0]["bound"].as_u64().is_some());
    assert!(report["dispatch_latency"]["p99"].is_u64());

    let trace_path = dir.path().join("trace.json");
    out.write_chrome_trace(&rt, &trace_path).unwrap();
    let trace: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace_path).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let stages: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(stages.len(), 4 * 2 + 4);
    let lidar: Vec<_> = stages.iter().filter(|e| e["args"]["task"] == "lidar").collect();
    assert_eq!(lidar.len(), 4);
    assert!(lidar.iter().all(|e| e["tid"] == 1 && e["args"]["stage"] == 0 && e["dur"].as_f64().unwrap() >= 2_000.0));
    // Every stage lasts at least what it spins, the first job's too: nothing is released
    // before time 0 (the first job used to run in the lead-in, traced as 0-length at 0).
    assert!(stages.iter().all(|e| e["dur"].as_f64().unwrap() >= 1_000.0), "{stages:?}");
    let tracks: Vec<_> = events.iter().filter(|e| e["ph"] == "M").map(|e| e["args"]["name"].clone()).collect();
    assert_eq!(tracks, vec!["r0 (cpu)", "r1 (cpu)"]);

    // The chart is drawn from the same records as a simulation's (by the CLI, here directly).
    let svg = dir.path().join("gantt.svg");
    let schedule = Schedule {
        end: out.report.end,
        hyperperiod: rt.plan().hyperperiod(),
        tasks: 2,
        resources: &out.trace.resources,
        jobs: &out.trace.jobs,
    };
    let labels = GanttLabels::from_system(&sys);
    write_schedule_gantt(&schedule, &labels, &svg, None).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("lidar"));
    let empty = write_schedule_gantt(&schedule, &labels, &svg, Some((5 * MS, 5 * MS)));
    assert!(empty.is_err(), "an empty window is an error");
}
