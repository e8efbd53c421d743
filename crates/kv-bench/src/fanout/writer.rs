//! One writer: keeps `pipeline` stamped writes in flight (flat out, or on a schedule with
//! `--rate`), checks every reply, records each write's latency; at the window's end it
//! stops sending and waits for the replies still owed, so that every write it counts as
//! acknowledged is one whose events every subscriber must receive.

use super::*;

/// What one writer did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct WriterTally {
    /// Writes acknowledged, over the whole run.
    pub acked: u64,
    /// Writes acknowledged inside the measured window.
    pub in_window: u64,
    /// Wrong replies.
    pub wrong: u64,
    /// Writes sent and never answered (the connection failed or the drain timed out):
    /// their events may or may not have gone out.
    pub unanswered: u64,
    /// The connection failed or was closed.
    pub lost: bool,
}

/// One writer's loop.
pub(super) struct Writer {
    shared: Arc<Shared>,
    window: Window,
    latency: Rc<RefCell<Histogram<u64>>>,
    write: Write,
    /// Stamps of the writes in flight, oldest first.
    inflight: VecDeque<u64>,
    /// Time between two writes of this writer (`--rate`), if scheduled.
    interval: Option<Duration>,
    /// When its next scheduled write is due.
    next_due: Instant,
    out: Vec<u8>,
    input: Vec<u8>,
    tally: WriterTally,
}

impl Writer {
    pub(super) fn new(
        shared: Arc<Shared>,
        window: Window,
        latency: Rc<RefCell<Histogram<u64>>>,
        index: usize,
    ) -> Self {
        let c = &shared.config;
        let write = shared
            .wire
            .write(format!("w{index}").as_bytes(), c.value_size);
        let interval = c
            .rate
            .map(|rate| Duration::from_secs_f64(c.writers as f64 / rate));
        // Writers on a schedule start spread over one interval, not all at once.
        let offset = interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / c.writers as f64)
        });
        Self {
            inflight: VecDeque::with_capacity(c.pipeline),
            interval,
            next_due: window.start + offset,
            shared,
            window,
            latency,
            write,
            out: Vec::with_capacity(4096),
            input: Vec::with_capacity(READ_CHUNK),
            tally: WriterTally::default(),
        }
    }

    /// Writes until the window ends, then collects the replies still owed.
    pub(super) async fn run(mut self, mut stream: Conn) -> WriterTally {
        if self.drive(&mut stream).await.is_ok() {
            let drained = timeout(DRAIN_TIMEOUT, self.drain(&mut stream)).await;
            self.tally.lost |= !matches!(drained, Ok(Ok(())));
        } else {
            self.tally.lost = true;
        }
        self.tally.unanswered += self.inflight.len() as u64;
        self.tally
    }

    /// Sends and reads until the window's end (`Ok`) or the connection fails (`Err`).
    async fn drive(&mut self, stream: &mut Conn) -> Result<(), ()> {
        let deadline = sleep_until(self.window.end);
        tokio::pin!(deadline);
        let mut slot_free_at = Instant::now();
        loop {
            self.fill(slot_free_at);
            if !self.out.is_empty() {
                // Never cut short at the deadline: half a request on the wire would leave
                // its reply, and so the drain, waiting. A server that stops reading for
                // that long has failed the run.
                let limit = self.window.end + DRAIN_TIMEOUT;
                match timeout_at(limit, stream.write_all(&self.out)).await {
                    Ok(Ok(())) => {}
                    _ => return Err(()),
                }
                self.out.clear();
            }
            let room = self.inflight.len() < self.shared.config.pipeline;
            let due = sleep_until(self.next_due);
            tokio::select! {
                biased;
                read = stream.read_some(&mut self.input) => match read {
                    Ok(0) | Err(_) => return Err(()),
                    Ok(_) => {}
                },
                () = &mut deadline => return Ok(()),
                () = due, if room && self.interval.is_some() => {}
            }
            let now = Instant::now();
            if now >= self.window.end {
                self.settle(now);
                return Ok(());
            }
            self.settle(now);
            slot_free_at = now;
        }
    }

    /// Reads the replies still owed.
    async fn drain(&mut self, stream: &mut Conn) -> io::Result<()> {
        while !self.inflight.is_empty() {
            if stream.read_some(&mut self.input).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.settle(Instant::now());
        }
        Ok(())
    }

    /// Queues writes until `pipeline` are in flight: flat out, each intended for `at` (the
    /// moment its slot freed); on a schedule, those due by now, each intended for its due
    /// time. The intended time is the stamp, so lateness in sending counts as latency.
    fn fill(&mut self, at: Instant) {
        let pipeline = self.shared.config.pipeline;
        let now = Instant::now();
        while self.inflight.len() < pipeline {
            let intended = match self.interval {
                None => at,
                Some(interval) if self.next_due <= now => {
                    let due = self.next_due;
                    self.next_due += interval;
                    due
                }
                Some(_) => break,
            };
            let stamp = self.shared.stamp(intended);
            self.write.append(stamp, &mut self.out);
            self.inflight.push_back(stamp);
        }
    }

    /// Matches every whole reply in `input` to its write, all received at `now`.
    fn settle(&mut self, now: Instant) {
        let wire = self.shared.wire;
        let recording = now >= self.window.record_from && now < self.window.end;
        let now_stamp = self.shared.stamp(now);
        let mut latency = self.latency.borrow_mut();
        let mut pos = 0;
        while let Some(&stamp) = self.inflight.front() {
            match wire.write_reply(&self.input[pos..]) {
                None => break,
                Some(Ok(len)) => {
                    pos += len;
                    self.tally.acked += 1;
                    if recording {
                        self.tally.in_window += 1;
                        stats::record(&mut latency, now_stamp.saturating_sub(stamp));
                    }
                }
                Some(Err(len)) => {
                    pos += len;
                    self.tally.wrong += 1;
                }
            }
            self.inflight.pop_front();
        }
        if self.inflight.is_empty() && pos < self.input.len() {
            // Bytes nobody asked for.
            pos = self.input.len();
            self.tally.wrong += 1;
        }
        self.input.drain(..pos);
    }
}
