//! A real Redis Cluster on loopback for the cluster engine's tests: six `redis-server`
//! processes (three masters with one replica each) in a temporary directory, created with
//! `redis-cli --cluster create`, stopped by PID when the [`RedisCluster`] is dropped (also
//! when the test panics). Only processes it started are ever signalled.
//!
//! `redis-server` and `redis-cli` come from Debian's `redis-server` package; `.ci/run`
//! installs it when missing. Without them the test fails, saying so, rather than skipping.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use super::temp_dir;

/// How long a node may take to notice a dead peer (`cluster-node-timeout`, ms): short, so
/// that a failover completes within a couple of seconds.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// How long the cluster may take to form, or to settle after a failover.
const FORMING: Duration = Duration::from_secs(30);

/// Six nodes of a cluster running on loopback.
pub struct RedisCluster {
    /// Each node's client port and process (`None` once killed).
    nodes: Vec<(u16, Option<Child>)>,
    /// Config files, logs; removed on drop after the processes are gone.
    dir: TempDir,
}

impl RedisCluster {
    /// Starts six nodes, makes them a cluster of three masters with one replica each, and
    /// waits until every node says `cluster_state:ok` and every master has its replica.
    pub fn start() -> RedisCluster {
        require_redis();
        let dir = temp_dir("redis-cluster");
        let ports = free_ports(6);
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        for &port in &ports {
            let child = start_node(cluster.dir.path(), port);
            cluster.nodes.push((port, Some(child)));
        }
        for &port in &ports {
            cluster.wait_for(&format!("node {port} answers PING"), || {
                cli_quiet(port, &["PING"]).is_some_and(|r| r.trim() == "PONG")
            });
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        create.args(ports.iter().map(|p| format!("127.0.0.1:{p}")));
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let created = create
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli --cluster create: {e}"));
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        cluster.wait_until_healthy();
        cluster
    }

    /// `127.0.0.1:p,127.0.0.1:q,...`: every node, for `--redis-cluster`.
    pub fn seeds(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        nodes.join(",")
    }

    /// Waits until every live node says `cluster_state:ok`, every master has a connected
    /// replica (so `WAIT 1` can succeed), and each replica has everything its master had
    /// when this was called (so a failover loses nothing written before).
    pub fn wait_until_healthy(&self) {
        let live: Vec<u16> = self.live_ports();
        self.wait_for("cluster_state:ok on every node", || {
            live.iter().all(|&port| {
                cli_quiet(port, &["CLUSTER", "INFO"])
                    .is_some_and(|r| r.contains("cluster_state:ok"))
            })
        });
        self.wait_for("every master has a connected replica", || {
            self.masters().iter().all(|&port| {
                cli_quiet(port, &["INFO", "replication"])
                    .is_some_and(|r| r.contains("connected_slaves:1") && r.contains("state=online"))
            })
        });
        // `state=online` is not enough: after a diskless full sync the master holds back
        // what was written since until the replica's first `REPLCONF ACK` (up to a second
        // later). Seen in the frozen-master test: a master frozen in that window had a
        // replica with none of the test's buckets, which took over and answered `NOT FOUND`.
        for master in self.masters() {
            let written = info_number(master, "master_repl_offset");
            let replica = self.replica_of(master);
            self.wait_for(
                &format!("replica {replica} has master {master}'s writes up to {written}"),
                || {
                    cli_quiet(replica, &["INFO", "replication"])
                        .and_then(|info| field(&info, "slave_repl_offset"))
                        .is_some_and(|offset| offset >= written)
                },
            );
        }
    }

    /// The ports of the nodes that are masters now (by their own `INFO replication`).
    pub fn masters(&self) -> Vec<u16> {
        self.live_ports()
            .into_iter()
            .filter(|&port| {
                cli_quiet(port, &["INFO", "replication"]).is_some_and(|r| r.contains("role:master"))
            })
            .collect()
    }

    /// The port of the master that holds `key`'s slot, by `CLUSTER NODES` as a live node
    /// sees it.
    pub fn master_of(&self, key: &[u8]) -> u16 {
        let key = String::from_utf8_lossy(key).into_owned();
        let port = self.live_ports()[0];
        let slot: u16 = cli(port, &["CLUSTER", "KEYSLOT", &key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT gives a number");
        let nodes = cli(port, &["CLUSTER", "NODES"]);
        // Lines: id addr:port@bus flags master ping pong epoch state slot-ranges...
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (from, to) = range.split_once('-').unwrap_or((range, range));
                match (from.parse::<u16>(), to.parse::<u16>()) {
                    (Ok(from), Ok(to)) => (from..=to).contains(&slot),
                    _ => false,
                }
            });
            if serves {
                let addr = fields[1].split('@').next().unwrap_or_default();
                return addr
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse().ok())
                    .unwrap_or_else(|| panic!("no port in {line:?}"));
            }
        }
        panic!("no master serves slot {slot}:\n{nodes}");
    }

    /// The port of the replica of the master on `master`.
    pub fn replica_of(&self, master: u16) -> u16 {
        let info = cli(master, &["INFO", "replication"]);
        // slave0:ip=127.0.0.1,port=7004,state=online,offset=...,lag=0
        info.lines()
            .find_map(|line| {
                let rest = line.strip_prefix("slave0:")?;
                rest.split(',')
                    .find_map(|field| field.strip_prefix("port="))?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("master {master} has no replica:\n{info}"))
    }

    /// Kills the node on `port` with SIGKILL (it was started by this fixture).
    pub fn kill(&mut self, port: u16) {
        let child = self
            .nodes
            .iter_mut()
            .find(|(p, _)| *p == port)
            .and_then(|(_, child)| child.take());
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the node on `port` (`SIGSTOP`) until the returned guard is dropped, which
    /// resumes it (`SIGCONT`), also when the test panics: a node that is alive, still accepts
    /// TCP connections (the kernel completes the handshake) and answers nothing, as a hung,
    /// swapped-out or cut-off node does. A stopped node is still killed by `Drop`.
    pub fn freeze(&self, port: u16) -> Frozen<'_> {
        let sent = self.signal(port, libc::SIGSTOP);
        assert_eq!(sent, 0, "kill(SIGSTOP) the node on port {port}");
        Frozen {
            cluster: self,
            port,
        }
    }

    /// Sends `signal` to the node on `port`; kill(2)'s return value.
    fn signal(&self, port: u16, signal: libc::c_int) -> libc::c_int {
        let Some(pid) = self
            .nodes
            .iter()
            .find(|(p, _)| *p == port)
            .and_then(|(_, child)| child.as_ref().map(|c| c.id()))
        else {
            panic!("no live node on port {port}");
        };
        let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
        // SAFETY: kill(2) with a pid this fixture spawned and still owns (not yet waited
        // for, so not reused) and a valid signal number; it touches no memory of ours.
        unsafe { libc::kill(pid, signal) }
    }

    /// Whether the node on `port` says it is a master (`ROLE`); `false` if it does not
    /// answer.
    pub fn is_master(&self, port: u16) -> bool {
        cli_quiet(port, &["ROLE"]).is_some_and(|r| r.lines().next() == Some("master"))
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|(_, child)| child.is_some())
            .map(|(port, _)| *port)
            .collect()
    }

    /// Polls `done` until it holds, or panics after [`FORMING`] with the nodes' logs.
    fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + FORMING;
        while !done() {
            if Instant::now() > deadline {
                panic!(
                    "Redis Cluster: no {what} within {FORMING:?}\n{}",
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of every node's log, for a failure message.
    fn logs(&self) -> String {
        let mut text = String::new();
        for (port, _) in &self.nodes {
            let path = self.dir.path().join(format!("redis-{port}.log"));
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            text.push_str(&format!("--- node {port}\n"));
            for line in tail.into_iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

/// A node stopped by [`RedisCluster::freeze`]; dropping it resumes the node.
pub struct Frozen<'a> {
    cluster: &'a RedisCluster,
    port: u16,
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        // No assertion: this may run while a test panics (a node already killed is fine).
        if self
            .cluster
            .nodes
            .iter()
            .any(|(p, c)| *p == self.port && c.is_some())
        {
            let _ = self.cluster.signal(self.port, libc::SIGCONT);
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Fails the test, with how to fix it, when the Redis binaries are missing.
fn require_redis() {
    for program in ["redis-server", "redis-cli"] {
        let found = Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{program} is not installed: the cluster tests need Redis (Debian: \
             `apt-get install -y redis-server`; .ci/run installs it)"
        );
    }
}

/// Starts one cluster node on `port` (bus port `port + 10000`), data in `dir`.
fn start_node(dir: &Path, port: u16) -> Child {
    let file = |name: String| dir.join(name).to_string_lossy().into_owned();
    // A directory of its own: a replica's full sync writes dump.rdb there.
    let data = dir.join(format!("node-{port}"));
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("mkdir {}: {e}", data.display()));
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-config-file", &file(format!("nodes-{port}.conf"))])
        .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
        // As the README recommends: a dead master makes only its own slots fail.
        .args(["--cluster-require-full-coverage", "no"])
        .args(["--dir", &data.to_string_lossy()])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--logfile", &file(format!("redis-{port}.log"))])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start redis-server on port {port}: {e}"))
}

/// A number from `INFO replication` of the node on `port`; panics if there is none.
fn info_number(port: u16, name: &str) -> u64 {
    let info = cli(port, &["INFO", "replication"]);
    field(&info, name).unwrap_or_else(|| panic!("no {name} in INFO of node {port}:\n{info}"))
}

/// The number after `name:` on a line of `info`.
fn field(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|line| line.trim_end().strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.parse().ok())
}

/// `redis-cli -p port args...`'s output; panics if it fails.
pub fn cli(port: u16, args: &[&str]) -> String {
    cli_quiet(port, args).unwrap_or_else(|| panic!("redis-cli -p {port} {args:?} failed"))
}

/// `redis-cli -p port args...`'s output, or `None` if it failed.
pub fn cli_quiet(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Ports handed out in this process, so that two clusters started at once by tests in
/// parallel never pick the same one.
static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// `count` ports `p` such that `p` and the cluster bus port `p + 10000` are both free, all
/// below Linux's ephemeral range (32768 up), so no `--port 0` of another test can take one
/// meanwhile.
fn free_ports(count: usize) -> Vec<u16> {
    const LOW: u32 = 12_000;
    const SPAN: u32 = 10_000;
    let mut taken = TAKEN.lock().unwrap_or_else(PoisonError::into_inner);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().wrapping_mul(2_654_435_761);
    let mut ports = Vec::new();
    let mut candidate = seed % SPAN;
    for _ in 0..SPAN {
        candidate = (candidate + 7) % SPAN;
        let port = (LOW + candidate) as u16;
        let bus = port + 10_000;
        let clash = |p: &u16| *p == port || *p == bus || p + 10_000 == port || *p == bus + 10_000;
        if ports.iter().any(clash) || taken.iter().any(clash) {
            continue;
        }
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(bus) {
            ports.push(port);
            if ports.len() == count {
                taken.extend(&ports);
                return ports;
            }
        }
    }
    panic!("no {count} free port pairs for a Redis Cluster");
}
