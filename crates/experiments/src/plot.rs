//! The schedulability plot: ratio vs total utilization, one line per policy.

use crate::error::ExperimentError;
use crate::output::create_parent;
use crate::result::SweepResult;
use lalarand_alloc::Policy;
use plotters::prelude::*;
use std::path::Path;

/// A fixed colour per policy, so plots of different sweeps read alike.
fn colour(policy: Policy) -> RGBColor {
    match policy {
        Policy::GpuOnly => RGBColor(0x55, 0x55, 0x55),
        Policy::CpuOnly => RGBColor(0x8c, 0x56, 0x4b),
        Policy::Preferable => RGBColor(0xbc, 0xbd, 0x22),
        Policy::TaskLevel => RGBColor(0x94, 0x67, 0xbd),
        Policy::DartUtil => RGBColor(0x17, 0xbe, 0xcf),
        Policy::Dart => RGBColor(0x1f, 0x77, 0xb4),
        Policy::LalarandFp32 => RGBColor(0x2c, 0xa0, 0x2c),
        Policy::LalarandOwn => RGBColor(0xe3, 0x77, 0xc2),
        Policy::Lalarand => RGBColor(0xd6, 0x27, 0x28),
        Policy::Optimal => RGBColor(0xff, 0x7f, 0x0e),
    }
}

/// A marker shape per policy (circle, triangle, cross, square), so overlapping lines and
/// grey-scale prints stay apart.
fn shape(policy: Policy) -> usize {
    policy as usize % 4
}

impl SweepResult {
    /// Draws the plot as SVG (optimal's line is over the sets where it finished).
    pub fn write_svg(&self, path: &Path) -> Result<(), ExperimentError> {
        create_parent(path)?;
        self.draw(path).map_err(|e| ExperimentError::Plot { path: path.to_path_buf(), message: e.to_string() })?;
        // plotters reports a failed write only when the backend is dropped, and then only by
        // logging; check that the file is really there.
        std::fs::metadata(path).map(|_| ()).map_err(|e| ExperimentError::write(path, e))
    }

    fn draw(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let xs: Vec<f64> = self.points.iter().map(|p| p.utilization).collect();
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // A one-point sweep still needs a non-empty x range.
        let (lo, hi) = if xs.is_empty() {
            (0.0, 1.0)
        } else if lo == hi {
            (lo - 0.05, hi + 0.05)
        } else {
            (lo, hi)
        };
        let root = SVGBackend::new(path, (920, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        // The legend gets its own column: inside the plot it would hide some line.
        let (plot, legend) = root.split_horizontally(720);
        let s = &self.settings;
        let caption = format!(
            "{} tasks per set, {} sets per point, accuracy budget {} pp",
            s.tasks, s.sets_per_point, s.accuracy_budget
        );
        let mut chart = ChartBuilder::on(&plot)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0.0..1.02)?;
        chart
            .configure_mesh()
            .x_desc(format!("Total utilization ({})", s.utilization_axis))
            .y_desc("Schedulable task sets (ratio)")
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, &policy) in self.policies().iter().enumerate() {
            let line: Vec<(f64, f64)> =
                self.points.iter().filter_map(|pt| Some((pt.utilization, pt.ratio(policy)?))).collect();
            let c = colour(policy);
            chart.draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))?;
            let y = 60 + 26 * i as i32;
            legend.draw(&PathElement::new(vec![(4, y), (32, y)], c.stroke_width(2)))?;
            let label = if policy == Policy::Optimal { "optimal (where finished)" } else { policy.name() };
            legend.draw(&Text::new(label, (40, y - 8), ("sans-serif", 15)))?;
            // Each shape is its own element type, hence one arm per shape.
            let style = c.filled();
            let at = (18, y);
            match shape(policy) {
                0 => {
                    legend.draw(&Circle::new(at, 4, style))?;
                    chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, style)))?;
                }
                1 => {
                    legend.draw(&TriangleMarker::new(at, 5, style))?;
                    chart.draw_series(line.iter().map(|&p| TriangleMarker::new(p, 5, style)))?;
                }
                2 => {
                    legend.draw(&Cross::new(at, 4, c.stroke_width(2)))?;
                    chart.draw_series(line.iter().map(|&p| Cross::new(p, 4, c.stroke_width(2))))?;
                }
                _ => {
                    let square = [(-3, -3), (3, 3)];
                    legend.draw(&(EmptyElement::at(at) + Rectangle::new(square, style)))?;
                    chart.draw_series(line.iter().map(|&p| EmptyElement::at(p) + Rectangle::new(square, style)))?;
                }
            }
        }
        root.present()?;
        Ok(())
    }
}
