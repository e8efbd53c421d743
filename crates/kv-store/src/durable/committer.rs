//! The single writer: group commit into the journal, then compaction into snapshots.
//!
//! The committer thread takes everything queued (up to [`MAX_BATCH`] writes), encodes it
//! as one journal frame, appends it with one `fdatasync`, applies it to the mirror in
//! order, and only then acknowledges each writer — so `OK` means durable, and visible. A
//! failed append answers the whole group with the error and leaves the mirror untouched;
//! the journal cuts the partial frame off before the next append, so the server recovers
//! by itself once the disk does.
//!
//! When the journal outgrows both a fixed floor and the last snapshot, the committer opens
//! the next journal and a background thread writes a snapshot of the mirror; once it is
//! durable, the journals and snapshot it replaces are removed. So the files stay within a
//! small multiple of the data, and start-up replays at most about one snapshot's worth of
//! journal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use super::admission::Admission;
use super::dir::DataDir;
use super::frame::FrameBuf;
use super::journal::Journal;
use super::mirror::apply;
use super::record::Op;
use super::stats::Counters;
use super::{snapshot, FsyncPolicy};
use crate::memory::{MemoryBucket, MemoryStore};
use crate::subscription;
use crate::StoreError;

/// Most writes one group commit carries...
const MAX_BATCH: usize = 4096;
/// ...and most bytes (keys and values), so a frame stays far below its 4 GiB limit.
const MAX_BATCH_BYTES: usize = 64 << 20;
/// With `FsyncPolicy::EverySecond`, the longest appended frames stay unsynced, even when
/// the queue is too busy for the ticker's messages to get in.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// While writes keep failing, how often to say so again.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// After a failed attempt to start a compaction, wait this long before the next.
const COMPACTION_RETRY: Duration = Duration::from_secs(10);
/// A frame buffer grown past this by a large group is shrunk back afterwards.
const FRAME_BUF_KEEP: usize = 1 << 20;

/// The answer to one [`Message::Writes`].
pub(crate) struct Committed {
    /// The common fate of its admitted writes (they share one frame).
    pub(crate) verdict: Result<(), StoreError>,
    /// Which of its writes (by index) the memory limit refused: not journaled, not
    /// applied. Empty (and unallocated) without a limit.
    pub(crate) refused: Vec<usize>,
    /// The vector of writes back, emptied, for the sender to reuse.
    pub(crate) ops: Vec<Op>,
}

pub(crate) type Ack = oneshot::Sender<Committed>;

pub(crate) enum Message {
    /// Writes of one connection that arrived together: appended in order, in one group.
    Writes(Vec<Op>, Ack),
    /// Time to sync buffered commits (`FsyncPolicy::EverySecond`).
    Tick,
    /// Finish what is queued, sync, wait for a running snapshot, then say so.
    Close(oneshot::Sender<()>),
}

pub(crate) struct Committer {
    dir: Arc<DataDir>,
    journal: Journal,
    mirror: MemoryStore,
    policy: FsyncPolicy,
    /// Compact once the journal holds this many bytes and more than the last snapshot.
    compact_after: u64,
    /// Size of the newest snapshot; written by the snapshot thread.
    snapshot_len: Arc<AtomicU64>,
    frame: FrameBuf,
    /// Frames appended but not yet synced (`EverySecond` only).
    unsynced: bool,
    /// The snapshot thread, while one may be running; it returns whether it succeeded.
    snapshot: Option<JoinHandle<bool>>,
    next_compaction_attempt: Instant,
    /// When appended frames were last made durable.
    last_sync: Instant,
    failures: FailureLog,
    /// Events of writes applied but not yet synced (`EverySecond`), in commit order.
    unpublished: Vec<(MemoryBucket, Bytes)>,
    /// Commits and syncs, for [`super::DurableStore::stats`].
    stats: Arc<Counters>,
    /// The memory limit over the group being committed; kept to reuse its tables.
    admission: Admission,
}

/// Logs failing writes once, then a count every [`FAILURE_LOG_INTERVAL`], then the
/// recovery: a full disk under load must not flood the log with a line per group.
#[derive(Default)]
struct FailureLog {
    /// Failed groups and writes since the last line logged; `None` while writes succeed.
    failing: Option<(u64, u64, Instant)>,
}

impl FailureLog {
    fn failed(&mut self, writes: usize, e: &std::io::Error) {
        match &mut self.failing {
            None => {
                error!("write failed, answering {writes} write(s) with ERROR: {e}");
                self.failing = Some((0, 0, Instant::now()));
            }
            Some((groups, total, since)) => {
                *groups += 1;
                *total += writes as u64;
                if since.elapsed() >= FAILURE_LOG_INTERVAL {
                    error!("writes still failing: {total} more write(s) in {groups} group(s) answered with ERROR; last: {e}");
                    *groups = 0;
                    *total = 0;
                    *since = Instant::now();
                }
            }
        }
    }

    fn succeeded(&mut self) {
        if self.failing.take().is_some() {
            info!("writes succeed again");
        }
    }
}

impl Committer {
    pub(crate) fn new(
        dir: Arc<DataDir>,
        journal: Journal,
        mirror: MemoryStore,
        policy: FsyncPolicy,
        compact_after: u64,
        snapshot_len: u64,
        stats: Arc<Counters>,
    ) -> Self {
        Self {
            dir,
            journal,
            mirror,
            policy,
            compact_after,
            snapshot_len: Arc::new(AtomicU64::new(snapshot_len)),
            frame: FrameBuf::default(),
            unsynced: false,
            snapshot: None,
            next_compaction_attempt: Instant::now(),
            last_sync: Instant::now(),
            failures: FailureLog::default(),
            unpublished: Vec::new(),
            stats,
            admission: Admission::default(),
        }
    }

    pub(crate) fn run(mut self, mut queue: mpsc::Receiver<Message>) {
        let mut batch: Vec<(Vec<Op>, Ack)> = Vec::new();
        self.stats.record_journal_len(self.journal.len());
        while let Some(first) = next_message(&mut queue) {
            let mut close = None;
            let mut sync_due = false;
            let mut next = Some(first);
            let (mut writes, mut bytes) = (0, 0);
            // Take everything queued (up to a bound): this is the group in group commit. A
            // message is never split: its writes share a frame, so they share a fate.
            while let Some(message) = next.take() {
                match message {
                    Message::Writes(ops, ack) => {
                        writes += ops.len();
                        bytes += ops.iter().map(Op::size).sum::<usize>();
                        batch.push((ops, ack));
                    }
                    Message::Tick => sync_due = true,
                    Message::Close(done) => close = Some(done),
                }
                if close.is_none() && writes < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                    next = queue.try_recv().ok();
                }
            }
            let sync_due = sync_due || self.last_sync.elapsed() >= SYNC_INTERVAL;
            let durable = self.policy == FsyncPolicy::Always || sync_due || close.is_some();
            if !batch.is_empty() {
                self.commit(&mut batch, durable);
            } else if self.unsynced && durable {
                self.sync();
            }
            if let Some(done) = close {
                self.close();
                // Release the directory (its lock) before saying it is closed.
                drop(self);
                let _ = done.send(());
                return;
            }
            self.maybe_compact();
            self.stats.record_journal_len(self.journal.len());
        }
        self.close();
    }

    /// Appends `batch` as one frame (synced if `durable`), applies it and answers it.
    /// Writes the memory limit does not admit are left out of the frame and answered
    /// refused.
    fn commit(&mut self, batch: &mut Vec<(Vec<Op>, Ack)>, durable: bool) {
        self.frame.start();
        let mut refused: Vec<Vec<usize>> = Vec::with_capacity(batch.len());
        self.admission.start();
        for (ops, _) in batch.iter() {
            let mut out = Vec::new();
            for (i, op) in ops.iter().enumerate() {
                // In the group's order, each after the effect of those before it.
                if self.admission.admit(&self.mirror, op) {
                    op.as_record().encode(self.frame.payload());
                } else {
                    out.push(i);
                }
            }
            refused.push(out);
        }
        let appending = Instant::now();
        let appended = self.journal.append(&mut self.frame, durable);
        let took = appending.elapsed();
        self.frame.shrink_to(FRAME_BUF_KEEP);
        let admitted = || {
            batch.iter().zip(&refused).flat_map(|((ops, _), out)| {
                ops.iter()
                    .enumerate()
                    .filter(|(i, _)| !out.contains(i))
                    .map(|(_, op)| op)
            })
        };
        let verdict = match appended {
            Ok(()) => {
                self.unsynced = !durable;
                self.stats.record_commit(durable, took);
                // Before the acknowledgements: a client that got its `OK` sees the journal grown.
                self.stats.record_journal_len(self.journal.len());
                for op in admitted() {
                    self.apply(op);
                }
                if durable {
                    self.publish();
                }
                Ok(())
            }
            Err(e) => {
                let writes = admitted().count();
                self.stats.record_write_errors(writes);
                self.failures.failed(writes, &e);
                Err(StoreError::new(describe(&e)))
            }
        };
        // One wake-up per connection's message, not per write.
        for ((mut ops, ack), refused) in batch.drain(..).zip(refused) {
            ops.clear();
            let verdict = verdict.clone();
            let _ = ack.send(Committed {
                verdict,
                refused,
                ops,
            });
        }
        if verdict.is_ok() {
            if durable {
                self.last_sync = Instant::now();
            }
            self.failures.succeeded();
        }
    }

    /// Applies a committed write to the mirror, and keeps its event for [`Self::publish`]
    /// if anyone is subscribed to its bucket.
    fn apply(&mut self, op: &Op) {
        if let Some((bucket, event)) = apply(&self.mirror, op.as_record()) {
            if bucket.topic().has_subscribers() {
                let event = subscription::encode(event);
                self.unpublished.push((bucket, event));
            }
        }
    }

    /// Publishes the events of the writes applied so far, in commit order, once they are on
    /// stable storage (PROTOCOL.md, "Subscriptions": never an event for a write a crash
    /// could lose; with `--fsync everysec`, events wait for the sync).
    fn publish(&mut self) {
        for (bucket, event) in self.unpublished.drain(..) {
            bucket.topic().publish(&event);
        }
    }

    /// Makes buffered frames durable (`EverySecond`), then publishes their events; on
    /// failure they are retried at the next tick.
    fn sync(&mut self) -> bool {
        match self.journal.sync() {
            Ok(()) => {
                self.stats.record_sync();
                self.unsynced = false;
                self.last_sync = Instant::now();
                self.publish();
                true
            }
            Err(e) => {
                error!("cannot sync the journal (acknowledged writes are not yet durable): {e}");
                false
            }
        }
    }

    fn close(&mut self) {
        if let Err(e) = self.journal.settle() {
            error!("cannot cut off the remains of a failed write from the journal: {e}");
        }
        if self.unsynced {
            self.sync();
        }
        if let Some(snapshot) = self.snapshot.take() {
            let _ = snapshot.join();
        }
    }

    /// Starts a compaction if the journal has grown enough and none is running: switch to
    /// the next journal, then snapshot the mirror in the background.
    fn maybe_compact(&mut self) {
        let threshold = self
            .compact_after
            .max(self.snapshot_len.load(Ordering::Relaxed));
        if self.journal.len() < threshold || Instant::now() < self.next_compaction_attempt {
            return;
        }
        if let Some(snapshot) = self.snapshot.take() {
            if !snapshot.is_finished() {
                self.snapshot = Some(snapshot);
                return;
            }
            if !snapshot.join().unwrap_or(false) {
                self.retry_compaction_later();
                return;
            }
        }
        // Every journal but the newest must be whole on disk, with nothing of a failed
        // write after its last frame.
        if self.journal.settle().is_err() || (self.unsynced && !self.sync()) {
            self.retry_compaction_later();
            return;
        }
        let generation = self.journal.generation() + 1;
        match Journal::create(&self.dir, generation) {
            Ok(journal) => std::mem::replace(&mut self.journal, journal).trim(),
            Err(e) => {
                warn!("cannot start journal {generation} for a compaction, will retry: {e}");
                self.retry_compaction_later();
                return;
            }
        }
        let dir = Arc::clone(&self.dir);
        let mirror = self.mirror.clone();
        let snapshot_len = Arc::clone(&self.snapshot_len);
        let spawned = thread::Builder::new()
            .name("kv-snapshot".into())
            .spawn(move || match snapshot::write(&dir, generation, &mirror) {
                Ok(len) => {
                    snapshot_len.store(len, Ordering::Relaxed);
                    match dir.remove_before(generation) {
                        Ok(()) => debug!("compacted into snapshot {generation} ({len} bytes)"),
                        Err(e) => warn!(
                            "snapshot {generation} written, but the files it replaces could \
                             not all be removed: {e}"
                        ),
                    }
                    true
                }
                Err(e) => {
                    warn!("cannot write snapshot {generation}, keeping the journals: {e}");
                    false
                }
            });
        match spawned {
            Ok(handle) => self.snapshot = Some(handle),
            Err(e) => {
                warn!("cannot start the snapshot thread, will retry: {e}");
                self.retry_compaction_later();
            }
        }
    }

    /// After a failed compaction, waits before the next attempt instead of trying (and
    /// logging) at every commit.
    fn retry_compaction_later(&mut self) {
        self.next_compaction_attempt = Instant::now() + COMPACTION_RETRY;
    }
}

/// How long the committer polls for the next write before it sleeps: the next group's
/// first write usually arrives within microseconds of the last acknowledgements, and
/// sleeping then being woken costs two context switches per group (measured at 50
/// connections: 0 µs 88.6k, 30 µs 100.9k, 100 µs 85.6k writes/s; medians of 3).
const SPIN: Duration = Duration::from_micros(30);

/// The next message, polled for up to [`SPIN`] before blocking.
fn next_message(queue: &mut mpsc::Receiver<Message>) -> Option<Message> {
    let started = Instant::now();
    loop {
        match queue.try_recv() {
            Ok(message) => return Some(message),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) if started.elapsed() < SPIN => {
                thread::yield_now();
            }
            Err(mpsc::error::TryRecvError::Empty) => return queue.blocking_recv(),
        }
    }
}

/// A short reason for the client: "disk full" rather than a debug dump.
fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::StorageFull => "disk full".into(),
        kind => format!("I/O error: {kind}"),
    }
}
