//! Tests of `chart`.

use super::*;
use crate::report::{class_table, Class};
use crate::stats::{Latency, Record, RunReport};

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
            addr: String::new(),
            conns,
            keys: 1,
            ops: 1,
            ops_per_sec: conns as f64 * 10.0,
            latency: Latency {
                p99_us: 50.0,
                ..Latency::default()
            },
            ..RunReport::example()
        })
    };
    let records = vec![run("a<b", 1), run("a<b", 50), run("c", 1), run("c", 50)];
    let out = svg(&[class_table(&records, Class::Kv, &[])]);
    assert!(out.starts_with("<svg"));
    assert!(out.trim_end().ends_with("</svg>"));
    assert_eq!(out.matches("<polyline").count(), 4, "2 servers × 2 panels");
    assert!(out.contains("a&lt;b"));
}

#[test]
fn the_scaling_chart_has_two_panels_per_depth_and_marks_bound_points() {
    let point = |cores, ops: f64, bound| scaling::Point {
        cores,
        conns: 50 * cores,
        rounds: 1,
        ops_median: ops,
        ops_min: ops,
        ops_max: ops,
        ns_per_request_median: Some(1e9 / ops),
        ctx_switches_per_request_median: None,
        generator_bound_rounds: usize::from(bound),
        others_cpu_max: None,
    };
    let series = vec![
        Series {
            label: "kv-server".into(),
            pipeline: 1,
            points: vec![point(1, 100.0, true), point(2, 190.0, false)],
        },
        Series {
            label: "redis".into(),
            pipeline: 1,
            points: vec![point(1, 90.0, false), point(2, 95.0, false)],
        },
        Series {
            label: "kv-server".into(),
            pipeline: 32,
            points: vec![point(1, 1000.0, false)],
        },
    ];
    let out = scaling_svg(&series);
    assert!(out.starts_with("<svg") && out.trim_end().ends_with("</svg>"));
    assert!(out.contains(r#"height="600""#), "two depths, two rows");
    // Row 1: 2 servers × 2 panels; row 2: both servers again (redis without points).
    assert_eq!(out.matches("<polyline").count(), 8);
    assert!(out.contains("ping-pong: server CPU ns per request by server cores"));
    assert!(out.contains("pipeline 32: ops/s by server cores"));
    assert_eq!(
        out.matches(r##"fill="white" stroke="#d62728""##).count(),
        2,
        "the bound point, in both panels of its row"
    );
    assert!(out.contains("generator-bound"));
}
