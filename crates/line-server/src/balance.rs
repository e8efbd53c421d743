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
//! fraction is the share of wall time it spent running tasks.
//!
//! That time is tokio's own: a runtime adds up, per worker, the time from the start of
//! each batch of scheduled tasks to its end, reading the clock whether anyone asks or not,
//! and publishes it to an atomic of that worker's when it parks or yields to the driver
//! (`RuntimeMetrics::worker_total_busy_duration`, stable). So the measuring adds nothing
//! per request; the acceptor reads the figure when a client connects, as does a stats
//! snapshot. (Park and unpark hooks timing the same span cost 270 instructions per
//! request at one connection ping-pong, by `bench/instructions.sh`: two more clock reads
//! and tokio's hook entry per park.)

//!
//! Not yet: a client stays on the loop that took it, so a pool that connected before the
//! load rose is not spread when a loop is activated. Moving a connection to another loop
//! at a batch boundary (its socket deregistered and handed over with its session and TLS
//! state, as a new client is) would rebalance pools too; see BENCHMARKS.md, "Event loops
//! that follow the load".

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

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

/// One loop's figures, as the acceptor sees them.
#[derive(Debug)]
struct LoopLoad {
    /// Connections it serves now.
    connections: Arc<AtomicUsize>,
    /// Its runtime, whose metrics say how long it has been busy.
    runtime: Handle,
}

impl LoopLoad {
    /// Nanoseconds the loop has spent running tasks since it started (its runtime's only
    /// worker is worker 0). As of its last park or yield to the driver: a run under way is
    /// counted when it ends.
    fn busy(&self) -> u64 {
        let busy = self.runtime.metrics().worker_total_busy_duration(0);
        u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The previous look at the loops, and what it decided.
#[derive(Debug)]
struct Window {
    /// Loops `0..active` take new clients.
    active: usize,
    /// When the previous look was taken (ns since the balance's epoch).
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
    /// The loops running on `runtimes` (single-threaded ones), the first of them active.
    pub(crate) fn new(runtimes: Vec<Handle>) -> Self {
        let epoch = Instant::now();
        let count = runtimes.len();
        let loops = runtimes
            .into_iter()
            .map(|runtime| LoopLoad {
                connections: Arc::new(AtomicUsize::new(0)),
                runtime,
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
            let busy: Vec<u64> = self.loops.iter().map(LoopLoad::busy).collect();
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
}
