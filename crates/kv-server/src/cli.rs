//! The command line: clap maps flags and environment variables onto [`Settings`]. Every
//! default is taken from the libraries' `Default`s ([`ServerConfig`], [`DurableOptions`])
//! or from `settings.rs`, so each is written once.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Parser, ValueEnum};
use kv_store::{DurableOptions, FsyncPolicy};
use line_server::ServerConfig;

use crate::settings::{
    ClusterSettings, LogFormat, Mode, PasswordSource, Settings, TlsFiles, DEFAULT_BIND,
    DEFAULT_PORT,
};

/// The machinery's defaults, shown by `--help` and used when a flag is absent.
static SERVER: LazyLock<ServerConfig> = LazyLock::new(ServerConfig::default);
static DURABLE: LazyLock<DurableOptions> = LazyLock::new(DurableOptions::default);

/// A supervised, fault-tolerant line-protocol key-value server.
///
/// Try it: `telnet 127.0.0.1 4040`, then `CREATE shopping`, `PUT shopping milk 1`,
/// `GET shopping milk`. Flags win over environment variables. SIGTERM or SIGINT shut it
/// down gracefully; SIGHUP re-reads the TLS files and the password file. Under systemd it
/// reports readiness (NOTIFY_SOCKET) and serves a passed socket (LISTEN_FDS).
///
/// Offline tools (see `kv-server restore --help`): `kv-server restore FILE --data-dir DIR`
/// makes a data directory from a backup (`kv-cli --backup FILE`); `kv-server check
/// --data-dir DIR` verifies one, and `kv-server check --backup FILE` a backup file.
#[derive(Debug, Parser)]
#[command(name = "kv-server", version, about, long_about)]
pub struct Cli {
    /// TCP port to listen on; 0 picks a free port (the log line tells which).
    #[arg(long, env = "PORT", default_value_t = DEFAULT_PORT)]
    port: u16,

    /// Address to listen on: an IP address, or a host name resolved at start (`localhost`:
    /// 127.0.0.1; an IPv4 address is preferred). Loopback by default: expose it (0.0.0.0 or
    /// ::) only on purpose and with a password (--requirepass); without one, protected mode
    /// refuses clients that are not on loopback.
    #[arg(long, env = "KV_BIND", default_value_t = DEFAULT_BIND, value_parser = parse_host)]
    bind: IpAddr,

    /// Protocol to serve.
    #[arg(long, env = "KV_MODE", value_enum, default_value_t = CliMode::from(Mode::default()))]
    mode: CliMode,

    /// Concurrent clients; the next one gets `ERROR too many connections` and is closed.
    #[arg(long, env = "KV_MAX_CONNECTIONS", default_value_t = SERVER.max_connections as u64,
          value_parser = clap::value_parser!(u64).range(1..=ServerConfig::MAX_CONNECTIONS as u64))]
    max_connections: u64,

    /// Longest line accepted, counting its `\r\n` (at least 8); a longer one gets
    /// `ERROR line too long` and the connection is closed.
    #[arg(long, env = "KV_MAX_LINE_BYTES", default_value_t = SERVER.max_line_bytes as u64,
          value_parser = clap::value_parser!(u64).range(ServerConfig::MIN_LINE_BYTES as u64..))]
    max_line_bytes: u64,

    /// Close a client that has sent no byte for this many seconds; 0 disables.
    #[arg(long, env = "KV_IDLE_TIMEOUT_SECS",
          default_value_t = SERVER.idle_timeout.map_or(0, |t| t.as_secs()),
          value_parser = clap::value_parser!(u64).range(0..=ServerConfig::MAX_DURATION.as_secs()))]
    idle_timeout_secs: u64,

    /// How long a graceful shutdown (SIGINT/SIGTERM) waits for busy connections.
    #[arg(long, env = "KV_SHUTDOWN_TIMEOUT_SECS",
          default_value_t = SERVER.shutdown_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(0..=ServerConfig::MAX_DURATION.as_secs()))]
    shutdown_timeout_secs: u64,

    /// Acceptor restarts allowed within --max-restart-window-secs before the server
    /// exits non-zero (OTP's restart intensity).
    #[arg(long, default_value_t = SERVER.max_restarts)]
    max_restarts: u32,

    /// The window for --max-restarts, in seconds.
    #[arg(long, default_value_t = SERVER.max_restart_window.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=ServerConfig::MAX_DURATION.as_secs()))]
    max_restart_window_secs: u64,

    /// Enable the fault-injection commands DEBUG PANIC, DEBUG ACCEPTOR-PANIC and
    /// DEBUG SLEEP ms. Never in production. Env: 1/true on, 0/false off.
    #[arg(long, env = "KV_DEBUG_COMMANDS", value_parser = BoolishValueParser::new(),
          default_value = "false", num_args = 0, default_missing_value = "true")]
    debug_commands: bool,

    /// Clients must send `AUTH <password>` before anything else (Redis' requirepass).
    /// Visible to other local users in the process list: prefer --requirepass-file.
    #[arg(
        long,
        env = "KV_REQUIREPASS",
        conflicts_with = "requirepass_file",
        hide_env_values = true
    )]
    requirepass: Option<String>,

    /// Like --requirepass, with the password on the first line of this file.
    #[arg(long, env = "KV_REQUIREPASS_FILE")]
    requirepass_file: Option<PathBuf>,

    /// Without a password, refuse clients that are not on loopback (`yes`, the default),
    /// so a server exposed by mistake does not hand its data to the network.
    #[arg(long, env = "KV_PROTECTED_MODE", value_enum, default_value_t = YesNo::Yes)]
    protected_mode: YesNo,

    /// Speak TLS only (1.2 and 1.3) with this certificate chain (PEM, leaf first); needs
    /// --tls-key-file. `openssl s_client -connect HOST:PORT -quiet` is then TLS's telnet.
    #[arg(long, env = "KV_TLS_CERT_FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,

    /// The private key of --tls-cert-file (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "KV_TLS_KEY_FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,

    /// With TLS: refuse, during the handshake, every client without a certificate signed
    /// by one of these CA certificates (PEM). Such clients count as protected (protected
    /// mode lets them in from anywhere).
    #[arg(long, env = "KV_TLS_CA_CERT_FILE", requires = "tls_cert_file")]
    tls_ca_cert_file: Option<PathBuf>,

    /// Keep what the data holds (keys, values and their bookkeeping, as counted: docs/SECURITY.md,
    /// "Memory limit") under this size: bytes, or with a unit kb, mb or gb (1024-based).
    /// A write that would need more is refused with `ERROR out of memory`; reads and
    /// deletes always work. 0: no limit.
    #[arg(long, env = "KV_MAXMEMORY", default_value = "0", value_parser = parse_size)]
    maxmemory: u64,

    /// Most events a subscriber may have unsent (bytes, or with a unit kb, mb or gb); a
    /// subscriber that falls further behind is disconnected, so it never slows writers or
    /// other subscribers.
    #[arg(long, env = "KV_SUBSCRIBER_BUFFER_BYTES", default_value = "1mb",
          value_parser = parse_buffer_size)]
    subscriber_buffer_bytes: u64,

    /// Log lines as text for people (the default) or as one JSON object per line for log
    /// shippers (`json`).
    #[arg(long, env = "KV_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Serve `GET /metrics` (Prometheus), `/livez` and `/readyz` over HTTP on this port;
    /// 0 picks a free port (the log line tells which). Off without it.
    #[arg(long, env = "KV_METRICS_PORT")]
    metrics_port: Option<u16>,

    /// Address the metrics port listens on (an IP address or a host name, as --bind).
    /// Loopback by default: the figures tell about the server's load and clients, so expose
    /// them only on purpose.
    #[arg(long, env = "KV_METRICS_BIND", default_value_t = DEFAULT_BIND, value_parser = parse_host)]
    metrics_bind: IpAddr,

    /// Keep buckets on disk in this directory (durable mode); without it nothing
    /// touches disk.
    #[arg(long, env = "KV_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// Keep the buckets in the Redis Cluster these nodes belong to (HOST:PORT, comma
    /// separated; one reachable node is enough) instead of this process: any number of
    /// kv-server processes can then serve the same data. Incompatible with --data-dir.
    #[arg(long, env = "KV_REDIS_CLUSTER", value_delimiter = ',', num_args = 1..,
          conflicts_with = "data_dir")]
    redis_cluster: Vec<String>,

    /// With --redis-cluster: the longest wait for the cluster per request, in milliseconds;
    /// a request not answered by then gets `ERROR` (a write may still have been applied).
    #[arg(long, env = "KV_STORE_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    store_timeout_ms: u64,

    /// With --redis-cluster: send `OK` to a write only once this many replicas have it
    /// (Redis' WAIT); 0 acknowledges once the master has it.
    #[arg(long, env = "KV_CLUSTER_WAIT_REPLICAS", default_value_t = 0)]
    cluster_wait_replicas: u32,

    /// With --data-dir: `always` sends OK for a write only once it is on stable storage
    /// (concurrent writes share one sync); `everysec` syncs once a second, so a crash of the
    /// machine (not of the process) may lose the last second of acknowledged writes.
    #[arg(long, env = "KV_FSYNC", value_enum, default_value_t = CliFsync::from(DURABLE.fsync))]
    fsync: CliFsync,

    /// With --data-dir: compact (write a snapshot, delete old journals) once the journal
    /// exceeds this many MiB and the size of the last snapshot. 0 compacts as soon as the
    /// journal outgrows the snapshot (for testing).
    #[arg(long, env = "KV_COMPACT_AFTER_MIB", default_value_t = DURABLE.compact_after_bytes >> 20,
          value_parser = clap::value_parser!(u64).range(0..=1 << 20))]
    compact_after_mib: u64,

    /// Most event loops serving connections, each a single-threaded runtime on its own
    /// thread. Connections go to as few loops as keep up with the load: one at first,
    /// another once those are busy; when that number changes, connections move between
    /// loops to even their shares. Default: one per core. (`--workers` and `KV_WORKERS`, the
    /// names of earlier versions, still work.)
    #[arg(long, visible_alias = "workers", env = "KV_WORKERS",
          value_parser = clap::value_parser!(u64).range(1..1025),
          default_value_t = SERVER.event_loops.map_or(1, |n| n.get() as u64))]
    event_loops: u64,

    /// Fewest active event loops, however light the load (at most `--event-loops`). Equal
    /// to it, the number of loops is fixed, each serving an even share of the connections:
    /// for a server with cores of its own.
    #[arg(long, env = "KV_MIN_ACTIVE_EVENT_LOOPS",
          value_parser = clap::value_parser!(u64).range(1..1025),
          default_value_t = SERVER.min_active_event_loops.get() as u64)]
    min_active_event_loops: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CliFsync {
    /// Sync before acknowledging (group commit).
    Always,
    /// Sync once a second.
    Everysec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum YesNo {
    Yes,
    No,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CliMode {
    /// Every line comes back unchanged.
    Echo,
    /// Buckets of keys and values (CREATE/PUT/GET/DELETE).
    Kv,
}

/// A size in bytes: digits, optionally followed by `kb`, `mb` or `gb` (any case; 1024-based,
/// as Redis' `maxmemory` reads them).
/// A size of at least one byte ([`parse_size`]): a subscriber must be able to hold an event.
fn parse_buffer_size(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err("must be at least 1 byte".into()),
        bytes => Ok(bytes),
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let (digits, unit) = match lower.len().checked_sub(2).map(|at| lower.split_at(at)) {
        Some((digits, "kb")) => (digits, 1u64 << 10),
        Some((digits, "mb")) => (digits, 1 << 20),
        Some((digits, "gb")) => (digits, 1 << 30),
        _ => (lower.as_str(), 1),
    };
    let number: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size (bytes, or a number with kb, mb or gb)"))?;
    number
        .checked_mul(unit)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// An address to listen on: an IP address as written, or a host name resolved now
/// (getaddrinfo(3), so `/etc/hosts` first), its first IPv4 address preferred, as clients
/// that try `localhost` usually reach 127.0.0.1 and the default bind is IPv4.
fn parse_host(text: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = text.parse() {
        return Ok(ip);
    }
    let resolved: Vec<IpAddr> = (text, 0)
        .to_socket_addrs()
        .map_err(|e| format!("{text:?} is not an IP address, and resolving it failed: {e}"))?
        .map(|addr| addr.ip())
        .collect();
    let first_v4 = resolved.iter().find(|ip| ip.is_ipv4());
    first_v4
        .or(resolved.first())
        .copied()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

impl From<FsyncPolicy> for CliFsync {
    fn from(policy: FsyncPolicy) -> Self {
        match policy {
            FsyncPolicy::Always => CliFsync::Always,
            FsyncPolicy::EverySecond => CliFsync::Everysec,
        }
    }
}

impl From<Mode> for CliMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Echo => CliMode::Echo,
            Mode::Kv => CliMode::Kv,
        }
    }
}

impl Cli {
    /// The settings these flags describe.
    pub fn into_settings(self) -> Settings {
        Settings {
            bind: self.bind,
            port: self.port,
            mode: match self.mode {
                CliMode::Echo => Mode::Echo,
                CliMode::Kv => Mode::Kv,
            },
            server: ServerConfig {
                max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
                max_line_bytes: usize::try_from(self.max_line_bytes).unwrap_or(usize::MAX),
                idle_timeout: (self.idle_timeout_secs > 0)
                    .then(|| Duration::from_secs(self.idle_timeout_secs)),
                shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
                max_restarts: self.max_restarts,
                max_restart_window: Duration::from_secs(self.max_restart_window_secs),
                event_loops: usize::try_from(self.event_loops)
                    .ok()
                    .and_then(NonZeroUsize::new),
                min_active_event_loops: usize::try_from(self.min_active_event_loops)
                    .ok()
                    .and_then(NonZeroUsize::new)
                    .unwrap_or(NonZeroUsize::MIN),
                // Read from `tls` (the files) at start, where a bad file ends start-up.
                tls: None,
            },
            debug_commands: self.debug_commands,
            password: match (self.requirepass, self.requirepass_file) {
                (Some(password), _) => PasswordSource::Given(password),
                (None, Some(path)) => PasswordSource::File(path),
                (None, None) => PasswordSource::None,
            },
            protected_mode: self.protected_mode == YesNo::Yes,
            tls: self
                .tls_cert_file
                .zip(self.tls_key_file)
                .map(|(cert, key)| TlsFiles {
                    cert,
                    key,
                    client_ca: self.tls_ca_cert_file,
                }),
            log_format: self.log_format,
            data_dir: self.data_dir,
            durable: DurableOptions {
                fsync: match self.fsync {
                    CliFsync::Always => FsyncPolicy::Always,
                    CliFsync::Everysec => FsyncPolicy::EverySecond,
                },
                compact_after_bytes: self.compact_after_mib << 20,
                max_memory: self.maxmemory,
            },
            max_memory: self.maxmemory,
            subscriber_buffer_bytes: usize::try_from(self.subscriber_buffer_bytes)
                .unwrap_or(usize::MAX),
            metrics: self
                .metrics_port
                .map(|port| SocketAddr::new(self.metrics_bind, port)),
            cluster: (!self.redis_cluster.is_empty()).then(|| ClusterSettings {
                nodes: self.redis_cluster,
                timeout: Duration::from_millis(self.store_timeout_ms),
                wait_replicas: self.cluster_wait_replicas,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn sizes_take_1024_based_units_in_any_case() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("4kb"), Ok(4096));
        assert_eq!(parse_size("100MB"), Ok(100 << 20));
        assert_eq!(parse_size("2Gb"), Ok(2 << 30));
        for bad in [
            "",
            "kb",
            "1.5mb",
            "-1",
            "10 tb",
            "1kib",
            "18446744073709551615gb",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bind_address_may_be_a_host_name_and_localhost_is_ipv4_loopback() {
        assert_eq!(parse_host("::1"), Ok("::1".parse().expect("v6")));
        assert_eq!(parse_host("0.0.0.0"), Ok(IpAddr::from([0, 0, 0, 0])));
        assert_eq!(parse_host("localhost"), Ok(IpAddr::from([127, 0, 0, 1])));
        let settings = Cli::try_parse_from(["kv-server", "--bind", "localhost"])
            .expect("parse")
            .into_settings();
        assert_eq!(settings.bind, DEFAULT_BIND);
        let unknown = parse_host("no-such-host.invalid").expect_err("refused");
        assert!(unknown.contains("no-such-host.invalid"), "{unknown}");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn without_flags_the_settings_are_the_libraries_defaults() {
        let settings = Cli::try_parse_from(["kv-server"])
            .expect("parse")
            .into_settings();
        assert_eq!(settings.server, ServerConfig::default());
        assert_eq!(settings.durable, DurableOptions::default());
        assert_eq!((settings.port, settings.bind), (DEFAULT_PORT, DEFAULT_BIND));
        assert_eq!(settings.mode, Mode::Kv);
        assert!(!settings.debug_commands);
        assert_eq!(settings.metrics, None);
        assert_eq!(settings.cluster, None);
    }

    #[test]
    fn the_metrics_port_listens_on_loopback_unless_told_otherwise() {
        let settings = Cli::try_parse_from(["kv-server", "--metrics-port", "9100"])
            .expect("parse")
            .into_settings();
        assert_eq!(settings.metrics, Some(SocketAddr::new(DEFAULT_BIND, 9100)));
        let settings =
            Cli::try_parse_from(["kv-server", "--metrics-port", "0", "--metrics-bind", "::"])
                .expect("parse")
                .into_settings();
        assert_eq!(settings.metrics, Some("[::]:0".parse().expect("address")));
    }

    #[test]
    fn a_cluster_takes_a_list_of_nodes_and_refuses_a_data_dir() {
        let settings = Cli::try_parse_from(["kv-server", "--redis-cluster", "a:1,b:2"])
            .expect("parse")
            .into_settings();
        let cluster = settings.cluster.expect("cluster settings");
        assert_eq!(cluster.nodes, ["a:1", "b:2"]);
        assert_eq!(cluster.timeout, Duration::from_millis(2000));
        assert_eq!(cluster.wait_replicas, 0);
        let both = Cli::try_parse_from(["kv-server", "--redis-cluster", "a:1", "--data-dir", "d"]);
        assert!(both.is_err());
    }
}
