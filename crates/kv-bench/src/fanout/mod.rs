//! Fan-out (`--subscribers N`): N subscribers of one bucket (kv-server's `SUBSCRIBE`) or
//! channel (Redis' `SUBSCRIBE`/`PUBLISH`), and writers publishing to it, flat out or at a
//! rate; measured are events delivered per second, publish-to-delivery latency, the
//! writers' own latency, the server's CPU per delivered event, and subscribers the server
//! disconnected.
//!
//! Each write's value starts with its intended send time, in nanoseconds since the run's
//! epoch ([`wire`]); a subscriber reads it back when the event arrives, so latency needs
//! no bookkeeping shared between writer and subscriber. Writers and subscribers are tasks
//! on `threads` single-threaded runtimes, as in a load run: the generator shares the
//! machine's cores with the server, so it must be cheap per event (one clock read per
//! read, not per event).
//!
//! Completeness is checked, not assumed: after the window the writers stop and collect
//! the replies still owed, then each subscriber sends the barrier (`PING`) and counts
//! what arrives before its answer. Every subscriber still connected must then have
//! received exactly one event per acknowledged write; any difference is reported.
//!
//! `--slow-subscribers N` adds subscribers that read nothing until the writers are done:
//! the server should disconnect them (kv-server past `--subscriber-buffer-bytes`) without
//! slowing the writers or the others, and its memory should not grow with what they miss;
//! the server's RSS is sampled through the run for that.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use kv_client::TlsOptions;
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use crate::conn::{Conn, Connector, READ_CHUNK};
use crate::cpu::{self, CpuUse};
use crate::idle::resident_kib;
use crate::stats::{self, generator_cores, FanoutReport, Latency};
use crate::workload::Proto;

mod subscriber;
pub mod wire;
mod writer;

use subscriber::{Subscriber, SubscriberTally};
use wire::{decode_stamp, Received, Wire, Write, STAMP_DIGITS};
use writer::{Writer, WriterTally};

/// How long one connect (and subscribe) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the end of a run (replies still owed, the barrier) may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the server's RSS is read during the run.
const RSS_EVERY: Duration = Duration::from_millis(20);

/// Everything a fan-out run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct FanoutConfig {
    /// The server's name in reports (`--label`).
    pub label: String,
    /// The server (`--addr`).
    pub addr: SocketAddr,
    /// [`Proto::Kv`] or [`Proto::Redis`]; any other is refused by [`run`].
    pub proto: Proto,
    /// Writer connections (`--conns`).
    pub writers: usize,
    /// Writes each writer keeps in flight (`--pipeline`).
    pub pipeline: usize,
    /// Writes per second over all writers (`--rate`); `None`: flat out.
    pub rate: Option<f64>,
    /// Subscribers that read all the time (`--subscribers`).
    pub subscribers: usize,
    /// Subscribers that read nothing until the writers are done (`--slow-subscribers`).
    pub slow_subscribers: usize,
    /// The measured window (`--duration`).
    pub duration: Duration,
    /// Writes before the window, not measured (`--warmup`).
    pub warmup: Duration,
    /// Bytes per value, at least [`STAMP_DIGITS`] (`--value-size`).
    pub value_size: usize,
    /// Generator threads, each a single-threaded tokio runtime.
    pub threads: usize,
    /// The server's pid: its CPU and memory during the run.
    pub server_pid: Option<u32>,
    /// Speak TLS (`--tls`); `None`: plain TCP.
    pub tls: Option<TlsOptions>,
    /// `AUTH` with this on every connection first (kv only).
    pub password: Option<String>,
}

/// When the run starts recording and when it ends; fixed once every connection is open.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    record_from: Instant,
    end: Instant,
}

/// Shared, read-only state of a run.
struct Shared {
    config: FanoutConfig,
    wire: Wire,
    connector: Connector,
    /// Stamps count nanoseconds from here.
    epoch: Instant,
    window: OnceLock<Window>,
    /// Writers still writing; the last one done tells the subscribers.
    writers_left: AtomicU64,
    writers_done: watch::Sender<bool>,
    /// Connections that could not be opened or subscribed.
    conn_errors: AtomicU64,
}

impl Shared {
    /// `at` as a stamp: nanoseconds since the epoch.
    fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn writer_done(&self) {
        if self.writers_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.writers_done.send_replace(true);
        }
    }
}

/// What one generator thread measured.
#[derive(Default)]
struct ThreadResult {
    delivery: Option<Histogram<u64>>,
    writes: Option<Histogram<u64>>,
    writers: Vec<WriterTally>,
    subscribers: Vec<SubscriberTally>,
    slow: Vec<SubscriberTally>,
}

/// Who a generator thread serves: how many writers (numbered from `first_writer`),
/// subscribers and slow subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Share {
    first_writer: usize,
    writers: usize,
    subscribers: usize,
    slow: usize,
}

/// Runs the fan-out and returns its report. Blocks the calling thread.
///
/// Errors (as a message): a protocol without subscriptions, values too short for the
/// stamp, a TLS or password setting that cannot be used, a server that cannot be reached
/// or refuses to create the bucket, a generator thread that cannot start. Connections
/// that fail later are counted in the report instead.
pub fn run(config: FanoutConfig) -> Result<FanoutReport, String> {
    let wire = Wire::new(config.proto)?;
    if config.value_size < STAMP_DIGITS {
        return Err(format!(
            "fan-out values carry a {STAMP_DIGITS}-digit send time: --value-size must be at least {STAMP_DIGITS}"
        ));
    }
    let connector = Connector::new(config.tls.as_ref(), config.password.as_deref())?;
    setup(&config, wire, &connector)?;
    let threads = config.threads.max(1);
    let (writers_done, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        writers_left: AtomicU64::new(config.writers as u64),
        config,
        wire,
        connector,
        epoch: Instant::now(),
        window: OnceLock::new(),
        writers_done,
        conn_errors: AtomicU64::new(0),
    });
    let ready = Arc::new(Barrier::new(threads + 1));
    let go = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::with_capacity(threads);
    for thread in 0..threads {
        let (shared, ready, go) = (shared.clone(), ready.clone(), go.clone());
        let share = share(&shared.config, threads, thread);
        let handle = std::thread::Builder::new()
            .name(format!("kv-bench-{thread}"))
            .spawn(move || generator_thread(shared, share, &ready, &go))
            .map_err(|e| format!("cannot start a generator thread: {e}"))?;
        handles.push(handle);
    }
    ready.wait();
    let server_pid = shared.config.server_pid;
    let rss_before = server_pid.and_then(|pid| resident_kib(pid).ok());
    let start = Instant::now();
    let record_from = start + shared.config.warmup;
    let window = Window {
        start,
        record_from,
        end: record_from + shared.config.duration,
    };
    // Cannot already be set: only this thread sets it.
    let _ = shared.window.set(window);
    go.wait();
    let finished = Arc::new(AtomicBool::new(false));
    let sampler = {
        let finished = finished.clone();
        std::thread::Builder::new()
            .name("kv-bench-cpu".into())
            .spawn(move || sample_server(server_pid, window, &finished))
            .map_err(|e| format!("cannot start the CPU sampler: {e}"))?
    };
    let mut results = Vec::with_capacity(threads);
    let mut failure = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(result)) => results.push(result),
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("a generator thread panicked".to_string()),
        }
    }
    finished.store(true, Ordering::Relaxed);
    let (cpu, rss_peak) = sampler.join().unwrap_or((None, None));
    if let Some(e) = failure {
        return Err(e);
    }
    report(&shared, threads, results, cpu, rss_before, rss_peak)
}

/// kv-server's bucket is created before anything subscribes to it.
fn setup(config: &FanoutConfig, wire: Wire, connector: &Connector) -> Result<(), String> {
    let Some((request, reply)) = wire.setup() else {
        return Ok(());
    };
    connector.with_one_connection(config.addr, CONNECT_TIMEOUT, |mut stream| async move {
        expect_reply(&mut stream, &request, &reply)
            .await
            .map_err(|e| format!("cannot create the bucket: {e}"))
    })
}

/// Sends `request` and requires exactly `reply` back, within [`CONNECT_TIMEOUT`].
async fn expect_reply(stream: &mut Conn, request: &[u8], reply: &[u8]) -> io::Result<()> {
    let work = async {
        stream.write_all(request).await?;
        let mut input = Vec::new();
        while input.len() < reply.len() {
            if stream.read_some(&mut input).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        if input != reply {
            let said = String::from_utf8_lossy(&input);
            let message = format!("answered {:?}", said.trim_end());
            return Err(io::Error::new(io::ErrorKind::InvalidData, message));
        }
        Ok(())
    };
    timeout(CONNECT_TIMEOUT, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no reply in time"))?
}

/// Thread `index` of `threads`' share of the connections: round-robin, so that each
/// thread has writers and subscribers alike when it can.
fn share(config: &FanoutConfig, threads: usize, index: usize) -> Share {
    let count = |total: usize| total / threads + usize::from(index < total % threads);
    let first_writer = (0..index)
        .map(|i| config.writers / threads + usize::from(i < config.writers % threads))
        .sum();
    Share {
        first_writer,
        writers: count(config.writers),
        subscribers: count(config.subscribers),
        slow: count(config.slow_subscribers),
    }
}

/// The server's CPU use over the window, and its highest RSS from the start of the
/// writes until the run is over.
fn sample_server(
    server_pid: Option<u32>,
    window: Window,
    finished: &AtomicBool,
) -> (Option<CpuUse>, Option<u64>) {
    let mut peak = None;
    let watch_rss = |peak: &mut Option<u64>| {
        if let Some(kib) = server_pid.and_then(|pid| resident_kib(pid).ok()) {
            *peak = Some(peak.map_or(kib, |p: u64| p.max(kib)));
        }
    };
    let sleep_until = |at: Instant, peak: &mut Option<u64>| loop {
        watch_rss(peak);
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(RSS_EVERY));
    };
    sleep_until(window.record_from, &mut peak);
    let start = cpu::sample(server_pid);
    sleep_until(window.end, &mut peak);
    let cpu = start
        .zip(cpu::sample(server_pid))
        .map(|(a, b)| cpu::between(a, b));
    while !finished.load(Ordering::Relaxed) {
        watch_rss(&mut peak);
        std::thread::sleep(RSS_EVERY);
    }
    (cpu, peak)
}

/// One generator thread: opens and subscribes its connections, waits for the others,
/// runs its writers and subscribers.
fn generator_thread(
    shared: Arc<Shared>,
    share: Share,
    ready: &Barrier,
    go: &Barrier,
) -> Result<ThreadResult, String> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            // Still meet the others, or they would wait forever.
            ready.wait();
            go.wait();
            return Err(format!("cannot start a runtime: {e}"));
        }
    };
    let local = tokio::task::LocalSet::new();
    let delivery = Rc::new(RefCell::new(stats::new_histogram()));
    let writes = Rc::new(RefCell::new(stats::new_histogram()));
    let mut result = ThreadResult::default();
    local.block_on(&runtime, async {
        let subscribers = subscribe(&shared, share.subscribers + share.slow).await;
        let mut writers = Vec::with_capacity(share.writers);
        for _ in 0..share.writers {
            match shared
                .connector
                .connect(shared.config.addr, CONNECT_TIMEOUT)
                .await
            {
                Ok(stream) => writers.push(stream),
                Err(_) => {
                    shared.conn_errors.fetch_add(1, Ordering::Relaxed);
                    // It will write nothing: it is done already.
                    shared.writer_done();
                }
            }
        }
        ready.wait();
        go.wait();
        let Some(window) = shared.window.get().copied() else {
            return;
        };
        let mut subscriber_tasks = Vec::with_capacity(subscribers.len());
        for (i, stream) in subscribers.into_iter().enumerate() {
            let subscriber = Subscriber::new(shared.clone(), window, delivery.clone());
            let done = shared.writers_done.subscribe();
            let slow = i >= share.subscribers;
            subscriber_tasks.push((
                slow,
                tokio::task::spawn_local(subscriber.run(stream, done, slow)),
            ));
        }
        let mut writer_tasks = Vec::with_capacity(writers.len());
        for (i, stream) in writers.into_iter().enumerate() {
            let writer = Writer::new(
                shared.clone(),
                window,
                writes.clone(),
                share.first_writer + i,
            );
            let shared = shared.clone();
            writer_tasks.push(tokio::task::spawn_local(async move {
                let tally = writer.run(stream).await;
                shared.writer_done();
                tally
            }));
        }
        for task in writer_tasks {
            // A panicking task is a bug in this tool; the others go on.
            if let Ok(tally) = task.await {
                result.writers.push(tally);
            }
        }
        for (slow, task) in subscriber_tasks {
            if let Ok(tally) = task.await {
                if slow {
                    result.slow.push(tally);
                } else {
                    result.subscribers.push(tally);
                }
            }
        }
    });
    result.delivery = Rc::try_unwrap(delivery).ok().map(RefCell::into_inner);
    result.writes = Rc::try_unwrap(writes).ok().map(RefCell::into_inner);
    Ok(result)
}

/// Opens `count` subscribers, each confirmed active; one that cannot be is counted as a
/// connection error and left out.
async fn subscribe(shared: &Shared, count: usize) -> Vec<Conn> {
    let (request, reply) = shared.wire.subscribe();
    let mut subscribers = Vec::with_capacity(count);
    for _ in 0..count {
        let opened = async {
            let mut stream = shared
                .connector
                .connect(shared.config.addr, CONNECT_TIMEOUT)
                .await?;
            expect_reply(&mut stream, &request, reply).await?;
            io::Result::Ok(stream)
        };
        match opened.await {
            Ok(stream) => subscribers.push(stream),
            Err(_) => {
                shared.conn_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    subscribers
}

fn report(
    shared: &Shared,
    threads: usize,
    results: Vec<ThreadResult>,
    cpu: Option<CpuUse>,
    rss_before: Option<u64>,
    rss_peak: Option<u64>,
) -> Result<FanoutReport, String> {
    let c = &shared.config;
    let mut delivery = stats::new_histogram();
    let mut writes = stats::new_histogram();
    let (mut writers, mut subscribers, mut slow) = (Vec::new(), Vec::new(), Vec::new());
    for result in results {
        for (into, from) in [
            (&mut delivery, result.delivery),
            (&mut writes, result.writes),
        ] {
            let from = from.ok_or("a task outlived its generator thread")?;
            into.add(&from)
                .map_err(|e| format!("cannot merge histograms: {e}"))?;
        }
        writers.extend(result.writers);
        subscribers.extend(result.subscribers);
        slow.extend(result.slow);
    }
    let acked: u64 = writers.iter().map(|w| w.acked).sum();
    let unanswered: u64 = writers.iter().map(|w| w.unanswered).sum();
    let events: u64 = subscribers.iter().map(|s| s.in_window).sum();
    let writes_in_window: u64 = writers.iter().map(|w| w.in_window).sum();
    let complete: Vec<&SubscriberTally> = subscribers.iter().filter(|s| s.complete).collect();
    // Writes never answered may or may not have published: a subscriber may then have
    // their events or not, and only more than that is a mistake.
    let (missing, extra) = complete.iter().fold((0, 0), |(missing, extra), s| {
        (
            missing + acked.saturating_sub(s.events),
            extra + s.events.saturating_sub(acked + unanswered),
        )
    });
    let wrong: u64 = writers.iter().map(|w| w.wrong).sum::<u64>()
        + subscribers
            .iter()
            .chain(&slow)
            .map(|s| s.wrong)
            .sum::<u64>();
    let duration = c.duration.as_secs_f64();
    let server_cpu_secs = cpu.and_then(|u| u.server_cpu_secs);
    Ok(FanoutReport {
        label: c.label.clone(),
        proto: c.proto,
        addr: c.addr.to_string(),
        writers: c.writers,
        pipeline: c.pipeline,
        rate: c.rate,
        subscribers: c.subscribers,
        slow_subscribers: c.slow_subscribers,
        duration_secs: duration,
        warmup_secs: c.warmup.as_secs_f64(),
        value_size: c.value_size,
        threads,
        writes: writes_in_window,
        writes_per_sec: writes_in_window as f64 / duration,
        write_latency: Latency::from_histogram(&writes),
        events,
        events_per_sec: events as f64 / duration,
        delivery_latency: Latency::from_histogram(&delivery),
        writes_acked: acked,
        writes_unanswered: unanswered,
        subscribers_complete: complete.len(),
        events_missing: missing,
        events_extra: extra,
        errors: wrong + extra,
        conn_errors: shared.conn_errors.load(Ordering::Relaxed)
            + writers.iter().filter(|w| w.lost).count() as u64,
        dropped_subscribers: subscribers.iter().filter(|s| s.dropped).count(),
        dropped_slow_subscribers: slow.iter().filter(|s| s.dropped).count(),
        cpu,
        server_ns_per_event: server_cpu_secs.and_then(|s| cpu::per_request(s * 1e9, events)),
        server_ctx_switches_per_event: cpu
            .and_then(|u| u.server_ctx_switches)
            .and_then(|n| cpu::per_request(n as f64, events)),
        generator_bound: cpu
            .map(|u| cpu::generator_bound(u.generator, generator_cores(threads, None, u.cores))),
        server_rss_before_kib: rss_before,
        server_rss_peak_kib: rss_peak,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(writers: usize, subscribers: usize, slow: usize) -> FanoutConfig {
        FanoutConfig {
            label: "x".into(),
            addr: ([127, 0, 0, 1], 1).into(),
            proto: Proto::Kv,
            writers,
            pipeline: 1,
            rate: None,
            subscribers,
            slow_subscribers: slow,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            value_size: 16,
            threads: 1,
            server_pid: None,
            tls: None,
            password: None,
        }
    }

    #[test]
    fn connections_are_shared_out_round_robin_and_writers_numbered_apart() {
        let c = config(3, 100, 1);
        let shares: Vec<Share> = (0..2).map(|i| share(&c, 2, i)).collect();
        assert_eq!(
            shares,
            vec![
                Share {
                    first_writer: 0,
                    writers: 2,
                    subscribers: 50,
                    slow: 1
                },
                Share {
                    first_writer: 2,
                    writers: 1,
                    subscribers: 50,
                    slow: 0
                },
            ]
        );
    }

    #[test]
    fn values_too_short_for_the_stamp_are_refused_before_connecting() {
        let too_short = FanoutConfig {
            value_size: 8,
            ..config(1, 1, 0)
        };
        assert!(run(too_short).is_err_and(|e| e.contains("--value-size")));
        let echo = FanoutConfig {
            proto: Proto::Echo,
            ..config(1, 1, 0)
        };
        assert!(run(echo).is_err_and(|e| e.contains("kv or redis")));
    }
}
