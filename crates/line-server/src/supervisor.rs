//! A one-child supervisor with OTP restart intensity.
//!
//! The seed runs its acceptor as a `:permanent` child of a `one_for_one` supervisor: when
//! it crashes it is started again, and if it crashes more than `max_restarts` times within
//! `max_restart_window` the supervisor gives up and the failure escalates (here: the
//! process exits non-zero, so a service manager can restart it from scratch).

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, warn};

/// Counts restarts in a sliding window, as OTP's `intensity`/`period` do.
#[derive(Debug, Clone)]
pub(crate) struct RestartIntensity {
    max_restarts: u32,
    window: Duration,
    /// When recent restarts happened, oldest first; none older than `window`.
    recent: VecDeque<Instant>,
}

impl RestartIntensity {
    /// Allows `max_restarts` restarts within any `window`.
    pub(crate) fn new(max_restarts: u32, window: Duration) -> Self {
        Self {
            max_restarts,
            window,
            recent: VecDeque::new(),
        }
    }

    /// Records a failure at `now`; `false` means one restart too many: escalate.
    pub(crate) fn allow_restart(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.recent.len() <= self.max_restarts as usize
    }
}

/// The child failed more often than the restart intensity allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// Name of the child, for the log line.
    pub child: &'static str,
    /// The restart intensity it exceeded: restarts...
    pub max_restarts: u32,
    /// ...within this window.
    pub window: Duration,
}

impl fmt::Display for Escalation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed more than {} times within {} s; giving up",
            self.child,
            self.max_restarts,
            self.window.as_secs_f64()
        )
    }
}

impl std::error::Error for Escalation {}

/// Runs the child made by `start` on its own task (so a panic is contained) and starts it
/// again whenever it fails — returns an error or panics — until it returns `Ok(())` or
/// fails too often.
pub(crate) async fn supervise<F, Fut, E>(
    child: &'static str,
    mut intensity: RestartIntensity,
    mut start: F,
    restarted: impl Fn(),
) -> Result<(), Escalation>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    loop {
        match tokio::spawn(start()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => error!("{child} failed: {e}"),
            Err(join) if join.is_panic() => {
                // `&*`: the message is in the box, not the box itself.
                error!("{child} panicked: {}", panic_message(&*join.into_panic()))
            }
            Err(join) => error!("{child} was cancelled: {join}"),
        }
        if !intensity.allow_restart(Instant::now()) {
            let escalation = Escalation {
                child,
                max_restarts: intensity.max_restarts,
                window: intensity.window,
            };
            // The escalation must be returned even if the log call panics (a subscriber
            // whose writer panics on a broken stderr): logging never changes behaviour.
            let _ = std::panic::catch_unwind(|| error!("{escalation}"));
            return Err(escalation);
        }
        restarted();
        warn!("restarting {child}");
    }
}

/// The message of a panic payload, for logs.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn allows_max_restarts_within_the_window_then_escalates() {
        let start = Instant::now();
        let mut intensity = RestartIntensity::new(3, Duration::from_secs(5));
        for i in 0..3 {
            assert!(intensity.allow_restart(start + Duration::from_millis(i)));
        }
        assert!(!intensity.allow_restart(start + Duration::from_secs(1)));
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let start = Instant::now();
        let mut intensity = RestartIntensity::new(1, Duration::from_secs(5));
        assert!(intensity.allow_restart(start));
        assert!(intensity.allow_restart(start + Duration::from_secs(5)));
        assert!(intensity.allow_restart(start + Duration::from_secs(10)));
        assert!(!intensity.allow_restart(start + Duration::from_secs(11)));
    }

    #[test]
    fn zero_restarts_escalates_on_the_first_failure() {
        let mut intensity = RestartIntensity::new(0, Duration::from_secs(5));
        assert!(!intensity.allow_restart(Instant::now()));
    }

    #[tokio::test]
    async fn restarts_a_panicking_child_until_it_succeeds() {
        let starts = Arc::new(AtomicU32::new(0));
        let counter = starts.clone();
        let result = supervise(
            "child",
            RestartIntensity::new(3, Duration::from_secs(5)),
            move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        panic!("boom {n}");
                    }
                    Ok::<(), String>(())
                }
            },
            || {},
        )
        .await;
        assert_eq!(result, Ok(()));
        assert_eq!(starts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn escalates_when_the_child_keeps_failing() {
        let starts = Arc::new(AtomicU32::new(0));
        let counter = starts.clone();
        let result = supervise(
            "child",
            RestartIntensity::new(2, Duration::from_secs(5)),
            move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("always") }
            },
            || {},
        )
        .await;
        assert!(result.is_err());
        assert_eq!(
            starts.load(Ordering::SeqCst),
            3,
            "first start plus two restarts"
        );
    }
}
