//! Backups: the whole store as it was at one moment, streamed while it keeps serving
//! (PROTOCOL.md, "Backup"; docs/BACKUP.md).
//!
//! A backup is a file of its own format, also what `BACKUP` sends:
//!
//! ```text
//! header (16 bytes: magic, format version, checksum; `format`)
//! frames, each checksummed, numbered from 0 (the data files' frames: `durable::frame`)
//!   holding records: CREATE bucket, then PUT bucket key value for each of its keys, ...,
//!   and last an end record with the number of records before it
//! ```
//!
//! The records are the data files' (`durable::record`), so restoring one is writing its
//! records into a snapshot.
//!
//! - `write`: a [`crate::memory::FrozenView`] of the store (in durable mode, of its
//!   in-memory mirror) encoded frame by frame on a thread of its own, as fast as its
//!   reader takes them (written straight into a writer, or a few frames ahead of the
//!   connection that sends them), so a backup costs the server a few MiB whatever the
//!   data's size, and its writers a lock per key read;
//! - `read`: [`Reader`], which checks a backup as it arrives, in pieces of any size.

mod format;
mod read;
mod write;

use std::io;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::memory::{FrozenView, MemoryStore};
use crate::StoreError;
pub use format::{starts_a_backup, HeaderError, CURRENT as FORMAT_VERSION};
pub(crate) use read::read_file;
pub use read::{verify, BackupError, ReadError, Reader, Summary};

/// Payload bytes after which a frame is sealed and sent. Over TLS a connection sends one
/// frame per turn of its task (kv-server's `kv/backup.rs`), and the event loop's other
/// clients get their turns between two: so this is also how much of the loop's time a
/// backup takes per turn there (a 32 KiB write through loopback TCP costs about what a
/// few dozen one-line requests do). The header (32 bytes) is 0.1% of it.
const FRAME_TARGET: usize = 32 << 10;
/// Frames the writing thread may have made that the connection has not taken yet: half a
/// MiB, enough that the connection rarely waits for the thread.
const FRAMES_AHEAD: usize = 16;
/// The writing thread's nice value where it cannot have the idle policy
/// ([`yield_to_event_loops`]).
const NICE: i32 = 10;

/// A backup being made, from a frozen view of the store. Sent one of two ways: written
/// whole into a writer on the caller's thread ([`Backup::write_to`]: kv-server's
/// connections over plain TCP, from a thread of their own), or handed over piece by piece
/// ([`Backup::poll_next`]: over TLS), made meanwhile on a thread of its own. Dropping it
/// stops the backup.
pub struct Backup {
    state: State,
}

impl std::fmt::Debug for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Frozen(_) => "frozen",
            State::Pieces { .. } => "pieces",
            State::Ended => "ended",
        };
        f.debug_struct("Backup").field("state", &state).finish()
    }
}

/// How far a backup has gone.
enum State {
    /// Nothing sent yet.
    Frozen(FrozenView),
    /// Pieces from the writing thread.
    Pieces { pieces: mpsc::Receiver<Piece> },
    /// The last piece has been handed over (or the backup could not go on).
    Ended,
}

/// What the writing thread hands over.
#[derive(Debug)]
struct Piece {
    bytes: Bytes,
    /// The end record is in it: the backup is whole with it. Said with the piece, not by
    /// the thread's end, so that whoever sends it knows the moment it has sent the end.
    last: bool,
}

/// Puts this thread under Linux's idle scheduling policy (`SCHED_IDLE`, sched(7)): on
/// cores the event loops need, the backup takes only what they leave, so writers keep
/// their latency during a backup. Not a nice value: under Linux's EEVDF scheduler a task
/// that wakes (an event loop, or a client's generator) may wait for a running one of
/// lower priority to finish its slice, a millisecond or more, and at nice 10 writers' p99
/// grew 3–4× with backups running; a `SCHED_IDLE` thread gives way at once to any other
/// that wakes. It still runs on idle cores, and gets ~0.3% of a busy one (a weight of 3
/// against 1024): a backup of a saturated server is slow, not stopped. BENCHMARKS.md,
/// "Backup", measures writers' p99 with backups running. The price: a `SCHED_IDLE` thread
/// preempted while it holds a shard's read lock (reading a key, or listing a shard's keys)
/// keeps that shard's writers waiting until it runs again; a writer that waits frees its
/// core, which is then the backup's unless other work wants it. Failing (a sandbox that
/// forbids it), the thread takes [`NICE`] instead, or, failing that too, stays as it is.
#[cfg(target_os = "linux")]
fn yield_to_event_loops() {
    let idle = libc::sched_param { sched_priority: 0 };
    // SAFETY: gettid(2) takes nothing and cannot fail. sched_setscheduler(2) and
    // setpriority(2) are given this thread's own id, so they change no other thread;
    // the first reads the one `sched_param` it is given by reference, which lives across
    // the call; the second takes three integers. None has a precondition Rust could break.
    let failed = unsafe {
        let tid = libc::gettid();
        libc::sched_setscheduler(tid, libc::SCHED_IDLE, &idle) != 0
            && libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE) != 0
    };
    if failed {
        tracing::debug!(
            "backup thread: cannot lower its priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Elsewhere `setpriority(PRIO_PROCESS, 0, ..)` would change the whole process: left alone.
#[cfg(not(target_os = "linux"))]
fn yield_to_event_loops() {}

impl Backup {
    /// Begins a backup of `store` as it is now. Refused while another backup of the
    /// store runs.
    pub(crate) fn start(store: &MemoryStore) -> Result<Self, StoreError> {
        let view = FrozenView::begin(store)
            .map_err(|_| StoreError::new("a backup is already running; try again when it ends"))?;
        Ok(Self {
            state: State::Frozen(view),
        })
    }

    /// Writes the whole backup into `out`, on this thread, after lowering this thread's
    /// priority ([`yield_to_event_loops`]: call it on a thread of its own). Stops at `out`'s first error,
    /// which it returns. Only for a backup nothing was taken from yet (`poll_next`):
    /// otherwise an error, and nothing written.
    pub fn write_to(self, out: &mut dyn io::Write) -> io::Result<()> {
        let State::Frozen(view) = self.state else {
            return Err(io::Error::other("this backup is being sent piece by piece"));
        };
        yield_to_event_loops();
        let mut failed = None;
        let whole = write::write(view, |bytes, _last| match out.write_all(&bytes) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        });
        match failed {
            Some(e) => Err(e),
            None if !whole => Err(io::Error::other("the backup stopped short (logged)")),
            None => out.flush(),
        }
    }

    /// The next piece of the backup; `Ready(None)` once the last has been taken (also
    /// for a backup cut short, which then lacks its end record: its reader says so). The
    /// first call starts the writing thread, which stays a few pieces ahead.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if matches!(self.state, State::Frozen(_)) {
            self.state = match std::mem::replace(&mut self.state, State::Ended) {
                State::Frozen(view) => spawn_writer(view),
                other => other,
            };
        }
        let State::Pieces { pieces } = &mut self.state else {
            return Poll::Ready(None);
        };
        pieces.poll_recv(cx).map(|piece| {
            let piece = piece?;
            if piece.last {
                self.state = State::Ended;
            }
            Some(piece.bytes)
        })
    }
}

/// Starts the thread that encodes `view` into pieces; if no thread can be started, the
/// backup ends before its first piece (and its reader says it is incomplete).
fn spawn_writer(view: FrozenView) -> State {
    let (tx, pieces) = mpsc::channel(FRAMES_AHEAD);
    let spawned = std::thread::Builder::new()
        .name("kv-backup".into())
        .spawn(move || {
            yield_to_event_loops();
            // Not in a runtime: blocking here is what paces the backup to its reader.
            write::write(view, |bytes, last| {
                tx.blocking_send(Piece { bytes, last }).is_ok()
            });
        });
    match spawned {
        Ok(_) => State::Pieces { pieces },
        Err(e) => {
            tracing::error!("cannot start the backup's thread: {e}");
            State::Ended
        }
    }
}

#[cfg(test)]
mod tests;
