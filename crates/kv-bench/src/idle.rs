//! Idle mode: open N connections, have each served once, leave them idle, and report how
//! much the server's resident memory grew per connection.
//!
//! By default each connection sends one ping and waits for its answer before going idle,
//! so the server has really accepted and served it (a connection still in the accept
//! backlog costs the server nothing yet, which would flatter it) and any buffer the server
//! keeps after serving shows up in the measurement. `--idle-silent` connections never send
//! a byte: that is the cost of a connection the server has accepted but never read from.
//!
//! With `--tls` every connection finishes its handshake before it counts as open, so the
//! figure includes what the server keeps per TLS session (rustls's state and buffers).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use kv_client::TlsOptions;
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::conn::{Conn, Connector};
use crate::limits;
use crate::stats::IdleReport;
use crate::workload::{Proto, ReplyCheck};

/// Connections opened at once: enough to be quick, few enough not to overflow a
/// server's accept backlog (Redis's default is 511).
const OPEN_CONCURRENCY: usize = 128;
/// How long one connection may take to connect (and finish its TLS handshake) and answer
/// its ping.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// What an idle run needs.
#[derive(Debug, Clone)]
pub struct IdleConfig {
    pub label: String,
    pub addr: SocketAddr,
    pub proto: Proto,
    pub conns: usize,
    pub server_pid: Option<u32>,
    /// How long to wait after the last connection opens before measuring, so the server
    /// has finished reacting (released buffers, run its timers).
    pub settle: Duration,
    /// Send one ping on each connection (the default) or never a byte (`--idle-silent`),
    /// which shows what a connection costs before it is first read from.
    pub ping: bool,
    /// Speak TLS (`--tls`); `None`: plain TCP.
    pub tls: Option<TlsOptions>,
    /// `AUTH` with this on every connection first (`--password`; KV protocol only).
    pub password: Option<String>,
}

/// Runs idle mode. Blocks the calling thread.
pub fn run(config: IdleConfig) -> Result<IdleReport, String> {
    limits::raise_open_files(config.conns as u64 + 256)?;
    let connector = Connector::new(config.tls.as_ref(), config.password.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let rss = |pid: Option<u32>| pid.map(resident_kib).transpose();
    let rss_before_kib = rss(config.server_pid)?;
    let (streams, errors) = runtime.block_on(open_all(&config, &connector));
    runtime.block_on(async { tokio::time::sleep(config.settle).await });
    let rss_after_kib = rss(config.server_pid)?;
    let open = streams.len();
    let bytes_per_conn = match (rss_before_kib, rss_after_kib) {
        (Some(before), Some(after)) if open > 0 => {
            Some((after as f64 - before as f64) * 1024.0 / open as f64)
        }
        _ => None,
    };
    drop(streams);
    Ok(IdleReport {
        label: config.label,
        proto: config.proto,
        addr: config.addr.to_string(),
        requested: config.conns,
        open,
        errors,
        server_pid: config.server_pid,
        rss_before_kib,
        rss_after_kib,
        bytes_per_conn,
        pinged: config.ping,
        tls: config.tls.is_some(),
    })
}

/// Opens the connections, `OPEN_CONCURRENCY` at a time; returns the good ones and the
/// number that failed.
async fn open_all(config: &IdleConfig, connector: &Connector) -> (Vec<Conn>, u64) {
    let mut streams = Vec::with_capacity(config.conns);
    let mut errors = 0;
    let mut pending = JoinSet::new();
    let mut started = 0;
    while started < config.conns || !pending.is_empty() {
        while started < config.conns && pending.len() < OPEN_CONCURRENCY {
            pending.spawn(open_one(
                connector.clone(),
                config.addr,
                config.proto,
                config.ping,
            ));
            started += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(stream))) => streams.push(stream),
            Some(_) => errors += 1,
            None => break,
        }
    }
    (streams, errors)
}

/// Connects (for TLS, with the handshake) and, if `ping`, has one ping answered.
async fn open_one(
    connector: Connector,
    addr: SocketAddr,
    proto: Proto,
    ping: bool,
) -> io::Result<Conn> {
    let work = async {
        // The outer timeout bounds connect, handshake and ping together.
        let mut stream = connector.connect(addr, OPEN_TIMEOUT).await?;
        if !ping {
            return Ok(stream);
        }
        let (ping, expected) = proto.ping();
        stream.write_all(ping).await?;
        let mut reply = Vec::with_capacity(64);
        loop {
            if stream.read_some(&mut reply).await? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
            }
            if reply.contains(&b'\n') {
                break;
            }
        }
        let right = match expected {
            ReplyCheck::Exact(bytes) => reply == bytes,
            ReplyCheck::LineStartingWith(prefix) => reply.starts_with(prefix),
        };
        if right {
            Ok(stream)
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "wrong ping reply",
            ))
        }
    };
    timeout(OPEN_TIMEOUT, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "open timed out"))?
}

/// The resident set size of process `pid`, in KiB, from `/proc/<pid>/status` (`VmRSS`).
pub fn resident_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_vm_rss(&status).ok_or_else(|| format!("no VmRSS line in {path}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tx\nVmPeak:\t  9999 kB\nVmRSS:\t    1234 kB\nThreads:\t2\n";
        assert_eq!(parse_vm_rss(status), Some(1234));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn our_own_resident_size_is_readable() {
        let kib = resident_kib(std::process::id()).expect("own /proc status");
        assert!(kib > 0);
    }
}
