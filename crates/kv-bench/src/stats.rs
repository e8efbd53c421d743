//! Results: the latency histogram, the per-run summary, and how both are printed.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::cpu::CpuUse;
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
}

impl RunReport {
    /// The final human-readable table.
    pub fn table(&self) -> String {
        let l = &self.latency;
        format!(
            "\n{label} ({proto}) at {addr}: {conns} conns x pipeline {pipeline}, {duration}s \
             (+{warmup}s warm-up), {threads} generator threads\n{cpu}\
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
}

fn yes() -> bool {
    true
}

impl IdleReport {
    /// The final human-readable table.
    pub fn table(&self) -> String {
        let show = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        format!(
            "\n{label} ({proto}) at {addr}: {open}/{requested} idle connections open{how}, {errors} errors\n\
             server RSS before {before} KiB, after {after} KiB: {per} bytes per connection\n",
            label = self.label,
            proto = self.proto,
            addr = self.addr,
            open = self.open,
            requested = self.requested,
            errors = self.errors,
            how = if self.pinged { " (each served one ping)" } else { " (silent)" },
            before = show(self.rss_before_kib),
            after = show(self.rss_after_kib),
            per = self
                .bytes_per_conn
                .map_or_else(|| "-".to_string(), |b| format!("{b:.0}")),
        )
    }
}

/// One line of a results file: either kind of run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    Load(RunReport),
    Idle(IdleReport),
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

    #[test]
    fn an_empty_histogram_reports_zeros() {
        assert_eq!(
            Latency::from_histogram(&new_histogram()),
            Latency::default()
        );
    }
}
