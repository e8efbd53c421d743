//! The closed-loop load run: `conns` connections, each keeping `pipeline` requests in
//! flight, every reply checked, every latency recorded.
//!
//! Latency is measured from each request's *intended* send time, which for a closed loop
//! is the moment its slot became free (the reply that freed it was read). If the
//! generator is late to send — descheduled, or its socket buffer full — that delay is
//! part of the measured latency instead of silently vanishing (coordinated omission).
//!
//! The generator runs `threads` OS threads, each a single-threaded tokio runtime that
//! owns its share of the connections and one histogram, like `wrk`: no work stealing and
//! no shared histogram on the hot path. With `--pin`, thread `i` runs on the `i`-th CPU of
//! the list (in turn), so the generator keeps off the server's cores.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use kv_client::TlsOptions;
use tokio::time::{sleep_until, timeout, Instant};

use crate::affinity::{self, CpuList};
use crate::conn::{Conn, Connector, READ_CHUNK};
use crate::cpu::{self, CpuUse};
use crate::stats::{self, generator_cores, Latency, RunReport};
use crate::verify::{check, Verdict};
use crate::workload::{Op, Proto, Workload};

mod driver;
mod preload;

use driver::Driver;
use preload::preload;

/// Requests per write while preloading.
const PRELOAD_BATCH: usize = 512;
/// How long preloading may take before the run is abandoned.
const PRELOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one connect (and TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before reconnecting a connection the server closed, so a server that refuses
/// everyone is not hammered in a tight loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// Everything a load run needs.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub label: String,
    pub addr: SocketAddr,
    pub proto: Proto,
    pub conns: usize,
    pub pipeline: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub value_size: usize,
    pub keys: usize,
    pub get_ratio: f64,
    pub threads: usize,
    /// Print a live progress line to stderr (only sensible on a terminal).
    pub progress: bool,
    /// The server's pid, to report its CPU use.
    pub server_pid: Option<u32>,
    /// CPUs to pin the generator threads to (`--pin`), one each, in turn.
    pub pin: Option<CpuList>,
    /// Speak TLS (`--tls`); `None`: plain TCP.
    pub tls: Option<TlsOptions>,
    /// `AUTH` with this on every connection first (`--password`; KV protocol only).
    pub password: Option<String>,
}

/// Counters every connection adds to once per read, for the progress line and the totals.
#[derive(Debug, Default)]
struct Counters {
    /// Correct replies inside the measured window.
    ops: AtomicU64,
    /// Correct replies at any time (progress shows warm-up too).
    replies: AtomicU64,
    errors: AtomicU64,
    conn_errors: AtomicU64,
}

/// When the run starts recording and when it ends; fixed once every connection is open.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    record_from: Instant,
    end: Instant,
}

/// Shared, read-only state of a run.
struct Plan {
    config: LoadConfig,
    connector: Connector,
    workload: Workload,
    counters: Counters,
    window: OnceLock<Window>,
}

/// Runs the load and returns its report. Blocks the calling thread.
pub fn run(config: LoadConfig) -> Result<RunReport, String> {
    check_pin(config.pin.as_ref())?;
    let connector = Connector::new(config.tls.as_ref(), config.password.as_deref())?;
    let workload = Workload::new(config.proto, config.keys, config.value_size);
    preload(&config, &connector, &workload)?;
    let threads = config.threads.clamp(1, config.conns);
    let plan = Arc::new(Plan {
        config,
        connector,
        workload,
        counters: Counters::default(),
        window: OnceLock::new(),
    });
    // Every generator thread, plus this one, meets here once its connections are open.
    let ready = Arc::new(Barrier::new(threads + 1));
    let go = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::with_capacity(threads);
    for thread in 0..threads {
        let (plan, ready, go) = (plan.clone(), ready.clone(), go.clone());
        let conns = share(plan.config.conns, threads, thread);
        let handle = std::thread::Builder::new()
            .name(format!("kv-bench-{thread}"))
            .spawn(move || generator_thread(plan, thread, conns, &ready, &go))
            .map_err(|e| format!("cannot start a generator thread: {e}"))?;
        handles.push(handle);
    }
    ready.wait();
    let start = Instant::now();
    let record_from = start + plan.config.warmup;
    let window = Window {
        start,
        record_from,
        end: record_from + plan.config.duration,
    };
    // Cannot already be set: only this thread sets it.
    let _ = plan.window.set(window);
    go.wait();
    let server_pid = plan.config.server_pid;
    let sampler_cpu = plan.config.pin.as_ref().map(|p| p.for_thread(0));
    let sampler = std::thread::Builder::new()
        .name("kv-bench-cpu".into())
        .spawn(move || {
            // Keep even the sampler's two wake-ups off the server's cores; checked above.
            if let Some(cpu) = sampler_cpu {
                let _ = affinity::pin_this_thread(cpu);
            }
            std::thread::sleep(window.record_from.saturating_duration_since(Instant::now()));
            let start = cpu::sample(server_pid);
            std::thread::sleep(window.end.saturating_duration_since(Instant::now()));
            Some(cpu::between(start?, cpu::sample(server_pid)?))
        })
        .map_err(|e| format!("cannot start the CPU sampler: {e}"))?;
    if plan.config.progress {
        show_progress(&plan, window);
    }
    let mut histogram = stats::new_histogram();
    for handle in handles {
        let thread_histogram = handle
            .join()
            .map_err(|_| "a generator thread panicked".to_string())??;
        histogram
            .add(&thread_histogram)
            .map_err(|e| format!("cannot merge histograms: {e}"))?;
    }
    let cpu = sampler.join().unwrap_or(None);
    Ok(report(&plan, threads, &histogram, cpu))
}

/// A `--pin` naming a CPU this process may not run on fails before any load is sent,
/// with the CPUs it may use.
fn check_pin(pin: Option<&CpuList>) -> Result<(), String> {
    let (Some(pin), Some(allowed)) = (pin, affinity::allowed_cpus(None)) else {
        return Ok(());
    };
    if pin.is_within(&allowed) {
        Ok(())
    } else {
        Err(format!(
            "--pin {pin}: this process may only run on CPUs {allowed}"
        ))
    }
}

/// Connections thread `index` of `threads` owns (the first ones take the remainder).
fn share(conns: usize, threads: usize, index: usize) -> usize {
    conns / threads + usize::from(index < conns % threads)
}

fn report(
    plan: &Plan,
    threads: usize,
    histogram: &Histogram<u64>,
    cpu: Option<CpuUse>,
) -> RunReport {
    let c = &plan.config;
    let ops = plan.counters.ops.load(Ordering::Relaxed);
    let server_cpu_secs = cpu.and_then(|u| u.server_cpu_secs);
    let server_ctx_switches = cpu.and_then(|u| u.server_ctx_switches);
    RunReport {
        label: c.label.clone(),
        proto: c.proto,
        addr: c.addr.to_string(),
        conns: c.conns,
        pipeline: c.pipeline,
        duration_secs: c.duration.as_secs_f64(),
        warmup_secs: c.warmup.as_secs_f64(),
        value_size: c.value_size,
        keys: c.keys,
        get_ratio: c.get_ratio,
        threads,
        ops,
        errors: plan.counters.errors.load(Ordering::Relaxed),
        conn_errors: plan.counters.conn_errors.load(Ordering::Relaxed),
        ops_per_sec: ops as f64 / c.duration.as_secs_f64(),
        latency: Latency::from_histogram(histogram),
        cpu,
        pin: c.pin.as_ref().map(CpuList::to_string),
        tls: c.tls.is_some(),
        server_cpus: c
            .server_pid
            .and_then(|pid| affinity::allowed_cpus(Some(pid)))
            .map(|cpus| cpus.to_string()),
        server_ns_per_request: server_cpu_secs.and_then(|s| cpu::per_request(s * 1e9, ops)),
        server_ctx_switches_per_request: server_ctx_switches
            .and_then(|n| cpu::per_request(n as f64, ops)),
        generator_bound: cpu.map(|u| {
            let cores = generator_cores(threads, c.pin.as_ref(), u.cores);
            cpu::generator_bound(u.generator, cores)
        }),
    }
}

/// Prints `ops/s` of the last second and the error count, once a second, on one line.
fn show_progress(plan: &Plan, window: Window) {
    let mut last = 0;
    let mut next = window.start + Duration::from_secs(1);
    let stderr = io::stderr();
    while next <= window.end {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let replies = plan.counters.replies.load(Ordering::Relaxed);
        let errors = plan.counters.errors.load(Ordering::Relaxed);
        let phase = if next <= window.record_from {
            "warm-up"
        } else {
            "running"
        };
        let elapsed = (next - window.start).as_secs();
        let mut err = stderr.lock();
        // A broken stderr must not stop the run.
        let _ = write!(
            err,
            "\r\x1b[2K[{elapsed:>3}s {phase}] {:>12} ops/s   errors {errors}",
            replies - last
        );
        let _ = err.flush();
        last = replies;
        next += Duration::from_secs(1);
    }
    let _ = writeln!(stderr.lock());
}

/// Whether a progress line makes sense: stderr is a terminal.
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}

/// One generator thread: opens its connections, waits for the others, drives the load.
fn generator_thread(
    plan: Arc<Plan>,
    thread: usize,
    conns: usize,
    ready: &Barrier,
    go: &Barrier,
) -> Result<Histogram<u64>, String> {
    let pinned = match &plan.config.pin {
        Some(pin) => {
            let cpu = pin.for_thread(thread);
            affinity::pin_this_thread(cpu).map_err(|e| format!("cannot pin to CPU {cpu}: {e}"))
        }
        None => Ok(()),
    };
    let runtime = pinned.and_then(|()| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))
    });
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            // Still meet the others, or they would wait forever.
            ready.wait();
            go.wait();
            return Err(e);
        }
    };
    let local = tokio::task::LocalSet::new();
    let histogram = Rc::new(RefCell::new(stats::new_histogram()));
    local.block_on(&runtime, async {
        let mut streams = Vec::with_capacity(conns);
        for _ in 0..conns {
            match plan
                .connector
                .connect(plan.config.addr, CONNECT_TIMEOUT)
                .await
            {
                Ok(stream) => streams.push(stream),
                Err(_) => {
                    plan.counters.conn_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        ready.wait();
        go.wait();
        let Some(window) = plan.window.get().copied() else {
            return;
        };
        let mut tasks = Vec::with_capacity(streams.len());
        for (i, stream) in streams.into_iter().enumerate() {
            let seed = ((thread as u64) << 32 | i as u64).wrapping_add(1);
            let driver = Driver::new(plan.clone(), window, histogram.clone(), seed);
            tasks.push(tokio::task::spawn_local(driver.run(stream)));
        }
        for task in tasks {
            // A panicking connection task is a bug in this tool; the others go on.
            let _ = task.await;
        }
    });
    Rc::try_unwrap(histogram)
        .map(RefCell::into_inner)
        .map_err(|_| "a connection task outlived the run".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_shared_out_evenly_between_threads() {
        let shares: Vec<usize> = (0..3).map(|i| share(10, 3, i)).collect();
        assert_eq!(shares, vec![4, 3, 3]);
        assert_eq!((0..2).map(|i| share(1000, 2, i)).sum::<usize>(), 1000);
    }
}
