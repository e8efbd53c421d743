//! The charts, drawn as plain SVG: the comparison (throughput and p99 latency by
//! connection count, one line per server, one row of panels per workload class) and the
//! scaling curves (throughput and server CPU per request by the server's core count, one
//! row per pipeline depth).
//!
//! Hand-written rather than with `plotters`: a few line charts do not justify a dependency
//! tree that would slow every clean build of the workspace's tests.

use std::fmt::Write as _;

use crate::report::{group_digits, ClassTable};
use crate::scaling::{self, Series};

const PANEL_W: f64 = 480.0;
const PANEL_H: f64 = 300.0;
const MARGIN_L: f64 = 80.0;
const MARGIN_R: f64 = 20.0;
const MARGIN_T: f64 = 40.0;
const MARGIN_B: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// One panel: categories along x, a line per series.
#[derive(Debug, Clone)]
struct Panel {
    title: String,
    /// Name of the x axis, under its labels.
    x_name: String,
    /// One label per x position.
    x_labels: Vec<String>,
    /// Log scale for values that span decades (latency); else linear from zero.
    log_y: bool,
    lines: Vec<Line>,
}

/// One series of a panel; a series without points still takes its colour, so a server
/// keeps one colour across panels.
#[derive(Debug, Clone)]
struct Line {
    label: String,
    points: Vec<Point>,
}

#[derive(Debug, Clone, Copy)]
struct Point {
    /// Index into the panel's x labels.
    x: usize,
    y: f64,
    /// Drawn as an open circle: measured while the generator was the bottleneck.
    hollow: bool,
}

/// Which metric a comparison panel plots.
#[derive(Debug, Clone, Copy)]
enum Metric {
    Throughput,
    P99,
}

/// Draws one row of two panels per class table (ping-pong shapes only, since the x axis
/// is the connection count).
pub fn svg(tables: &[ClassTable]) -> String {
    let rows: Vec<[Panel; 2]> = tables
        .iter()
        .map(|t| {
            [
                class_panel(t, Metric::Throughput),
                class_panel(t, Metric::P99),
            ]
        })
        .collect();
    document(&rows)
}

/// Draws the scaling curves: for each pipeline depth, ops/s and server CPU ns per request
/// by the server's cores; open circles mark generator-bound points.
pub fn scaling_svg(series: &[Series]) -> String {
    let mut cores: Vec<usize> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.cores))
        .collect();
    cores.sort_unstable();
    cores.dedup();
    let mut labels: Vec<&str> = Vec::new();
    let mut depths: Vec<usize> = Vec::new();
    for s in series {
        if !labels.contains(&s.label.as_str()) {
            labels.push(&s.label);
        }
        if !depths.contains(&s.pipeline) {
            depths.push(s.pipeline);
        }
    }
    let panel = |pipeline: usize, cost: bool| {
        let lines = labels
            .iter()
            .map(|label| {
                let points = series
                    .iter()
                    .filter(|s| s.pipeline == pipeline && s.label == *label)
                    .flat_map(|s| &s.points)
                    .filter_map(|p| {
                        let y = if cost {
                            p.ns_per_request_median?
                        } else {
                            p.ops_median
                        };
                        let x = cores.iter().position(|c| *c == p.cores)?;
                        Some(Point {
                            x,
                            y,
                            hollow: p.generator_bound_rounds > 0,
                        })
                    })
                    .collect();
                Line {
                    label: label.to_string(),
                    points,
                }
            })
            .collect();
        let what = if cost {
            "server CPU ns per request"
        } else {
            "ops/s"
        };
        Panel {
            title: format!("{}: {what} by server cores", scaling::depth_name(pipeline)),
            x_name: "server cores (N; generator on N others, 50×N conns)".to_string(),
            x_labels: cores.iter().map(|c| c.to_string()).collect(),
            log_y: false,
            lines,
        }
    };
    let rows: Vec<[Panel; 2]> = depths
        .iter()
        .map(|&d| [panel(d, false), panel(d, true)])
        .collect();
    document(&rows)
}

/// The SVG document: rows of two panels.
fn document(rows: &[[Panel; 2]]) -> String {
    let height = rows.len().max(1) as f64 * PANEL_H;
    let width = 2.0 * PANEL_W;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (row, [left, right]) in rows.iter().enumerate() {
        let y = row as f64 * PANEL_H;
        draw(&mut s, left, 0.0, y);
        draw(&mut s, right, PANEL_W, y);
    }
    s.push_str("</svg>\n");
    s
}

/// A comparison panel: x is the connection count of the ping-pong shapes.
fn class_panel(table: &ClassTable, metric: Metric) -> Panel {
    let x_labels = table
        .shapes
        .iter()
        .filter(|sh| sh.pipeline == 1)
        .map(|sh| group_digits(sh.conns as f64))
        .collect();
    let (title, log_y) = match metric {
        Metric::Throughput => (
            format!("{}: ops/s by connections (ping-pong)", table.class.title()),
            false,
        ),
        Metric::P99 => (
            format!("{}: p99 latency, µs (log scale)", table.class.title()),
            true,
        ),
    };
    let lines = table
        .series
        .iter()
        .enumerate()
        .map(|(i, label)| Line {
            label: label.clone(),
            points: class_points(table, i, metric),
        })
        .collect();
    Panel {
        title,
        x_name: "connections".to_string(),
        x_labels,
        log_y,
        lines,
    }
}

/// Points of one series of a class table, for ping-pong shapes.
fn class_points(table: &ClassTable, series: usize, metric: Metric) -> Vec<Point> {
    let mut xs = 0;
    let mut out = Vec::new();
    for (shape, row) in table.shapes.iter().zip(&table.cells) {
        if shape.pipeline != 1 {
            continue;
        }
        if let Some(cell) = &row[series] {
            let y = match metric {
                Metric::Throughput => cell.ops_median,
                Metric::P99 => cell.p99_median_us,
            };
            out.push(Point {
                x: xs,
                y,
                hollow: false,
            });
        }
        xs += 1;
    }
    out
}

fn draw(s: &mut String, panel: &Panel, ox: f64, oy: f64) {
    let plot_w = PANEL_W - MARGIN_L - MARGIN_R;
    let plot_h = PANEL_H - MARGIN_T - MARGIN_B;
    let (x0, y0) = (ox + MARGIN_L, oy + MARGIN_T);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
        ox + 10.0,
        oy + 20.0,
        escape(&panel.title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>"##
    );
    let all: Vec<f64> = panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.y))
        .filter(|v| *v > 0.0)
        .collect();
    if all.is_empty() || panel.x_labels.is_empty() {
        return;
    }
    let log_y = panel.log_y;
    let max = all.iter().copied().fold(0.0, f64::max);
    let min = all.iter().copied().fold(f64::INFINITY, f64::min);
    // Linear from zero for throughput and cost; log for latency, which spans decades.
    let (lo, hi) = if log_y {
        (
            min.log10().floor(),
            max.log10().ceil().max(min.log10().floor() + 1.0),
        )
    } else {
        (0.0, nice_ceiling(max * 1.1))
    };
    let to_y = |v: f64| {
        let t = if log_y {
            (v.max(1e-9).log10() - lo) / (hi - lo)
        } else {
            v / hi
        };
        y0 + plot_h * (1.0 - t)
    };
    let step = plot_w / panel.x_labels.len() as f64;
    let to_x = |i: usize| x0 + step * (i as f64 + 0.5);
    // Y ticks.
    let ticks: Vec<f64> = if log_y {
        (lo as i32..=hi as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        (0..=5).map(|i| hi * i as f64 / 5.0).collect()
    };
    for t in ticks {
        let y = to_y(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/>"##,
            x0 + plot_w
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            x0 - 6.0,
            y + 4.0,
            group_digits(t)
        );
    }
    // X categories.
    for (i, label) in panel.x_labels.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            to_x(i),
            y0 + plot_h + 18.0,
            escape(label)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        x0 + plot_w / 2.0,
        y0 + plot_h + 36.0,
        escape(&panel.x_name)
    );
    // Series.
    for (i, line) in panel.lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = line
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", to_x(p.x), to_y(p.y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for p in &line.points {
            let fill = if p.hollow { "white" } else { color };
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{fill}" stroke="{color}"/>"#,
                to_x(p.x),
                to_y(p.y)
            );
        }
        legend(s, x0 + 8.0, y0 + 14.0 + 16.0 * i as f64, color, &line.label);
    }
    if panel.lines.iter().flat_map(|l| &l.points).any(|p| p.hollow) {
        let ly = y0 + 14.0 + 16.0 * panel.lines.len() as f64;
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="white" stroke="#444"/>"##,
            x0 + 14.0,
            ly - 4.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{ly:.1}">generator-bound</text>"#,
            x0 + 24.0
        );
    }
}

/// A legend entry: a colour swatch and a label.
fn legend(s: &mut String, x: f64, y: f64, color: &str, label: &str) {
    let _ = writeln!(
        s,
        r#"<rect x="{x:.1}" y="{:.1}" width="12" height="4" fill="{color}"/>"#,
        y - 6.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{y:.1}">{}</text>"#,
        x + 16.0,
        escape(label)
    );
}

/// The smallest 1, 2 or 5 × 10^k multiple-of-5-ticks ceiling above `v`, so the five
/// gridlines fall on round numbers.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let step = v / 5.0;
    let magnitude = 10f64.powf(step.log10().floor());
    let nice = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= step)
        .unwrap_or(10.0 * magnitude);
    nice * 5.0
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests;
