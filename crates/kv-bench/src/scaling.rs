//! How a server grows with cores: runs grouped by server and pipeline depth, one point
//! per core count, as a Markdown table and (in [`crate::chart`]) as curves.
//!
//! The x axis is the number of CPUs the server was allowed to run on, as recorded from
//! its affinity (`server_cpus`, set by `taskset -c` in bench/scaling.sh); runs that did
//! not record it (no `--server-pid`) are left out. The load grows with the cores
//! (bench/scaling.sh runs 50 × N connections), so each point has its own connection count.

use std::fmt::Write as _;

use crate::report::{
    group_digits, median, median_of, ours_first, show_ns, significant, GENERATOR_BOUND_MARK,
    GENERATOR_BOUND_NOTE,
};
use crate::stats::{Record, RunReport};

/// One server at one core count: medians over its rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// CPUs the server could use.
    pub cores: usize,
    /// Connections of the runs (the median, should rounds differ).
    pub conns: usize,
    pub rounds: usize,
    pub ops_median: f64,
    pub ops_min: f64,
    pub ops_max: f64,
    pub ns_per_request_median: Option<f64>,
    pub ctx_switches_per_request_median: Option<f64>,
    /// Rounds in which the generator used ≥ 90% of its cores.
    pub generator_bound_rounds: usize,
    /// Most CPU other processes used during any of the rounds, in % of one core.
    pub others_cpu_max: Option<f64>,
}

/// One server at one pipeline depth, by core count (ascending).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub pipeline: usize,
    pub points: Vec<Point>,
}

/// Groups the load runs that recorded the server's CPUs; series ordered by pipeline
/// depth, then labels in `ours` first, then first seen.
pub fn series(records: &[Record], ours: &[String]) -> Vec<Series> {
    let runs: Vec<(&RunReport, usize)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Load(run) => Some((run, run.server_cpu_count()?)),
            Record::Idle(_) | Record::Fanout(_) => None,
        })
        .collect();
    let mut labels: Vec<String> = Vec::new();
    let mut pipelines: Vec<usize> = Vec::new();
    for (run, _) in &runs {
        if !labels.contains(&run.label) {
            labels.push(run.label.clone());
        }
        if !pipelines.contains(&run.pipeline) {
            pipelines.push(run.pipeline);
        }
    }
    ours_first(&mut labels, ours);
    pipelines.sort_unstable();
    let mut out = Vec::new();
    for &pipeline in &pipelines {
        for label in &labels {
            let mine: Vec<&(&RunReport, usize)> = runs
                .iter()
                .filter(|(r, _)| r.pipeline == pipeline && &r.label == label)
                .collect();
            let mut cores: Vec<usize> = mine.iter().map(|(_, n)| *n).collect();
            cores.sort_unstable();
            cores.dedup();
            let points: Vec<Point> = cores
                .into_iter()
                .map(|n| {
                    let at: Vec<&RunReport> = mine
                        .iter()
                        .filter(|(_, c)| *c == n)
                        .map(|(r, _)| *r)
                        .collect();
                    point(n, &at)
                })
                .collect();
            if !points.is_empty() {
                out.push(Series {
                    label: label.clone(),
                    pipeline,
                    points,
                });
            }
        }
    }
    out
}

fn point(cores: usize, runs: &[&RunReport]) -> Point {
    let ops: Vec<f64> = runs.iter().map(|r| r.ops_per_sec).collect();
    let conns: Vec<f64> = runs.iter().map(|r| r.conns as f64).collect();
    Point {
        cores,
        conns: median(&conns) as usize,
        rounds: runs.len(),
        ops_median: median(&ops),
        ops_min: ops.iter().copied().fold(f64::INFINITY, f64::min),
        ops_max: ops.iter().copied().fold(0.0, f64::max),
        ns_per_request_median: median_of(runs.iter().filter_map(|r| r.ns_per_request())),
        ctx_switches_per_request_median: median_of(
            runs.iter()
                .filter_map(|r| r.server_ctx_switches_per_request),
        ),
        generator_bound_rounds: runs
            .iter()
            .filter(|r| r.is_generator_bound() == Some(true))
            .count(),
        others_cpu_max: runs
            .iter()
            .filter_map(|r| r.cpu.map(|c| c.others))
            .reduce(f64::max),
    }
}

/// "ping-pong" or "pipeline 32".
pub fn depth_name(pipeline: usize) -> String {
    if pipeline == 1 {
        "ping-pong".to_string()
    } else {
        format!("pipeline {pipeline}")
    }
}

/// The scaling table: a row per pipeline depth, server and core count, with the speed-up
/// over the same server's fewest-cores point.
pub fn markdown(series: &[Series]) -> String {
    let mut md = String::new();
    if series.is_empty() {
        return md;
    }
    md.push_str(
        "| load | server | server cores | conns | ops/s, median (min–max) | × fewest cores \
         | server CPU ns/request | context switches/request | others' CPU, max % of a core |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|---|---|\n");
    let mut any_bound = false;
    for s in series {
        let base = s.points.first().map_or(0.0, |p| p.ops_median);
        for p in &s.points {
            let bound = if p.generator_bound_rounds > 0 {
                any_bound = true;
                format!(" {GENERATOR_BOUND_MARK}")
            } else {
                String::new()
            };
            let speedup = if base > 0.0 {
                format!("{:.2}×", p.ops_median / base)
            } else {
                "–".to_string()
            };
            let switches = p
                .ctx_switches_per_request_median
                .map_or_else(|| "–".to_string(), |n| significant(n, 2));
            let others = p
                .others_cpu_max
                .map_or_else(|| "–".to_string(), |o| format!("{o:.0}"));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} ({}–{}){bound} | {speedup} | {} | {switches} | {others} |",
                depth_name(s.pipeline),
                s.label,
                p.cores,
                group_digits(p.conns as f64),
                group_digits(p.ops_median),
                group_digits(p.ops_min),
                group_digits(p.ops_max),
                show_ns(p.ns_per_request_median),
            );
        }
    }
    if any_bound {
        let _ = writeln!(md, "\n{GENERATOR_BOUND_NOTE}");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, cpus: Option<&str>, pipeline: usize, ops: f64, bound: bool) -> Record {
        let cores = cpus.map_or(1, |c| {
            c.parse::<crate::affinity::CpuList>().unwrap().count()
        });
        Record::Load(RunReport {
            label: label.into(),
            addr: String::new(),
            conns: 50 * cores,
            pipeline,
            threads: cores,
            ops: ops as u64,
            ops_per_sec: ops,
            server_cpus: cpus.map(str::to_string),
            server_ns_per_request: Some(1e9 / ops),
            server_ctx_switches_per_request: Some(0.5),
            generator_bound: Some(bound),
            ..RunReport::example()
        })
    }

    #[test]
    fn points_are_grouped_by_server_and_depth_and_ordered_by_cores() {
        let records = vec![
            run("redis", Some("0-1"), 1, 150.0, false),
            run("kv-server", Some("0-1"), 1, 380.0, false),
            run("kv-server", Some("0"), 1, 200.0, true),
            run("kv-server", Some("0"), 32, 2_000.0, false),
            run("kv-server", None, 1, 1.0, false),
            run("redis", Some("0"), 1, 100.0, false),
        ];
        let s = series(&records, &["kv-server".to_string()]);
        let keys: Vec<(&str, usize, Vec<usize>)> = s
            .iter()
            .map(|s| {
                let cores = s.points.iter().map(|p| p.cores).collect();
                (s.label.as_str(), s.pipeline, cores)
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("kv-server", 1, vec![1, 2]),
                ("redis", 1, vec![1, 2]),
                ("kv-server", 32, vec![1]),
            ],
            "the run without server_cpus is left out"
        );
        assert_eq!(s[0].points[1].conns, 100);
    }

    #[test]
    fn the_table_shows_speed_up_cost_and_bound_marks() {
        let records = vec![
            run("kv-server", Some("0"), 1, 200.0, true),
            run("kv-server", Some("0-1"), 1, 380.0, false),
        ];
        let md = markdown(&series(&records, &[]));
        assert!(
            md.contains(
                "| ping-pong | kv-server | 1 | 50 | 200 (200–200) † | 1.00× | 5,000,000 | 0.50 | – |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| ping-pong | kv-server | 2 | 100 | 380 (380–380) | 1.90× |"),
            "{md}"
        );
        assert!(md.contains(GENERATOR_BOUND_NOTE), "{md}");
        let columns: Vec<usize> = md.lines().take(3).map(|l| l.matches('|').count()).collect();
        assert_eq!(columns, vec![10, 10, 10], "{md}");
        assert_eq!(markdown(&[]), "");
    }
}
