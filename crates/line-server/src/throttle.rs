//! A process-wide "at most once per interval" gate for log lines that clients can trigger.
//!
//! A warning that any client can provoke must not let a flood of such clients flood the
//! log (PROTOCOL.md, "Cross-protocol requests": "at most once a minute"). Redis keeps a `static time_t logged_time` in
//! `securityWarningCommand` (src/networking.c) for the same reason; this is that, made safe
//! to share between threads: two atomics, no lock, no allocation.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Lets one event through per interval and counts the ones it holds back.
#[derive(Debug)]
pub struct Throttle {
    /// The interval, in milliseconds of [`monotonic_ms`].
    interval_ms: u64,
    /// The earliest time the next event may pass.
    next_ms: AtomicU64,
    /// Events held back since the last one that passed.
    suppressed: AtomicU64,
}

impl Throttle {
    /// A gate that lets the first event through at once, then one per `interval`.
    pub const fn new(interval: Duration) -> Self {
        // Saturating, and without `u64::try_from` (not `const`): usable in a `static`.
        let interval_ms = interval
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(interval.subsec_millis() as u64);
        Self {
            interval_ms,
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether this event may be logged now. If so, returns how many were held back since
    /// the last one that was.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(monotonic_ms())
    }

    /// [`Throttle::allow`] at a given time, for tests. A clock on the wall could step back;
    /// a monotonic one cannot, so unlike Redis' `labs(now - logged_time)` no absolute value
    /// is needed.
    fn allow_at(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Relaxed);
        // Of several threads that see the interval over, only the one whose exchange
        // succeeds logs; the others count as held back.
        let passed = now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms.saturating_add(self.interval_ms),
                    Relaxed,
                    Relaxed,
                )
                .is_ok();
        if passed {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

/// Milliseconds since this process first asked; never goes back.
fn monotonic_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let elapsed = EPOCH.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(elapsed).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_first_event_passes_and_the_next_only_after_the_interval() {
        let gate = Throttle::new(MINUTE);
        assert_eq!(gate.allow_at(5_000), Some(0));
        assert_eq!(gate.allow_at(5_000), None);
        assert_eq!(gate.allow_at(64_999), None);
        assert_eq!(gate.allow_at(65_000), Some(2), "two were held back");
        assert_eq!(gate.allow_at(65_001), None);
        assert_eq!(gate.allow_at(200_000), Some(1));
    }

    #[test]
    fn the_first_event_at_time_zero_passes() {
        assert_eq!(Throttle::new(MINUTE).allow_at(0), Some(0));
    }

    #[test]
    fn of_many_threads_at_the_same_moment_exactly_one_passes() {
        let gate = Arc::new(Throttle::new(MINUTE));
        let passed: u64 = (0..8)
            .map(|_| {
                let gate = gate.clone();
                thread::spawn(move || (0..1_000).filter(|_| gate.allow_at(7).is_some()).count())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().expect("thread") as u64)
            .sum();
        assert_eq!(passed, 1);
        assert_eq!(gate.allow_at(60_007), Some(7_999));
    }

    #[test]
    fn the_real_clock_lets_the_first_event_through_then_holds_back() {
        let gate = Throttle::new(MINUTE);
        assert_eq!(gate.allow(), Some(0));
        assert_eq!(gate.allow(), None);
    }
}
