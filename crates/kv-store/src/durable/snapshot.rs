//! Snapshots: every bucket and key in one file, so that journals can be deleted.
//!
//! A snapshot is written while writes go on: it starts right after the committer opened a
//! new journal, and reads the in-memory mirror shard by shard. It may therefore contain
//! some writes that are also in the new journal. That is harmless because every record sets
//! a key to a state (replaying it again gives the same result) and the new journal is
//! replayed after the snapshot, in order: each key ends at its last journaled state, and a
//! key no journaled write touched has not changed since the snapshot began.
//!
//! The file is written under a temporary name, synced, then renamed, so a snapshot file
//! under its final name is always complete: its file header ([`super::format`]), frames,
//! and last a `SnapshotEnd` record with the record count. Any damage in it stops start-up.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;

use super::dir::{remove_if_present, DataDir};
use super::error::RecoveryError;
use super::format::{self, Format, Kind};
use super::frame::{FrameBuf, FrameReader, Next};
use super::record::{decode_all, Record};
use crate::memory::MemoryStore;

/// Payload bytes per frame: big enough to amortise headers, small enough to verify lazily.
const FRAME_TARGET: usize = 1 << 20;

/// Writes a snapshot of `mirror` as `generation`; returns its size in bytes.
pub(crate) fn write(dir: &DataDir, generation: u64, mirror: &MemoryStore) -> io::Result<u64> {
    let temporary = dir.snapshot_in_progress(generation);
    let written = write_file(&temporary, mirror).and_then(|len| {
        // With `--fsync everysec` the mirror may hold writes whose journal frames are not
        // synced yet; sync them (any handle on the file will do) before the snapshot that
        // may contain them counts, so that a power loss keeps a prefix of the writes.
        File::open(dir.journal(generation))?.sync_data()?;
        std::fs::rename(&temporary, dir.snapshot(generation))?;
        dir.sync()?;
        Ok(len)
    });
    if written.is_err() {
        let _ = remove_if_present(&temporary);
    }
    written
}

fn write_file(path: &Path, mirror: &MemoryStore) -> io::Result<u64> {
    let mut out = Writer::create(path)?;
    for (name, bucket) in mirror.buckets() {
        out.add(Record::Create { bucket: &name })?;
        for shard in 0..bucket.shard_count() {
            // Encode under the shard's read lock; write to the file after releasing it.
            bucket.visit_shard(shard, |key, value| {
                out.encode(Record::Put {
                    bucket: &name,
                    key,
                    value,
                });
            });
            out.flush_if_full()?;
        }
    }
    out.finish()
}

/// Writes a snapshot file: its header, then records in frames, then (at
/// [`Writer::finish`]) the end record that counts them. Also what a restored backup becomes.
pub(crate) struct Writer {
    file: BufWriter<File>,
    frame: FrameBuf,
    frames: u64,
    records: u64,
    len: u64,
}

impl Writer {
    /// Creates the file at `path` (replacing any) and writes its header.
    pub(crate) fn create(path: &Path) -> io::Result<Self> {
        let mut file = BufWriter::new(File::create(path)?);
        let header = format::header(Kind::Snapshot);
        file.write_all(&header)?;
        let mut writer = Self {
            file,
            frame: FrameBuf::default(),
            frames: 0,
            records: 0,
            len: header.len() as u64,
        };
        writer.frame.start();
        Ok(writer)
    }

    /// Adds `record`, writing out the frame once it is full.
    pub(crate) fn add(&mut self, record: Record<'_>) -> io::Result<()> {
        self.encode(record);
        self.flush_if_full()
    }

    /// Adds `record` to the frame being built, however full it is (to encode under a lock,
    /// and write after releasing it: [`Self::flush_if_full`]).
    fn encode(&mut self, record: Record<'_>) {
        record.encode(self.frame.payload());
        self.records += 1;
    }

    /// Writes out the frame being built if it has reached its target size.
    fn flush_if_full(&mut self) -> io::Result<()> {
        if self.frame.payload_len() >= FRAME_TARGET {
            self.flush_frame()?;
        }
        Ok(())
    }

    /// Writes the frame being built, if it holds anything.
    fn flush_frame(&mut self) -> io::Result<()> {
        if self.frame.payload_len() == 0 {
            return Ok(());
        }
        let bytes = self.frame.seal(self.frames, self.frames)?;
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        self.frames += 1;
        self.frame.start();
        Ok(())
    }

    /// Adds the end record, writes everything and syncs the file; its size in bytes.
    pub(crate) fn finish(mut self) -> io::Result<u64> {
        self.flush_frame()?;
        Record::SnapshotEnd {
            records: self.records,
        }
        .encode(self.frame.payload());
        self.flush_frame()?;
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.len)
    }
}

/// Hands every record of the snapshot at `path`, of `format`, to `apply`. The file must
/// be whole: any damage, a missing end or a wrong count is an error.
pub(crate) fn load(
    path: &Path,
    format: &Format,
    mut apply: impl FnMut(Record<'_>),
) -> Result<(), RecoveryError> {
    let damaged = |offset: u64, reason: &str| RecoveryError::damaged(path, offset, reason);
    let (file, file_len) =
        format::open_frames(path, format).map_err(RecoveryError::io(path, "read"))?;
    let mut reader = FrameReader::new(
        BufReader::new(file),
        format.layout,
        format.frames_at,
        file_len,
    );
    let mut records = 0u64;
    let mut ended = false;
    loop {
        match reader.next().map_err(RecoveryError::io(path, "read"))? {
            Next::Frame if ended => return Err(damaged(reader.offset(), "data after its end")),
            Next::Frame => {
                for record in decode_all(reader.payload()) {
                    match record {
                        Ok(Record::SnapshotEnd { records: expected }) if expected == records => {
                            ended = true;
                        }
                        Ok(Record::SnapshotEnd { .. }) => {
                            return Err(damaged(reader.offset(), "wrong record count"))
                        }
                        Ok(_) if ended => {
                            return Err(damaged(reader.offset(), "data after its end"))
                        }
                        Ok(record) => {
                            records += 1;
                            apply(record);
                        }
                        Err(e) => return Err(damaged(reader.offset(), e.0)),
                    }
                }
            }
            Next::End if ended => return Ok(()),
            Next::End => return Err(damaged(reader.offset(), "it ends before its end record")),
            Next::Bad(reason) => return Err(damaged(reader.offset(), reason)),
        }
    }
}
