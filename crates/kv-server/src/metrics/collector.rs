//! The figures of `/metrics`, read when a scrape comes: the same as `INFO`'s (the
//! machinery's [`ServerStats`], KV mode's per-thread counters, the store's report), the
//! command latency histogram, and the process's resources. Encoded by prometheus-client
//! (OpenMetrics or the text format 0.0.4, see `negotiate.rs`), which adds the `kv_` prefix,
//! the unit suffix (`_seconds`, `_bytes`) and a counter's `_total`.

use std::fmt::{self, Debug};

use kv_server::kv::counters::{self, ErrorKind, Totals, Verb, LATENCY_BOUNDS_MICROS};
use kv_store::{ClusterStats, Persistence, StoreReport, COMMIT_LATENCY_BOUNDS_MICROS};
use line_server::StatsSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::process::{self, ProcessStats};

/// Reads the store's report at scrape time (KV mode only).
pub type StoreReader = Box<dyn Fn() -> StoreReport + Send + Sync>;

/// Where the figures come from.
pub struct Sources {
    /// The machinery's counters.
    pub server: super::ServerCounters,
    /// The store, in KV mode; `None` in echo mode, which has no KV counters either.
    pub store: Option<StoreReader>,
}

impl Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("server", &self.server)
            .field("kv", &self.store.is_some())
            .finish()
    }
}

/// Encodes every figure on each scrape.
#[derive(Debug)]
pub struct KvCollector(pub Sources);

impl Collector for KvCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let server = self.0.server.snapshot();
        encode_server(&mut e, &server)?;
        encode_loops(&mut e, &server, &self.0.server.connections_per_loop())?;
        if let Some(store) = &self.0.store {
            let totals = counters::totals();
            encode_rejections(&mut e, &server, Some(&totals))?;
            encode_commands(&mut e, &totals)?;
            encode_store(&mut e, &store())?;
        } else {
            encode_rejections(&mut e, &server, None)?;
        }
        encode_process(&mut e, &process::read())
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    counter_in(e, (name, help), None, value)
}

/// A counter with a unit (`kv_<name>_<unit>_total`).
fn counter_in(
    e: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    unit: Option<&Unit>,
    value: u64,
) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> fmt::Result {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(e.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// A counter with one label whose values are `series`.
fn labelled_counter(
    e: &mut DescriptorEncoder,
    (name, help, label): (&str, &str, &str),
    series: &[(&str, u64)],
) -> fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in series {
        let labels = [(label, *value)];
        ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Uptime, clients and supervision events: the machinery's, in both modes.
fn encode_server(e: &mut DescriptorEncoder, s: &StatsSnapshot) -> fmt::Result {
    let uptime = "Seconds since the server started.";
    gauge(e, "uptime", uptime, Some(&Unit::Seconds), s.uptime_secs)?;
    gauge(
        e,
        "connected_clients",
        "Clients connected now.",
        None,
        s.connected_clients,
    )?;
    gauge(
        e,
        "max_clients",
        "The connection limit (--max-connections).",
        None,
        s.max_connections,
    )?;
    let received = "Clients accepted since the start, rejected ones included.";
    counter(e, "connections_received", received, s.connections_received)?;
    let restarts = "Times the acceptor failed and was restarted by its supervisor.";
    counter(e, "acceptor_restarts", restarts, s.acceptor_restarts)?;
    let accept = "accept(2) failures for lack of resources (descriptors, memory).";
    let by_kind = [
        ("descriptors", s.accept_errors_descriptors),
        ("memory", s.accept_errors - s.accept_errors_descriptors),
    ];
    labelled_counter(e, ("accept_errors", accept, "kind"), &by_kind)?;
    counter(
        e,
        "client_panics",
        "Connection tasks that panicked.",
        s.client_panics,
    )?;
    let handshakes = "TLS handshakes that failed, were refused or did not finish within 5 s.";
    counter(
        e,
        "tls_handshake_failures",
        handshakes,
        s.tls_handshake_failures,
    )?;
    let input = "Bytes received from clients (over TLS, after decryption).";
    counter_in(
        e,
        ("net_input", input),
        Some(&Unit::Bytes),
        s.net_input_bytes,
    )?;
    let output = "Bytes of replies sent to clients (over TLS, before encryption).";
    counter_in(
        e,
        ("net_output", output),
        Some(&Unit::Bytes),
        s.net_output_bytes,
    )
}

/// The event loops: how many, how many take new clients, the connections moved between
/// them, and each one's clients.
fn encode_loops(e: &mut DescriptorEncoder, s: &StatsSnapshot, per_loop: &[u64]) -> fmt::Result {
    let most = "Event loops that serve connections (--event-loops).";
    gauge(e, "event_loops", most, None, s.event_loops)?;
    let active = "Event loops that take new clients now: as many as the load needs.";
    gauge(e, "event_loops_active", active, None, s.active_event_loops)?;
    let moved = "Connections moved to another event loop as the active loops changed.";
    counter(e, "migrations", moved, s.migrations)?;
    let help = "Clients each event loop serves now.";
    let mut family = e.encode_descriptor("event_loop_clients", help, None, MetricType::Gauge)?;
    for (index, clients) in per_loop.iter().enumerate() {
        let labels = [("loop", index.to_string())];
        let value = i64::try_from(*clients).unwrap_or(i64::MAX);
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Clients turned away, by reason.
fn encode_rejections(
    e: &mut DescriptorEncoder,
    s: &StatsSnapshot,
    kv: Option<&Totals>,
) -> fmt::Result {
    let mut series = vec![
        ("limit", s.rejected_over_limit),
        ("protected_mode", s.rejected_on_open),
    ];
    if let Some(totals) = kv {
        series.push(("cross_protocol", totals.cross_protocol));
    }
    let help = "Clients turned away: over --max-connections (limit), not on loopback in \
                protected mode, or closed for a line of HTTP (cross_protocol).";
    labelled_counter(e, ("rejected_connections", help, "reason"), &series)
}

/// KV mode's per-request counters and the latency histogram.
fn encode_commands(e: &mut DescriptorEncoder, t: &Totals) -> fmt::Result {
    let names: Vec<_> = Verb::ALL.iter().map(|v| counters::verb_name(*v)).collect();
    let verbs: Vec<_> = (Verb::ALL.iter().zip(&names))
        .map(|(v, name)| (name.as_str(), t.verb(*v)))
        .collect();
    let help =
        "Commands run, by verb (AUTH and DEBUG are answered before KV mode and not counted).";
    labelled_counter(e, ("commands", help, "verb"), &verbs)?;
    let errors: Vec<_> = ErrorKind::ALL
        .iter()
        .map(|k| (k.name(), t.error(*k)))
        .collect();
    let help = "Commands answered with an error, by kind: UNKNOWN COMMAND, NOT FOUND, ERROR from the store.";
    labelled_counter(e, ("command_errors", help, "kind"), &errors)?;
    counter(e, "keyspace_hits", "GETs that found their key.", t.hits)?;
    counter(
        e,
        "keyspace_misses",
        "GETs that did not find their key.",
        t.misses,
    )?;
    encode_subscriptions(e, t)?;
    encode_backups(e, t)?;
    encode_latency(e, t)
}

/// Backups begun, and the bytes of them sent.
fn encode_backups(e: &mut DescriptorEncoder, t: &Totals) -> fmt::Result {
    let help = "Backups begun (BACKUP requests that started one).";
    counter(e, "backups_started", help, t.backups)?;
    let help = "Bytes of backups handed to clients' connections.";
    counter(e, "backup_bytes_sent", help, t.backup_bytes)
}

/// Subscribers, the events sent to them, and those disconnected for falling behind.
fn encode_subscriptions(e: &mut DescriptorEncoder, t: &Totals) -> fmt::Result {
    let help = "Connections subscribed to a bucket now.";
    gauge(e, "subscribers", help, None, t.subscribers)?;
    let help = "Events (a bucket's changes) handed to subscribers' connections.";
    counter(e, "events_sent", help, t.events_sent)?;
    let help = "Subscribers disconnected because their unsent events passed \
                --subscriber-buffer-bytes.";
    counter(
        e,
        "slow_subscribers_disconnected",
        help,
        t.slow_subscribers_disconnected,
    )
}

fn encode_latency(e: &mut DescriptorEncoder, t: &Totals) -> fmt::Result {
    let help = "Time from a command's batch (the lines one read brought) arriving to its \
                replies being ready; every command of a batch is recorded with the batch's time.";
    let latency = Histogram {
        bounds_micros: &LATENCY_BOUNDS_MICROS,
        counts: &t.latency,
        sum_nanos: t.latency_sum_nanos,
    };
    histogram(e, ("command_duration", help), &latency)
}

/// A histogram as the counters keep it: a count per bucket (not cumulative), the last
/// bucket `+Inf`.
struct Histogram<'a> {
    bounds_micros: &'a [u64],
    counts: &'a [u64],
    sum_nanos: u64,
}

/// Encodes `h` in seconds. The encoders make the buckets cumulative, and want
/// `f64::INFINITY` as the last bound (they write `+Inf`; the text encoder adds a `+Inf`
/// bucket of its own when the last bound is finite).
fn histogram(e: &mut DescriptorEncoder, (name, help): (&str, &str), h: &Histogram) -> fmt::Result {
    let buckets: Vec<(f64, u64)> = h
        .bounds_micros
        .iter()
        .map(|micros| *micros as f64 / 1e6)
        .chain([f64::INFINITY])
        .zip(h.counts.iter().copied())
        .collect();
    let count = h.counts.iter().sum();
    let mut metric =
        e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    let sum = h.sum_nanos as f64 / 1e9;
    metric.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

/// Data size and, in durable mode, commits.
fn encode_store(e: &mut DescriptorEncoder, r: &StoreReport) -> fmt::Result {
    if let Some(cluster) = &r.cluster {
        // The data is the cluster's: counting it would mean scanning every node.
        return encode_cluster(e, cluster);
    }
    gauge(e, "buckets", "Buckets.", None, r.buckets)?;
    gauge(e, "keys", "Keys in all buckets.", None, r.keys)?;
    let used = "What the data holds, as --maxmemory counts it.";
    gauge(e, "used_memory", used, Some(&Unit::Bytes), r.used_memory)?;
    gauge(
        e,
        "max_memory",
        "The --maxmemory limit; 0: none.",
        Some(&Unit::Bytes),
        r.max_memory,
    )?;
    match &r.persistence {
        Some(p) => encode_persistence(e, p),
        None => Ok(()),
    }
}

/// Cluster mode: the engine's traffic with the Redis Cluster.
fn encode_cluster(e: &mut DescriptorEncoder, c: &ClusterStats) -> fmt::Result {
    let trips = "Pipelines and commands sent to the Redis Cluster (one round trip each).";
    counter(e, "cluster_round_trips", trips, c.round_trips)?;
    let requests = "Requests carried out on the Redis Cluster.";
    counter(e, "cluster_requests", requests, c.requests)?;
    let errors = "Requests answered ERROR because the cluster refused or failed them.";
    counter(e, "cluster_errors", errors, c.errors)?;
    let timeouts = "Requests answered ERROR because the cluster did not answer in time.";
    counter(e, "cluster_timeouts", timeouts, c.timeouts)?;
    let wait = "--cluster-wait-replicas: replicas a write must reach before its OK.";
    gauge(
        e,
        "cluster_wait_replicas",
        wait,
        None,
        u64::from(c.wait_replicas),
    )
}

fn encode_persistence(e: &mut DescriptorEncoder, p: &Persistence) -> fmt::Result {
    counter(
        e,
        "durable_commits",
        "Group commits: journal frames appended.",
        p.commits,
    )?;
    counter(
        e,
        "durable_syncs",
        "fdatasync calls that made commits durable.",
        p.syncs,
    )?;
    let errors = "Writes answered ERROR because the disk failed them.";
    counter(e, "durable_write_errors", errors, p.write_errors)?;
    let journal = "Size of the journal being appended to; starts again after a compaction.";
    gauge(
        e,
        "durable_journal",
        journal,
        Some(&Unit::Bytes),
        p.journal_bytes,
    )?;
    let help = "Time a group commit took to append its frame to the journal and, with \
                --fsync always, fdatasync it.";
    let commits = Histogram {
        bounds_micros: &COMMIT_LATENCY_BOUNDS_MICROS,
        counts: &p.commit_latency,
        sum_nanos: p.commit_latency_sum_nanos,
    };
    histogram(e, ("durable_commit_duration", help), &commits)
}

fn encode_process(e: &mut DescriptorEncoder, p: &ProcessStats) -> fmt::Result {
    if let Some(seconds) = p.cpu_seconds {
        let metric = ConstCounter::new(seconds);
        let help = "User and system CPU time the process has used.";
        metric.encode(e.encode_descriptor(
            "process_cpu",
            help,
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?)?;
    }
    if let Some(bytes) = p.resident_bytes {
        let help = "Resident set size of the process.";
        gauge(
            e,
            "process_resident_memory",
            help,
            Some(&Unit::Bytes),
            bytes,
        )?;
    }
    if let Some(fds) = p.open_fds {
        gauge(e, "process_open_fds", "Open file descriptors.", None, fds)?;
    }
    if let Some(fds) = p.max_fds {
        gauge(
            e,
            "process_max_fds",
            "Soft limit on open file descriptors.",
            None,
            fds,
        )?;
    }
    Ok(())
}
