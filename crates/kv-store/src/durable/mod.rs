//! The durable engine (`--data-dir`): every acknowledged write is on stable storage.
//!
//! - **Reads** are served from an in-memory mirror (a [`MemoryStore`]), so they are exactly
//!   as fast as in memory mode. The mirror holds what the disk holds.
//! - **Writes** go to one committer thread (`committer`) through a channel. It appends
//!   everything queued to a journal as one checksummed frame with one `fdatasync` (group
//!   commit: throughput grows with the number of writers), applies the group to the
//!   mirror, and only then acknowledges it.
//! - **Compaction**: once the journal outgrows the last snapshot, a new journal is started
//!   and the mirror is written out as a snapshot in the background; the files it replaces
//!   are then removed (`snapshot`).
//! - **Start-up** (`recovery`) loads the newest snapshot and replays the journals after
//!   it. A torn final write (never acknowledged) is cut off; any other damage, a missing
//!   file or a directory held by another process stops start-up with a clear message.
//!
//! Why a journal of our own rather than an embedded engine: measured on the target machine
//! (docs/DURABILITY.md, "Durable mode"), redb's commit writes several pages per sync and reached
//! 0.65× Redis' `appendfsync always`; fjall appends like this journal does, but it opens a
//! journal damaged in the middle without a word, dropping every write after the damage.
//!
//! Files: `dir` (lock and names), `format` (file header, format versions, what is
//! upgraded), `frame` (checksummed frames), `record` (one write), `mirror` (what a
//! write does in memory), `journal`, `snapshot`, `recovery` (including upgrades),
//! `error` (why start-up refuses), `committer`, `admission` (the memory limit over a group
//! commit), `restore` (a data directory from a backup), `check` (one verified offline).

mod admission;
mod check;
mod committer;
mod dir;
mod error;
mod format;
pub(crate) mod frame;
mod journal;
mod mirror;
mod pipeline;
pub(crate) mod record;
mod recovery;
mod restore;
mod snapshot;
mod stats;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use crate::memory::MemoryStore;
use crate::{Persistence, Store, StoreReport};
pub use check::{check, CheckError, CheckReport};
use committer::{Committer, Message};
use dir::DataDir;
pub use pipeline::DurablePipeline;
pub use restore::{restore, RestoreError};
use stats::Counters;
pub use stats::{COMMIT_LATENCY_BOUNDS_MICROS, COMMIT_LATENCY_BUCKETS};

/// Messages queued beyond this make writers wait (backpressure instead of unbounded
/// memory). A connection has at most one message in flight, holding at most what one read
/// of it brought.
const QUEUE_DEPTH: usize = 16 * 1024;
/// With `FsyncPolicy::EverySecond`, how often buffered commits are made durable.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Default [`DurableOptions::compact_after_bytes`].
const COMPACT_AFTER: u64 = 64 << 20;

/// When an acknowledged write reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Before its `OK` is sent (one sync per group of concurrent writes). The default.
    #[default]
    Always,
    /// Within about a second of its `OK` (like Redis' `appendfsync everysec`): a crash can
    /// lose the last second of acknowledged writes, in exchange for fewer syncs.
    EverySecond,
}

/// Why a data directory cannot be used.
#[derive(Debug)]
pub enum OpenError {
    /// Another running kv-server holds the directory.
    Locked(PathBuf),
    /// The directory does not exist and cannot be created (a missing parent, no
    /// permission): nothing was there to lose.
    CannotCreate(PathBuf, std::io::Error),
    /// The path exists and is not a directory (a file given by mistake): left as it was.
    NotADirectory(PathBuf),
    /// A file in the directory was written in a format version this build does not read
    /// (a newer kv-server's, or an old one with no upgrade path); `found` names the
    /// version. The directory is left exactly as it was.
    UnsupportedVersion {
        /// The file whose version was found.
        file: PathBuf,
        /// The version found, in words.
        found: String,
    },
    /// The directory or a file in it cannot be read safely (damaged, missing, unreadable).
    Unusable(PathBuf, String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Locked(dir) => write!(
                f,
                "data directory {} is in use by another running kv-server (its LOCK file is held)",
                dir.display()
            ),
            OpenError::CannotCreate(dir, e) => {
                write!(f, "data directory {} cannot be created: {e}", dir.display())
            }
            OpenError::NotADirectory(path) => write!(
                f,
                "data directory {} is not a directory (it exists, as a file or other kind of \
                 entry); give --data-dir a directory, or a path where one can be created",
                path.display()
            ),
            OpenError::UnsupportedVersion { file, found } => write!(
                f,
                "{} is in {found}; refusing to start, the data directory is left untouched (run \
                 the kv-server version that wrote it, or one that reads it)",
                file.display()
            ),
            OpenError::Unusable(dir, reason) => write!(
                f,
                "data directory {} cannot be read safely: {reason}; refusing to start rather than \
                 lose data (restore a backup or move the directory aside)",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {}

/// How a [`DurableStore`] syncs and compacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableOptions {
    /// When an acknowledged write reaches stable storage.
    pub fsync: FsyncPolicy,
    /// Compact (snapshot the data, drop old journals) once the journal holds this many
    /// bytes and more than the last snapshot. Default 64 MiB.
    pub compact_after_bytes: u64,
    /// Keep what the data holds under this many bytes ([`crate::budget`]); a write that
    /// would need more is refused before anything is written. 0 (the default): no limit.
    pub max_memory: u64,
}

impl Default for DurableOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::default(),
            compact_after_bytes: COMPACT_AFTER,
            max_memory: 0,
        }
    }
}

/// The durable store; clones share it.
#[derive(Clone)]
pub struct DurableStore {
    mirror: MemoryStore,
    committer: mpsc::Sender<Message>,
    counters: Arc<Counters>,
    /// The sync policy asked for (for reports).
    policy: FsyncPolicy,
}

impl DurableStore {
    /// Opens (or creates) the store in `dir` with the default options but `policy`.
    pub fn open(dir: &Path, policy: FsyncPolicy) -> Result<Self, OpenError> {
        let options = DurableOptions {
            fsync: policy,
            ..DurableOptions::default()
        };
        Self::open_with(dir, options)
    }

    /// Opens (or creates) the store in `dir`, loads it into memory and starts the
    /// committer thread. Fails if another process holds `dir` or a file in it is damaged.
    pub fn open_with(dir: &Path, options: DurableOptions) -> Result<Self, OpenError> {
        let data_dir = DataDir::open(dir)?;
        let mirror = MemoryStore::with_limit(options.max_memory);
        let recovered = match recovery::recover(&data_dir, &mirror) {
            Ok(recovered) => recovered,
            Err(e) => {
                data_dir.release_refused();
                return Err(e);
            }
        };
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let counters = Arc::new(Counters::default());
        let policy = match options.fsync {
            FsyncPolicy::EverySecond if !start_sync_ticker(tx.downgrade()) => FsyncPolicy::Always,
            policy => policy,
        };
        let committer = Committer::new(
            Arc::new(data_dir),
            recovered.journal,
            mirror.clone(),
            policy,
            options.compact_after_bytes,
            recovered.snapshot_len,
            Arc::clone(&counters),
        );
        thread::Builder::new()
            .name("kv-committer".into())
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| committer.run(rx));
                if std::panic::catch_unwind(run).is_err() {
                    // Without its writer the store would answer every write ERROR forever,
                    // and unwinding has released the directory's lock: stop (fail-stop), so
                    // a supervisor restarts the server from what is on disk. The log line
                    // is caught too: if logging panicked (as it did on a broken stderr),
                    // this thread would end here with the lock released and no abort.
                    let _ = std::panic::catch_unwind(|| {
                        error!("the durable store's committer thread panicked; aborting");
                    });
                    std::process::abort();
                }
            })
            .map_err(|e| {
                OpenError::Unusable(
                    dir.to_path_buf(),
                    format!("cannot start the committer thread: {e}"),
                )
            })?;
        Ok(Self {
            mirror,
            committer: tx,
            counters,
            policy: options.fsync,
        })
    }

    /// Makes everything acknowledged durable, finishes a running snapshot and releases the
    /// directory. Writes sent after this get an error.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.committer.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }

    /// Number of buckets and keys loaded, for the start-up log.
    pub fn stats(&self) -> (usize, usize) {
        self.mirror.stats()
    }

    /// Bytes the data holds as counted, and the limit (0: none).
    pub fn memory(&self) -> (u64, u64) {
        self.mirror.memory()
    }

    /// Commits, syncs and the rest of what the store has done since it was opened.
    pub fn counters(&self) -> Persistence {
        let fsync = match self.policy {
            FsyncPolicy::Always => "always",
            FsyncPolicy::EverySecond => "everysec",
        };
        self.counters.snapshot(fsync)
    }
}

/// Asks the committer to sync once per interval, until the store is gone. `false` if the
/// thread cannot start.
fn start_sync_ticker(committer: mpsc::WeakSender<Message>) -> bool {
    let spawned = thread::Builder::new()
        .name("kv-sync-ticker".into())
        .spawn(move || loop {
            thread::sleep(SYNC_INTERVAL);
            let Some(committer) = committer.upgrade() else {
                return;
            };
            // A full queue means the committer is busy and will see a later tick.
            if let Err(mpsc::error::TrySendError::Closed(_)) = committer.try_send(Message::Tick) {
                return;
            }
        });
    if let Err(e) = &spawned {
        warn!("cannot start the sync ticker, syncing on every write instead: {e}");
    }
    spawned.is_ok()
}

impl Store for DurableStore {
    type Pipeline = DurablePipeline;

    fn pipeline(&self) -> DurablePipeline {
        DurablePipeline::new(self.clone())
    }

    fn report(&self) -> StoreReport {
        StoreReport {
            persistence: Some(self.counters()),
            ..self.mirror.report()
        }
    }
}

#[cfg(test)]
mod tests;
