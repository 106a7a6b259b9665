//! The curves of the scale section drawn as SVG charts with `plotters` (its SVG
//! backend only: text goes into the SVG as `<text>` elements and is laid out with
//! plotters' built-in size estimate, so no font files or system libraries are
//! needed; see the bench README).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::scale::Curve;

const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Writes `<dir>/<stem>.svg` for every curve; returns the files written.
pub fn draw(curves: &[Curve], dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for c in curves {
        let pts: Vec<(f64, f64)> = c
            .series
            .iter()
            .flat_map(|(_, p)| p.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if pts.is_empty() {
            continue;
        }
        let path = dir.join(format!("{}.svg", c.stem));
        draw_one(c, &pts, &path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        out.push(path);
    }
    Ok(out)
}

fn bounds(pts: &[(f64, f64)]) -> (f64, f64, f64) {
    let xmin = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let xmax = pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let ymax = pts.iter().map(|p| p.1).fold(0.0, f64::max);
    (xmin, xmax.max(xmin + 1.0), (ymax * 1.15).max(1.0))
}

fn draw_one(
    c: &Curve,
    pts: &[(f64, f64)],
    path: &Path,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let (xmin, xmax, ymax) = bounds(pts);
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(&c.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(78);
    let fmt_y = |v: &f64| human(*v);
    if c.log_x {
        let mut chart =
            builder.build_cartesian_2d((xmin.max(1e-9)..xmax * 1.1).log_scale(), 0.0..ymax)?;
        chart
            .configure_mesh()
            .x_desc(c.x_label)
            .y_desc(c.y_label)
            .x_label_formatter(&|v| human(*v))
            .y_label_formatter(&fmt_y)
            .draw()?;
        for (k, (name, p)) in c.series.iter().enumerate() {
            let col = COLOURS.get(k % COLOURS.len()).copied().unwrap_or(BLACK);
            let p: Vec<(f64, f64)> = p
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(p.clone(), col.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                });
            chart.draw_series(p.iter().map(|&q| Circle::new(q, 3, col.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    } else {
        let lo = if xmin > 0.0 { 0.0 } else { xmin };
        let mut chart = builder.build_cartesian_2d(lo..xmax * 1.05, 0.0..ymax)?;
        chart
            .configure_mesh()
            .x_desc(c.x_label)
            .y_desc(c.y_label)
            .x_label_formatter(&|v| human(*v))
            .y_label_formatter(&fmt_y)
            .draw()?;
        for (k, (name, p)) in c.series.iter().enumerate() {
            let col = COLOURS.get(k % COLOURS.len()).copied().unwrap_or(BLACK);
            let p: Vec<(f64, f64)> = p
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(p.clone(), col.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                });
            chart.draw_series(p.iter().map(|&q| Circle::new(q, 3, col.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// 1.2k, 3.4M, 950.
fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
