//! Which event loops take new clients: as few as keep up with the load.
//!
//! A loop that serves few requests sleeps between them, and every request then pays for
//! waking it; on cores shared with the client (or anything else) the woken loop may also
//! wait for a core. So new clients go to the *active* loops only, starting with one, and
//! a further loop is activated only when every active one is busy and a core is idle for
//! it; when the load falls,
//! the last activated is deactivated again (it takes no new clients, and those it serves
//! move to the others).
//! This follows Go's scheduler, which wakes another thread only when the running ones are
//! busy (`wakep` in `runtime/proc.go`: only with an idle P and no spinning M), and Valkey
//! 8's `adjustIOThreadsByEventLoad` (`src/io_threads.c`), which activates and deactivates
//! I/O threads one by one from the current load, beyond Redis 6's on/off
//! `stopThreadedIOIfNeeded`. Unlike Valkey we measure time, not events: a loop's busy
//! fraction is the share of wall time it spent working.
//!
//! That time is the loop thread's time on a CPU, as the kernel counts it for the thread
//! (`/proc/thread-self/schedstat`, its first field; opened by the loop's thread when it
//! starts, read by whoever looks): what the loop's work really took. tokio's own busy time
//! (`RuntimeMetrics::worker_total_busy_duration`, the wall time from the start of each
//! batch of tasks to its end) also counts the time the loop waited for a core in the
//! middle of a batch, and on cores shared with the clients that is much of it: at 50
//! connections × 32 pipelined on this repository's 2-core machine, one loop is 0.9 busy by
//! tokio's count but 0.49 on a CPU and 0.47 waiting for one (schedstat's second field).
//! A second loop cannot help there — there is no idle core for it — and activating one on
//! the busy figure made the loops flap: two loops measured 0.45 busy together, under the
//! deactivation threshold, and one loop 0.9 again (BENCHMARKS.md, "Event loops that follow
//! the load"). Time on a CPU adds up across loops, so the two thresholds below keep
//! their hysteresis. Where the file cannot be opened (no `CONFIG_SCHED_INFO`), tokio's
//! busy time stands in. Saturated loops are not enough, though: on a quiet machine one
//! loop reached 0.8 of a CPU at 50 connections ping-pong, a second was activated, found
//! the other core held by the clients, and served them slower than one. So the machine
//! must also have had half a core idle since the last look (`/proc/stat`; without the
//! file, this is not asked). Nothing is measured per request: a look reads one figure per
//! loop and one for the machine, a `pread` each.
//!
//! A connection can move, too, so that a pool that connected before the load rose (the
//! usual case: clients keep their connections for hours) is spread when a loop is
//! activated, and gathered again when one is deactivated. Each time the number of active
//! loops changes, every loop is given how many of its connections it should shed: an
//! active loop its excess over an even share of all connections, an inactive loop all of
//! them. A connection reads its loop's figure once per batch of requests, after the
//! batch's replies are written (one relaxed load of a line written only at those changes);
//! while it is above zero, the connection claims one, and moves to the active loop with
//! the fewest connections (`migration`). Looks are also taken every [`LOOK_EVERY`] while
//! serving (`watch`), so that the load of connected clients is acted on when none
//! connects. Gathering on deactivation, not only spreading on activation, is what makes
//! the default follow the load down as well: one loop's connections wake one thread,
//! which on cores shared with the clients is cheaper than two half-idle loops
//! (BENCHMARKS.md, "Event loops that follow the load").

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Shortest span the busy fractions are measured over (ms): a look sooner than this after
/// the previous one keeps the previous decision.
pub(crate) const WINDOW: Duration = Duration::from_millis(50);
/// Another loop is activated when every active loop was busy at least this fraction of
/// the window (0..1): the active ones are then close to saturated.
const ACTIVATE_AT: f64 = 0.8;
/// ... and only while the machine had at least this much CPU idle (in cores) meanwhile:
/// room for the new loop to run. Go's `wakep` wakes a thread only for an idle P.
const SPARE_FOR_ANOTHER: f64 = 0.5;
/// The last active loop is deactivated when the active loops' busy time would keep one
/// loop fewer busy under this fraction each: well below [`ACTIVATE_AT`], so a load near
/// the threshold does not flap.
const DEACTIVATE_BELOW: f64 = 0.5;
/// How often the loops are looked at while serving, besides when a client connects or
/// stats are read: Redis' `serverCron` period at its default `hz 10`. A look costs a lock
/// and one atomic load per loop.
pub(crate) const LOOK_EVERY: Duration = Duration::from_millis(100);

/// One loop's share of the connections, on a cache line of its own: the loop's
/// connections read `shed` once per batch, while other loops' counts change as clients
/// come and go.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Lane {
    /// The loop's place in loop order.
    index: usize,
    /// Connections it serves now.
    connections: AtomicUsize,
    /// How many of them should move to another loop: set when the active loops change,
    /// counted down as connections claim a move.
    shed: AtomicUsize,
}

/// One loop's figures, as the acceptor sees them.
#[derive(Debug)]
struct LoopLoad {
    /// Its connections, and how many of them should move.
    lane: Arc<Lane>,
    /// Its runtime, whose metrics say how long it has been busy.
    runtime: Handle,
    /// Its thread's time on a CPU, where the kernel tells it.
    cpu: Option<CpuTime>,
}

impl LoopLoad {
    /// Nanoseconds of work the loop has done since it started: its thread's time on a CPU,
    /// else its runtime's busy time.
    fn worked(&self) -> u64 {
        match &self.cpu {
            Some(cpu) => cpu.read().unwrap_or(0),
            None => self.busy(),
        }
    }

    /// Nanoseconds the loop has spent running tasks since it started (its runtime's only
    /// worker is worker 0). As of its last park or yield to the driver: a run under way is
    /// counted when it ends.
    fn busy(&self) -> u64 {
        let busy = self.runtime.metrics().worker_total_busy_duration(0);
        u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A thread's time on a CPU since it started, in nanoseconds: the first field of its
/// `/proc/thread-self/schedstat`. The file is opened by the thread itself and stays bound
/// to that thread, so another thread can read it later (`pread` at offset 0 makes the
/// kernel write it anew).
#[derive(Debug)]
pub(crate) struct CpuTime(File);

impl CpuTime {
    /// The calling thread's; `None` where the kernel does not keep the figure.
    pub(crate) fn of_this_thread() -> Option<Self> {
        File::open("/proc/thread-self/schedstat").ok().map(Self)
    }

    fn read(&self) -> Option<u64> {
        let mut line = [0u8; 96];
        let n = self.0.read_at(&mut line, 0).ok()?;
        let text = std::str::from_utf8(line.get(..n)?).ok()?;
        text.split_ascii_whitespace().next()?.parse().ok()
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
    /// The machine's idle and total CPU time at that look, if known.
    machine: Option<MachineTicks>,
}

/// The event loops' load and which of them are active. Shared by the acceptor, which
/// places clients with it, and the stats, which report it.
#[derive(Debug)]
pub(crate) struct Balance {
    loops: Box<[LoopLoad]>,
    /// Fewest active loops, however light the load.
    min_active: usize,
    /// The machine's CPU time, where the kernel tells it.
    machine: Option<MachineCpu>,
    epoch: Instant,
    /// Touched at the rate of connects and stats reads, never per request.
    window: Mutex<Window>,
}

/// Counts a connection against its loop until dropped.
#[derive(Debug)]
pub(crate) struct LoadGuard(Arc<Lane>);

impl LoadGuard {
    /// Whether the connection's loop has connections to shed: one relaxed load, made once
    /// per batch of requests.
    pub(crate) fn should_shed(&self) -> bool {
        self.0.shed.load(Relaxed) > 0
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Relaxed);
    }
}

impl Balance {
    /// The loops running on `runtimes` (single-threaded ones), each with its thread's
    /// time on a CPU if known, the first `min_active` of them active (at least one; at
    /// most all).
    pub(crate) fn new(runtimes: Vec<(Handle, Option<CpuTime>)>, min_active: usize) -> Self {
        let epoch = Instant::now();
        let count = runtimes.len();
        let loops = runtimes
            .into_iter()
            .enumerate()
            .map(|(index, (runtime, cpu))| LoopLoad {
                lane: Arc::new(Lane {
                    index,
                    connections: AtomicUsize::new(0),
                    shed: AtomicUsize::new(0),
                }),
                runtime,
                cpu,
            })
            .collect();
        let min_active = min_active.clamp(1, count.max(1));
        let window = Window {
            active: min_active,
            taken_at: 0,
            busy: vec![0; count],
            machine: None,
        };
        Self {
            loops,
            min_active,
            machine: MachineCpu::open(),
            epoch,
            window: Mutex::new(window),
        }
    }

    /// Picks the loop for a new client: the active loop with the fewest connections. The
    /// returned guard counts the client against it.
    pub(crate) fn place(&self) -> (usize, LoadGuard) {
        let active = self.active();
        let chosen = (0..active)
            .min_by_key(|&i| self.connections_of(i))
            .unwrap_or(0);
        (chosen, self.count_on(chosen))
    }

    /// Claims a move for a connection of the loop `from` counts against, which has
    /// connections to shed ([`LoadGuard::should_shed`]): to the active loop with the fewest
    /// connections, which the returned guard counts it against from now on. `None` if no
    /// move is left to claim, or if the move would not even the loops out (the figure to
    /// shed was set before clients came and went).
    pub(crate) fn claim_move(&self, from: &LoadGuard) -> Option<(usize, LoadGuard)> {
        let lane = &from.0;
        lane.shed
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .ok()?;
        let active = self.window().active;
        let to = (0..active)
            .filter(|&i| i != lane.index)
            .min_by_key(|&i| self.connections_of(i))?;
        let here = lane.connections.load(Relaxed);
        if lane.index < active && self.connections_of(to) + 1 >= here {
            return None;
        }
        Some((to, self.count_on(to)))
    }

    /// Counts one more connection against loop `index`.
    fn count_on(&self, index: usize) -> LoadGuard {
        let lane = &self.loops[index].lane;
        lane.connections.fetch_add(1, Relaxed);
        LoadGuard(Arc::clone(lane))
    }

    fn connections_of(&self, index: usize) -> usize {
        self.loops[index].lane.connections.load(Relaxed)
    }

    /// The previous look. Poisoning is ignored: a look leaves the window whole.
    fn window(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many loops are active now, after a fresh look if the last is a window old.
    pub(crate) fn active(&self) -> usize {
        if self.min_active == self.loops.len() {
            return self.min_active;
        }
        let mut window = self.window();
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let span = now.saturating_sub(window.taken_at);
        if span >= WINDOW.as_nanos() as u64 {
            let busy: Vec<u64> = self.loops.iter().map(LoopLoad::worked).collect();
            let fractions: Vec<f64> = (0..window.active)
                .map(|i| busy[i].saturating_sub(window.busy[i]) as f64 / span as f64)
                .collect();
            let machine = self.machine.as_ref().and_then(MachineCpu::read);
            let spare = spare_cores(window.machine, machine);
            let next = next_active(&fractions, spare, self.loops.len());
            let active = next.max(self.min_active);
            if active != window.active {
                debug!(
                    ?fractions,
                    ?spare,
                    active,
                    "event loops busy; active loops change"
                );
                self.set_shed(active);
            }
            window.active = active;
            window.taken_at = now;
            window.busy = busy;
            window.machine = machine;
        }
        window.active
    }

    /// Tells each loop how many connections to shed for `active` loops to serve them all
    /// evenly: an active loop its excess over an even share, an inactive one all it has.
    fn set_shed(&self, active: usize) {
        let shed = to_shed(&self.connections(), active);
        for (l, shed) in self.loops.iter().zip(shed) {
            l.lane
                .shed
                .store(usize::try_from(shed).unwrap_or(usize::MAX), Relaxed);
        }
    }

    /// Fewest active loops, however light the load.
    pub(crate) fn min_active(&self) -> usize {
        self.min_active
    }

    /// How many loops there are, active or not.
    pub(crate) fn count(&self) -> usize {
        self.loops.len()
    }

    /// Connections each loop serves now, in loop order.
    pub(crate) fn connections(&self) -> Vec<u64> {
        self.loops
            .iter()
            .map(|l| l.lane.connections.load(Relaxed) as u64)
            .collect()
    }
}

/// Looks at the loops every [`LOOK_EVERY`] until `shutdown`, so that a change of load is
/// acted on when no client connects: a pool that connected before the load rose is spread
/// (and gathered when it falls) only once a look has set each loop's share.
pub(crate) async fn watch(balance: Arc<Balance>, shutdown: CancellationToken) {
    let mut looks = tokio::time::interval(LOOK_EVERY);
    looks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = looks.tick() => {
                balance.active();
            }
        }
    }
}

/// How many loops should be active, given the busy fractions (0..1) of those active now,
/// the machine's idle cores meanwhile (`None`: not known) and `max` loops in all: one more
/// when all are at least [`ACTIVATE_AT`] busy and [`SPARE_FOR_ANOTHER`] cores were idle,
/// one fewer when their total would keep one fewer under [`DEACTIVATE_BELOW`] each. One
/// step at a time, as Go wakes one thread at a time: the next look sees what the step did.
fn next_active(busy: &[f64], spare: Option<f64>, max: usize) -> usize {
    let active = busy.len();
    let total: f64 = busy.iter().sum();
    let room = spare.is_none_or(|idle| idle >= SPARE_FOR_ANOTHER);
    if active < max && room && busy.iter().all(|&b| b >= ACTIVATE_AT) {
        active + 1
    } else if active > 1 && total < (active - 1) as f64 * DEACTIVATE_BELOW {
        active - 1
    } else {
        active.max(1)
    }
}

/// The machine's CPU time so far, in the kernel's ticks: idle (with I/O wait), and all.
#[derive(Debug, Clone, Copy)]
struct MachineTicks {
    idle: u64,
    all: u64,
    cpus: usize,
}

/// Cores the machine had idle on average between two readings, if both are known.
fn spare_cores(before: Option<MachineTicks>, now: Option<MachineTicks>) -> Option<f64> {
    let (before, now) = (before?, now?);
    let all = now.all.checked_sub(before.all).filter(|&t| t > 0)?;
    let idle = now.idle.saturating_sub(before.idle);
    Some(idle as f64 / all as f64 * now.cpus as f64)
}

/// `/proc/stat`, kept open and read anew at each look (`pread` at offset 0): its first
/// line adds up every CPU's time by kind, the `cpuN` lines after it are one per CPU.
#[derive(Debug)]
struct MachineCpu(File);

impl MachineCpu {
    fn open() -> Option<Self> {
        File::open("/proc/stat").ok().map(Self)
    }

    fn read(&self) -> Option<MachineTicks> {
        // The CPU lines come first; the rest (interrupt counts) can be long and is cut.
        let mut text = vec![0u8; 16 * 1024];
        let n = self.0.read_at(&mut text, 0).ok()?;
        let text = String::from_utf8_lossy(text.get(..n)?);
        let mut lines = text.lines();
        let ticks: Vec<u64> = lines
            .next()?
            .split_ascii_whitespace()
            .skip(1)
            .map(|field| field.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal (guest time is within user).
        let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
        let all = ticks.iter().take(8).sum();
        let cpus = lines.take_while(|line| line.starts_with("cpu")).count();
        Some(MachineTicks { idle, all, cpus })
    }
}

/// How many connections each loop should shed, given each one's `counts` in loop order,
/// for loops `0..active` to serve them all evenly.
fn to_shed(counts: &[u64], active: usize) -> Vec<u64> {
    let share = counts.iter().sum::<u64>().div_ceil(active.max(1) as u64);
    let shed = |(index, &count): (usize, &u64)| match index < active {
        true => count.saturating_sub(share),
        false => count,
    };
    counts.iter().enumerate().map(shed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_is_added_only_when_every_active_one_is_busy_and_a_core_is_idle() {
        let idle = Some(1.0);
        assert_eq!(next_active(&[0.9], idle, 4), 2);
        assert_eq!(next_active(&[0.9, 0.3], idle, 4), 2);
        assert_eq!(next_active(&[0.9, 0.85], idle, 4), 3);
        assert_eq!(next_active(&[0.95, 0.95], idle, 2), 2);
        assert_eq!(next_active(&[0.9], Some(0.2), 4), 1);
        assert_eq!(next_active(&[0.9], None, 4), 2);
    }

    #[test]
    fn a_loop_is_dropped_only_when_one_fewer_would_be_half_busy() {
        for idle in [None, Some(0.0), Some(2.0)] {
            assert_eq!(next_active(&[0.1], idle, 4), 1);
            assert_eq!(next_active(&[0.3, 0.1], idle, 4), 1);
            assert_eq!(next_active(&[0.6, 0.1], idle, 4), 2);
            assert_eq!(next_active(&[0.5, 0.5, 0.1], idle, 4), 3);
            assert_eq!(next_active(&[0.3, 0.3, 0.1], idle, 4), 2);
        }
    }

    #[test]
    fn idle_cores_are_the_idle_share_of_all_cpu_time_times_the_cpus() {
        let at = |idle, all| Some(MachineTicks { idle, all, cpus: 2 });
        assert_eq!(spare_cores(at(100, 400), at(150, 600)), Some(0.5));
        assert_eq!(spare_cores(at(100, 400), at(100, 400)), None);
        assert_eq!(spare_cores(None, at(100, 400)), None);
    }

    #[test]
    fn the_machine_cpu_time_is_read_where_the_kernel_keeps_it() {
        let Some(machine) = MachineCpu::open() else {
            return;
        };
        let ticks = machine.read().expect("a cpu line");
        assert!(ticks.cpus >= 1 && ticks.all >= ticks.idle, "{ticks:?}");
    }

    #[test]
    fn an_activated_loop_takes_an_even_share_and_a_deactivated_one_gives_all_away() {
        assert_eq!(to_shed(&[50, 0], 2), [25, 0]);
        assert_eq!(to_shed(&[51, 0], 2), [25, 0]);
        assert_eq!(to_shed(&[30, 20, 0, 0], 3), [13, 3, 0, 0]);
        assert_eq!(to_shed(&[25, 25], 1), [0, 25]);
        assert_eq!(to_shed(&[0, 0], 2), [0, 0]);
    }
}
