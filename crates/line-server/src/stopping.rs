//! How the server tells its connections to stop — when a graceful shutdown begins (answer
//! what was received, then close) and at its deadline (stop wherever you are) — at no cost
//! per request.
//!
//! Each connection's task enlists once, for its life: its waker goes into a shared list.
//! Moving to the next [`Phase`] stores it in one atomic and wakes every enlisted task; a
//! connection reads the phase wherever it waits, which costs one load of a line no one
//! writes while serving. Ranch's connection supervisor does the same in spirit: it knows
//! its children and tells each one to stop.
//!
//! Not a `CancellationToken` per connection: tokio-util's token takes a mutex shared
//! by every connection for each `is_cancelled`, clone and drop, and waiting on it registers
//! and unregisters a waker under another shared mutex: several lock round trips per
//! request between event loops (the "no shared lock per request" budget, `lib.rs`), and a
//! waiter inside every idle connection's future (the idle-connection budget).

use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

use slab::Slab;

/// Where the server is in its life, as its connections see it. Only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Serving as usual.
    Serving = 0,
    /// Shutting down: finish what was received, then close.
    Draining = 1,
    /// The shutdown deadline passed: stop at once.
    Cut = 2,
}

/// The phase, and the tasks to wake when it changes.
#[derive(Debug)]
pub(crate) struct Stopping {
    phase: AtomicU8,
    /// The waker of every enlisted task, by its [`Enlisted`] key.
    tasks: Mutex<Slab<Waker>>,
}

impl Stopping {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            phase: AtomicU8::new(Phase::Serving as u8),
            tasks: Mutex::new(Slab::new()),
        })
    }

    /// The current phase.
    pub(crate) fn phase(&self) -> Phase {
        // Acquire: pairs with `advance`'s store, so what happened before the phase moved
        // (a cancelled acceptor, say) is visible to whoever sees the new phase.
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Serving,
            1 => Phase::Draining,
            _ => Phase::Cut,
        }
    }

    /// Moves to `to` (never back) and wakes every enlisted task, so each sees it at its
    /// next poll wherever it waits.
    pub(crate) fn advance(&self, to: Phase) {
        self.phase.fetch_max(to as u8, Ordering::AcqRel);
        // The phase is stored before the lock is taken: a task that enlists after this
        // lock is released sees the new phase at its first look (the lock orders the two).
        let tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, waker) in tasks.iter() {
            waker.wake_by_ref();
        }
    }

    /// A place in the list, for one task, which must [`attach`](Enlisted::attach) to it
    /// from its own poll to be woken.
    pub(crate) fn enlist(self: &Arc<Self>) -> Enlisted {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        let key = tasks.insert(Waker::noop().clone());
        Enlisted {
            stopping: Arc::clone(self),
            key,
        }
    }
}

/// A task's place in [`Stopping`]'s list; leaves it when dropped.
#[derive(Debug)]
pub(crate) struct Enlisted {
    stopping: Arc<Stopping>,
    key: usize,
}

impl Enlisted {
    /// Makes the polling task the one woken at each change of phase. Resolves at once; a
    /// future only to reach the task's waker, so await it from the task's own future (a
    /// combinator that hands its children wakers of their own would get its child woken).
    pub(crate) fn attach(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| {
            let mut tasks = self
                .stopping
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(waker) = tasks.get_mut(self.key) {
                waker.clone_from(cx.waker());
            }
            Poll::Ready(())
        })
    }

    /// The current phase: one atomic load.
    pub(crate) fn phase(&self) -> Phase {
        self.stopping.phase()
    }

    /// Resolves once the server has reached `phase` (at once if it has).
    pub(crate) fn reached(&self, phase: Phase) -> impl Future<Output = ()> + '_ {
        poll_fn(move |_| {
            if self.phase() >= phase {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

impl Drop for Enlisted {
    fn drop(&mut self) {
        let mut tasks = self
            .stopping
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tasks.try_remove(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn an_enlisted_task_is_woken_at_each_phase() {
        let stopping = Stopping::new();
        let (seen, mut phases) = tokio::sync::mpsc::unbounded_channel();
        let watcher = Arc::clone(&stopping);
        let task = tokio::spawn(async move {
            let enlisted = watcher.enlist();
            enlisted.attach().await;
            let mut last = Phase::Serving;
            // Waits the way a connection does: by reading the phase whenever polled.
            poll_fn(|_| {
                let phase = enlisted.phase();
                if phase != last {
                    last = phase;
                    let _ = seen.send(phase);
                }
                if phase == Phase::Cut {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await
        });
        tokio::task::yield_now().await;
        stopping.advance(Phase::Draining);
        assert_eq!(phases.recv().await, Some(Phase::Draining));
        stopping.advance(Phase::Cut);
        assert_eq!(phases.recv().await, Some(Phase::Cut));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task ends once cut")
            .expect("no panic");
    }

    #[tokio::test]
    async fn a_task_waiting_for_a_phase_wakes_when_it_is_reached() {
        let stopping = Stopping::new();
        let watcher = Arc::clone(&stopping);
        let task = tokio::spawn(async move {
            let enlisted = watcher.enlist();
            enlisted.attach().await;
            enlisted.reached(Phase::Cut).await;
        });
        tokio::task::yield_now().await;
        stopping.advance(Phase::Draining);
        tokio::task::yield_now().await;
        assert!(!task.is_finished(), "draining is not the deadline");
        stopping.advance(Phase::Cut);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("woken at the deadline")
            .expect("no panic");
    }

    #[test]
    fn the_phase_never_moves_back_and_leaving_frees_the_place() {
        let stopping = Stopping::new();
        let enlisted = stopping.enlist();
        stopping.advance(Phase::Cut);
        stopping.advance(Phase::Draining);
        assert_eq!(enlisted.phase(), Phase::Cut);
        drop(enlisted);
        assert!(stopping.tasks.lock().expect("not poisoned").is_empty());
    }
}
