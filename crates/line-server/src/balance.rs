//! Which event loops take new clients: as few as keep up with the load.
//!
//! A loop that serves few requests sleeps between them, and every request then pays for
//! waking it; on cores shared with the client (or anything else) the woken loop may also
//! wait for a core. So new clients go to the *active* loops only, starting with one, and
//! a further loop is activated only when every active one is busy; when the load falls,
//! the last activated is deactivated again (it takes no new clients; those it serves stay).
//! This follows Go's scheduler, which wakes another thread only when the running ones are
//! busy (`wakep` in `runtime/proc.go`: only with an idle P and no spinning M), and Valkey
//! 8's `adjustIOThreadsByEventLoad` (`src/io_threads.c`), which activates and deactivates
//! I/O threads one by one from the current load, beyond Redis 6's on/off
//! `stopThreadedIOIfNeeded`. Unlike Valkey we measure time, not events: a loop's busy
//! fraction is the share of wall time it spent between waking and parking.
//!
//! The cost: each loop writes two atomics of its own (on a cache line no other thread
//! writes) per park and per wake-up — per batch of requests, not per request — and reads
//! the clock as often. The acceptor reads them when a client connects, as does a stats
//! snapshot; nothing else does.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Shortest span the busy fractions are measured over (ms): a look sooner than this after
/// the previous one keeps the previous decision.
pub(crate) const WINDOW: Duration = Duration::from_millis(50);
/// Another loop is activated when every active loop was busy at least this fraction of
/// the window (0..1): the active ones are then close to saturated.
const ACTIVATE_AT: f64 = 0.8;
/// The last active loop is deactivated when the active loops' busy time would keep one
/// loop fewer busy under this fraction each: well below [`ACTIVATE_AT`], so a load near
/// the threshold does not flap.
const DEACTIVATE_BELOW: f64 = 0.5;

/// How busy one loop is: written only by the loop's thread (from its runtime's park and
/// unpark hooks), read by the acceptor. On a cache line of its own, so the loop's writes
/// never bounce a line another loop writes.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct LoopClock {
    /// What the nanosecond figures count from.
    epoch: Instant,
    /// Nanoseconds spent running (between a wake-up and the next park), up to the last park.
    busy: AtomicU64,
    /// When the loop last woke up (ns since `epoch`, plus one); 0 while it is parked.
    running_since: AtomicU64,
}

impl LoopClock {
    fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            busy: AtomicU64::new(0),
            running_since: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The loop woke up (tokio's `on_thread_unpark`). Only the loop's thread writes, so a
    /// load and a store do what a read-modify-write would, without its locked instruction.
    pub(crate) fn unparked(&self) {
        self.running_since.store(self.now() + 1, Relaxed);
    }

    /// The loop is about to sleep (tokio's `on_thread_park`).
    pub(crate) fn parked(&self) {
        let since = self.running_since.load(Relaxed);
        if since != 0 {
            let ran = (self.now() + 1).saturating_sub(since);
            self.busy.store(self.busy.load(Relaxed) + ran, Relaxed);
            self.running_since.store(0, Relaxed);
        }
    }

    /// Busy nanoseconds up to `now` (since `epoch`), the current run included. Reads the
    /// total first: if the loop parks in between, its last run is missed now and counted
    /// at the next look, never counted twice.
    fn busy_until(&self, now: u64) -> u64 {
        let busy = self.busy.load(Relaxed);
        match self.running_since.load(Relaxed) {
            0 => busy,
            since => busy + (now + 1).saturating_sub(since),
        }
    }
}

/// One loop's figures, as the acceptor sees them.
#[derive(Debug)]
struct LoopLoad {
    /// Connections it serves now.
    connections: Arc<AtomicUsize>,
    clock: Arc<LoopClock>,
}

/// The previous look at the loops, and what it decided.
#[derive(Debug)]
struct Window {
    /// Loops `0..active` take new clients.
    active: usize,
    /// When the previous look was taken (ns since the clocks' epoch).
    taken_at: u64,
    /// Each loop's busy nanoseconds at that look.
    busy: Vec<u64>,
}

/// The event loops' load and which of them are active. Shared by the acceptor, which
/// places clients with it, and the stats, which report it.
#[derive(Debug)]
pub(crate) struct Balance {
    loops: Box<[LoopLoad]>,
    epoch: Instant,
    /// Touched at the rate of connects and stats reads, never per request.
    window: Mutex<Window>,
}

/// Counts a connection against its loop until dropped.
pub(crate) struct LoadGuard(Arc<AtomicUsize>);

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Balance {
    /// `count` loops, the first of them active.
    pub(crate) fn new(count: usize) -> Self {
        let epoch = Instant::now();
        let loops = (0..count)
            .map(|_| LoopLoad {
                connections: Arc::new(AtomicUsize::new(0)),
                clock: Arc::new(LoopClock::new(epoch)),
            })
            .collect();
        let window = Window {
            active: 1,
            taken_at: 0,
            busy: vec![0; count],
        };
        Self {
            loops,
            epoch,
            window: Mutex::new(window),
        }
    }

    /// The clock loop `index` keeps.
    pub(crate) fn clock(&self, index: usize) -> Arc<LoopClock> {
        Arc::clone(&self.loops[index].clock)
    }

    /// Picks the loop for a new client: the active loop with the fewest connections. The
    /// returned guard counts the client against it.
    pub(crate) fn place(&self) -> (usize, LoadGuard) {
        let active = self.active();
        let chosen = (0..active)
            .min_by_key(|&i| self.loops[i].connections.load(Relaxed))
            .unwrap_or(0);
        let connections = &self.loops[chosen].connections;
        connections.fetch_add(1, Relaxed);
        (chosen, LoadGuard(Arc::clone(connections)))
    }

    /// How many loops are active now, after a fresh look if the last is a window old.
    pub(crate) fn active(&self) -> usize {
        if self.loops.len() == 1 {
            return 1;
        }
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let span = now.saturating_sub(window.taken_at);
        if span >= WINDOW.as_nanos() as u64 {
            let busy: Vec<u64> = self.loops.iter().map(|l| l.clock.busy_until(now)).collect();
            let fractions: Vec<f64> = (0..window.active)
                .map(|i| busy[i].saturating_sub(window.busy[i]) as f64 / span as f64)
                .collect();
            window.active = next_active(&fractions, self.loops.len());
            window.taken_at = now;
            window.busy = busy;
        }
        window.active
    }

    /// How many loops there are, active or not.
    pub(crate) fn count(&self) -> usize {
        self.loops.len()
    }

    /// Connections each loop serves now, in loop order.
    pub(crate) fn connections(&self) -> Vec<u64> {
        self.loops
            .iter()
            .map(|l| l.connections.load(Relaxed) as u64)
            .collect()
    }
}

/// How many loops should be active, given the busy fractions (0..1) of those active now
/// and `max` loops in all: one more when all are at least [`ACTIVATE_AT`] busy, one fewer
/// when their total would keep one fewer under [`DEACTIVATE_BELOW`] each. One step at a
/// time, as Go wakes one thread at a time: the next look sees what the step did.
fn next_active(busy: &[f64], max: usize) -> usize {
    let active = busy.len();
    let total: f64 = busy.iter().sum();
    if active < max && busy.iter().all(|&b| b >= ACTIVATE_AT) {
        active + 1
    } else if active > 1 && total < (active - 1) as f64 * DEACTIVATE_BELOW {
        active - 1
    } else {
        active.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_is_added_only_when_every_active_one_is_busy() {
        assert_eq!(next_active(&[0.9], 4), 2);
        assert_eq!(next_active(&[0.9, 0.3], 4), 2);
        assert_eq!(next_active(&[0.9, 0.85], 4), 3);
        assert_eq!(next_active(&[0.95, 0.95], 2), 2);
    }

    #[test]
    fn a_loop_is_dropped_only_when_one_fewer_would_be_half_busy() {
        assert_eq!(next_active(&[0.1], 4), 1);
        assert_eq!(next_active(&[0.3, 0.1], 4), 1);
        assert_eq!(next_active(&[0.6, 0.1], 4), 2);
        assert_eq!(next_active(&[0.5, 0.5, 0.1], 4), 3);
        assert_eq!(next_active(&[0.3, 0.3, 0.1], 4), 2);
    }

    #[test]
    fn the_clock_counts_time_between_wake_up_and_park() {
        let clock = LoopClock::new(Instant::now());
        clock.unparked();
        std::thread::sleep(Duration::from_millis(2));
        clock.parked();
        let busy = clock.busy_until(clock.now());
        assert!(busy >= 2_000_000, "{busy} ns");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            clock.busy_until(clock.now()),
            busy,
            "parked time is not busy"
        );
    }
}
