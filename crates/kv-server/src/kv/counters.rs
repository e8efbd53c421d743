//! The per-request counters of KV mode: commands by verb, errors by kind, keyspace hits and
//! misses, cross-protocol closes, and the command latency histogram. `INFO` and the
//! metrics endpoint read them through [`totals`].
//!
//! They are kept per thread — each event loop is a thread — and only ever written by their
//! own thread, so counting is a plain load and store on cache lines no other core writes:
//! nothing measurable on the hot path. A report sums every thread's counters. They count
//! the KV sessions of the whole process (one server, in the binary). The backup counters
//! alone are process-wide atomics (see [`count_backup_bytes`]).
//!
//! Latency is measured per batch (the lines one read brought), not per command: the
//! session takes the time when the batch's first line arrives and again when its replies
//! are ready to be written, and records that span once for every command of the batch —
//! which is what each of them waited, since their replies leave together. Two clock reads
//! per batch instead of two per command; time spent before the first line is handled
//! (framing) and writing the replies is not included.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A command, as counted: the verbs KV mode runs itself (kv-protocol's). `AUTH` and
/// `DEBUG` are answered by wrappers in front of it (`line_server::Auth`, `Faulty`) and are
/// not counted here.
pub use kv_protocol::Verb;

/// Lower-case name of `verb`, as Redis' `cmdstat_<name>` and the metrics' `verb` label
/// use it: the wire's verb, lowered (for reports, not per request).
pub fn verb_name(verb: Verb) -> String {
    String::from_utf8_lossy(verb.as_bytes()).to_ascii_lowercase()
}

/// What went wrong with a command, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `UNKNOWN COMMAND`: unknown verb, wrong number of words, empty line.
    UnknownCommand,
    /// `NOT FOUND`: PUT, GET or DELETE on a missing bucket.
    NotFound,
    /// `ERROR <reason>`: the store failed (disk full, out of memory under `--maxmemory`...).
    Store,
}

impl ErrorKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [ErrorKind; 3] = [
        ErrorKind::UnknownCommand,
        ErrorKind::NotFound,
        ErrorKind::Store,
    ];

    /// Lower-case name, for the metrics' `kind` label.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::UnknownCommand => "unknown_command",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Store => "store",
        }
    }
}

/// Upper bounds of the latency histogram's buckets, in microseconds (the last bucket,
/// `+Inf`, is implicit). From a pipelined in-memory batch (tens of µs) to a durable commit
/// on a slow disk (hundreds of ms).
pub const LATENCY_BOUNDS_MICROS: [u64; 14] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 250_000, 1_000_000,
];

/// Buckets: one per bound and `+Inf`.
const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MICROS.len() + 1;

/// One thread's counters, on cache lines of their own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ThreadCounters {
    verbs: [AtomicU64; Verb::ALL.len()],
    errors: [AtomicU64; ErrorKind::ALL.len()],
    hits: AtomicU64,
    misses: AtomicU64,
    cross_protocol: AtomicU64,
    /// Subscriptions begun and ended: the difference is the subscribers now.
    subscribed: AtomicU64,
    unsubscribed: AtomicU64,
    events_sent: AtomicU64,
    slow_subscribers: AtomicU64,
    /// Commands per bucket (not cumulative; reports make them so).
    latency: [AtomicU64; LATENCY_BUCKETS],
    latency_sum_nanos: AtomicU64,
}

/// Every thread's counters, for reports.
static THREADS: Mutex<Vec<Arc<ThreadCounters>>> = Mutex::new(Vec::new());

thread_local! {
    static COUNTERS: Arc<ThreadCounters> = {
        let counters = Arc::new(ThreadCounters::default());
        THREADS.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&counters));
        counters
    };
}

/// Adds `n` to a counter only this thread writes: a load and a store, no atomic
/// read-modify-write.
fn add(counter: impl Fn(&ThreadCounters) -> &AtomicU64, n: u64) {
    COUNTERS.with(|counters| {
        let counter = counter(counters);
        counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
    });
}

/// A command was run.
pub(crate) fn count_verb(verb: Verb) {
    add(|c| &c.verbs[verb as usize], 1);
}

/// A command was answered with an error.
pub(crate) fn count_error(kind: ErrorKind) {
    add(|c| &c.errors[kind as usize], 1);
}

/// A GET found its key (`true`) or not.
pub(crate) fn count_lookup(found: bool) {
    if found {
        add(|c| &c.hits, 1);
    } else {
        add(|c| &c.misses, 1);
    }
}

/// A connection was closed for a line of HTTP.
pub(crate) fn count_cross_protocol() {
    add(|c| &c.cross_protocol, 1);
}

/// A connection subscribed (`true`), or its subscription ended (`false`).
pub(crate) fn count_subscription(begun: bool) {
    if begun {
        add(|c| &c.subscribed, 1);
    } else {
        add(|c| &c.unsubscribed, 1);
    }
}

/// `n` events were handed to a subscriber's connection.
pub(crate) fn count_events_sent(n: usize) {
    add(|c| &c.events_sent, n as u64);
}

/// A subscriber was disconnected for falling behind.
pub(crate) fn count_slow_subscriber() {
    add(|c| &c.slow_subscribers, 1);
}

/// Backups begun, and their bytes sent: process-wide, not per thread, because a backup is
/// also written from a thread of its own that lives only as long as it does (a thread's
/// counters are kept for the process's life), and one backup runs at a time, counted once
/// per write of tens of KiB: nothing to contend for.
static BACKUPS: AtomicU64 = AtomicU64::new(0);
static BACKUP_BYTES: AtomicU64 = AtomicU64::new(0);

/// A backup began being sent to a client.
pub(crate) fn count_backup_started() {
    BACKUPS.fetch_add(1, Relaxed);
}

/// `n` bytes of a backup were handed to a client's connection.
pub(crate) fn count_backup_bytes(n: usize) {
    BACKUP_BYTES.fetch_add(n as u64, Relaxed);
}

/// `commands` commands took `elapsed` each (one batch; see the module's doc).
pub(crate) fn record_latency(elapsed: Duration, commands: u64) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let bucket = LATENCY_BOUNDS_MICROS
        .iter()
        .position(|bound| micros <= *bound)
        .unwrap_or(LATENCY_BOUNDS_MICROS.len());
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    COUNTERS.with(|c| {
        let slot = &c.latency[bucket];
        slot.store(slot.load(Relaxed).wrapping_add(commands), Relaxed);
        let sum = &c.latency_sum_nanos;
        let added = nanos.saturating_mul(commands);
        sum.store(sum.load(Relaxed).wrapping_add(added), Relaxed);
    });
}

/// The sums over every thread, at one instant (each counter read once; they may be a few
/// commands apart from each other).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Commands run, by verb, in the order of [`Verb::ALL`].
    pub verbs: [u64; Verb::ALL.len()],
    /// Errors answered, by kind, in the order of [`ErrorKind::ALL`].
    pub errors: [u64; ErrorKind::ALL.len()],
    /// GETs that found their key.
    pub hits: u64,
    /// GETs that did not.
    pub misses: u64,
    /// Connections closed for a line of HTTP.
    pub cross_protocol: u64,
    /// Connections subscribed to a bucket now.
    pub subscribers: u64,
    /// Events handed to subscribers' connections.
    pub events_sent: u64,
    /// Subscribers disconnected for falling behind (`--subscriber-buffer-bytes`).
    pub slow_subscribers_disconnected: u64,
    /// Backups begun (`BACKUP` requests that started one).
    pub backups: u64,
    /// Bytes of backups handed to clients' connections.
    pub backup_bytes: u64,
    /// Commands whose latency fell in each bucket of [`LATENCY_BOUNDS_MICROS`] then `+Inf`
    /// (per bucket, not cumulative).
    pub latency: [u64; LATENCY_BUCKETS],
    /// The sum of the latencies recorded, in nanoseconds.
    pub latency_sum_nanos: u64,
}

impl Totals {
    /// Lines answered: every command, and every `UNKNOWN COMMAND`.
    pub fn commands_processed(&self) -> u64 {
        let unknown = self.errors[ErrorKind::UnknownCommand as usize];
        self.verbs.iter().sum::<u64>() + unknown
    }

    /// Commands run with `verb`.
    pub fn verb(&self, verb: Verb) -> u64 {
        self.verbs[verb as usize]
    }

    /// Errors of `kind`.
    pub fn error(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize]
    }
}

/// The counters of every thread, summed.
pub fn totals() -> Totals {
    let threads = THREADS.lock().unwrap_or_else(PoisonError::into_inner);
    Totals {
        backups: BACKUPS.load(Relaxed),
        backup_bytes: BACKUP_BYTES.load(Relaxed),
        ..sum(threads.iter().map(|c| &**c))
    }
}

/// `threads`' counters, summed.
fn sum<'a>(threads: impl Iterator<Item = &'a ThreadCounters>) -> Totals {
    let mut t = Totals::default();
    let (mut subscribed, mut unsubscribed) = (0u64, 0u64);
    for c in threads {
        sum_into(&mut t.verbs, &c.verbs);
        sum_into(&mut t.errors, &c.errors);
        sum_into(&mut t.latency, &c.latency);
        t.hits += c.hits.load(Relaxed);
        t.misses += c.misses.load(Relaxed);
        t.cross_protocol += c.cross_protocol.load(Relaxed);
        subscribed += c.subscribed.load(Relaxed);
        unsubscribed += c.unsubscribed.load(Relaxed);
        t.events_sent += c.events_sent.load(Relaxed);
        t.slow_subscribers_disconnected += c.slow_subscribers.load(Relaxed);
        t.latency_sum_nanos = t
            .latency_sum_nanos
            .wrapping_add(c.latency_sum_nanos.load(Relaxed));
    }
    // Read one thread at a time, an end may be seen before its beginning.
    t.subscribers = subscribed.saturating_sub(unsubscribed);
    t
}

fn sum_into<const N: usize>(sums: &mut [u64; N], counters: &[AtomicU64; N]) {
    for (sum, counter) in sums.iter_mut().zip(counters) {
        *sum += counter.load(Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_recorded_once_per_command_in_the_bucket_its_time_falls_in() {
        // This thread's counters alone: other tests in the binary count on theirs.
        let this_thread = || COUNTERS.with(|c| sum(std::iter::once(&**c)));
        let before = this_thread();
        record_latency(Duration::from_micros(30), 4);
        record_latency(Duration::from_secs(5), 1);
        let after = this_thread();
        assert_eq!(
            after.latency[2] - before.latency[2],
            4,
            "30 µs is in the 50 µs bucket"
        );
        assert_eq!(
            after.latency[LATENCY_BUCKETS - 1] - before.latency[LATENCY_BUCKETS - 1],
            1
        );
        assert_eq!(
            after.latency_sum_nanos - before.latency_sum_nanos,
            4 * 30_000 + 5_000_000_000
        );
    }

    #[test]
    fn commands_processed_counts_unknown_lines_too() {
        let totals = Totals {
            verbs: [1, 2, 3, 0, 0, 0, 1, 0, 0, 0, 0],
            errors: [2, 5, 1],
            ..Totals::default()
        };
        assert_eq!(totals.commands_processed(), 9);
    }
}
