//! The demo's plots, as SVG: every policy's bound / deadline per task (`bounds.svg`), and a
//! run's observed response times next to the bounds and deadlines (`responses.svg`).
//!
//! Plain data in, so that any command can draw them; plotters' SVG backend, as the Gantt charts
//! (lalarand-sim) and the schedulability plot (lalarand-experiments).

use super::policies::PolicyRow;
use crate::files::write_atomic;
use anyhow::{anyhow, Result};
use lalarand_model::{time_to_ms, System};
use lalarand_runtime::TaskReport;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// bounds.svg and responses.svg in `out`; returns their paths.
pub(super) fn write_plots(
    out: &Path,
    system: &System,
    rows: &[PolicyRow],
    run: &[TaskReport],
    seconds: f64,
) -> Result<Vec<PathBuf>> {
    let tasks: Vec<String> = system.tasks.iter().map(|t| t.name.clone()).collect();
    let policies: Vec<PolicyBars> = rows
        .iter()
        .map(|r| PolicyBars {
            name: r.policy.name().to_string(),
            tasks: r.analysis.as_ref().map(|a| {
                a.tasks.iter().map(|t| TaskRatio { normalized: t.normalized(), proven: t.schedulable() }).collect()
            }),
        })
        .collect();
    let bounds = out.join("bounds.svg");
    write_bounds_svg(&bounds, &tasks, &policies)?;
    let observed: Vec<Observed> = run
        .iter()
        .map(|t| Observed {
            name: t.name.clone(),
            completed: t.completed,
            min_ms: time_to_ms(t.response_min),
            mean_ms: t.response_mean / 1e6,
            p99_ms: time_to_ms(t.response_p99),
            max_ms: time_to_ms(t.response_max),
            bound_ms: t.bound.map(time_to_ms),
            deadline_ms: time_to_ms(t.deadline),
        })
        .collect();
    let responses = out.join("responses.svg");
    write_responses_svg(
        &responses,
        &format!("Responses of the lalarand allocation over a {seconds} s run, next to the bounds"),
        &observed,
    )?;
    Ok(vec![bounds, responses])
}

/// One task's `bound / deadline` under one policy; where the analysis proved no bound,
/// `normalized` is its estimate (how far over).
pub struct TaskRatio {
    pub normalized: f64,
    pub proven: bool,
}

/// One policy's ratios, one per task; `None` when it produced no allocation.
pub struct PolicyBars {
    pub name: String,
    pub tasks: Option<Vec<TaskRatio>>,
}

/// One task of a run: observed responses, its bound (`None`: not proven) and deadline, ms.
pub struct Observed {
    pub name: String,
    pub completed: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub bound_ms: Option<f64>,
    pub deadline_ms: f64,
}

const WIDTH: u32 = 980;
const HEIGHT: u32 = 540;
/// The plot's share of the width; the legend gets the rest (inside the plot it hides bars).
const PLOT_WIDTH: u32 = 760;
/// Bars taller than this many deadlines are cut, and say their value.
const MAX_RATIO: f64 = 3.0;

/// A colour per task, in task order (cycled).
fn colour(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 6] = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0x17, 0xbe, 0xcf),
    ];
    PALETTE[i % PALETTE.len()]
}

/// Draws `draw` into an SVG string and writes it atomically to `path`.
fn write_svg(path: &Path, draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    write_atomic(path, &svg)
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a plot: {e}")
}

/// `bounds.svg`: per policy (x), one bar per task of its `bound / deadline`, a line at 1 (the
/// deadline); a hollow, crossed bar is a task the policy's allocation does not prove (its
/// height is the analysis' estimate).
pub fn write_bounds_svg(path: &Path, tasks: &[String], policies: &[PolicyBars]) -> Result<()> {
    let highest = policies.iter().filter_map(|p| p.tasks.as_ref()).flatten().map(|t| t.normalized).fold(1.0, f64::max);
    let top = (highest * 1.1).clamp(1.2, MAX_RATIO);
    write_svg(path, |root| {
        let (area, legend) = root.split_horizontally(PLOT_WIDTH);
        let mut chart = ChartBuilder::on(&area)
            .caption("Bound / deadline of every task, per policy (proven where the bar is solid)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..policies.len() as f64, 0.0..top)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("bound / deadline")
            .axis_desc_style(("sans-serif", 15))
            .label_style(("sans-serif", 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        let width = 0.8 / tasks.len().max(1) as f64;
        for (i, p) in policies.iter().enumerate() {
            let x0 = i as f64 + 0.1;
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(
                p.name.clone(),
                (px, py + 10),
                ("sans-serif", 14).into_font().color(&BLACK).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Top,
                )),
            ))
            .map_err(plot_error)?;
            let Some(ratios) = &p.tasks else {
                chart
                    .draw_series(std::iter::once(Text::new(
                        "no allocation",
                        (x0, top * 0.05),
                        ("sans-serif", 13).into_font(),
                    )))
                    .map_err(plot_error)?;
                continue;
            };
            for (k, t) in ratios.iter().enumerate() {
                let (a, b) = (x0 + k as f64 * width, x0 + (k as f64 + 0.9) * width);
                let h = t.normalized.min(top);
                let c = colour(k);
                let style = if t.proven { c.filled() } else { c.stroke_width(2) };
                chart.draw_series(std::iter::once(Rectangle::new([(a, 0.0), (b, h)], style))).map_err(plot_error)?;
                if !t.proven {
                    chart
                        .draw_series(std::iter::once(Cross::new(((a + b) / 2.0, h), 5, c.stroke_width(2))))
                        .map_err(plot_error)?;
                }
                if t.normalized > top {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            format!("{:.1}", t.normalized),
                            (a, top * 0.97),
                            ("sans-serif", 11).into_font(),
                        )))
                        .map_err(plot_error)?;
                }
            }
        }
        chart
            .draw_series(LineSeries::new([(0.0, 1.0), (policies.len() as f64, 1.0)], BLACK.stroke_width(2)))
            .map_err(plot_error)?;

        let mut y = 60;
        for (k, name) in tasks.iter().enumerate() {
            legend.draw(&Rectangle::new([(6, y - 6), (30, y + 6)], colour(k).filled())).map_err(plot_error)?;
            legend.draw(&Text::new(name.clone(), (38, y - 8), ("sans-serif", 15))).map_err(plot_error)?;
            y += 26;
        }
        y += 10;
        legend.draw(&PathElement::new(vec![(6, y), (30, y)], BLACK.stroke_width(2))).map_err(plot_error)?;
        legend.draw(&Text::new("deadline (1.0)", (38, y - 8), ("sans-serif", 15))).map_err(plot_error)?;
        y += 26;
        legend.draw(&Rectangle::new([(6, y - 6), (30, y + 6)], BLACK.stroke_width(2))).map_err(plot_error)?;
        legend.draw(&Cross::new((18, y - 6), 4, BLACK.stroke_width(2))).map_err(plot_error)?;
        legend.draw(&Text::new("unproven (estimate)", (38, y - 8), ("sans-serif", 15))).map_err(plot_error)?;
        Ok(())
    })
}

/// `responses.svg`: per task (x), the observed responses as a box from min to p99 with a
/// whisker to the max and a dot at the mean, next to the analytical bound and the deadline, ms
/// on a log scale.
pub fn write_responses_svg(path: &Path, title: &str, tasks: &[Observed]) -> Result<()> {
    // A log scale: a run's responses are often far below bounds that cover the worst case.
    let top =
        tasks.iter().map(|t| t.deadline_ms.max(t.max_ms).max(t.bound_ms.unwrap_or(0.0))).fold(1.0, f64::max) * 1.5;
    let bottom = tasks
        .iter()
        .filter(|t| t.completed > 0)
        .map(|t| t.min_ms)
        .chain(tasks.iter().map(|t| t.deadline_ms))
        .filter(|&v| v > 0.0)
        .fold(top, f64::min)
        / 2.0;
    write_svg(path, |root| {
        let (area, legend) = root.split_horizontally(PLOT_WIDTH);
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..tasks.len().max(1) as f64, (bottom..top).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| format!("{v}"))
            .y_desc("response time (ms, log scale)")
            .axis_desc_style(("sans-serif", 15))
            .label_style(("sans-serif", 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        let centre = plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Top,
        );
        for (i, t) in tasks.iter().enumerate() {
            let c = colour(i);
            let x = i as f64 + 0.5;
            let (px, py) = chart.backend_coord(&(x, bottom));
            let label = format!("{} ({} jobs)", t.name, t.completed);
            root.draw(&Text::new(label, (px, py + 10), ("sans-serif", 14).into_font().color(&BLACK).pos(centre)))
                .map_err(plot_error)?;
            let mark = |y: f64, style: ShapeStyle| PathElement::new(vec![(x - 0.3, y), (x + 0.3, y)], style);
            chart.draw_series(std::iter::once(mark(t.deadline_ms, BLACK.stroke_width(2)))).map_err(plot_error)?;
            match t.bound_ms {
                Some(b) => chart.draw_series(std::iter::once(mark(b, RED.stroke_width(2)))).map(|_| ()),
                None => chart
                    .draw_series(std::iter::once(Text::new("no bound", (x - 0.25, top / 1.2), ("sans-serif", 12))))
                    .map(|_| ()),
            }
            .map_err(plot_error)?;
            if t.completed == 0 {
                chart
                    .draw_series(std::iter::once(Text::new(
                        "no job completed",
                        (x - 0.25, bottom * 1.5),
                        ("sans-serif", 12),
                    )))
                    .map_err(plot_error)?;
                continue;
            }
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(x, t.p99_ms), (x, t.max_ms)], c.stroke_width(2))))
                .map_err(plot_error)?;
            chart
                .draw_series(std::iter::once(Rectangle::new([(x - 0.12, t.min_ms), (x + 0.12, t.p99_ms)], c.filled())))
                .map_err(plot_error)?;
            chart.draw_series(std::iter::once(Circle::new((x, t.mean_ms), 4, BLACK.filled()))).map_err(plot_error)?;
        }

        let mut y = 60;
        let c = colour(0);
        legend.draw(&Rectangle::new([(10, y - 8), (26, y + 8)], c.filled())).map_err(plot_error)?;
        legend.draw(&Text::new("observed min to p99", (38, y - 8), ("sans-serif", 15))).map_err(plot_error)?;
        y += 26;
        legend.draw(&PathElement::new(vec![(18, y - 8), (18, y + 8)], c.stroke_width(2))).map_err(plot_error)?;
        legend.draw(&Text::new("to the observed max", (38, y - 8), ("sans-serif", 15))).map_err(plot_error)?;
        y += 26;
        legend.draw(&Circle::new((18, y), 4, BLACK.filled())).map_err(plot_error)?;
        legend.draw(&Text::new("observed mean", (38, y - 8), ("sans-serif", 15))).map_err(plot_error)?;
        y += 26;
        legend.draw(&PathElement::new(vec![(6, y), (30, y)], RED.stroke_width(2))).map_err(plot_error)?;
        legend.draw(&Text::new("analytical bound", (38, y - 8), ("sans-serif", 15))).map_err(plot_error)?;
        y += 26;
        legend.draw(&PathElement::new(vec![(6, y), (30, y)], BLACK.stroke_width(2))).map_err(plot_error)?;
        legend.draw(&Text::new("deadline", (38, y - 8), ("sans-serif", 15))).map_err(plot_error)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Well-formed enough for a browser: one root element, every text element closed.
    fn check_svg(text: &str) {
        assert!(text.trim_start().starts_with("<svg"), "{text}");
        assert!(text.trim_end().ends_with("</svg>"));
        assert_eq!(text.matches("<text").count(), text.matches("</text>").count());
    }

    #[test]
    fn bounds_plot_names_every_policy_and_task_and_marks_unproven_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bounds.svg");
        let tasks = vec!["digits".to_string(), "detector".to_string()];
        let ratio = |normalized, proven| TaskRatio { normalized, proven };
        let policies = vec![
            PolicyBars { name: "gpu-only".into(), tasks: Some(vec![ratio(0.4, true), ratio(7.5, false)]) },
            PolicyBars { name: "lalarand".into(), tasks: Some(vec![ratio(0.3, true), ratio(0.9, true)]) },
            PolicyBars { name: "optimal".into(), tasks: None },
        ];
        write_bounds_svg(&path, &tasks, &policies).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        check_svg(&svg);
        for label in ["gpu-only", "lalarand", "optimal", "digits", "detector", "bound / deadline", "deadline (1.0)"] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert!(svg.contains("unproven") && svg.contains("7.5") && svg.contains("no allocation"));
    }

    #[test]
    fn responses_plot_shows_observed_bounds_and_deadlines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("responses.svg");
        let task = |name: &str, bound_ms| Observed {
            name: name.into(),
            completed: 10,
            min_ms: 1.0,
            mean_ms: 2.0,
            p99_ms: 3.0,
            max_ms: 4.0,
            bound_ms,
            deadline_ms: 10.0,
        };
        write_responses_svg(&path, "a 2 s run", &[task("digits", Some(6.0)), task("detector", None)]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        check_svg(&svg);
        for label in ["a 2 s run", "digits (10 jobs)", "detector", "analytical bound", "deadline", "no bound", "p99"] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert!(write_responses_svg(&dir.path().join("no/such/dir/r.svg"), "x", &[]).is_err());
    }
}
