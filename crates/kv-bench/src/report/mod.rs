//! Turning a results file (one JSON [`Record`] per line, as `--json` prints them) into
//! the comparison tables of BENCHMARKS.md: medians over rounds and ratios.
//!
//! Servers ("series") are told apart by their `--label`. Within each class of workload
//! (KV-style, echo) the labels named as ours come first (else the first label seen), and
//! every ratio is ours ÷ theirs. Where the runs measured the server's CPU, its CPU time
//! per request stands next to ops/s (on a machine the generator shares, that is the fair
//! figure), and a row whose generator was the bottleneck is marked.

use std::fmt::Write as _;

use crate::stats::{IdleReport, Record, RunReport};
use crate::workload::Proto;

/// The kind of comparison a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Key-value traffic: kv, redis, memcached protocols.
    Kv,
    /// Line echo.
    Echo,
}

impl Class {
    fn of(proto: Proto) -> Self {
        match proto {
            Proto::Echo => Class::Echo,
            Proto::Kv | Proto::Redis | Proto::Memcached => Class::Kv,
        }
    }

    /// Heading for this class's table and chart.
    pub fn title(self) -> &'static str {
        match self {
            Class::Kv => "Key-value",
            Class::Echo => "Line echo",
        }
    }
}

/// A load shape: how many connections, how deep the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Shape {
    pub conns: usize,
    pub pipeline: usize,
}

impl Shape {
    /// e.g. "50 conns pipeline 32".
    pub fn name(self) -> String {
        let conns = if self.conns == 1 {
            "1 conn".to_string()
        } else {
            format!("{} conns", group_digits(self.conns as f64))
        };
        if self.pipeline == 1 {
            format!("{conns} ping-pong")
        } else {
            format!("{conns} pipeline {}", self.pipeline)
        }
    }
}

/// Medians of one server on one shape over its rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub rounds: usize,
    pub ops_median: f64,
    pub ops_min: f64,
    pub ops_max: f64,
    pub p99_median_us: f64,
    pub p999_median_us: f64,
    pub errors: u64,
    /// Most CPU other processes used during any of the rounds, in % of one core.
    pub others_cpu_max: Option<f64>,
    /// Median server CPU time per request, in ns, over the rounds that measured it.
    pub ns_per_request_median: Option<f64>,
    /// Rounds in which the generator used ≥ 90% of its cores.
    pub generator_bound_rounds: usize,
}

/// Marks a figure taken while the generator was the bottleneck.
pub const GENERATOR_BOUND_MARK: &str = "†";

/// The note under a table that has generator-bound rows.
pub const GENERATOR_BOUND_NOTE: &str = "† generator-bound: in at least one round kv-bench \
     used ≥ 90% of the cores it could use, so that ops/s is a floor set by the generator \
     as much as by the server; server CPU per request still holds.";

/// Every run of one class, arranged for tables and charts.
#[derive(Debug, Clone)]
pub struct ClassTable {
    pub class: Class,
    /// Labels in first-seen order; the first is ours.
    pub series: Vec<String>,
    pub shapes: Vec<Shape>,
    /// `cells[shape][series]`.
    pub cells: Vec<Vec<Option<Cell>>>,
    /// How many leading series are ours (named with `--ours`; else the first one).
    pub ours: usize,
}

/// Parses a results file; blank lines are skipped, a bad line is an error naming it.
pub fn parse_records(text: &str) -> Result<Vec<Record>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| format!("results line {}: {e}", i + 1))
        })
        .collect()
}

/// Moves the labels listed in `ours` to the front, keeping the others in first-seen order.
pub fn ours_first(labels: &mut [String], ours: &[String]) {
    labels.sort_by_key(|l| ours.iter().position(|o| o == l).unwrap_or(usize::MAX));
}

/// Arranges the load records of one class; labels in `ours` lead.
pub fn class_table(records: &[Record], class: Class, ours: &[String]) -> ClassTable {
    let runs: Vec<&RunReport> = records
        .iter()
        .filter_map(|r| match r {
            Record::Load(run) if Class::of(run.proto) == class => Some(run),
            _ => None,
        })
        .collect();
    let mut series: Vec<String> = Vec::new();
    let mut shapes: Vec<Shape> = Vec::new();
    for run in &runs {
        if !series.contains(&run.label) {
            series.push(run.label.clone());
        }
        let shape = Shape {
            conns: run.conns,
            pipeline: run.pipeline,
        };
        if !shapes.contains(&shape) {
            shapes.push(shape);
        }
    }
    ours_first(&mut series, ours);
    let ours_count = series.iter().filter(|l| ours.contains(l)).count().max(1);
    shapes.sort_by_key(|s| (s.pipeline, s.conns));
    let cells = shapes
        .iter()
        .map(|shape| {
            series
                .iter()
                .map(|label| {
                    let mine: Vec<&&RunReport> = runs
                        .iter()
                        .filter(|r| {
                            &r.label == label
                                && r.conns == shape.conns
                                && r.pipeline == shape.pipeline
                        })
                        .collect();
                    cell(&mine)
                })
                .collect()
        })
        .collect();
    ClassTable {
        class,
        series,
        shapes,
        cells,
        ours: ours_count,
    }
}

fn cell(runs: &[&&RunReport]) -> Option<Cell> {
    if runs.is_empty() {
        return None;
    }
    let ops: Vec<f64> = runs.iter().map(|r| r.ops_per_sec).collect();
    Some(Cell {
        rounds: runs.len(),
        ops_median: median(&ops),
        ops_min: ops.iter().copied().fold(f64::INFINITY, f64::min),
        ops_max: ops.iter().copied().fold(0.0, f64::max),
        p99_median_us: median(&runs.iter().map(|r| r.latency.p99_us).collect::<Vec<_>>()),
        p999_median_us: median(&runs.iter().map(|r| r.latency.p999_us).collect::<Vec<_>>()),
        errors: runs.iter().map(|r| r.errors).sum(),
        others_cpu_max: runs
            .iter()
            .filter_map(|r| r.cpu.map(|c| c.others))
            .reduce(f64::max),
        ns_per_request_median: median_of(runs.iter().filter_map(|r| r.ns_per_request())),
        generator_bound_rounds: runs
            .iter()
            .filter(|r| r.is_generator_bound() == Some(true))
            .count(),
    })
}

/// The median of the values there are, `None` for none.
pub fn median_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    let values: Vec<f64> = values.collect();
    (!values.is_empty()).then(|| median(&values))
}

/// `5210.4` → `"5,210"`; under 10 with one decimal (`"0.4"`), `–` when unknown.
pub fn show_ns(ns: Option<f64>) -> String {
    match ns {
        Some(ns) if ns < 10.0 => format!("{ns:.1}"),
        Some(ns) => group_digits(ns),
        None => "–".to_string(),
    }
}

/// The median (mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The Markdown table of one class: a row per shape and server; our servers' rows carry
/// the ratio of their median ops/s to each other server's. Server CPU ns per request
/// follows ops/s when any run measured it; generator-bound rows are marked †, with a
/// note under the table.
pub fn markdown_class(table: &ClassTable) -> String {
    let mut md = String::new();
    if table.series.is_empty() {
        return md;
    }
    let cells = || table.cells.iter().flatten().flatten();
    let with_cost = cells().any(|c| c.ns_per_request_median.is_some());
    let any_bound = cells().any(|c| c.generator_bound_rounds > 0);
    let ours = table.ours.max(1).min(table.series.len());
    let theirs = &table.series[ours..];
    let _ = write!(md, "| shape | server | ops/s, median (min–max) |");
    if with_cost {
        md.push_str(" server CPU ns/request |");
    }
    md.push_str(" p99 µs | p99.9 µs |");
    for other in theirs {
        let _ = write!(md, " ÷ {other} |");
    }
    let _ = writeln!(md, " errors | others' CPU, max % of a core |");
    let _ = writeln!(
        md,
        "|{}",
        "---|".repeat(5 + usize::from(with_cost) + theirs.len() + 2)
    );
    for (shape, row) in table.shapes.iter().zip(&table.cells) {
        for (i, (label, cell)) in table.series.iter().zip(row).enumerate() {
            let Some(c) = cell else { continue };
            let mine = i < ours;
            let name = if mine {
                format!("**{label}**")
            } else {
                label.clone()
            };
            let bound = if c.generator_bound_rounds > 0 {
                format!(" {GENERATOR_BOUND_MARK}")
            } else {
                String::new()
            };
            let _ = write!(
                md,
                "| {} | {name} | {} ({}–{}){bound} |",
                shape.name(),
                group_digits(c.ops_median),
                group_digits(c.ops_min),
                group_digits(c.ops_max),
            );
            if with_cost {
                let _ = write!(md, " {} |", show_ns(c.ns_per_request_median));
            }
            let _ = write!(md, " {:.0} | {:.0} |", c.p99_median_us, c.p999_median_us);
            for other in &row[ours..] {
                match other {
                    Some(b) if mine && b.ops_median > 0.0 => {
                        let _ = write!(md, " {:.2}× |", c.ops_median / b.ops_median);
                    }
                    _ => md.push_str(" |"),
                }
            }
            let busy = c
                .others_cpu_max
                .map_or_else(|| "–".to_string(), |b| format!("{b:.0}"));
            let _ = writeln!(md, " {} | {busy} |", c.errors);
        }
    }
    if with_cost {
        md.push_str(
            "\nServer CPU ns/request: the server's CPU time (user + system, from /proc) over \
             the measured window ÷ the requests completed in it; median of the rounds.\n",
        );
    }
    if any_bound {
        let _ = writeln!(md, "\n{GENERATOR_BOUND_NOTE}");
    }
    md
}

/// The Markdown table of idle runs: median bytes per connection for each server, labels
/// in `ours` first.
pub fn markdown_idle(records: &[Record], ours: &[String]) -> String {
    let idle: Vec<&IdleReport> = records
        .iter()
        .filter_map(|r| match r {
            Record::Idle(i) => Some(i),
            _ => None,
        })
        .collect();
    let mut labels: Vec<String> = Vec::new();
    for i in &idle {
        if !labels.contains(&i.label) {
            labels.push(i.label.clone());
        }
    }
    ours_first(&mut labels, ours);
    let mut rows: Vec<(String, bool)> = Vec::new();
    for pinged in [true, false] {
        for label in &labels {
            if idle.iter().any(|i| i.label == *label && i.pinged == pinged) {
                rows.push((label.clone(), pinged));
            }
        }
    }
    let mut md = String::new();
    if labels.is_empty() {
        return md;
    }
    let _ = writeln!(
        md,
        "| server | connections | open | RSS growth per connection, bytes (median; each round) | errors |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for (label, pinged) in rows {
        let mine: Vec<&&IdleReport> = idle
            .iter()
            .filter(|i| i.label == label && i.pinged == pinged)
            .collect();
        let how = if pinged {
            "served one ping, then idle"
        } else {
            "silent (never sent a byte)"
        };
        let per: Vec<f64> = mine.iter().filter_map(|i| i.bytes_per_conn).collect();
        let rounds: Vec<String> = per.iter().map(|b| format!("{b:.0}")).collect();
        let open: Vec<String> = mine
            .iter()
            .map(|i| format!("{}/{}", i.open, i.requested))
            .collect();
        let errors: u64 = mine.iter().map(|i| i.errors).sum();
        let _ = writeln!(
            md,
            "| {label} | {how} | {} | **{:.0}** ({}) | {errors} |",
            open.join(", "),
            median(&per),
            rounds.join(", ")
        );
    }
    md
}

/// `value` to `digits` significant digits, without exponent: `0.002833` → `"0.0028"`,
/// `0.981` → `"0.98"`, `12.3` → `"12"` (two digits). Per-request counts span 0.0001
/// (pipelined) to a few (one connection), so a fixed number of decimals would hide one end.
pub fn significant(value: f64, digits: i32) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let decimals = (digits - 1 - value.abs().log10().floor() as i32).max(0);
    format!("{value:.*}", decimals as usize)
}

/// `1234567.8` → `"1,234,568"`.
pub fn group_digits(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests;
