//! Subscriptions: a bucket's changes pushed to every connection subscribed to it (PROTOCOL.md,
//! "Subscriptions"; the Elixir guide's `SUBSCRIBE`).
//!
//! Each bucket has a [`Topic`]: who is subscribed, and a count a writer reads with one relaxed
//! load, so that a write to a bucket nobody watches pays nothing more. A change is encoded
//! once ([`kv_protocol::Event`]) into a shared buffer, and each subscriber's queue takes a
//! handle to it (a reference count, not a copy). Each queue is bounded in bytes: a subscriber
//! that falls behind is ended ([`Ended::Slow`]) and its queue freed, so it never slows a
//! writer or another subscriber — Redis does the same with `client-output-buffer-limit
//! pubsub`.

use std::collections::VecDeque;
use std::sync::atomic::{
    AtomicBool, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use kv_protocol::Event;
use slab::Slab;

/// Why a subscription ended other than by its holder dropping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its unsent events passed the subscriber buffer limit: the subscriber is too slow.
    Slow,
    /// The store lost the subscription (a networked store's link to it broke): events may
    /// have been missed.
    Lost,
}

/// Who is subscribed to one bucket. Public so that an engine in another crate (the cluster
/// engine, which receives its events from Redis) can fan events out the same way.
#[derive(Default)]
pub struct Topic {
    /// How many: read by every write with one relaxed load.
    count: AtomicUsize,
    queues: Mutex<Slab<Arc<Queue>>>,
}

/// One subscriber's unsent events.
///
/// The two flags let a subscriber that polls and finds nothing new skip the lock: the
/// connection polls for events each time it waits (before and after writing what it took,
/// so about three times per event at one write per event), and only the first finds any.
/// Both are written only under the lock; read without it, they can only send a poll the
/// slow way (a stale `ready`) or to `Pending` while the waker they saw armed is being
/// taken to wake it, which then polls again.
struct Queue {
    /// Events are queued or the subscription ended: a poll has something to report.
    ready: AtomicBool,
    /// `state.waker` holds the subscriber's waker (set when it is stored, cleared when
    /// it is taken to wake the subscriber).
    armed: AtomicBool,
    state: Mutex<QueueState>,
}

struct QueueState {
    events: VecDeque<Bytes>,
    /// Bytes in `events`.
    bytes: usize,
    /// Most bytes `events` may hold.
    limit: usize,
    /// Set once: no event is queued after it.
    ended: Option<Ended>,
    /// The subscriber's task, while it waits for events.
    waker: Option<Waker>,
}

impl Topic {
    /// Whether anyone is subscribed; a relaxed load, for the write path. A subscription
    /// that is being added as this is read may miss this write: it is not yet active.
    pub fn has_subscribers(&self) -> bool {
        self.count.load(Relaxed) > 0
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// Queues `event` (one line, encoded) for every subscriber. A subscriber whose unsent
    /// events would pass its limit is ended instead, and its queue freed.
    pub fn publish(&self, event: &Bytes) {
        let queues = self.queues();
        // One allocation per event, not one per doubling of the subscribers woken.
        let mut wake = Vec::with_capacity(queues.len());
        for (_, queue) in queues.iter() {
            let mut state = queue.lock();
            if state.ended.is_some() {
                continue;
            }
            if state.bytes + event.len() > state.limit {
                state.end(Ended::Slow);
            } else {
                state.bytes += event.len();
                state.events.push_back(event.clone());
            }
            queue.ready.store(true, Release);
            wake.extend(queue.take_waker(&mut state));
        }
        drop(queues);
        // Outside every lock: a woken task may run at once on another thread.
        wake.into_iter().for_each(Waker::wake);
    }

    /// A new subscription, active as soon as this returns; `limit`: most bytes of unsent
    /// events it may hold.
    pub fn subscribe(self: &Arc<Self>, limit: usize) -> Subscription {
        let queue = Arc::new(Queue {
            ready: AtomicBool::new(false),
            armed: AtomicBool::new(false),
            state: Mutex::new(QueueState {
                events: VecDeque::new(),
                bytes: 0,
                limit,
                ended: None,
                waker: None,
            }),
        });
        let id = self.queues().insert(Arc::clone(&queue));
        self.count.fetch_add(1, Relaxed);
        Subscription {
            topic: Arc::clone(self),
            id,
            queue,
            registered: None,
        }
    }

    /// Ends every current subscription with `why` (their unsent events are dropped, and
    /// each holder is woken to learn it): for an engine that lost its source of events,
    /// whose subscribers must not go on as if they missed nothing.
    pub fn end(&self, why: Ended) {
        let mut wake = Vec::new();
        for (_, queue) in self.queues().iter() {
            let mut state = queue.lock();
            state.end(why);
            queue.ready.store(true, Release);
            wake.extend(queue.take_waker(&mut state));
        }
        wake.into_iter().for_each(Waker::wake);
    }

    fn queues(&self) -> MutexGuard<'_, Slab<Arc<Queue>>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The subscriber's waker, to wake it (`state` is this queue's, locked).
    fn take_waker(&self, state: &mut QueueState) -> Option<Waker> {
        let waker = state.waker.take();
        if waker.is_some() {
            self.armed.store(false, Release);
        }
        waker
    }
}

impl QueueState {
    fn end(&mut self, why: Ended) {
        self.ended.get_or_insert(why);
        self.events = VecDeque::new();
        self.bytes = 0;
    }
}

/// The encoded line of `event`, to publish: one buffer that every subscriber shares.
pub fn encode(event: Event<'_>) -> Bytes {
    let mut line = BytesMut::with_capacity(event.len());
    event.encode(&mut line);
    line.freeze()
}

/// One connection's subscription to a bucket; dropping it unsubscribes.
pub struct Subscription {
    topic: Arc<Topic>,
    id: usize,
    queue: Arc<Queue>,
    /// The waker last stored in the queue, to know without its lock whether the one
    /// stored is the current task's.
    registered: Option<Waker>,
}

impl Subscription {
    /// Appends the events queued so far to `out`, one line each, and says how many
    /// (`Ready(Ok(n))`, `n` > 0; with no `out`, events stay queued and only an end is
    /// reported); `Ready(Err(why))` once the subscription has ended (what
    /// was still queued then is dropped: the subscriber is to be told and let go);
    /// otherwise `Pending`, and `cx` is woken when an event comes.
    pub fn poll_events(
        &mut self,
        out: Option<&mut BytesMut>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<usize, Ended>> {
        let queue = &*self.queue;
        let waits = |registered: &Option<Waker>| {
            registered.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
        };
        // Nothing new, and a publisher will wake this task: no lock needed.
        if !queue.ready.load(Acquire) && queue.armed.load(Acquire) && waits(&self.registered) {
            return Poll::Pending;
        }
        let mut state = queue.lock();
        let count = state.events.len();
        if let Some(out) = out.filter(|_| count > 0) {
            out.reserve(state.bytes);
            for event in state.events.drain(..) {
                out.extend_from_slice(&event);
            }
            state.bytes = 0;
            if state.ended.is_none() {
                queue.ready.store(false, Release);
            }
            return Poll::Ready(Ok(count));
        }
        if let Some(why) = state.ended {
            return Poll::Ready(Err(why));
        }
        if !waits(&self.registered) {
            self.registered = Some(cx.waker().clone());
        }
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = self.registered.clone();
        }
        queue.armed.store(true, Release);
        Poll::Pending
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut queues = self.topic.queues();
        if queues.try_remove(self.id).is_some() {
            self.topic.count.fetch_sub(1, Relaxed);
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll(subscription: &mut Subscription, out: &mut BytesMut) -> Poll<Result<usize, Ended>> {
        subscription.poll_events(Some(out), &mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn every_subscriber_gets_every_event_in_order_and_a_dropped_one_is_gone() {
        let topic = Arc::new(Topic::default());
        let (mut a, b) = (topic.subscribe(1024), topic.subscribe(1024));
        assert_eq!(topic.subscribers(), 2);
        drop(b);
        assert_eq!(topic.subscribers(), 1);
        let mut out = BytesMut::new();
        assert_eq!(poll(&mut a, &mut out), Poll::Pending);
        topic.publish(&encode(Event::Set {
            key: b"milk",
            value: b"1",
        }));
        topic.publish(&encode(Event::Deleted { key: b"milk" }));
        assert_eq!(poll(&mut a, &mut out), Poll::Ready(Ok(2)));
        assert_eq!(&out[..], b"milk SET TO 1\r\nmilk DELETED\r\n");
    }

    #[test]
    fn a_subscriber_past_its_limit_is_ended_and_holds_nothing() {
        let topic = Arc::new(Topic::default());
        let (mut slow, mut other) = (topic.subscribe(20), topic.subscribe(1024));
        let event = encode(Event::Set {
            key: b"k",
            value: b"0123456789",
        });
        topic.publish(&event);
        topic.publish(&event);
        let mut out = BytesMut::new();
        assert_eq!(poll(&mut slow, &mut out), Poll::Ready(Err(Ended::Slow)));
        assert!(out.is_empty(), "its queue was freed");
        assert_eq!(
            poll(&mut other, &mut out),
            Poll::Ready(Ok(2)),
            "the other is unharmed"
        );
    }

    #[test]
    fn ending_a_topic_ends_every_subscription_and_drops_what_was_unsent() {
        let topic = Arc::new(Topic::default());
        let (mut a, mut b) = (topic.subscribe(1024), topic.subscribe(1024));
        topic.publish(&encode(Event::Deleted { key: b"k" }));
        topic.end(Ended::Lost);
        let mut out = BytesMut::new();
        assert_eq!(poll(&mut a, &mut out), Poll::Ready(Err(Ended::Lost)));
        assert_eq!(poll(&mut b, &mut out), Poll::Ready(Err(Ended::Lost)));
        assert!(out.is_empty());
        topic.publish(&encode(Event::Deleted { key: b"k" }));
        assert_eq!(poll(&mut a, &mut out), Poll::Ready(Err(Ended::Lost)));
    }

    /// A waker that counts its wakes.
    struct Counting(AtomicUsize);

    impl std::task::Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    fn counting() -> (Arc<Counting>, Waker) {
        let count = Arc::new(Counting(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_waiting_subscriber_is_woken_by_every_publish_however_often_it_polled_empty() {
        let topic = Arc::new(Topic::default());
        let mut sub = topic.subscribe(1024);
        let (wakes, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut out = BytesMut::new();
        let event = encode(Event::Deleted { key: b"k" });
        for round in 1..=3 {
            // Polled empty several times (the later ones without the lock), with and
            // without room for events.
            assert_eq!(sub.poll_events(Some(&mut out), &mut cx), Poll::Pending);
            assert_eq!(sub.poll_events(None, &mut cx), Poll::Pending);
            assert_eq!(sub.poll_events(Some(&mut out), &mut cx), Poll::Pending);
            topic.publish(&event);
            assert_eq!(wakes.0.load(Relaxed), round, "woken once per publish");
            // Without room, an event stays queued and the subscriber waits for more.
            assert_eq!(sub.poll_events(None, &mut cx), Poll::Pending);
            assert_eq!(sub.poll_events(Some(&mut out), &mut cx), Poll::Ready(Ok(1)));
        }
        assert_eq!(&out[..], b"k DELETED\r\nk DELETED\r\nk DELETED\r\n");
    }

    #[test]
    fn a_subscriber_polled_from_another_task_wakes_that_task() {
        let topic = Arc::new(Topic::default());
        let mut sub = topic.subscribe(1024);
        let (first, first_waker) = counting();
        let (second, second_waker) = counting();
        let mut out = BytesMut::new();
        let mut cx = Context::from_waker(&first_waker);
        assert_eq!(sub.poll_events(Some(&mut out), &mut cx), Poll::Pending);
        let mut cx = Context::from_waker(&second_waker);
        assert_eq!(sub.poll_events(Some(&mut out), &mut cx), Poll::Pending);
        topic.publish(&encode(Event::Deleted { key: b"k" }));
        assert_eq!((first.0.load(Relaxed), second.0.load(Relaxed)), (0, 1));
    }

    #[test]
    fn an_ending_wakes_a_waiting_subscriber_which_then_learns_why() {
        let topic = Arc::new(Topic::default());
        let mut sub = topic.subscribe(1024);
        let (wakes, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(sub.poll_events(None, &mut cx), Poll::Pending);
        assert_eq!(sub.poll_events(None, &mut cx), Poll::Pending);
        topic.end(Ended::Lost);
        assert_eq!(wakes.0.load(Relaxed), 1);
        assert_eq!(
            sub.poll_events(None, &mut cx),
            Poll::Ready(Err(Ended::Lost))
        );
    }

    /// Wakes a parked thread.
    struct Unpark(std::thread::Thread);

    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    #[test]
    fn a_subscriber_on_another_thread_misses_no_wake_up() {
        const EVENTS: usize = 20_000;
        let topic = Arc::new(Topic::default());
        let mut sub = topic.subscribe(usize::MAX);
        let receiver = std::thread::spawn(move || {
            let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
            let mut cx = Context::from_waker(&waker);
            let (mut received, mut out) = (0, BytesMut::new());
            while received < EVENTS {
                match sub.poll_events(Some(&mut out), &mut cx) {
                    Poll::Ready(Ok(n)) => received += n,
                    Poll::Ready(Err(why)) => panic!("ended: {why:?}"),
                    // A lost wake-up parks this thread for good (the test then hangs).
                    Poll::Pending => std::thread::park(),
                }
            }
            out.len()
        });
        let event = encode(Event::Deleted { key: b"k" });
        for _ in 0..EVENTS {
            topic.publish(&event);
        }
        let bytes = receiver.join().expect("the receiver");
        assert_eq!(bytes, EVENTS * event.len());
    }
}
