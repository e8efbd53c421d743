//! One connection of the closed loop: keeps `pipeline` requests in flight, checks every
//! reply, records every latency, reconnects when the server closes it.

use super::*;

/// A request sent and not yet answered.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// When its slot became free: the latency clock starts here.
    intended: Instant,
    op: Op,
    key: u32,
}

/// Why a connection's loop stopped.
enum Stop {
    /// The run is over.
    Done,
    /// The connection failed or was closed; reconnect if time remains.
    Lost,
}

/// One connection's closed loop.
pub(super) struct Driver {
    plan: Arc<Plan>,
    window: Window,
    histogram: Rc<RefCell<Histogram<u64>>>,
    rng: XorShift,
    inflight: VecDeque<InFlight>,
    /// Requests to write (reused).
    out: Vec<u8>,
    /// Received bytes not yet matched to a request.
    input: Vec<u8>,
}

impl Driver {
    pub(super) fn new(
        plan: Arc<Plan>,
        window: Window,
        histogram: Rc<RefCell<Histogram<u64>>>,
        seed: u64,
    ) -> Self {
        let pipeline = plan.config.pipeline;
        Self {
            plan,
            window,
            histogram,
            rng: XorShift::new(seed),
            inflight: VecDeque::with_capacity(pipeline),
            out: Vec::with_capacity(4096),
            input: Vec::with_capacity(READ_CHUNK),
        }
    }

    pub(super) async fn run(mut self, stream: Conn) {
        let mut stream = stream;
        loop {
            match self.drive(&mut stream).await {
                Stop::Done => return,
                Stop::Lost => {
                    self.plan
                        .counters
                        .conn_errors
                        .fetch_add(1, Ordering::Relaxed);
                    // What was in flight will never be answered.
                    if Instant::now() < self.window.end {
                        self.count_errors(self.inflight.len() as u64);
                    }
                    self.inflight.clear();
                    self.input.clear();
                }
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
            loop {
                if Instant::now() >= self.window.end {
                    return;
                }
                let plan = &self.plan;
                match plan
                    .connector
                    .connect(plan.config.addr, CONNECT_TIMEOUT)
                    .await
                {
                    Ok(s) => {
                        stream = s;
                        break;
                    }
                    Err(_) => {
                        self.plan
                            .counters
                            .conn_errors
                            .fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                    }
                }
            }
        }
    }

    /// Sends, reads and checks until the window ends or the connection is lost.
    ///
    /// The generator shares the CPUs with the server, so every syscall it saves is CPU the
    /// server gets: one deadline timer per connection (not one per wait), and no
    /// speculative read that is bound to fail (see [`Conn::read_some`]).
    async fn drive(&mut self, stream: &mut Conn) -> Stop {
        let deadline = sleep_until(self.window.end);
        tokio::pin!(deadline);
        let mut slot_free_at = Instant::now().max(self.window.start);
        loop {
            self.fill(slot_free_at);
            if !self.out.is_empty() {
                tokio::select! {
                    biased;
                    written = stream.write_all(&self.out) => if written.is_err() { return Stop::Lost },
                    () = &mut deadline => return Stop::Done,
                }
                self.out.clear();
            }
            tokio::select! {
                biased;
                read = stream.read_some(&mut self.input) => match read {
                    Ok(0) | Err(_) => return Stop::Lost,
                    Ok(_) => {}
                },
                () = &mut deadline => return Stop::Done,
            }
            let now = Instant::now();
            if now >= self.window.end {
                return Stop::Done;
            }
            self.settle(now);
            slot_free_at = now;
        }
    }

    /// Queues requests until `pipeline` are in flight, all intended for `at`.
    fn fill(&mut self, at: Instant) {
        let c = &self.plan.config;
        while self.inflight.len() < c.pipeline {
            let key = self.rng.below(c.keys as u64) as u32;
            let op = if self.rng.unit() < c.get_ratio {
                Op::Get
            } else {
                Op::Put
            };
            let exchange = self.plan.workload.exchange(op, key as usize);
            self.out.extend_from_slice(&exchange.request);
            self.inflight.push_back(InFlight {
                intended: at,
                op,
                key,
            });
        }
    }

    /// Matches every complete reply in `input` to its request, all received at `now`.
    fn settle(&mut self, now: Instant) {
        let proto = self.plan.config.proto;
        let recording = now >= self.window.record_from;
        let mut histogram = self.histogram.borrow_mut();
        let (mut pos, mut right, mut wrong, mut measured) = (0, 0u64, 0u64, 0u64);
        while let Some(request) = self.inflight.front().copied() {
            let expected = &self
                .plan
                .workload
                .exchange(request.op, request.key as usize)
                .reply;
            match check(&self.input[pos..], expected, proto, request.op) {
                Verdict::Incomplete => break,
                Verdict::Right(n) => {
                    pos += n;
                    right += 1;
                    if recording {
                        measured += 1;
                        let nanos = (now - request.intended).as_nanos();
                        stats::record(&mut histogram, u64::try_from(nanos).unwrap_or(u64::MAX));
                    }
                }
                Verdict::Wrong(n) => {
                    pos += n;
                    wrong += 1;
                }
            }
            self.inflight.pop_front();
        }
        if self.inflight.is_empty() && pos < self.input.len() {
            // Bytes nobody asked for: one more wrong reply.
            pos = self.input.len();
            wrong += 1;
        }
        self.input.drain(..pos);
        let counters = &self.plan.counters;
        counters.replies.fetch_add(right, Ordering::Relaxed);
        if measured > 0 {
            counters.ops.fetch_add(measured, Ordering::Relaxed);
        }
        if wrong > 0 {
            self.count_errors(wrong);
        }
    }

    fn count_errors(&self, n: u64) {
        self.plan.counters.errors.fetch_add(n, Ordering::Relaxed);
    }
}

/// A tiny fast PRNG (xorshift64*): the generator needs speed and reproducibility, not
/// cryptographic quality.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is negligible for our n).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_random_mix_follows_the_get_ratio() {
        let mut rng = XorShift::new(7);
        let gets = (0..100_000).filter(|_| rng.unit() < 0.9).count();
        assert!((89_000..91_000).contains(&gets), "{gets}");
        assert!((0..1000).all(|_| rng.below(10) < 10));
    }
}
