//! `INFO` and `INFO section` (PROTOCOL.md, "INFO"): the server's state as report lines,
//! `# Section` then `name:value`, with Redis' names where Redis has one.
//!
//! The per-request counters are `counters.rs`'s; the machinery's come in a
//! [`StatsSnapshot`], the store's in a [`StoreReport`].
//!
//! As in Redis, `INFO` alone leaves out the long sections (`# Commandstats`,
//! `# Errorstats`): `INFO all`, `INFO everything` or the section's name shows them.

use bytes::BytesMut;
use kv_protocol::Reply;
use kv_store::StoreReport;
use line_server::StatsSnapshot;
use std::fmt::Write as _;

use super::counters::{self, ErrorKind, Totals, Verb};

/// Sections `INFO` without an argument leaves out, as Redis does.
const LONG_SECTIONS: [&str; 2] = ["Commandstats", "Errorstats"];

/// Appends the `INFO` reply for `section` (every section if `None`; nothing but `OK` for
/// an unknown one). `per_loop`: clients each event loop serves, in loop order.
pub(crate) fn report(
    section: Option<&[u8]>,
    (server, per_loop): (&StatsSnapshot, &[u64]),
    store: &StoreReport,
    out: &mut BytesMut,
) {
    report_of(section, (server, per_loop), store, &counters::totals(), out);
}

/// [`report`] of given request counters: the counters are process-wide, so a test that
/// renders twice passes its own to see the same numbers both times.
fn report_of(
    section: Option<&[u8]>,
    (server, per_loop): (&StatsSnapshot, &[u64]),
    store: &StoreReport,
    totals: &Totals,
    out: &mut BytesMut,
) {
    let text = render((server, per_loop), store, totals);
    let mut lines = String::new();
    let mut include = false;
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("# ") {
            include = wanted(section, title);
        }
        if include {
            lines.push_str(line);
            lines.push_str("\r\n");
        }
    }
    Reply::Report(lines.as_bytes()).encode(out);
}

/// Whether the section `title` answers `INFO section` (`None`: plain `INFO`).
fn wanted(section: Option<&[u8]>, title: &str) -> bool {
    match section {
        // `default`: what plain INFO gives, as in Redis.
        None => !LONG_SECTIONS.contains(&title),
        Some(s) if s.eq_ignore_ascii_case(b"default") => !LONG_SECTIONS.contains(&title),
        Some(s) if s.eq_ignore_ascii_case(b"all") || s.eq_ignore_ascii_case(b"everything") => true,
        Some(s) => s.eq_ignore_ascii_case(title.as_bytes()),
    }
}

/// `# Threads`: the event loops, how many take new clients now, how many connections have
/// moved between them, and each one's clients under `names` (a line per thread, as Redis
/// 8's `# Threads` has one per I/O thread).
fn threads<'a>(
    server: &StatsSnapshot,
    per_loop: &[u64],
    names: &'a [String],
) -> Vec<(&'a str, String)> {
    let mut fields = vec![
        ("event_loops", server.event_loops.to_string()),
        ("event_loops_active", server.active_event_loops.to_string()),
        ("migrations", server.migrations.to_string()),
    ];
    let each = names.iter().zip(per_loop);
    fields.extend(each.map(|(name, clients)| (name.as_str(), format!("clients={clients}"))));
    fields
}

/// Every section, one `name:value` per line.
fn render(
    (server, per_loop): (&StatsSnapshot, &[u64]),
    store: &StoreReport,
    totals: &Totals,
) -> String {
    let mut text = String::new();
    let mut section = |title: &str, fields: &[(&str, String)]| {
        let _ = writeln!(text, "# {title}");
        for (name, value) in fields {
            let _ = writeln!(text, "{name}:{value}");
        }
    };
    section(
        "Server",
        &[
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            (
                "mode",
                if store.cluster.is_some() {
                    "cluster"
                } else {
                    "kv"
                }
                .to_string(),
            ),
            ("uptime_in_seconds", server.uptime_secs.to_string()),
            ("tcp_port", server.port.to_string()),
        ],
    );
    section(
        "Clients",
        &[
            ("connected_clients", server.connected_clients.to_string()),
            ("maxclients", server.max_connections.to_string()),
            ("subscribers", totals.subscribers.to_string()),
        ],
    );
    section(
        "Memory",
        &[
            ("used_memory", store.used_memory.to_string()),
            ("maxmemory", store.max_memory.to_string()),
        ],
    );
    section(
        "Stats",
        &[
            (
                "total_connections_received",
                server.connections_received.to_string(),
            ),
            (
                "rejected_connections",
                (server.rejected_connections + totals.cross_protocol).to_string(),
            ),
            (
                "total_commands_processed",
                totals.commands_processed().to_string(),
            ),
            ("keyspace_hits", totals.hits.to_string()),
            ("keyspace_misses", totals.misses.to_string()),
            ("total_net_input_bytes", server.net_input_bytes.to_string()),
            (
                "total_net_output_bytes",
                server.net_output_bytes.to_string(),
            ),
            (
                "tls_handshake_failures",
                server.tls_handshake_failures.to_string(),
            ),
            ("events_sent", totals.events_sent.to_string()),
            (
                "slow_subscribers_disconnected",
                totals.slow_subscribers_disconnected.to_string(),
            ),
            ("backups_started", totals.backups.to_string()),
            ("backup_bytes_sent", totals.backup_bytes.to_string()),
        ],
    );
    section(
        "Supervision",
        &[
            ("acceptor_restarts", server.acceptor_restarts.to_string()),
            ("accept_errors", server.accept_errors.to_string()),
            (
                "accept_errors_descriptors",
                server.accept_errors_descriptors.to_string(),
            ),
            ("client_panics", server.client_panics.to_string()),
        ],
    );
    let loop_names: Vec<String> = (0..per_loop.len())
        .map(|index| format!("event_loop_{index}"))
        .collect();
    section("Threads", &threads(server, per_loop, &loop_names));
    // A cluster store cannot count without scanning every node: no section beats zeros.
    if store.cluster.is_none() {
        section(
            "Keyspace",
            &[
                ("buckets", store.buckets.to_string()),
                ("keys", store.keys.to_string()),
            ],
        );
    }
    if let Some(persistence) = &store.persistence {
        section(
            "Persistence",
            &[
                ("fsync", persistence.fsync.to_string()),
                ("commits", persistence.commits.to_string()),
                ("syncs", persistence.syncs.to_string()),
                ("write_errors", persistence.write_errors.to_string()),
                ("journal_bytes", persistence.journal_bytes.to_string()),
            ],
        );
    }
    if let Some(cluster) = &store.cluster {
        section(
            "Cluster",
            &[
                ("cluster_round_trips", cluster.round_trips.to_string()),
                ("cluster_requests", cluster.requests.to_string()),
                ("cluster_errors", cluster.errors.to_string()),
                ("cluster_timeouts", cluster.timeouts.to_string()),
                ("cluster_wait_replicas", cluster.wait_replicas.to_string()),
            ],
        );
    }
    let calls: Vec<_> = Verb::ALL
        .iter()
        .map(|v| {
            (
                format!("cmdstat_{}", counters::verb_name(*v)),
                totals.verb(*v),
            )
        })
        .collect();
    let errors: Vec<_> = ErrorKind::ALL
        .iter()
        .map(|k| (format!("errorstat_{}", k.name()), totals.error(*k)))
        .collect();
    let _ = writeln!(text, "# Commandstats");
    for (name, calls) in calls {
        let _ = writeln!(text, "{name}:calls={calls}");
    }
    let _ = writeln!(text, "# Errorstats");
    for (name, count) in errors {
        let _ = writeln!(text, "{name}:count={count}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(section: Option<&[u8]>, store: &StoreReport) -> String {
        let mut out = BytesMut::new();
        let machinery = (&StatsSnapshot::default(), &[][..]);
        report_of(section, machinery, store, &Totals::default(), &mut out);
        String::from_utf8(out.to_vec()).expect("text")
    }

    #[test]
    fn every_section_then_ok_and_persistence_only_when_durable() {
        let all = reported(None, &StoreReport::default());
        for title in [
            "Server",
            "Clients",
            "Memory",
            "Stats",
            "Supervision",
            "Threads",
            "Keyspace",
        ] {
            assert!(all.contains(&format!("# {title}\r\n")), "{all}");
        }
        assert!(!all.contains("# Persistence"), "{all}");
        assert!(all.ends_with("\r\nOK\r\n"), "{all}");
        assert!(all
            .lines()
            .all(|l| l == "OK" || l.starts_with('#') || l.contains(':')));
    }

    #[test]
    fn the_threads_section_lists_each_loop_and_how_many_are_active() {
        let server = StatsSnapshot {
            event_loops: 2,
            active_event_loops: 1,
            migrations: 7,
            ..StatsSnapshot::default()
        };
        let mut out = BytesMut::new();
        report(
            Some(b"threads"),
            (&server, &[3, 0]),
            &StoreReport::default(),
            &mut out,
        );
        assert_eq!(
            out,
            "# Threads\r\nevent_loops:2\r\nevent_loops_active:1\r\nmigrations:7\r\n\
             event_loop_0:clients=3\r\nevent_loop_1:clients=0\r\nOK\r\n"
        );
    }

    #[test]
    fn one_section_in_any_case_or_just_ok_for_an_unknown_one() {
        let store = StoreReport {
            buckets: 2,
            keys: 5,
            ..StoreReport::default()
        };
        assert_eq!(
            reported(Some(b"keySPACE"), &store),
            "# Keyspace\r\nbuckets:2\r\nkeys:5\r\nOK\r\n"
        );
        assert_eq!(reported(Some(b"nonsense"), &store), "OK\r\n");
        assert_eq!(reported(Some(b"DEFAULT"), &store), reported(None, &store));
    }

    #[test]
    fn a_cluster_store_reports_its_mode_and_counters_and_no_keyspace() {
        let store = StoreReport {
            cluster: Some(kv_store::ClusterStats {
                round_trips: 3,
                ..kv_store::ClusterStats::default()
            }),
            ..StoreReport::default()
        };
        let all = reported(None, &store);
        assert!(all.contains("mode:cluster\r\n"), "{all}");
        assert!(
            all.contains("# Cluster\r\ncluster_round_trips:3\r\n"),
            "{all}"
        );
        assert!(!all.contains("# Keyspace"), "{all}");
    }
}
