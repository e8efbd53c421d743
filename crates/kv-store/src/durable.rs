//! The durable engine (`--data-dir`): every acknowledged write is on stable storage.
//!
//! Design, in three parts:
//! - **Reads** are served from an in-memory mirror (a [`MemoryStore`]), so they are exactly
//!   as fast as in memory mode. The mirror holds what the disk holds.
//! - **Writes** go to one committer thread through a channel. It takes everything queued,
//!   writes it in one redb transaction with one `fdatasync` (group commit: throughput
//!   grows with the number of writers), applies the batch to the mirror in commit order,
//!   and only then acknowledges each writer — so `OK` means durable, and visible.
//! - **Failures** (disk full, I/O error): the whole batch is answered with an error, never
//!   `OK`, the mirror is left untouched, and the database is reopened on the next write so
//!   the server recovers by itself once space returns. Keys of failed batches are re-read
//!   after the reopen in case the disk kept them after all.
//!
//! The engine is redb, chosen over fjall by measurement (README, "Durable mode"): fjall
//! was faster, but it opens a journal corrupted in the middle without a word, dropping
//! every write after the damage; redb with its integrity check refuses such a file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use redb::{Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::memory::{MemoryBucket, MemoryStore};
use crate::{Bucket, Store, StoreError};

/// Bucket names (value unused).
const BUCKETS: TableDefinition<&[u8], ()> = TableDefinition::new("buckets");
/// Every key of every bucket, keyed by (bucket, key).
const DATA: TableDefinition<(&[u8], &[u8]), &[u8]> = TableDefinition::new("data");
/// The database file inside the data directory.
const FILE_NAME: &str = "kv.redb";
/// Writes queued beyond this make writers wait (backpressure instead of unbounded memory).
const QUEUE_DEPTH: usize = 16 * 1024;
/// Most writes one transaction carries.
const MAX_BATCH: usize = 4096;
/// With `FsyncPolicy::EverySecond`, how often buffered commits are made durable.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

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
    /// The directory or its file cannot be read safely (corrupt, unreadable, newer format).
    Unusable(PathBuf, String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Locked(dir) => write!(
                f,
                "data directory {} is in use by another running kv-server (its database is locked)",
                dir.display()
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

/// One write, as the committer receives it.
#[derive(Debug, Clone)]
enum WriteOp {
    Create {
        bucket: Bytes,
    },
    Put {
        bucket: Bytes,
        key: Bytes,
        value: Bytes,
    },
    Delete {
        bucket: Bytes,
        key: Bytes,
    },
}

enum Message {
    Write(WriteOp, oneshot::Sender<Result<(), StoreError>>),
    /// Time to sync buffered commits (`FsyncPolicy::EverySecond`).
    Tick,
    /// Finish what is queued, close the database, then say so.
    Close(oneshot::Sender<()>),
}

/// The durable store; clones share it.
#[derive(Clone)]
pub struct DurableStore {
    mirror: MemoryStore,
    committer: mpsc::Sender<Message>,
}

/// A handle to one durable bucket.
#[derive(Clone)]
pub struct DurableBucket {
    name: Bytes,
    mirror: MemoryBucket,
    committer: mpsc::Sender<Message>,
}

impl DurableStore {
    /// Opens (or creates) the store in `dir`, loads it into memory and starts the
    /// committer thread. Fails if another process holds `dir` or its file is damaged.
    pub fn open(dir: &Path, policy: FsyncPolicy) -> Result<Self, OpenError> {
        let unusable = |reason: String| OpenError::Unusable(dir.to_path_buf(), reason);
        std::fs::create_dir_all(dir).map_err(|e| unusable(format!("cannot create it: {e}")))?;
        let path = dir.join(FILE_NAME);
        let db = open_database(&path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => OpenError::Locked(dir.to_path_buf()),
            other => unusable(other.to_string()),
        })?;
        let mirror = MemoryStore::new();
        load(&db, &mirror).map_err(|e| unusable(e.to_string()))?;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let policy = match policy {
            FsyncPolicy::EverySecond if !start_sync_ticker(tx.downgrade()) => FsyncPolicy::Always,
            policy => policy,
        };
        let committer = Committer {
            db: Some(db),
            path,
            mirror: mirror.clone(),
            policy,
            unsettled: Vec::new(),
        };
        thread::Builder::new()
            .name("kv-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(|e| unusable(format!("cannot start the committer thread: {e}")))?;
        Ok(Self {
            mirror,
            committer: tx,
        })
    }

    /// Makes everything acknowledged durable and closes the database. Writes sent after
    /// this get an error.
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

fn open_database(path: &Path) -> Result<Database, DatabaseError> {
    // Verify every page's checksum at open: a damaged file fails here with a clear error
    // instead of serving wrong data (or panicking) later.
    Database::builder()
        .set_check_integrity_on_open(true)
        .create(path)
}

/// Copies the whole database into the mirror.
fn load(db: &Database, mirror: &MemoryStore) -> Result<(), redb::Error> {
    let read = db.begin_read()?;
    match read.open_table(BUCKETS) {
        Ok(buckets) => {
            for entry in buckets.iter()? {
                mirror.create_now(entry?.0.value());
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    match read.open_table(DATA) {
        Ok(data) => {
            for entry in data.iter()? {
                let (key, value) = entry?;
                let (bucket, key) = key.value();
                if let Some(b) = mirror.bucket_now(bucket) {
                    b.put_now(key, value.value());
                }
            }
            Ok(())
        }
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Sends `op` to the committer and waits for its verdict.
async fn submit(committer: &mpsc::Sender<Message>, op: WriteOp) -> Result<(), StoreError> {
    let (ack, verdict) = oneshot::channel();
    let stopped = || StoreError::new("the store is shutting down");
    committer
        .send(Message::Write(op, ack))
        .await
        .map_err(|_| stopped())?;
    verdict.await.map_err(|_| stopped())?
}

impl Store for DurableStore {
    type Bucket = DurableBucket;

    async fn create(&self, name: &[u8]) -> Result<(), StoreError> {
        if self.mirror.bucket_now(name).is_some() {
            return Ok(());
        }
        submit(
            &self.committer,
            WriteOp::Create {
                bucket: Bytes::copy_from_slice(name),
            },
        )
        .await
    }

    async fn bucket(&self, name: &[u8]) -> Result<Option<DurableBucket>, StoreError> {
        Ok(self.mirror.bucket_now(name).map(|mirror| DurableBucket {
            name: Bytes::copy_from_slice(name),
            mirror,
            committer: self.committer.clone(),
        }))
    }
}

impl Bucket for DurableBucket {
    async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let op = WriteOp::Put {
            bucket: self.name.clone(),
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
        };
        submit(&self.committer, op).await
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.mirror.get_now(key))
    }

    async fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
        let op = WriteOp::Delete {
            bucket: self.name.clone(),
            key: Bytes::copy_from_slice(key),
        };
        submit(&self.committer, op).await
    }
}

/// The single writer: owns the database.
struct Committer {
    /// `None` after a failed commit: reopened before the next one.
    db: Option<Database>,
    path: PathBuf,
    mirror: MemoryStore,
    policy: FsyncPolicy,
    /// Writes of failed batches whose fate on disk is unknown until the next reopen.
    unsettled: Vec<WriteOp>,
}

impl Committer {
    fn run(mut self, mut queue: mpsc::Receiver<Message>) {
        let mut batch: Vec<(WriteOp, oneshot::Sender<Result<(), StoreError>>)> = Vec::new();
        // Buffered (not yet synced) commits exist: `EverySecond` only.
        let mut unsynced = false;
        while let Some(first) = queue.blocking_recv() {
            let mut close = None;
            let mut sync_due = false;
            let mut next = Some(first);
            // Take everything queued (up to a bound): this is the group in group commit.
            while let Some(message) = next.take() {
                match message {
                    Message::Write(op, ack) => batch.push((op, ack)),
                    Message::Tick => sync_due = true,
                    Message::Close(done) => close = Some(done),
                }
                if close.is_none() && batch.len() < MAX_BATCH {
                    next = queue.try_recv().ok();
                }
            }
            let durable = self.policy == FsyncPolicy::Always || sync_due || close.is_some();
            if !batch.is_empty() || (unsynced && durable) {
                match self.commit(&batch, durable) {
                    Ok(()) => {
                        unsynced = !durable;
                        for (op, ack) in batch.drain(..) {
                            self.mirror_apply(&op);
                            let _ = ack.send(Ok(()));
                        }
                    }
                    Err(e) => self.fail(&mut batch, e),
                }
            }
            if let Some(done) = close {
                // Dropping the database closes it cleanly (no repair at the next open).
                self.db = None;
                let _ = done.send(());
                return;
            }
        }
    }

    /// Writes `batch` in one transaction; with `durable`, syncs it to disk.
    fn commit(
        &mut self,
        batch: &[(WriteOp, oneshot::Sender<Result<(), StoreError>>)],
        durable: bool,
    ) -> Result<(), redb::Error> {
        let db = match self.db.take() {
            Some(db) => db,
            None => self.reopen()?,
        };
        let db = self.db.insert(db);
        let mut tx = db.begin_write()?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        {
            let mut buckets = tx.open_table(BUCKETS)?;
            let mut data = tx.open_table(DATA)?;
            for (op, _) in batch {
                match op {
                    WriteOp::Create { bucket } => {
                        buckets.insert(&bucket[..], ())?;
                    }
                    WriteOp::Put { bucket, key, value } => {
                        data.insert((&bucket[..], &key[..]), &value[..])?;
                    }
                    WriteOp::Delete { bucket, key } => {
                        data.remove((&bucket[..], &key[..]))?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Answers the whole batch with the error and drops the database: redb refuses
    /// further writes on a handle that saw an I/O error, so the next batch reopens it.
    fn fail(
        &mut self,
        batch: &mut Vec<(WriteOp, oneshot::Sender<Result<(), StoreError>>)>,
        e: redb::Error,
    ) {
        let error = StoreError::new(describe(&e));
        error!(
            "write failed, answering {} write(s) with ERROR: {e}",
            batch.len()
        );
        self.db = None;
        for (op, ack) in batch.drain(..) {
            self.unsettled.push(op);
            let _ = ack.send(Err(error.clone()));
        }
    }

    /// Reopens the database and brings the mirror in line with what the disk kept of the
    /// failed batches.
    fn reopen(&mut self) -> Result<Database, redb::Error> {
        let db = open_database(&self.path)?;
        let unsettled = std::mem::take(&mut self.unsettled);
        if !unsettled.is_empty() {
            let read = db.begin_read()?;
            let buckets = read.open_table(BUCKETS).ok();
            let data = read.open_table(DATA).ok();
            for op in unsettled {
                match op {
                    WriteOp::Create { bucket } => {
                        if let Some(t) = &buckets {
                            if t.get(&bucket[..])?.is_some() {
                                self.mirror.create_now(&bucket);
                            }
                        }
                    }
                    WriteOp::Put { bucket, key, .. } | WriteOp::Delete { bucket, key } => {
                        let Some(mirror) = self.mirror.bucket_now(&bucket) else {
                            continue;
                        };
                        let on_disk = match &data {
                            Some(t) => t.get((&bucket[..], &key[..]))?.map(|v| v.value().to_vec()),
                            None => None,
                        };
                        match on_disk {
                            Some(value) => mirror.put_now(&key, &value),
                            None => mirror.delete_now(&key),
                        }
                    }
                }
            }
        }
        info!("database reopened after a failed write; accepting writes again");
        Ok(db)
    }

    fn mirror_apply(&self, op: &WriteOp) {
        match op {
            WriteOp::Create { bucket } => self.mirror.create_now(bucket),
            WriteOp::Put { bucket, key, value } => {
                if let Some(b) = self.mirror.bucket_now(bucket) {
                    b.put_bytes(key.clone(), value.clone());
                }
            }
            WriteOp::Delete { bucket, key } => {
                if let Some(b) = self.mirror.bucket_now(bucket) {
                    b.delete_now(key);
                }
            }
        }
    }
}

/// A short reason for the client: "disk full" rather than a debug dump.
fn describe(e: &redb::Error) -> String {
    if let redb::Error::Io(io) = e {
        if io.kind() == std::io::ErrorKind::StorageFull {
            return "disk full".into();
        }
        return format!("I/O error: {}", io.kind());
    }
    match e {
        redb::Error::PreviousIo => "I/O error".into(),
        other => format!("storage error: {other}"),
    }
}
