//! Every policy's allocation of the demo's system, and the table that compares them.

use anyhow::{Context, Result};
use comfy_table::{presets, CellAlignment, Table};
use indicatif::{ProgressBar, ProgressStyle};
use lalarand_alloc::{AllocOptions, Outcome, Policy};
use lalarand_analysis::Analysis;
use lalarand_model::System;
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Serialize)]
pub(super) struct PolicyRow {
    pub policy: Policy,
    /// Set when the policy could not produce an allocation at all.
    error: Option<String>,
    schedulable: bool,
    tasks_proven: usize,
    /// Largest bound / deadline (estimates for unproven tasks).
    max_normalized_response: Option<f64>,
    accuracy_cost_pp: Option<f64>,
    int8_layers: Option<usize>,
    /// Of those, the layers whose accuracy cost is not known (counted as 0 in the cost).
    int8_layers_unknown_cost: Option<usize>,
    evaluations: u64,
    complete: bool,
    seconds: f64,
    /// The allocation's analysis, for the plots.
    #[serde(skip)]
    pub analysis: Option<Analysis>,
}

/// Allocates `system` with every policy, with a progress bar: one row per policy, and the
/// `lalarand` outcome.
pub(super) fn allocate_all(system: &System, options: &AllocOptions) -> Result<(Vec<PolicyRow>, Outcome)> {
    let bar = ProgressBar::new(Policy::ALL.len() as u64)
        .with_style(ProgressStyle::with_template("{spinner} allocating [{bar:20}] {pos}/{len} {msg}")?);
    bar.enable_steady_tick(Duration::from_millis(100));
    let mut rows = Vec::new();
    let mut lalarand: Option<Outcome> = None;
    for policy in Policy::ALL {
        bar.set_message(policy.name());
        let start = Instant::now();
        let result = policy.allocate(system, options);
        let seconds = start.elapsed().as_secs_f64();
        tracing::info!(%policy, seconds, "allocated");
        rows.push(match &result {
            Ok(o) => PolicyRow {
                policy,
                error: None,
                schedulable: o.schedulable(),
                tasks_proven: o.analysis.tasks.len() - o.analysis.unschedulable_count(),
                max_normalized_response: Some(o.analysis.max_normalized()),
                accuracy_cost_pp: Some(o.allocation.accuracy_cost(system) + 0.0),
                int8_layers: Some(o.allocation.int8_layers()),
                int8_layers_unknown_cost: Some(o.allocation.unknown_accuracy_layers(system)),
                evaluations: o.evaluations,
                complete: o.complete,
                seconds,
                analysis: Some(o.analysis.clone()),
            },
            Err(e) => PolicyRow {
                policy,
                error: Some(e.to_string()),
                schedulable: false,
                tasks_proven: 0,
                max_normalized_response: None,
                accuracy_cost_pp: None,
                int8_layers: None,
                int8_layers_unknown_cost: None,
                evaluations: 0,
                complete: true,
                seconds,
                analysis: None,
            },
        });
        if policy == Policy::Lalarand {
            lalarand = Some(result.context("policy lalarand")?);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    Ok((rows, lalarand.expect("Policy::ALL lists lalarand")))
}

pub(super) fn policy_table(rows: &[PolicyRow], tasks: usize) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::ASCII_MARKDOWN).set_header(vec![
        "policy",
        "schedulable",
        "tasks proven",
        "max bound/D",
        "acc. cost pp",
        "int8 layers",
        "analyses",
        "time s",
    ]);
    for r in rows {
        let verdict = match (&r.error, r.schedulable) {
            (Some(e), _) => format!("error: {e}"),
            (None, true) => "yes".into(),
            (None, false) if !r.complete => "no (search stopped at its node limit)".into(),
            (None, false) => "no".into(),
        };
        table.add_row(vec![
            r.policy.to_string(),
            verdict,
            format!("{}/{tasks}", r.tasks_proven),
            r.max_normalized_response.map_or("-".into(), |v| format!("{v:.3}")),
            // ">=": some int8 layer's cost is not known and counts as 0 (as `analyze`).
            match (r.accuracy_cost_pp, r.int8_layers_unknown_cost) {
                (Some(v), Some(u)) if u > 0 => format!(">= {v:.3}"),
                (Some(v), _) => format!("{v:.3}"),
                (None, _) => "-".into(),
            },
            match (r.int8_layers, r.int8_layers_unknown_cost) {
                (Some(n), Some(u)) if u > 0 => format!("{n} ({u} unknown cost)"),
                (Some(n), _) => n.to_string(),
                (None, _) => "-".into(),
            },
            r.evaluations.to_string(),
            format!("{:.3}", r.seconds),
        ]);
    }
    for i in 2..=7 {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// Which tasks' int8 accuracy costs are measured, for the policy table's header.
pub(super) fn accuracy_note(system: &System) -> String {
    let (mut measured, mut unknown) = (Vec::new(), Vec::new());
    for t in &system.tasks {
        let list = if t.dnn.int8_accuracy_unknown.is_empty() { &mut measured } else { &mut unknown };
        list.push(format!("{} ({})", t.name, t.dnn.model));
    }
    let mut note = String::from("int8 accuracy costs");
    if !measured.is_empty() {
        note += &format!(" measured for {}", measured.join(", "));
    }
    if !unknown.is_empty() {
        note += &format!(
            "{}not measured for {} (random weights): an unknown cost is not a free one, so their layers are not offered int8 (`lalarand allocate --assume-int8-cost PP` would budget them)",
            if measured.is_empty() { " " } else { "; " },
            unknown.join(", ")
        );
    }
    note
}
