//! Results: the latency histogram, the per-run summary, and how both are printed.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::affinity::CpuList;
use crate::cpu::{self, CpuUse};
use crate::report::significant;
use crate::workload::Proto;

/// Highest latency the histogram tracks, in nanoseconds (a minute); anything slower is
/// clamped to it, which still shows in `max`.
const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds with 3 significant digits (0.1% resolution).
pub fn new_histogram() -> Histogram<u64> {
    // 1 ns to a minute at 3 digits is a fixed-size table of ~220 KB; we keep one per
    // generator thread, not per connection.
    Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).expect("constant bounds are valid")
}

/// Records one latency, clamped into the tracked range.
pub fn record(hist: &mut Histogram<u64>, nanos: u64) {
    hist.saturating_record(nanos.clamp(1, MAX_TRACKED_NS));
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl Latency {
    /// Summarises a histogram of nanoseconds.
    pub fn from_histogram(hist: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        if hist.is_empty() {
            return Self::default();
        }
        Self {
            p50_us: us(hist.value_at_quantile(0.50)),
            p99_us: us(hist.value_at_quantile(0.99)),
            p999_us: us(hist.value_at_quantile(0.999)),
            max_us: us(hist.max()),
            mean_us: hist.mean() / 1000.0,
        }
    }
}

/// The outcome of one load run: what was asked and what was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// A free-form name for the server under test (`--label`), used by `report`.
    pub label: String,
    pub proto: Proto,
    pub addr: String,
    pub conns: usize,
    pub pipeline: usize,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub value_size: usize,
    pub keys: usize,
    pub get_ratio: f64,
    /// Generator threads (each a single-threaded tokio runtime).
    pub threads: usize,
    /// Replies that matched, within the measured window.
    pub ops: u64,
    /// Wrong replies, plus requests lost to a closed or failed connection.
    pub errors: u64,
    /// Connections that failed or were closed by the server during the run.
    pub conn_errors: u64,
    pub ops_per_sec: f64,
    pub latency: Latency,
    /// CPU use over the measured window (absent where `/proc` is not readable).
    #[serde(default)]
    pub cpu: Option<CpuUse>,
    // Fields added later are `serde(default)`: results files written before them still
    // parse, and `report` derives what it can from the older fields.
    /// CPUs the generator threads were pinned to (`--pin`), e.g. `"2-3"`.
    #[serde(default)]
    pub pin: Option<String>,
    /// CPUs the server was allowed to run on (its affinity, e.g. from `taskset -c`), e.g.
    /// `"0-1"`; known when `--server-pid` was given.
    #[serde(default)]
    pub server_cpus: Option<String>,
    /// The server's CPU time over the window ÷ requests completed in it, in nanoseconds.
    #[serde(default)]
    pub server_ns_per_request: Option<f64>,
    /// The server's context switches over the window (voluntary + nonvoluntary, all its
    /// threads) ÷ requests completed in it.
    #[serde(default)]
    pub server_ctx_switches_per_request: Option<f64>,
    /// The generator used at least 90% of the cores it could use (its threads, at most
    /// the pinned CPUs and the machine's): ops/s is then bounded by kv-bench as much as by
    /// the server.
    #[serde(default)]
    pub generator_bound: Option<bool>,
    /// The connections spoke TLS (`--tls`), handshakes done before the window opened.
    #[serde(default)]
    pub tls: bool,
}

/// The cores a generator of `threads` threads could use: one per thread, at most the
/// CPUs it was pinned to and the machine's.
pub fn generator_cores(threads: usize, pin: Option<&CpuList>, machine_cores: usize) -> usize {
    let pinned = pin.map_or(usize::MAX, CpuList::count);
    threads.min(pinned).min(machine_cores).max(1)
}

impl RunReport {
    /// Server CPU ns per request: the recorded figure, or for a results line written
    /// before it existed, the server's share of a core × the window ÷ requests.
    pub fn ns_per_request(&self) -> Option<f64> {
        self.server_ns_per_request.or_else(|| {
            let server_pct = self.cpu?.server?;
            let cpu_ns = server_pct / 100.0 * self.duration_secs * 1e9;
            cpu::per_request(cpu_ns, self.ops)
        })
    }

    /// Whether the generator was the bottleneck: the recorded flag, or for an older
    /// results line, the same rule applied to its generator CPU and thread count.
    pub fn is_generator_bound(&self) -> Option<bool> {
        self.generator_bound.or_else(|| {
            let c = self.cpu?;
            let cores = generator_cores(self.threads, None, c.cores);
            Some(cpu::generator_bound(c.generator, cores))
        })
    }

    /// How many CPUs the server could run on, if known.
    pub fn server_cpu_count(&self) -> Option<usize> {
        let list: CpuList = self.server_cpus.as_deref()?.parse().ok()?;
        Some(list.count())
    }

    /// The final human-readable table.
    pub fn table(&self) -> String {
        let l = &self.latency;
        format!(
            "\n{label} ({proto}{over}) at {addr}: {conns} conns x pipeline {pipeline}, {duration}s \
             (+{warmup}s warm-up), {threads} generator threads{pin}\n{cpu}{cost}{bound}\
             {:>14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}\n\
             {:>14.0} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8}\n",
            "ops/s",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "max us",
            "mean us",
            "errors",
            self.ops_per_sec,
            l.p50_us,
            l.p99_us,
            l.p999_us,
            l.max_us,
            l.mean_us,
            self.errors,
            label = self.label,
            proto = self.proto,
            addr = self.addr,
            conns = self.conns,
            pipeline = self.pipeline,
            duration = self.duration_secs,
            warmup = self.warmup_secs,
            threads = self.threads,
            over = if self.tls { " over TLS" } else { "" },
            pin = self
                .pin
                .as_ref()
                .map_or_else(String::new, |p| format!(" pinned to CPU {p}")),
            cost = self.cost_line(),
            bound = if self.generator_bound == Some(true) {
                "GENERATOR-BOUND: kv-bench used >= 90% of its cores; ops/s measures it as \
                 much as the server\n"
            } else {
                ""
            },
            cpu = self.cpu.map_or_else(String::new, |c| match c.server {
                Some(server) => format!(
                    "CPU, % of one core: generator {:.0}, server {server:.0}, others {:.0} (of {})\n",
                    c.generator,
                    c.others,
                    c.cores * 100
                ),
                None => format!(
                    "CPU, % of one core: generator {:.0}, everything else (server included, \
                     no --server-pid) {:.0} (of {})\n",
                    c.generator,
                    c.others,
                    c.cores * 100
                ),
            }),
        )
    }

    /// `server: 5210 ns CPU and 0.98 context switches per request (server on CPU 0)`, or
    /// nothing when the server's pid was not given.
    fn cost_line(&self) -> String {
        let Some(ns) = self.server_ns_per_request else {
            return String::new();
        };
        let switches = self
            .server_ctx_switches_per_request
            .map_or_else(String::new, |n| {
                format!(" and {} context switches", significant(n, 2))
            });
        let cpus = self
            .server_cpus
            .as_ref()
            .map_or_else(String::new, |c| format!(" (server on CPU {c})"));
        format!("server: {ns:.0} ns CPU{switches} per request{cpus}\n")
    }
}

/// The outcome of an idle-connection run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleReport {
    pub label: String,
    pub proto: Proto,
    pub addr: String,
    /// Connections asked for.
    pub requested: usize,
    /// Connections that were opened and answered their ping.
    pub open: usize,
    /// Connections that failed to open or answer.
    pub errors: u64,
    pub server_pid: Option<u32>,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// Server memory growth divided by open connections.
    pub bytes_per_conn: Option<f64>,
    /// Whether each connection was served one ping before going idle.
    #[serde(default = "yes")]
    pub pinged: bool,
    /// The connections spoke TLS (`--tls`): each finished its handshake before the memory
    /// was read.
    #[serde(default)]
    pub tls: bool,
}

fn yes() -> bool {
    true
}

impl IdleReport {
    /// The final human-readable table.
    pub fn table(&self) -> String {
        let show = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        format!(
            "\n{label} ({proto}{over}) at {addr}: {open}/{requested} idle connections open{how}, {errors} errors\n\
             server RSS before {before} KiB, after {after} KiB: {per} bytes per connection\n",
            label = self.label,
            proto = self.proto,
            addr = self.addr,
            open = self.open,
            requested = self.requested,
            errors = self.errors,
            over = if self.tls { " over TLS" } else { "" },
            how = if self.pinged { " (each served one ping)" } else { " (silent)" },
            before = show(self.rss_before_kib),
            after = show(self.rss_after_kib),
            per = self
                .bytes_per_conn
                .map_or_else(|| "-".to_string(), |b| format!("{b:.0}")),
        )
    }
}

/// The outcome of a fan-out run (`--subscribers`): writers publishing to one bucket or
/// channel, subscribers receiving every write as an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanoutReport {
    /// A free-form name for the server under test (`--label`).
    pub label: String,
    pub proto: Proto,
    pub addr: String,
    /// Writer connections.
    pub writers: usize,
    /// Writes each writer kept in flight.
    pub pipeline: usize,
    /// Writes per second asked for over all writers; `None`: flat out.
    pub rate: Option<f64>,
    /// Subscribers that read all the time.
    pub subscribers: usize,
    /// Subscribers that read nothing until the writers were done.
    pub slow_subscribers: usize,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub value_size: usize,
    /// Generator threads (each a single-threaded tokio runtime).
    pub threads: usize,
    /// Writes acknowledged inside the measured window.
    pub writes: u64,
    pub writes_per_sec: f64,
    /// Each write's latency, from its intended send time to its acknowledgement.
    pub write_latency: Latency,
    /// Events received by the (reading) subscribers inside the measured window.
    pub events: u64,
    pub events_per_sec: f64,
    /// Publish-to-delivery: from a write's intended send time (stamped in its value) to
    /// the read that brought its event to a subscriber.
    pub delivery_latency: Latency,
    /// Writes acknowledged over the whole run (warm-up and the end's replies included).
    pub writes_acked: u64,
    /// Writes sent and never answered (a writer's connection failed).
    pub writes_unanswered: u64,
    /// Reading subscribers that got the barrier's answer: their counts are whole.
    pub subscribers_complete: usize,
    /// Over the complete subscribers: acknowledged writes whose event never came.
    pub events_missing: u64,
    /// Over the complete subscribers: events beyond one per write sent.
    pub events_extra: u64,
    /// Wrong replies and messages, plus `events_extra`.
    pub errors: u64,
    /// Connections that could not be opened or subscribed, or that failed while writing.
    pub conn_errors: u64,
    /// Reading subscribers the server disconnected (or whose connection failed).
    pub dropped_subscribers: usize,
    /// Slow subscribers the server disconnected (or whose connection failed).
    pub dropped_slow_subscribers: usize,
    /// CPU use over the measured window.
    pub cpu: Option<CpuUse>,
    /// The server's CPU time over the window ÷ events delivered in it, in nanoseconds.
    pub server_ns_per_event: Option<f64>,
    /// The server's context switches over the window ÷ events delivered in it.
    pub server_ctx_switches_per_event: Option<f64>,
    /// The generator used at least 90% of the cores it could use.
    pub generator_bound: Option<bool>,
    /// The server's RSS once every connection was open, before the first write, in KiB.
    pub server_rss_before_kib: Option<u64>,
    /// The server's highest RSS from then until the run was over, in KiB (sampled every
    /// 20 ms).
    pub server_rss_peak_kib: Option<u64>,
}

impl FanoutReport {
    /// The final human-readable table.
    pub fn table(&self) -> String {
        let (w, d) = (&self.write_latency, &self.delivery_latency);
        let rate = self
            .rate
            .map_or_else(|| "flat out".to_string(), |r| format!("{r:.0} writes/s"));
        let mut text = format!(
            "\n{label} ({proto}) at {addr}: {writers} writer(s) x {pipeline} in flight ({rate}) \
             -> {subscribers} subscriber(s){slow}, {value_size}-byte values, {duration}s \
             (+{warmup}s warm-up), {threads} generator thread(s)\n",
            label = self.label,
            proto = self.proto,
            addr = self.addr,
            writers = self.writers,
            pipeline = self.pipeline,
            subscribers = self.subscribers,
            slow = if self.slow_subscribers > 0 {
                format!(" + {} slow", self.slow_subscribers)
            } else {
                String::new()
            },
            value_size = self.value_size,
            duration = self.duration_secs,
            warmup = self.warmup_secs,
            threads = self.threads,
        );
        if let Some(c) = self.cpu {
            let server = c.server.map_or_else(|| "-".into(), |s| format!("{s:.0}"));
            text += &format!(
                "CPU, % of one core: generator {:.0}, server {server}, others {:.0} (of {})\n",
                c.generator,
                c.others,
                c.cores * 100
            );
        }
        if let Some(ns) = self.server_ns_per_event {
            let switches = self
                .server_ctx_switches_per_event
                .map_or_else(String::new, |n| {
                    format!(" and {} context switches", significant(n, 2))
                });
            text += &format!("server: {ns:.0} ns CPU{switches} per delivered event\n");
        }
        if self.generator_bound == Some(true) {
            text += "GENERATOR-BOUND: kv-bench used >= 90% of its cores\n";
        }
        text += &format!(
            "{:>14} {:>10} {:>10} {:>10} {:>10}\n",
            "", "per second", "p50 us", "p99 us", "max us"
        );
        for (name, rate, l) in [
            ("writes", self.writes_per_sec, w),
            ("events", self.events_per_sec, d),
        ] {
            text += &format!(
                "{name:>14} {rate:>10.0} {:>10.1} {:>10.1} {:>10.1}\n",
                l.p50_us, l.p99_us, l.max_us
            );
        }
        text += &format!(
            "writes acknowledged {}, unanswered {}; subscribers complete {}/{}, events missing {}, \
             errors {}, connection errors {}; dropped subscribers {}, slow ones dropped {}/{}\n",
            self.writes_acked,
            self.writes_unanswered,
            self.subscribers_complete,
            self.subscribers,
            self.events_missing,
            self.errors,
            self.conn_errors,
            self.dropped_subscribers,
            self.dropped_slow_subscribers,
            self.slow_subscribers,
        );
        if let (Some(before), Some(peak)) = (self.server_rss_before_kib, self.server_rss_peak_kib) {
            text += &format!(
                "server RSS {before} KiB before the writes, peak {peak} KiB (+{} KiB)\n",
                peak.saturating_sub(before)
            );
        }
        text
    }
}

/// One line of a results file: either kind of run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
// A record is made once per run or read once per results line, never kept in bulk on a
// hot path, so a load run's larger size costs nothing worth a `Box` at every match.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Load(RunReport),
    Idle(IdleReport),
    Fanout(FanoutReport),
}

/// A run of the defaults (one connection, nothing measured), for tests to change what they
/// need with struct update syntax.
#[cfg(test)]
impl RunReport {
    pub(crate) fn example() -> RunReport {
        RunReport {
            label: "x".into(),
            proto: crate::workload::Proto::Kv,
            addr: "127.0.0.1:1".into(),
            conns: 1,
            pipeline: 1,
            duration_secs: 1.0,
            warmup_secs: 0.0,
            value_size: 16,
            keys: 10,
            get_ratio: 0.9,
            threads: 1,
            ops: 0,
            errors: 0,
            conn_errors: 0,
            ops_per_sec: 0.0,
            latency: Latency::default(),
            cpu: None,
            pin: None,
            server_cpus: None,
            server_ns_per_request: None,
            server_ctx_switches_per_request: None,
            generator_bound: None,
            tls: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_microseconds() {
        let mut h = new_histogram();
        for ns in 1..=1000u64 {
            record(&mut h, ns * 1000);
        }
        let l = Latency::from_histogram(&h);
        assert!((l.p50_us - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99_us - 990.0).abs() < 1.0, "{l:?}");
        assert!((l.max_us - 1000.0).abs() < 1.0, "{l:?}");
    }

    fn old_style_run(cpu: Option<CpuUse>) -> RunReport {
        RunReport {
            conns: 50,
            duration_secs: 2.0,
            warmup_secs: 1.0,
            ops: 400_000,
            ops_per_sec: 200_000.0,
            cpu,
            ..RunReport::example()
        }
    }

    #[test]
    fn older_results_lines_still_give_cost_per_request_and_the_bound_flag() {
        let cpu = CpuUse {
            cores: 2,
            generator: 95.0,
            server: Some(100.0),
            ..CpuUse::default()
        };
        let run = old_style_run(Some(cpu));
        // A full core for 2 s over 400,000 requests: 5,000 ns each.
        assert_eq!(run.ns_per_request(), Some(5_000.0));
        assert_eq!(run.is_generator_bound(), Some(true));
        assert_eq!(old_style_run(None).ns_per_request(), None);
        assert_eq!(old_style_run(None).is_generator_bound(), None);
        let recorded = RunReport {
            server_ns_per_request: Some(1.0),
            generator_bound: Some(false),
            ..run
        };
        assert_eq!(
            recorded.ns_per_request(),
            Some(1.0),
            "the recorded figure wins"
        );
        assert_eq!(recorded.is_generator_bound(), Some(false));
    }

    #[test]
    fn a_results_line_without_the_new_fields_parses() {
        let mut json = serde_json::to_value(Record::Load(old_style_run(None))).expect("json");
        let fields = json.as_object_mut().expect("an object");
        for new in [
            "pin",
            "server_cpus",
            "server_ns_per_request",
            "server_ctx_switches_per_request",
            "generator_bound",
            "tls",
        ] {
            assert!(fields.remove(new).is_some(), "{new} is written");
        }
        let back: Record = serde_json::from_value(json).expect("an old line parses");
        assert_eq!(back, Record::Load(old_style_run(None)));
    }

    #[test]
    fn generator_cores_are_its_threads_capped_by_pinning_and_the_machine() {
        let one: CpuList = "3".parse().expect("valid");
        assert_eq!(generator_cores(1, None, 2), 1);
        assert_eq!(generator_cores(4, None, 2), 2);
        assert_eq!(generator_cores(2, Some(&one), 8), 1);
        assert_eq!(generator_cores(2, None, 8), 2);
    }

    #[test]
    fn the_table_shows_cost_per_request_and_the_bound_flag() {
        let run = RunReport {
            server_ns_per_request: Some(5_210.4),
            server_ctx_switches_per_request: Some(0.981),
            server_cpus: Some("0".into()),
            pin: Some("1".into()),
            generator_bound: Some(true),
            ..old_style_run(None)
        };
        let table = run.table();
        assert!(
            table.contains("1 generator threads pinned to CPU 1"),
            "{table}"
        );
        assert!(
            table.contains(
                "server: 5210 ns CPU and 0.98 context switches per request (server on CPU 0)"
            ),
            "{table}"
        );
        assert!(table.contains("GENERATOR-BOUND"), "{table}");
        assert!(!old_style_run(None).table().contains("GENERATOR-BOUND"));
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        assert_eq!(
            Latency::from_histogram(&new_histogram()),
            Latency::default()
        );
    }
}
