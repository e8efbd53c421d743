//! Tests of `report`.

use super::*;
use crate::stats::Latency;

fn run(label: &str, proto: Proto, conns: usize, pipeline: usize, ops: f64) -> Record {
    Record::Load(RunReport {
        label: label.into(),
        proto,
        conns,
        pipeline,
        ops: ops as u64,
        ops_per_sec: ops,
        latency: Latency {
            p99_us: 100.0,
            ..Latency::default()
        },
        ..RunReport::example()
    })
}

/// A run that measured the server: `ns` per request, generator-bound or not.
fn costed(label: &str, ops: f64, ns: f64, bound: bool) -> Record {
    let Record::Load(r) = run(label, Proto::Kv, 50, 1, ops) else {
        unreachable!()
    };
    Record::Load(RunReport {
        server_ns_per_request: Some(ns),
        generator_bound: Some(bound),
        ..r
    })
}

#[test]
fn server_cpu_per_request_stands_next_to_ops_and_bound_rows_are_marked() {
    let records = vec![
        costed("kv-server", 200.0, 5_000.0, true),
        costed("kv-server", 220.0, 5_400.0, false),
        costed("kv-server", 210.0, 5_200.0, false),
        costed("redis", 100.0, 0.36, false),
    ];
    let md = markdown_class(&class_table(&records, Class::Kv, &[]));
    assert!(
        md.contains("| ops/s, median (min–max) | server CPU ns/request | p99 µs |"),
        "{md}"
    );
    assert!(
        md.contains("| **kv-server** | 210 (200–220) † | 5,200 | 100 |"),
        "{md}"
    );
    assert!(md.contains("| redis | 100 (100–100) | 0.4 | 100 |"), "{md}");
    assert!(md.contains(GENERATOR_BOUND_NOTE), "{md}");
    let header_columns = md.lines().next().map(|l| l.matches('|').count());
    let rule_columns = md.lines().nth(1).map(|l| l.matches('|').count());
    assert_eq!(header_columns, rule_columns, "{md}");
}

#[test]
fn tables_of_runs_without_cpu_data_keep_their_old_columns() {
    let md = markdown_class(&class_table(
        &[run("a", Proto::Kv, 50, 1, 1.0)],
        Class::Kv,
        &[],
    ));
    assert!(!md.contains("ns/request"), "{md}");
    assert!(!md.contains(GENERATOR_BOUND_MARK), "{md}");
}

#[test]
fn the_committed_results_files_still_make_tables() {
    // Results lines written before server CPU per request was recorded: derived.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/results");
    let text = std::fs::read_to_string(format!("{dir}/results.jsonl")).expect("results");
    let records = parse_records(&text).expect("old lines parse");
    let md = markdown_class(&class_table(&records, Class::Kv, &[]));
    assert!(md.contains("server CPU ns/request"), "{md}");
}

#[test]
fn medians_take_the_middle_round() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    assert_eq!(median(&[]), 0.0);
}

#[test]
fn the_first_label_is_ours_and_ratios_divide_by_the_others() {
    let records = vec![
        run("kv-server", Proto::Kv, 50, 1, 200.0),
        run("redis", Proto::Redis, 50, 1, 100.0),
        run("kv-server", Proto::Kv, 50, 1, 300.0),
        run("redis", Proto::Redis, 50, 1, 100.0),
        run("tokio", Proto::Echo, 50, 1, 1.0),
    ];
    let table = class_table(&records, Class::Kv, &[]);
    assert_eq!(table.series, vec!["kv-server", "redis"]);
    let md = markdown_class(&table);
    assert!(
        md.contains("| 50 conns ping-pong | **kv-server** |"),
        "{md}"
    );
    assert!(md.contains("2.50×"), "{md}");
}

#[test]
fn labels_named_as_ours_lead_whatever_order_the_runs_came_in() {
    let records = vec![
        run("redis", Proto::Redis, 50, 1, 100.0),
        run("memcached", Proto::Memcached, 50, 1, 100.0),
        run("kv-server", Proto::Kv, 50, 1, 200.0),
    ];
    let table = class_table(&records, Class::Kv, &["kv-server".to_string()]);
    assert_eq!(table.series, vec!["kv-server", "redis", "memcached"]);
    let md = markdown_class(&table);
    assert!(md.contains("| ÷ redis | ÷ memcached |"), "{md}");
    assert!(
        md.contains("| **kv-server** | 200 (200–200) | 100 | 0 | 2.00× | 2.00× |"),
        "{md}"
    );
}

#[test]
fn shapes_sort_ping_pong_first_by_connection_count() {
    let records = vec![
        run("a", Proto::Kv, 50, 32, 1.0),
        run("a", Proto::Kv, 1000, 1, 1.0),
        run("a", Proto::Kv, 1, 1, 1.0),
    ];
    let names: Vec<String> = class_table(&records, Class::Kv, &[])
        .shapes
        .iter()
        .map(|s| s.name())
        .collect();
    assert_eq!(
        names,
        vec![
            "1 conn ping-pong",
            "1,000 conns ping-pong",
            "50 conns pipeline 32"
        ]
    );
}

#[test]
fn results_lines_round_trip_through_json() {
    let record = run("x", Proto::Memcached, 1, 1, 5.0);
    let line = serde_json::to_string(&record).expect("serializable");
    assert_eq!(
        parse_records(&format!("{line}\n\n")).expect("parses"),
        vec![record]
    );
    assert!(parse_records("{nonsense").is_err());
}

#[test]
fn small_and_large_counts_keep_two_significant_digits() {
    assert_eq!(significant(0.002833, 2), "0.0028");
    assert_eq!(significant(0.981, 2), "0.98");
    assert_eq!(significant(1.74, 2), "1.7");
    assert_eq!(significant(12.3, 2), "12");
    assert_eq!(significant(0.0, 2), "0");
}

#[test]
fn digits_are_grouped_by_thousands() {
    assert_eq!(group_digits(1234567.8), "1,234,568");
    assert_eq!(group_digits(999.0), "999");
    assert_eq!(group_digits(0.0), "0");
}
