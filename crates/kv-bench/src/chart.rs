//! The comparison chart: throughput and p99 latency by connection count, one line per
//! server, one row of panels per workload class — drawn as plain SVG.
//!
//! Hand-written rather than with `plotters`: two line charts do not justify a dependency
//! tree that would slow every clean build of the workspace's tests.

use std::fmt::Write as _;

use crate::report::{group_digits, ClassTable};

const PANEL_W: f64 = 480.0;
const PANEL_H: f64 = 300.0;
const MARGIN_L: f64 = 80.0;
const MARGIN_R: f64 = 20.0;
const MARGIN_T: f64 = 40.0;
const MARGIN_B: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// Which metric a panel plots.
#[derive(Debug, Clone, Copy)]
enum Metric {
    Throughput,
    P99,
}

/// Draws one row of two panels per class table (ping-pong shapes only, since the x axis
/// is the connection count).
pub fn svg(tables: &[ClassTable]) -> String {
    let rows = tables.len().max(1) as f64;
    let width = 2.0 * PANEL_W;
    let height = rows * PANEL_H;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (row, table) in tables.iter().enumerate() {
        let y = row as f64 * PANEL_H;
        panel(&mut s, table, Metric::Throughput, 0.0, y);
        panel(&mut s, table, Metric::P99, PANEL_W, y);
    }
    s.push_str("</svg>\n");
    s
}

/// (x position index, value) points of one series, for ping-pong shapes.
fn points(table: &ClassTable, series: usize, metric: Metric) -> Vec<(usize, f64)> {
    let mut xs = 0;
    let mut out = Vec::new();
    for (shape, row) in table.shapes.iter().zip(&table.cells) {
        if shape.pipeline != 1 {
            continue;
        }
        if let Some(cell) = &row[series] {
            let v = match metric {
                Metric::Throughput => cell.ops_median,
                Metric::P99 => cell.p99_median_us,
            };
            out.push((xs, v));
        }
        xs += 1;
    }
    out
}

fn panel(s: &mut String, table: &ClassTable, metric: Metric, ox: f64, oy: f64) {
    let conns: Vec<usize> = table
        .shapes
        .iter()
        .filter(|sh| sh.pipeline == 1)
        .map(|sh| sh.conns)
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
    let plot_w = PANEL_W - MARGIN_L - MARGIN_R;
    let plot_h = PANEL_H - MARGIN_T - MARGIN_B;
    let (x0, y0) = (ox + MARGIN_L, oy + MARGIN_T);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
        ox + 10.0,
        oy + 20.0,
        escape(&title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>"##
    );
    let all: Vec<f64> = (0..table.series.len())
        .flat_map(|i| points(table, i, metric))
        .map(|(_, v)| v)
        .filter(|v| *v > 0.0)
        .collect();
    if all.is_empty() || conns.is_empty() {
        return;
    }
    let max = all.iter().copied().fold(0.0, f64::max);
    let min = all.iter().copied().fold(f64::INFINITY, f64::min);
    // Linear from zero for throughput; log for latency, which spans decades.
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
    let step = plot_w / conns.len() as f64;
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
    for (i, c) in conns.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            to_x(i),
            y0 + plot_h + 18.0,
            group_digits(*c as f64)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">connections</text>"#,
        x0 + plot_w / 2.0,
        y0 + plot_h + 36.0
    );
    // Series.
    for (i, label) in table.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts = points(table, i, metric);
        let path: Vec<String> = pts
            .iter()
            .map(|(x, v)| format!("{:.1},{:.1}", to_x(*x), to_y(*v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (x, v) in &pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                to_x(*x),
                to_y(*v)
            );
        }
        let ly = y0 + 14.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="4" fill="{color}"/>"#,
            x0 + 8.0,
            ly - 6.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{ly:.1}">{}</text>"#,
            x0 + 24.0,
            escape(label)
        );
    }
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
mod tests {
    use super::*;
    use crate::report::{class_table, Class};
    use crate::stats::{Latency, Record, RunReport};
    use crate::workload::Proto;

    #[test]
    fn axis_ceilings_are_round_numbers() {
        assert_eq!(nice_ceiling(188_507.0), 250_000.0);
        assert_eq!(nice_ceiling(90.0), 100.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }

    #[test]
    fn the_chart_is_an_svg_with_a_line_per_server() {
        let run = |label: &str, conns| {
            Record::Load(RunReport {
                label: label.into(),
                proto: Proto::Kv,
                addr: String::new(),
                conns,
                pipeline: 1,
                duration_secs: 1.0,
                warmup_secs: 0.0,
                value_size: 16,
                keys: 1,
                get_ratio: 0.9,
                threads: 1,
                ops: 1,
                errors: 0,
                conn_errors: 0,
                ops_per_sec: conns as f64 * 10.0,
                latency: Latency {
                    p99_us: 50.0,
                    ..Latency::default()
                },
                cpu: None,
            })
        };
        let records = vec![run("a<b", 1), run("a<b", 50), run("c", 1), run("c", 50)];
        let out = svg(&[class_table(&records, Class::Kv, &[])]);
        assert!(out.starts_with("<svg"));
        assert!(out.trim_end().ends_with("</svg>"));
        assert_eq!(out.matches("<polyline").count(), 4, "2 servers × 2 panels");
        assert!(out.contains("a&lt;b"));
    }
}
