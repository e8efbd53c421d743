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
//! no shared histogram on the hot path.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::io::Interest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};

use crate::cpu::{self, CpuUse};
use crate::stats::{self, Latency, RunReport};
use crate::verify::{check, Verdict};
use crate::workload::{Op, Proto, Workload};

/// Room reserved per read.
const READ_CHUNK: usize = 16 * 1024;
/// Requests per write while preloading.
const PRELOAD_BATCH: usize = 512;
/// How long preloading may take before the run is abandoned.
const PRELOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one connect may take.
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
    workload: Workload,
    counters: Counters,
    window: OnceLock<Window>,
}

/// Runs the load and returns its report. Blocks the calling thread.
pub fn run(config: LoadConfig) -> Result<RunReport, String> {
    let workload = Workload::new(config.proto, config.keys, config.value_size);
    preload(&config, &workload)?;
    let threads = config.threads.clamp(1, config.conns);
    let plan = Arc::new(Plan {
        config,
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
    let sampler = std::thread::Builder::new()
        .name("kv-bench-cpu".into())
        .spawn(move || {
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
    let histogram = Rc::new(RefCell::new(stats::new_histogram()));
    local.block_on(&runtime, async {
        let mut streams = Vec::with_capacity(conns);
        for _ in 0..conns {
            match connect(plan.config.addr).await {
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

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A request sent and not yet answered.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// When its slot became free: the latency clock starts here.
    intended: Instant,
    op: Op,
    key: u32,
}

/// Why a connection's loop stopped.
enum Stop {
    /// The run is over.
    Done,
    /// The connection failed or was closed; reconnect if time remains.
    Lost,
}

/// One connection's closed loop.
struct Driver {
    plan: Arc<Plan>,
    window: Window,
    histogram: Rc<RefCell<Histogram<u64>>>,
    rng: XorShift,
    inflight: VecDeque<InFlight>,
    /// Requests to write (reused).
    out: Vec<u8>,
    /// Received bytes not yet matched to a request.
    input: Vec<u8>,
}

impl Driver {
    fn new(
        plan: Arc<Plan>,
        window: Window,
        histogram: Rc<RefCell<Histogram<u64>>>,
        seed: u64,
    ) -> Self {
        let pipeline = plan.config.pipeline;
        Self {
            plan,
            window,
            histogram,
            rng: XorShift::new(seed),
            inflight: VecDeque::with_capacity(pipeline),
            out: Vec::with_capacity(4096),
            input: Vec::with_capacity(READ_CHUNK),
        }
    }

    async fn run(mut self, stream: TcpStream) {
        let mut stream = stream;
        loop {
            match self.drive(&mut stream).await {
                Stop::Done => return,
                Stop::Lost => {
                    self.plan
                        .counters
                        .conn_errors
                        .fetch_add(1, Ordering::Relaxed);
                    // What was in flight will never be answered.
                    if Instant::now() < self.window.end {
                        self.count_errors(self.inflight.len() as u64);
                    }
                    self.inflight.clear();
                    self.input.clear();
                }
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
            loop {
                if Instant::now() >= self.window.end {
                    return;
                }
                match connect(self.plan.config.addr).await {
                    Ok(s) => {
                        stream = s;
                        break;
                    }
                    Err(_) => {
                        self.plan
                            .counters
                            .conn_errors
                            .fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                    }
                }
            }
        }
    }

    /// Sends, reads and checks until the window ends or the connection is lost.
    ///
    /// The generator shares the CPUs with the server, so every syscall it saves is CPU the
    /// server gets: one deadline timer per connection (not one per wait), and no
    /// speculative read that is bound to fail (see [`read_some`]).
    async fn drive(&mut self, stream: &mut TcpStream) -> Stop {
        let deadline = sleep_until(self.window.end);
        tokio::pin!(deadline);
        let mut slot_free_at = Instant::now().max(self.window.start);
        loop {
            self.fill(slot_free_at);
            if !self.out.is_empty() {
                tokio::select! {
                    biased;
                    written = stream.write_all(&self.out) => if written.is_err() { return Stop::Lost },
                    () = &mut deadline => return Stop::Done,
                }
                self.out.clear();
            }
            tokio::select! {
                biased;
                read = read_some(stream, &mut self.input) => match read {
                    Ok(0) | Err(_) => return Stop::Lost,
                    Ok(_) => {}
                },
                () = &mut deadline => return Stop::Done,
            }
            let now = Instant::now();
            if now >= self.window.end {
                return Stop::Done;
            }
            self.settle(now);
            slot_free_at = now;
        }
    }

    /// Queues requests until `pipeline` are in flight, all intended for `at`.
    fn fill(&mut self, at: Instant) {
        let c = &self.plan.config;
        while self.inflight.len() < c.pipeline {
            let key = self.rng.below(c.keys as u64) as u32;
            let op = if self.rng.unit() < c.get_ratio {
                Op::Get
            } else {
                Op::Put
            };
            let exchange = self.plan.workload.exchange(op, key as usize);
            self.out.extend_from_slice(&exchange.request);
            self.inflight.push_back(InFlight {
                intended: at,
                op,
                key,
            });
        }
    }

    /// Matches every complete reply in `input` to its request, all received at `now`.
    fn settle(&mut self, now: Instant) {
        let proto = self.plan.config.proto;
        let recording = now >= self.window.record_from;
        let mut histogram = self.histogram.borrow_mut();
        let (mut pos, mut right, mut wrong, mut measured) = (0, 0u64, 0u64, 0u64);
        while let Some(request) = self.inflight.front().copied() {
            let expected = &self
                .plan
                .workload
                .exchange(request.op, request.key as usize)
                .reply;
            match check(&self.input[pos..], expected, proto, request.op) {
                Verdict::Incomplete => break,
                Verdict::Right(n) => {
                    pos += n;
                    right += 1;
                    if recording {
                        measured += 1;
                        let nanos = (now - request.intended).as_nanos();
                        stats::record(&mut histogram, u64::try_from(nanos).unwrap_or(u64::MAX));
                    }
                }
                Verdict::Wrong(n) => {
                    pos += n;
                    wrong += 1;
                }
            }
            self.inflight.pop_front();
        }
        if self.inflight.is_empty() && pos < self.input.len() {
            // Bytes nobody asked for: one more wrong reply.
            pos = self.input.len();
            wrong += 1;
        }
        self.input.drain(..pos);
        let counters = &self.plan.counters;
        counters.replies.fetch_add(right, Ordering::Relaxed);
        if measured > 0 {
            counters.ops.fetch_add(measured, Ordering::Relaxed);
        }
        if wrong > 0 {
            self.count_errors(wrong);
        }
    }

    fn count_errors(&self, n: u64) {
        self.plan.counters.errors.fetch_add(n, Ordering::Relaxed);
    }
}

/// Reads what is available into `input`, waiting for readiness first if needed.
///
/// A read that did not fill the room it was given drained the socket, so readiness is
/// cleared right away (a `try_io` that reports `WouldBlock` without a syscall): the next
/// call then parks on the reactor instead of first making a `recvfrom` that can only fail.
/// Clearing is safe: tokio only clears readiness it has already seen, so bytes that
/// arrive meanwhile raise a fresh event.
async fn read_some(stream: &TcpStream, input: &mut Vec<u8>) -> io::Result<usize> {
    input.reserve(READ_CHUNK);
    let room = input.capacity() - input.len();
    loop {
        match stream.try_read_buf(input) {
            Ok(n) => {
                if n > 0 && n < room {
                    let _ = stream.try_io(Interest::READABLE, || {
                        Err::<(), _>(io::ErrorKind::WouldBlock.into())
                    });
                }
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await?,
            Err(e) => return Err(e),
        }
    }
}

/// Sends the workload's preload steps over one connection, pipelined, and requires every
/// reply to be exactly right: a run against a server that cannot store the keys would
/// only measure errors.
fn preload(config: &LoadConfig, workload: &Workload) -> Result<(), String> {
    let steps = workload.preload();
    if steps.is_empty() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let addr = config.addr;
    let proto = config.proto;
    runtime.block_on(async move {
        let work = async {
            let mut stream = connect(addr)
                .await
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            let mut input = Vec::with_capacity(READ_CHUNK);
            // CREATE first, alone: the PUTs depend on it.
            for batch in std::iter::once(&steps[..1]).chain(steps[1..].chunks(PRELOAD_BATCH)) {
                let out: Vec<u8> = batch
                    .iter()
                    .flat_map(|s| s.request.iter().copied())
                    .collect();
                stream
                    .write_all(&out)
                    .await
                    .map_err(|e| format!("preload write failed: {e}"))?;
                for step in batch {
                    loop {
                        match check(&input, &step.reply, proto, Op::Put) {
                            Verdict::Right(n) => {
                                input.drain(..n);
                                break;
                            }
                            Verdict::Wrong(n) => {
                                return Err(format!(
                                    "preload: {:?} was answered {:?}",
                                    String::from_utf8_lossy(&step.request),
                                    String::from_utf8_lossy(&input[..n])
                                ))
                            }
                            Verdict::Incomplete => {
                                input.reserve(READ_CHUNK);
                                match stream.read_buf(&mut input).await {
                                    Ok(0) => {
                                        return Err(
                                            "preload: the server closed the connection".to_string()
                                        )
                                    }
                                    Ok(_) => {}
                                    Err(e) => return Err(format!("preload read failed: {e}")),
                                }
                            }
                        }
                    }
                }
            }
            Ok(())
        };
        timeout(PRELOAD_TIMEOUT, work)
            .await
            .map_err(|_| "preload timed out".to_string())?
    })
}

/// A tiny fast PRNG (xorshift64*): the generator needs speed and reproducibility, not
/// cryptographic quality.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is negligible for our n).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
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

    #[test]
    fn the_random_mix_follows_the_get_ratio() {
        let mut rng = XorShift::new(7);
        let gets = (0..100_000).filter(|_| rng.unit() < 0.9).count();
        assert!((89_000..91_000).contains(&gets), "{gets}");
        assert!((0..1000).all(|_| rng.below(10) < 10));
    }
}
