//! Command-line flags, mapped onto [`LoadConfig`] / [`IdleConfig`]; nothing else parses
//! arguments.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use kv_client::TlsOptions;

use crate::affinity::CpuList;
use crate::fanout::wire::STAMP_DIGITS;
use crate::fanout::FanoutConfig;
use crate::idle::IdleConfig;
use crate::load::{stderr_is_terminal, LoadConfig};
use crate::workload::Proto;

/// Load generator for kv-server (and Redis, memcached, any line echo): verifies every
/// reply byte for byte, reports HDR latency percentiles from each request's intended send
/// time, and measures server memory per idle connection.
///
/// Fan-out mode (`--subscribers N`): N subscribers of one bucket (Redis: one channel),
/// `--conns` writers publishing to it with `--pipeline` writes in flight, flat out or at
/// `--rate`; reports events delivered per second, publish-to-delivery latency, server CPU
/// per delivered event and subscribers the server dropped, and checks that every
/// subscriber got every event. Example: `kv-bench --subscribers 100 --pipeline 8
/// --server-pid PID`.
#[derive(Debug, Parser)]
#[command(name = "kv-bench", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands besides the default load run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarise a results file (JSON lines from `--json`): Markdown tables of medians and
    /// ratios, and optionally the SVG chart.
    Report {
        /// The results file.
        results: PathBuf,
        /// Also write the chart here.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Labels of our own servers: listed first, and every ratio is ours ÷ theirs.
        #[arg(long, value_delimiter = ',')]
        ours: Vec<String>,
        /// Tabulate by the server's core count instead (bench/scaling.sh's results).
        #[arg(long)]
        scaling: bool,
    },
    /// Draw the SVG chart of throughput and p99 by connection count from a results file
    /// (with `--scaling`: ops/s and server CPU per request by the server's cores).
    Chart {
        /// The results file.
        results: PathBuf,
        /// Where to write the SVG.
        out: PathBuf,
        /// Labels of our own servers, drawn first.
        #[arg(long, value_delimiter = ',')]
        ours: Vec<String>,
        /// Draw the scaling curves (bench/scaling.sh's results).
        #[arg(long)]
        scaling: bool,
    },
}

/// The flags of a load or idle run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:4040")]
    pub addr: String,
    /// Concurrent connections; in fan-out mode, writers [default: 50; fan-out: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub conns: Option<u32>,
    /// Requests in flight per connection (1 = ping-pong); in fan-out mode, writes in
    /// flight per writer.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub pipeline: u32,
    /// Measured time, in seconds (`5`, `2.5`, `500ms`).
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Unmeasured warm-up before it (in idle mode: how long to settle before measuring).
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    pub warmup: Duration,
    /// Bytes per value (fan-out: at least 16, the send time's digits).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub value_size: u32,
    /// Distinct keys, all preloaded.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub keys: u32,
    /// Fraction of requests that are GETs; the rest are PUTs (SET).
    #[arg(long, default_value_t = 0.9, value_parser = parse_ratio)]
    pub get_ratio: f64,
    /// Protocol: kv, echo, redis or memcached (fan-out: kv or redis).
    #[arg(long, default_value = "kv")]
    pub proto: Proto,
    /// Instead of load: open this many idle connections and report server memory.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub idle: Option<u32>,
    /// Idle mode: connections never send a byte (by default each is served one ping).
    #[arg(long, requires = "idle")]
    pub idle_silent: bool,
    /// Fan-out mode: this many subscribers of one bucket (kv: `SUBSCRIBE bench`; redis:
    /// `SUBSCRIBE bench`, writes `PUBLISH bench value`); `--conns` counts the writers
    /// (kv: each `PUT bench wN value`), `--keys` and `--get-ratio` do not apply.
    #[arg(long, value_name = "N", conflicts_with = "idle", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub subscribers: Option<u32>,
    /// Fan-out mode: also this many subscribers that read nothing until the writers are
    /// done (the server should drop them, and not grow with what they miss).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "subscribers", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub slow_subscribers: u32,
    /// Fan-out mode: writes per second over all writers, evenly spaced (each stamped with
    /// its scheduled time, so falling behind shows as latency; paced by tokio's timer, so
    /// in steps of 1 ms, which latencies then include) [default: flat out].
    #[arg(long, value_name = "WRITES_PER_SEC", requires = "subscribers", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// The server's process id: its memory in idle mode, its CPU use in a load run, both
    /// in fan-out mode.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Generator threads, each a single-threaded tokio runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
    /// Pin the generator threads to these CPUs (`1`, `2-3`, `0,2-3`), thread i to the
    /// i-th in turn. Pin the server to others yourself: `taskset -c 0 kv-server ...`.
    #[arg(long, value_name = "CPULIST")]
    pub pin: Option<CpuList>,
    /// Name of the server under test in reports (default: the protocol).
    #[arg(long)]
    pub label: Option<String>,
    /// Print one JSON line instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Speak TLS (a kv-server started with `--tls-cert-file`). Every handshake is done
    /// before the measured window (in idle mode: before the memory is read).
    #[arg(long, requires = "tls_ca")]
    pub tls: bool,
    /// With `--tls`: the CA certificate (PEM) the server's certificate must chain to.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_ca: Option<PathBuf>,
    /// With `--tls`: a client certificate (PEM), for a server started with
    /// `--tls-ca-cert-file`.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// With `--tls-cert`: its private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// With `--tls`: the name the server's certificate must be valid for (a DNS name or
    /// an IP address) [default: localhost].
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub tls_server_name: Option<String>,
    /// `AUTH` with this password on every connection before anything else (a kv-server
    /// started with `--requirepass`); KV protocol only. Env: KV_BENCH_PASSWORD.
    #[arg(long, env = "KV_BENCH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

/// What a run should do.
#[derive(Debug, Clone)]
pub enum Plan {
    Load(LoadConfig),
    Idle(IdleConfig),
    Fanout(FanoutConfig),
}

/// Writers in fan-out mode unless `--conns` says otherwise.
const DEFAULT_WRITERS: u32 = 1;
/// Connections of a load run unless `--conns` says otherwise.
const DEFAULT_CONNS: u32 = 50;

impl RunArgs {
    /// Resolves the address and builds the run's configuration.
    pub fn into_plan(self) -> Result<Plan, String> {
        let addr = resolve(&self.addr)?;
        let label = self.label.unwrap_or_else(|| self.proto.name().to_string());
        // clap has checked that --tls comes with --tls-ca, and a certificate with its key.
        let tls = match (self.tls, self.tls_ca) {
            (true, Some(ca_cert)) => Some(TlsOptions {
                ca_cert,
                server_name: self
                    .tls_server_name
                    .unwrap_or_else(|| "localhost".to_string()),
                identity: self.tls_cert.zip(self.tls_key),
            }),
            _ => None,
        };
        if self.password.is_some() && self.proto != Proto::Kv {
            return Err("--password is for the KV protocol (--proto kv)".into());
        }
        if let Some(conns) = self.idle {
            return Ok(Plan::Idle(IdleConfig {
                label,
                addr,
                proto: self.proto,
                conns: conns as usize,
                server_pid: self.server_pid,
                settle: self.warmup,
                ping: !self.idle_silent,
                tls,
                password: self.password,
            }));
        }
        if self.duration.is_zero() {
            return Err("--duration must be more than 0".into());
        }
        if let Some(subscribers) = self.subscribers {
            if self.pin.is_some() {
                return Err("--pin is for load runs, not fan-out mode (--subscribers)".into());
            }
            if !matches!(self.proto, Proto::Kv | Proto::Redis) {
                return Err(format!(
                    "fan-out mode (--subscribers) speaks kv or redis, not {}",
                    self.proto
                ));
            }
            if (self.value_size as usize) < STAMP_DIGITS {
                return Err(format!(
                    "--value-size {} is too small for fan-out mode: values start with a \
                     {STAMP_DIGITS}-digit send time",
                    self.value_size
                ));
            }
            return Ok(Plan::Fanout(FanoutConfig {
                label,
                addr,
                proto: self.proto,
                writers: self.conns.unwrap_or(DEFAULT_WRITERS) as usize,
                pipeline: self.pipeline as usize,
                rate: self.rate,
                subscribers: subscribers as usize,
                slow_subscribers: self.slow_subscribers as usize,
                duration: self.duration,
                warmup: self.warmup,
                value_size: self.value_size as usize,
                threads: self.threads as usize,
                server_pid: self.server_pid,
                tls,
                password: self.password,
            }));
        }
        Ok(Plan::Load(LoadConfig {
            label,
            addr,
            proto: self.proto,
            conns: self.conns.unwrap_or(DEFAULT_CONNS) as usize,
            pipeline: self.pipeline as usize,
            duration: self.duration,
            warmup: self.warmup,
            value_size: self.value_size as usize,
            keys: self.keys as usize,
            get_ratio: self.get_ratio,
            threads: self.threads as usize,
            progress: !self.json && stderr_is_terminal(),
            server_pid: self.server_pid,
            pin: self.pin,
            tls,
            password: self.password,
        }))
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve --addr {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("--addr {addr} resolves to no address"))
}

/// Seconds as a number (`5`, `0.5`), or with a unit (`5s`, `500ms`).
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else {
        (text.strip_suffix('s').unwrap_or(text), 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 5, 2.5 or 500ms)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?} is not a duration (try 5, 2.5 or 500ms)"));
    }
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{text:?}: {e}"))
}

/// A rate: a positive, finite number of writes per second.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{text:?} is not a rate (writes per second, more than 0)"
        )),
    }
}

/// A fraction between 0 and 1.
fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{text:?} is not a ratio between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kv-bench").chain(args.iter().copied()))
    }

    fn load(args: &[&str]) -> LoadConfig {
        match parse(args)
            .expect("valid flags")
            .run
            .into_plan()
            .expect("valid plan")
        {
            Plan::Load(c) => c,
            other => panic!("expected a load run, not {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_issues_workload() {
        let c = load(&[]);
        assert_eq!(c.addr.to_string(), "127.0.0.1:4040");
        assert_eq!(
            (c.conns, c.pipeline, c.keys, c.value_size),
            (50, 1, 10_000, 16)
        );
        assert_eq!(c.get_ratio, 0.9);
        assert_eq!(c.proto, Proto::Kv);
        assert_eq!(c.duration, Duration::from_secs(5));
        assert_eq!(c.warmup, Duration::from_secs(1));
        assert_eq!(c.label, "kv");
        assert_eq!(c.pin, None, "unpinned unless asked");
        assert_eq!(c.tls, None, "plain TCP unless asked");
    }

    #[test]
    fn tls_takes_a_ca_an_optional_client_certificate_and_a_server_name() {
        let c = load(&["--tls", "--tls-ca", "ca.pem"]);
        assert_eq!(
            c.tls,
            Some(TlsOptions {
                ca_cert: "ca.pem".into(),
                server_name: "localhost".into(),
                identity: None,
            })
        );
        let c = load(&[
            "--tls",
            "--tls-ca",
            "ca.pem",
            "--tls-cert",
            "client.pem",
            "--tls-key",
            "client.key",
            "--tls-server-name",
            "127.0.0.1",
        ]);
        let tls = c.tls.expect("TLS on");
        assert_eq!(tls.server_name, "127.0.0.1");
        assert_eq!(
            tls.identity,
            Some(("client.pem".into(), "client.key".into()))
        );
        let idle = parse(&["--idle", "3", "--tls", "--tls-ca", "ca.pem"])
            .expect("valid flags")
            .run
            .into_plan();
        assert!(matches!(idle, Ok(Plan::Idle(c)) if c.tls.is_some()));
    }

    #[test]
    fn tls_flags_that_cannot_work_are_rejected() {
        for bad in [
            &["--tls"][..],
            &["--tls-ca", "ca.pem"],
            &["--tls", "--tls-ca", "ca.pem", "--tls-cert", "c.pem"],
            &["--tls", "--tls-ca", "ca.pem", "--tls-key", "c.key"],
            &["--tls-server-name", "localhost"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn every_flag_of_the_issue_is_accepted() {
        let c = load(&[
            "--addr",
            "127.0.0.1:7000",
            "--conns",
            "1000",
            "--pipeline",
            "32",
            "--duration",
            "500ms",
            "--warmup",
            "0",
            "--value-size",
            "100",
            "--keys",
            "5",
            "--get-ratio",
            "0.5",
            "--proto",
            "memcached",
            "--threads",
            "2",
            "--label",
            "mc",
            "--pin",
            "0,2-3",
            "--json",
        ]);
        assert_eq!(c.addr.port(), 7000);
        assert_eq!(
            (c.conns, c.pipeline, c.keys, c.value_size, c.threads),
            (1000, 32, 5, 100, 2)
        );
        assert_eq!(c.duration, Duration::from_millis(500));
        assert!(c.warmup.is_zero());
        assert_eq!(c.get_ratio, 0.5);
        assert_eq!(c.proto, Proto::Memcached);
        assert_eq!(c.label, "mc");
        assert_eq!(
            c.pin.as_ref().map(|p| p.cpus().to_vec()),
            Some(vec![0, 2, 3])
        );
        assert!(!c.progress, "--json never draws a progress line");
    }

    #[test]
    fn idle_mode_takes_a_count_and_a_server_pid() {
        let plan = parse(&["--idle", "10000", "--server-pid", "42", "--proto", "redis"])
            .expect("valid flags")
            .run
            .into_plan()
            .expect("valid plan");
        match plan {
            Plan::Idle(c) => {
                assert_eq!(
                    (c.conns, c.server_pid, c.proto),
                    (10_000, Some(42), Proto::Redis)
                );
            }
            other => panic!("expected idle mode, not {other:?}"),
        }
    }

    #[test]
    fn idle_silent_only_makes_sense_in_idle_mode() {
        assert!(parse(&["--idle-silent"]).is_err());
        let plan = parse(&["--idle", "5", "--idle-silent"])
            .expect("valid")
            .run
            .into_plan();
        assert!(matches!(plan, Ok(Plan::Idle(c)) if !c.ping));
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        for bad in [
            &["--conns", "0"][..],
            &["--pipeline", "0"],
            &["--get-ratio", "1.5"],
            &["--get-ratio", "x"],
            &["--duration", "-1"],
            &["--duration", "soon"],
            &["--proto", "http"],
            &["--value-size", "0"],
            &["--pin", ""],
            &["--pin", "3-1"],
            &["--pin", "one"],
            &["--pin", "4096"],
            &["--bogus"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let zero = parse(&["--duration", "0"]).expect("parses").run.into_plan();
        assert!(zero.is_err(), "a zero-length run measures nothing");
    }

    #[test]
    fn an_unresolvable_address_is_an_error_not_a_panic() {
        let plan = parse(&["--addr", "no port here"])
            .expect("parses")
            .run
            .into_plan();
        assert!(plan.is_err());
    }

    #[test]
    fn report_and_chart_are_subcommands() {
        let cli = parse(&["report", "r.jsonl", "--svg", "c.svg", "--ours", "a,b"]).expect("valid");
        assert!(matches!(
            cli.command,
            Some(Command::Report { svg: Some(_), .. })
        ));
        let cli = parse(&["chart", "r.jsonl", "c.svg"]).expect("valid");
        assert!(matches!(
            cli.command,
            Some(Command::Chart { scaling: false, .. })
        ));
        let cli = parse(&["chart", "--scaling", "r.jsonl", "c.svg"]).expect("valid");
        assert!(matches!(
            cli.command,
            Some(Command::Chart { scaling: true, .. })
        ));
        let cli = parse(&["report", "--scaling", "r.jsonl"]).expect("valid");
        assert!(matches!(
            cli.command,
            Some(Command::Report { scaling: true, .. })
        ));
    }

    fn fanout(args: &[&str]) -> FanoutConfig {
        match parse(args).expect("valid flags").run.into_plan() {
            Ok(Plan::Fanout(c)) => c,
            other => panic!("expected a fan-out run, not {other:?}"),
        }
    }

    #[test]
    fn subscribers_make_a_fanout_run_of_one_writer_by_default() {
        let c = fanout(&["--subscribers", "100", "--pipeline", "8"]);
        assert_eq!(
            (c.writers, c.pipeline, c.subscribers, c.slow_subscribers),
            (1, 8, 100, 0)
        );
        assert_eq!((c.rate, c.value_size, c.proto), (None, 16, Proto::Kv));
        assert_eq!(c.label, "kv");
        assert_eq!(load(&[]).conns, 50, "a load run still defaults to 50");
    }

    #[test]
    fn every_fanout_flag_is_accepted() {
        let c = fanout(&[
            "--subscribers",
            "1000",
            "--slow-subscribers",
            "2",
            "--conns",
            "3",
            "--rate",
            "2500.5",
            "--proto",
            "redis",
            "--value-size",
            "1024",
            "--server-pid",
            "42",
            "--threads",
            "2",
            "--duration",
            "2",
            "--warmup",
            "500ms",
            "--label",
            "r",
        ]);
        assert_eq!(
            (c.subscribers, c.slow_subscribers, c.writers, c.rate),
            (1000, 2, 3, Some(2500.5))
        );
        assert_eq!(
            (c.proto, c.value_size, c.server_pid, c.threads),
            (Proto::Redis, 1024, Some(42), 2)
        );
        assert_eq!(
            (c.duration, c.warmup),
            (Duration::from_secs(2), Duration::from_millis(500))
        );
        assert_eq!(c.label, "r");
        assert_eq!(
            fanout(&["--subscribers", "0", "--slow-subscribers", "1"]).subscribers,
            0
        );
    }

    #[test]
    fn fanout_flags_that_cannot_work_are_rejected() {
        for bad in [
            &["--slow-subscribers", "1"][..],
            &["--rate", "100"],
            &["--subscribers", "1", "--rate", "0"],
            &["--subscribers", "1", "--rate", "-5"],
            &["--subscribers", "1", "--rate", "inf"],
            &["--subscribers", "-1"],
            &["--subscribers", "1", "--idle", "5"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        for bad in [
            &["--subscribers", "1", "--proto", "echo"][..],
            &["--subscribers", "1", "--proto", "memcached"],
            &["--subscribers", "1", "--value-size", "15"],
            &["--subscribers", "1", "--pin", "0"],
            &["--subscribers", "1", "--duration", "0"],
            &["--subscribers", "1", "--proto", "redis", "--password", "p"],
        ] {
            let plan = parse(bad).expect("parses").run.into_plan();
            assert!(plan.is_err(), "{bad:?} should be refused: {plan:?}");
        }
    }
}
