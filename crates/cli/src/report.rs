//! The analysis of one allocation as a table for people and as JSON for programs.
//!
//! JSON times are integer nanoseconds (`*_ns`), the unit the analysis computes in, so nothing
//! is rounded; the table shows milliseconds.

use comfy_table::{presets, CellAlignment, Table};
use lalarand_model::{time_to_ms, Time};
use serde::Serialize;

pub use lalarand_analysis::report::{Report, TaskReport};

/// Per-task table, priority order, then a resource line and a verdict line.
pub fn render(report: &Report) -> String {
    let mut table = Table::new();
    table.load_preset(presets::ASCII_MARKDOWN).set_header(vec![
        "task",
        "prio",
        "period ms",
        "deadline ms",
        "bound ms",
        "job-level",
        "segment-level",
        "slack ms",
        "int8",
        "acc. pp",
        "verdict",
    ]);
    let mut order: Vec<&TaskReport> = report.tasks.iter().collect();
    order.sort_by_key(|t| t.priority);
    for t in order {
        table.add_row(vec![
            t.name.clone(),
            t.priority.to_string(),
            ms(t.period_ns),
            ms(t.deadline_ns),
            match (t.bound_ns, t.estimate_ns) {
                (Some(b), _) => ms(b),
                (None, Some(e)) => format!("none (est. {})", ms(e)),
                (None, None) => "none".into(),
            },
            opt_ms(t.job_level_ns),
            opt_ms(t.segment_level_ns),
            opt_ms(t.slack_ns),
            format!("{}/{}", t.int8_layers, t.layers),
            // ">=": some int8 layer's cost is not known and counts as 0.
            if t.int8_layers_unknown_cost > 0 {
                format!(">= {:.3}", t.accuracy_cost_pp)
            } else {
                format!("{:.3}", t.accuracy_cost_pp)
            },
            if t.schedulable { "schedulable" } else { "NOT PROVEN" }.into(),
        ]);
    }
    for i in 1..=9 {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let util: Vec<String> =
        report.resources.iter().map(|r| format!("{} ({}) {:.1}%", r.name, r.kind, r.utilization * 100.0)).collect();
    let proven = report.tasks.iter().filter(|t| t.schedulable).count();
    let unknown = match report.int8_layers_unknown_cost {
            0 => String::new(),
            k => format!(
                " ({k} of them not measured, counted as 0: the cost is at least this; profile with --dataset to measure it)"
            ),
        };
    format!(
            "{table}\nutilization: {}\naccuracy cost: {:.3} pp over {} int8 layers{unknown}\n{}: {proven}/{} tasks proven to meet their deadlines\n",
            util.join(", "),
            report.accuracy_cost_pp,
            report.int8_layers,
            if report.schedulable { "SCHEDULABLE" } else { "NOT SCHEDULABLE" },
            report.tasks.len(),
        )
}

pub fn ms(t: Time) -> String {
    format!("{:.3}", time_to_ms(t))
}

fn opt_ms(t: Option<Time>) -> String {
    t.map_or_else(|| "-".into(), ms)
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}
