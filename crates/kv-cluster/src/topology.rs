//! The cluster's layout as its nodes report it (`CLUSTER SLOTS`), asked of many nodes at
//! once so that one that does not answer delays no one ([`survey`]).
//!
//! [`crate::failover`] compares layouts to notice that a master was replaced while the
//! redis client goes on sending to it (see there why the client does not notice itself).

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::{AsyncConnectionConfig, Value};

/// Which master serves which slots, and which replicas each has, as one node reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Sorted by first slot.
    shards: Vec<Shard>,
}

/// One entry of `CLUSTER SLOTS`: a range of slots, its master and its replicas, each as
/// `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shard {
    first: u16,
    last: u16,
    master: String,
    replicas: Vec<String>,
}

impl Layout {
    /// Whether the same masters serve the same slots in both (replicas do not route
    /// requests, so they do not count).
    pub(crate) fn same_masters(&self, other: &Layout) -> bool {
        self.masters().eq(other.masters())
    }

    fn masters(&self) -> impl Iterator<Item = (u16, u16, &str)> {
        self.shards
            .iter()
            .map(|s| (s.first, s.last, s.master.as_str()))
    }

    /// Every node named, masters and replicas.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &str> {
        self.shards.iter().flat_map(|s| {
            std::iter::once(s.master.as_str()).chain(s.replicas.iter().map(String::as_str))
        })
    }

    /// How many slot ranges have a master in `self` other than in `before` (a range
    /// absent from `before` counts).
    pub(crate) fn moved_since(&self, before: &Layout) -> usize {
        let before: BTreeSet<_> = before.masters().collect();
        self.masters().filter(|m| !before.contains(m)).count()
    }

    /// The layout in a `CLUSTER SLOTS` reply from the node at `asked` (`HOST:PORT`);
    /// `None` if it is not one.
    ///
    /// Each entry is `[first, last, [host, port, id, ...], [replica...]...]`. As the command's
    /// documentation says, an empty (or null) host means "the node you asked", and `?` an
    /// unknown address (such a node is left out).
    pub(crate) fn parse(reply: Value, asked: &str) -> Option<Layout> {
        let asked_host = split(asked)?.0;
        let Value::Array(entries) = reply else {
            return None;
        };
        let node = |value: &Value| -> Option<String> {
            let Value::Array(fields) = value else {
                return None;
            };
            let host = match fields.first()? {
                Value::BulkString(host) if host.is_empty() => asked_host.to_string(),
                Value::BulkString(host) if host == b"?" => return None,
                Value::BulkString(host) => String::from_utf8(host.clone()).ok()?,
                Value::Nil => asked_host.to_string(),
                _ => return None,
            };
            let Value::Int(port) = fields.get(1)? else {
                return None;
            };
            Some(address(&host, u16::try_from(*port).ok()?))
        };
        let mut shards = Vec::with_capacity(entries.len());
        for entry in &entries {
            let Value::Array(fields) = entry else {
                return None;
            };
            let (Some(Value::Int(first)), Some(Value::Int(last))) = (fields.first(), fields.get(1))
            else {
                return None;
            };
            shards.push(Shard {
                first: u16::try_from(*first).ok()?,
                last: u16::try_from(*last).ok()?,
                master: node(fields.get(2)?)?,
                replicas: fields[3..].iter().filter_map(node).collect(),
            });
        }
        shards.sort_by_key(|s| s.first);
        Some(Layout { shards })
    }
}

/// `HOST:PORT`, with brackets around an IPv6 host.
fn address(host: &str, port: u16) -> String {
    match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    }
}

/// `HOST:PORT` into its host (without IPv6 brackets) and port.
fn split(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port.parse().ok()?))
}

/// What most of the nodes asked by [`survey`] say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Survey {
    pub(crate) layout: Layout,
    /// The nodes that reported it (`HOST:PORT` as asked): alive and of one mind.
    pub(crate) agreeing: Vec<String>,
}

/// Asks each of `nodes` (`HOST:PORT`) for the layout, each over a fresh connection within
/// `patience`, all at once; returns the layout that more than half of them report, as soon
/// as that many have, or else the one more than half of those that answered report.
///
/// A node that stopped answering (stopped, swapped out, cut off) still completes TCP
/// handshakes, so it costs one connection and no wait once the others agree; nodes briefly
/// disagree while a failover propagates (the new master's broadcast reaches them within
/// milliseconds: Redis Cluster spec, "Configuration handling, propagation, and failovers").
pub(crate) async fn survey(nodes: &BTreeSet<String>, patience: Duration) -> Option<Survey> {
    let mut asking: FuturesUnordered<_> = nodes
        .iter()
        .map(|node| async move { (node.clone(), ask(node, patience).await) })
        .collect();
    let mut answers: Vec<(String, Layout)> = Vec::new();
    while let Some((node, layout)) = asking.next().await {
        if let Some(layout) = layout {
            answers.push((node, layout));
            if let Some(survey) = most(&answers, nodes.len()) {
                return Some(survey);
            }
        }
    }
    most(&answers, answers.len())
}

/// The layout more than half of `of` nodes reported in `answers`, if there is one.
fn most(answers: &[(String, Layout)], of: usize) -> Option<Survey> {
    answers.iter().find_map(|(_, layout)| {
        let agreeing: Vec<String> = answers
            .iter()
            .filter(|(_, other)| other == layout)
            .map(|(node, _)| node.clone())
            .collect();
        (agreeing.len() * 2 > of).then(|| Survey {
            layout: layout.clone(),
            agreeing,
        })
    })
}

/// `CLUSTER SLOTS` of the node at `node`, or `None` if it does not answer one within
/// `patience`.
async fn ask(node: &str, patience: Duration) -> Option<Layout> {
    let asking = async {
        let client = redis::Client::open(format!("redis://{node}")).ok()?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(patience))
            .set_response_timeout(Some(patience));
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .ok()?;
        let reply: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut connection)
            .await
            .ok()?;
        Layout::parse(reply, node)
    };
    tokio::time::timeout(patience, asking).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn node(host: Value, port: i64) -> Value {
        Value::Array(vec![host, Value::Int(port), bulk("0123abcd")])
    }

    fn entry(first: i64, last: i64, nodes: Vec<Value>) -> Value {
        let mut fields = vec![Value::Int(first), Value::Int(last)];
        fields.extend(nodes);
        Value::Array(fields)
    }

    fn layout(shards: &[(u16, u16, &str, &[&str])]) -> Layout {
        Layout {
            shards: shards
                .iter()
                .map(|&(first, last, master, replicas)| Shard {
                    first,
                    last,
                    master: master.into(),
                    replicas: replicas.iter().map(|r| r.to_string()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn cluster_slots_replies_are_read_as_the_command_documents_them() {
        let reply = Value::Array(vec![
            entry(
                5461,
                10922,
                vec![node(bulk("10.0.0.2"), 7001), node(bulk("10.0.0.5"), 7004)],
            ),
            // Empty or null host: the node asked; `?`: unknown, left out.
            entry(
                0,
                5460,
                vec![
                    node(bulk(""), 7000),
                    node(Value::Nil, 7003),
                    node(bulk("?"), 1),
                ],
            ),
            entry(10923, 16383, vec![node(bulk("::1"), 7002)]),
        ]);
        assert_eq!(
            Layout::parse(reply, "10.0.0.1:7000"),
            Some(layout(&[
                (0, 5460, "10.0.0.1:7000", &["10.0.0.1:7003"]),
                (5461, 10922, "10.0.0.2:7001", &["10.0.0.5:7004"]),
                (10923, 16383, "[::1]:7002", &[]),
            ]))
        );
        assert_eq!(Layout::parse(bulk("ERR"), "h:1"), None);
        assert_eq!(
            Layout::parse(Value::Array(vec![entry(0, 1, vec![])]), "h:1"),
            None
        );
    }

    #[test]
    fn only_masters_make_layouts_differ() {
        let before = layout(&[(0, 99, "a:1", &["b:1"]), (100, 199, "c:1", &["d:1"])]);
        let replica_gone = layout(&[(0, 99, "a:1", &[]), (100, 199, "c:1", &["d:1"])]);
        let failed_over = layout(&[(0, 99, "b:1", &[]), (100, 199, "c:1", &["d:1"])]);
        assert!(before.same_masters(&replica_gone));
        assert!(!before.same_masters(&failed_over));
        assert_eq!(failed_over.moved_since(&before), 1);
        assert_eq!(
            before.nodes().collect::<Vec<_>>(),
            ["a:1", "b:1", "c:1", "d:1"]
        );
    }

    /// A fake cluster node on loopback: answers `CLUSTER SLOTS` with one master (the node
    /// on `master_port`) serving every slot and anything else with `+OK`; or, `silent`,
    /// accepts connections and reads requests but never answers (a stopped node).
    async fn fake_node(master_port: Option<u16>, silent: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let master = master_port.unwrap_or(port);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
                    while let Ok(n @ 1..) = socket.read(&mut chunk).await {
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some((command, used)) = resp_command(&buf) {
                            buf.drain(..used);
                            let reply = match command.as_slice() {
                                [c, s]
                                    if c.eq_ignore_ascii_case(b"CLUSTER")
                                        && s.eq_ignore_ascii_case(b"SLOTS") =>
                                {
                                    format!(
                                        "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n\
                                         :{master}\r\n$2\r\nid\r\n"
                                    )
                                }
                                _ => "+OK\r\n".to_string(),
                            };
                            if !silent && socket.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        format!("127.0.0.1:{port}")
    }

    /// The first complete command (an array of bulk strings) in `buf`, and its length.
    fn resp_command(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
        let line = |at: usize| -> Option<(&[u8], usize)> {
            let end = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
            Some((&buf[at + 1..end], end + 2))
        };
        let number = |bytes: &[u8]| std::str::from_utf8(bytes).ok()?.parse::<usize>().ok();
        let (count, mut at) = line(0)?;
        let mut command = Vec::new();
        for _ in 0..number(count)? {
            let (len, start) = line(at)?;
            let end = start + number(len)?;
            command.push(buf.get(start..end)?.to_vec());
            at = end + 2;
        }
        (buf.len() >= at).then_some((command, at))
    }

    #[tokio::test]
    async fn a_node_that_never_answers_holds_up_no_survey() {
        let first = fake_node(None, false).await;
        let port = first.rsplit_once(':').unwrap().1.parse().unwrap();
        let mut nodes: BTreeSet<String> = BTreeSet::new();
        nodes.insert(first.clone());
        for _ in 0..2 {
            nodes.insert(fake_node(Some(port), false).await);
        }
        let stopped = fake_node(Some(port), true).await;
        nodes.insert(stopped.clone());
        let patience = Duration::from_secs(20);
        let started = std::time::Instant::now();
        let found = survey(&nodes, patience).await.expect("a layout");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(found.layout, layout(&[(0, 16383, &first, &[])]));
        assert_eq!(found.agreeing.len(), 3);
        assert!(!found.agreeing.contains(&stopped));
        // Alone, it is given up on after `patience`.
        let alone = BTreeSet::from([stopped]);
        let started = std::time::Instant::now();
        assert_eq!(survey(&alone, Duration::from_millis(200)).await, None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_layout_counts_once_more_than_half_report_it() {
        let old = layout(&[(0, 99, "a:1", &[])]);
        let new = layout(&[(0, 99, "b:1", &[])]);
        let answers = |list: &[(&str, &Layout)]| -> Vec<(String, Layout)> {
            list.iter()
                .map(|(node, layout)| (node.to_string(), (*layout).clone()))
                .collect()
        };
        let two_of_five = answers(&[("b:1", &new), ("c:1", &new)]);
        assert_eq!(most(&two_of_five, 5), None);
        assert_eq!(
            most(&two_of_five, 3).map(|s| (s.layout, s.agreeing)),
            Some((new.clone(), vec!["b:1".to_string(), "c:1".to_string()]))
        );
        let split = answers(&[("b:1", &new), ("c:1", &old)]);
        assert_eq!(most(&split, 2), None);
    }
}
