//! Gantt chart of a schedule as SVG: one row per resource (layers colored by task), then one
//! marker row per task (releases, deadlines, each job's release-to-finish span; misses in red).
//! It draws the shared records ([`lalarand_model::record`]), so a simulated schedule and a
//! run of the runtime (drawn by the CLI) are charted alike.

use crate::record::SimResult;
use crate::SimError;
use lalarand_model::{time_to_ms, ExecutionPlan, JobRecord, StageSlot, System, Time};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Most layer slots drawn by the default window; beyond that the window is shortened.
pub const DEFAULT_MAX_SLOTS: usize = 3_000;

const WIDTH: u32 = 1_400;
const ROW_PX: u32 = 34;
const MISS: RGBColor = RGBColor(220, 0, 0);

/// Names for the chart's rows and legend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GanttLabels {
    pub resources: Vec<String>,
    pub tasks: Vec<String>,
}

impl GanttLabels {
    pub fn from_system(system: &System) -> Self {
        Self {
            resources: system.platform.resources.iter().map(|r| format!("{} ({})", r.name, r.kind)).collect(),
            tasks: system.tasks.iter().map(|t| t.name.clone()).collect(),
        }
    }

    /// `r0, r1, ...` and `task 0, task 1, ...`.
    pub fn numbered(plan: &ExecutionPlan) -> Self {
        Self {
            resources: (0..plan.resources).map(|r| format!("r{r}")).collect(),
            tasks: (0..plan.tasks.len()).map(|i| format!("task {i}")).collect(),
        }
    }
}

/// What a chart draws: a schedule's stage executions and jobs, simulated or run.
#[derive(Debug, Clone, Copy)]
pub struct Schedule<'a> {
    /// The schedule covers `[0, end]`.
    pub end: Time,
    /// The plan's hyperperiod, if it fits a `Time` (the default window).
    pub hyperperiod: Option<Time>,
    /// Tasks of the plan.
    pub tasks: usize,
    /// Per resource, stage executions in start order.
    pub resources: &'a [Vec<StageSlot>],
    pub jobs: &'a [JobRecord],
}

impl<'a> Schedule<'a> {
    /// A simulation's schedule, if it kept a trace.
    pub fn of(result: &'a SimResult) -> Option<Self> {
        let trace = result.trace.as_ref()?;
        Some(Self {
            end: result.end,
            hyperperiod: result.hyperperiod,
            tasks: result.tasks.len(),
            resources: &trace.resources,
            jobs: &result.jobs,
        })
    }
}

/// The default window: the first hyperperiod or the whole schedule, whichever is shorter, cut
/// so that at most [`DEFAULT_MAX_SLOTS`] slots start in it.
pub fn default_window(schedule: &Schedule) -> (Time, Time) {
    let mut end = schedule.hyperperiod.map_or(schedule.end, |h| h.min(schedule.end));
    let mut starts: Vec<Time> = schedule.resources.iter().flatten().map(|s| s.start).filter(|&s| s < end).collect();
    if starts.len() > DEFAULT_MAX_SLOTS {
        starts.select_nth_unstable(DEFAULT_MAX_SLOTS);
        end = starts[DEFAULT_MAX_SLOTS];
    }
    (0, end.max(1))
}

fn task_color(i: usize) -> RGBColor {
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// Writes the chart of simulation `result` (which must have a trace) over `window` (`[start,
/// end)`, default [`default_window`]) to `path`.
pub fn write_gantt(
    result: &SimResult,
    labels: &GanttLabels,
    path: &Path,
    window: Option<(Time, Time)>,
) -> Result<(), SimError> {
    let schedule =
        Schedule::of(result).ok_or_else(|| SimError::Gantt("the run kept no trace (record_trace)".into()))?;
    write_schedule_gantt(&schedule, labels, path, window)
}

/// Writes the chart of `schedule` over `window` (`[start, end)`, default [`default_window`])
/// to `path`.
pub fn write_schedule_gantt(
    schedule: &Schedule,
    labels: &GanttLabels,
    path: &Path,
    window: Option<(Time, Time)>,
) -> Result<(), SimError> {
    if labels.resources.len() != schedule.resources.len() || labels.tasks.len() != schedule.tasks {
        return Err(SimError::Gantt(format!(
            "labels name {} resources and {} tasks, the schedule has {} and {}",
            labels.resources.len(),
            labels.tasks.len(),
            schedule.resources.len(),
            schedule.tasks
        )));
    }
    let (start, end) = window.unwrap_or_else(|| default_window(schedule));
    if start >= end {
        return Err(SimError::Gantt(format!("empty window [{start}, {end})")));
    }
    let rows = labels.resources.len() + labels.tasks.len();
    // Legend: task swatches plus "deadline miss", six per line, then one line of conventions.
    let legend_px = 26 * ((labels.tasks.len() + 1).div_ceil(6) as u32 + 1) + 12;
    let height = 110 + ROW_PX * rows as u32 + legend_px;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        draw(&root, schedule, labels, (start, end), height - legend_px).map_err(|e| SimError::Gantt(e.to_string()))?;
        root.present().map_err(|e| SimError::Gantt(e.to_string()))?;
    }
    std::fs::write(path, svg).map_err(|error| SimError::Write { path: path.to_path_buf(), error })
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw(
    root: &DrawingArea<SVGBackend, Shift>,
    schedule: &Schedule,
    labels: &GanttLabels,
    (start, end): (Time, Time),
    chart_height: u32,
) -> DrawResult {
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(chart_height);
    let m = labels.resources.len();
    let rows = m + labels.tasks.len();
    let (x0, x1) = (time_to_ms(start), time_to_ms(end));
    let mut chart = ChartBuilder::on(&top)
        .caption(format!("schedule, {x0:.3} to {x1:.3} ms"), ("sans-serif", 20))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(40)
        .y_label_area_size(170)
        .build_cartesian_2d(x0..x1, 0.0..rows as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(14)
        .x_desc("time (ms)")
        .x_label_formatter(&|x| format!("{x:.2}"))
        .draw()?;

    // Row `r` (0 at the top) spans y in [rows - r - 1, rows - r).
    let row_y = |r: usize| (rows - r - 1) as f64;
    let clip = |t: Time| time_to_ms(t.clamp(start, end));
    for (r, name) in labels.resources.iter().chain(&labels.tasks).enumerate() {
        let (px, py) = chart.backend_coord(&(x0, row_y(r) + 0.5));
        let style = ("sans-serif", 14).into_font().into_text_style(root).pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(name.clone(), (px - 8, py), style))?;
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(x0, row_y(m - 1)), (x1, row_y(m - 1))],
        BLACK.mix(0.4).stroke_width(1),
    )))?;

    let missed: std::collections::HashSet<(usize, u64)> =
        schedule.jobs.iter().filter(|j| j.missed(schedule.end)).map(|j| (j.task, j.job)).collect();
    for (r, slots) in schedule.resources.iter().enumerate() {
        let y = row_y(r);
        let visible = slots.iter().filter(|s| s.end > start && s.start < end);
        for s in visible {
            let rect = [(clip(s.start), y + 0.15), (clip(s.end), y + 0.85)];
            let (l, _) = chart.backend_coord(&(clip(s.start), y));
            let (rpx, py) = chart.backend_coord(&(clip(s.end), y + 0.5));
            chart.draw_series([Rectangle::new(rect, task_color(s.task).filled())])?;
            // Outlines only where they leave room for the color.
            if rpx - l >= 4 {
                chart.draw_series([Rectangle::new(rect, BLACK.mix(0.5).stroke_width(1))])?;
            }
            if missed.contains(&(s.task, s.job)) {
                let rect = [(clip(s.start), y + 0.05), (clip(s.end), y + 0.15)];
                chart.draw_series([Rectangle::new(rect, MISS.filled())])?;
            }
            if rpx - l >= 22 {
                let style =
                    ("sans-serif", 11).into_font().into_text_style(root).pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new(format!("L{}", s.stage), ((l + rpx) / 2, py), style))?;
            }
        }
    }

    // Task rows: the job's span from release to finish (or the end of the run), the release
    // as a triangle, the deadline as a tick; a miss turns the tick and the span red.
    for job in schedule.jobs.iter().filter(|j| j.release < end && j.finish.unwrap_or(schedule.end) >= start) {
        let y = row_y(m + job.task);
        let color = task_color(job.task);
        let span_end = job.finish.unwrap_or(schedule.end);
        let missed = job.missed(schedule.end);
        let span_style = if missed { MISS.mix(0.35).filled() } else { color.mix(0.35).filled() };
        chart.draw_series([Rectangle::new([(clip(job.release), y + 0.4), (clip(span_end), y + 0.6)], span_style)])?;
        if job.release >= start {
            chart.draw_series([TriangleMarker::new((time_to_ms(job.release), y + 0.3), 6, color.filled())])?;
        }
        if (start..end).contains(&job.deadline) {
            let d = time_to_ms(job.deadline);
            let style = if missed { MISS.stroke_width(4) } else { BLACK.stroke_width(2) };
            chart.draw_series([PathElement::new(vec![(d, y + 0.1), (d, y + 0.9)], style)])?;
            if missed {
                chart.draw_series([Cross::new((d, y + 0.5), 7, MISS.stroke_width(3))])?;
            }
        }
    }

    // Legend: task colors, then the marker conventions.
    let mut items: Vec<(String, RGBColor)> =
        labels.tasks.iter().enumerate().map(|(i, name)| (name.clone(), task_color(i))).collect();
    items.push(("deadline miss".into(), MISS));
    let font = ("sans-serif", 14).into_font();
    for (k, (name, color)) in items.iter().enumerate() {
        let (col, row) = ((k % 6) as i32, (k / 6) as i32);
        let (x, y) = (180 + col * 200, bottom.get_base_pixel().1 + 8 + row * 26);
        root.draw(&Rectangle::new([(x, y), (x + 16, y + 16)], color.filled()))?;
        root.draw(&Text::new(name.clone(), (x + 22, y + 2), font.clone()))?;
    }
    let note = "▲ release   | deadline   ✕ missed deadline   thin bar: release to finish";
    let y = bottom.get_base_pixel().1 + 8 + ((items.len().div_ceil(6)) as i32) * 26;
    root.draw(&Text::new(note, (180, y), font))?;
    Ok(())
}
