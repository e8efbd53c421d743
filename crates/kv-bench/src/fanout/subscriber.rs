//! One subscriber: reads events until the writers are done, timing each from the stamp in
//! its value; then sends the barrier and counts what still arrives before its answer. A
//! *slow* subscriber reads nothing until the writers are done, then does the same, if the
//! server has not disconnected it meanwhile.

use super::*;

/// What one subscriber received.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct SubscriberTally {
    /// Events received, over the whole run.
    pub events: u64,
    /// Events received inside the measured window.
    pub in_window: u64,
    /// Messages that were neither an event nor the barrier's answer.
    pub wrong: u64,
    /// The barrier's answer arrived: `events` is complete.
    pub complete: bool,
    /// The server ended the subscription or closed the connection.
    pub dropped: bool,
}

/// One subscriber's loop.
pub(super) struct Subscriber {
    shared: Arc<Shared>,
    window: Window,
    latency: Rc<RefCell<Histogram<u64>>>,
    input: Vec<u8>,
    tally: SubscriberTally,
}

/// Why reading stopped.
enum Stop {
    /// The barrier's answer arrived.
    Barrier,
    /// The subscription ended or the connection failed.
    Dropped,
}

impl Subscriber {
    pub(super) fn new(
        shared: Arc<Shared>,
        window: Window,
        latency: Rc<RefCell<Histogram<u64>>>,
    ) -> Self {
        Self {
            shared,
            window,
            latency,
            input: Vec::with_capacity(READ_CHUNK),
            tally: SubscriberTally::default(),
        }
    }

    /// Receives until the writers are done (reading nothing meanwhile if `slow`), then
    /// until the barrier's answer.
    pub(super) async fn run(
        mut self,
        mut stream: Conn,
        mut writers_done: watch::Receiver<bool>,
        slow: bool,
    ) -> SubscriberTally {
        let done = async {
            // An error means the sender is gone, which happens only once the run is over.
            let _ = writers_done.wait_for(|done| *done).await;
        };
        tokio::pin!(done);
        if !slow {
            loop {
                tokio::select! {
                    biased;
                    read = stream.read_some(&mut self.input) => match read {
                        Ok(n) if n > 0 => {}
                        _ => return self.dropped(),
                    },
                    () = &mut done => break,
                }
                if let Some(Stop::Dropped | Stop::Barrier) = self.take(Instant::now()) {
                    // No barrier was asked for yet: its answer is as wrong as a drop.
                    return self.dropped();
                }
            }
        } else {
            done.await;
        }
        let barrier = self.shared.wire.barrier();
        if stream.write_all(barrier).await.is_err() {
            return self.dropped();
        }
        match timeout(DRAIN_TIMEOUT, self.until_barrier(&mut stream)).await {
            Ok(Stop::Barrier) => self.tally.complete = true,
            Ok(Stop::Dropped) => self.tally.dropped = true,
            // Still connected, but its count is not known to be whole.
            Err(_) => {}
        }
        self.tally
    }

    async fn until_barrier(&mut self, stream: &mut Conn) -> Stop {
        loop {
            if let Some(stop) = self.take(Instant::now()) {
                return stop;
            }
            match stream.read_some(&mut self.input).await {
                Ok(n) if n > 0 => {}
                _ => return Stop::Dropped,
            }
        }
    }

    fn dropped(mut self) -> SubscriberTally {
        self.tally.dropped = true;
        self.tally
    }

    /// Takes every whole message in `input`, all received at `now`; stops at the
    /// barrier's answer or the end of the subscription.
    fn take(&mut self, now: Instant) -> Option<Stop> {
        let wire = self.shared.wire;
        let recording = now >= self.window.record_from && now < self.window.end;
        let now_stamp = self.shared.stamp(now);
        let mut latency = self.latency.borrow_mut();
        let mut pos = 0;
        let mut stop = None;
        while pos < self.input.len() {
            match wire.received(&self.input[pos..]) {
                Received::Incomplete => break,
                Received::Event { value, len } => {
                    pos += len;
                    self.tally.events += 1;
                    if recording {
                        self.tally.in_window += 1;
                        match decode_stamp(value) {
                            Some(stamp) => {
                                stats::record(&mut latency, now_stamp.saturating_sub(stamp))
                            }
                            None => self.tally.wrong += 1,
                        }
                    }
                }
                Received::Barrier { len } => {
                    pos += len;
                    stop = Some(Stop::Barrier);
                    break;
                }
                Received::Ended => {
                    stop = Some(Stop::Dropped);
                    break;
                }
                Received::Wrong { len } => {
                    pos += len;
                    self.tally.wrong += 1;
                }
            }
        }
        self.input.drain(..pos);
        stop
    }
}
