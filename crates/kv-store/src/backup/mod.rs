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
//!   in-memory mirror) encoded frame by frame on a thread of its own, a few frames ahead of
//!   the connection that sends them, so a backup costs the server a few MiB whatever the
//!   data's size, and its writers a lock per key read;
//! - `read`: [`Reader`], which checks a backup as it arrives, in pieces of any size.

mod format;
mod read;
mod write;

use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::memory::{FrozenView, MemoryStore};
use crate::StoreError;
pub use format::{starts_a_backup, HeaderError, CURRENT as FORMAT_VERSION};
pub(crate) use read::read_file;
pub use read::{verify, BackupError, ReadError, Reader, Summary};

/// Payload bytes after which a frame is sealed and sent. A connection sends one frame per
/// turn of its task (kv-server's `kv/backup.rs`), and the event loop's other clients get
/// their turns between two: so this is also how much of the loop's time a backup takes
/// per turn while writers are busy (a 32 KiB write through loopback TCP costs about what
/// a few dozen one-line requests do), and what it takes when they are not, frame after
/// frame. The header (32 bytes) is 0.1% of it.
const FRAME_TARGET: usize = 32 << 10;
/// Frames the writing thread may have made that the connection has not taken yet: half a
/// MiB, enough that the connection rarely waits for the thread.
const FRAMES_AHEAD: usize = 16;
/// The writing thread's nice value: on cores the event loops need, it yields to them, so
/// writers keep their latency during a backup, and the backup takes what is left (at 10,
/// about a tenth of a contended core under Linux's CFS weights; all of an idle one).
/// BENCHMARKS.md, "Backup", measures writers' p99 with backups running.
const NICE: i32 = 10;

/// A backup being made: its bytes, piece by piece ([`Backup::poll_next`]). Dropping it
/// stops the backup.
#[derive(Debug)]
pub struct Backup {
    pieces: mpsc::Receiver<Piece>,
    /// The last piece has been handed over.
    ended: bool,
}

/// What the writing thread hands over.
#[derive(Debug)]
struct Piece {
    bytes: Bytes,
    /// The end record is in it: the backup is whole with it. Said with the piece, not by
    /// the thread's end, so that whoever sends it knows the moment it has sent the end.
    last: bool,
}

/// Lowers this thread's priority to [`NICE`] (Linux: nice is per thread). Failing (a
/// sandbox that forbids it) only leaves the backup at the priority of everything else.
#[cfg(target_os = "linux")]
fn yield_to_event_loops() {
    // SAFETY: gettid(2) takes nothing and cannot fail; setpriority(2) takes three integers
    // (who: this thread's own id, so it changes no other thread) and touches no memory of
    // this process. Neither has a precondition Rust could break.
    let changed = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE)
    };
    if changed != 0 {
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
    /// Begins a backup of `store` as it is now, encoded on a thread of its own. Refused
    /// while another backup of the store runs, or if no thread can be started.
    pub(crate) fn start(store: &MemoryStore) -> Result<Self, StoreError> {
        let view = FrozenView::begin(store)
            .map_err(|_| StoreError::new("a backup is already running; try again when it ends"))?;
        let (tx, pieces) = mpsc::channel(FRAMES_AHEAD);
        std::thread::Builder::new()
            .name("kv-backup".into())
            .spawn(move || {
                yield_to_event_loops();
                // Not in a runtime: blocking here is what paces the backup to its reader.
                write::write(view, |bytes, last| {
                    tx.blocking_send(Piece { bytes, last }).is_ok()
                });
            })
            .map_err(|e| StoreError::new(format!("cannot start the backup: {e}")))?;
        Ok(Self {
            pieces,
            ended: false,
        })
    }

    /// The next piece of the backup; `Ready(None)` once the last has been taken (also
    /// for a backup cut short by a bug, which then lacks its end record: its reader says
    /// so).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.ended {
            return Poll::Ready(None);
        }
        self.pieces.poll_recv(cx).map(|piece| {
            let piece = piece?;
            self.ended = piece.last;
            Some(piece.bytes)
        })
    }
}

#[cfg(test)]
mod tests;
