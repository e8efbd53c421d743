//! Reading a backup: [`Reader`] checks bytes as they come (from a connection or a file),
//! without doing any I/O itself, so `kv-cli` verifies a backup while it receives it and
//! `restore` and `check` read files with the same code.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::format::{self, HeaderError, HEADER_LEN};
use crate::durable::frame::{self, parse_written_header, written_payload_holds};
use crate::durable::record::{decode_all, Record};

/// The largest frame payload read (bytes): far above what a writer makes (a frame is cut
/// after [`super::FRAME_TARGET`], so it is that plus one record), it bounds what a damaged
/// or hostile length can make a reader allocate.
const MAX_PAYLOAD: usize = 1 << 30;

/// What a backup holds, as read so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Buckets.
    pub buckets: u64,
    /// Keys, in all buckets.
    pub keys: u64,
    /// Bytes of keys and values.
    pub data_bytes: u64,
    /// Bytes of the file read so far (all of it, once complete).
    pub file_bytes: u64,
}

/// Why a backup cannot be used. Nothing is written from a backup that has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupError {
    /// Its header is not one this build reads.
    Header(HeaderError),
    /// Damaged at byte `offset` (from the start of the file): `reason` says how.
    Damaged {
        /// Where the bad frame or record starts.
        offset: u64,
        /// What is wrong there.
        reason: &'static str,
    },
    /// It ends (at `at` bytes) before its end record: cut short.
    Incomplete {
        /// Bytes it has.
        at: u64,
    },
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupError::Header(e) => e.fmt(f),
            BackupError::Damaged { offset, reason } => {
                write!(f, "damaged at byte {offset}: {reason}")
            }
            BackupError::Incomplete { at } => write!(
                f,
                "incomplete: it ends after {at} bytes, before its end record (the backup was \
                 cut short)"
            ),
        }
    }
}

impl std::error::Error for BackupError {}

/// What is wrong with a header or frame, before its offset is added.
enum Bad {
    Header(HeaderError),
    At(&'static str),
}

/// Where the reader is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Header,
    Frames { next_seq: u64 },
    Ended,
}

/// Checks a backup's bytes as they come, in pieces of any size; hands each record over.
#[derive(Debug)]
pub struct Reader {
    part: Part,
    /// Bytes of an unfinished header or frame, from `pending_at` on.
    pending: Vec<u8>,
    /// Where `pending` starts in the file.
    pending_at: u64,
    /// Records read (the end record must count them).
    records: u64,
    summary: Summary,
}

impl Default for Reader {
    fn default() -> Self {
        Self::new()
    }
}

impl Reader {
    /// A reader at the start of a backup.
    pub fn new() -> Self {
        Self {
            part: Part::Header,
            pending: Vec::new(),
            pending_at: 0,
            records: 0,
            summary: Summary::default(),
        }
    }

    /// Checks the next `bytes` of the backup. After an error the reader must not be fed
    /// again.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.feed_records(bytes, |_| {})
    }

    /// Whether the end record has been read: the backup is whole.
    pub fn is_complete(&self) -> bool {
        self.part == Part::Ended
    }

    /// What it holds, as read so far.
    pub fn summary(&self) -> Summary {
        self.summary
    }

    /// The summary of a whole backup, or [`BackupError::Incomplete`].
    pub fn finish(&self) -> Result<Summary, BackupError> {
        if self.is_complete() {
            Ok(self.summary)
        } else {
            Err(BackupError::Incomplete {
                at: self.summary.file_bytes,
            })
        }
    }

    /// [`Self::feed`], handing each record to `on_record` once its frame has been checked.
    pub(crate) fn feed_records(
        &mut self,
        mut bytes: &[u8],
        mut on_record: impl FnMut(Record<'_>),
    ) -> Result<(), BackupError> {
        self.summary.file_bytes += bytes.len() as u64;
        loop {
            // What is wanted grows once a frame's header is in (then its payload is).
            let want = self.wanted();
            if self.pending.len() >= want {
                self.consume(&mut on_record)?;
                continue;
            }
            if bytes.is_empty() {
                return Ok(());
            }
            let take = (want - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.part == Part::Header && !format::could_begin(&self.pending) {
                // Said at once, even of a file shorter than a header.
                return Err(BackupError::Header(HeaderError::NotABackup));
            }
        }
    }

    /// Bytes `pending` must hold before [`Self::consume`] can act on it.
    fn wanted(&self) -> usize {
        match self.part {
            Part::Header => HEADER_LEN,
            // Anything after the end is damage: one byte is enough to say so.
            Part::Ended => 1,
            Part::Frames { .. } if self.pending.len() < frame::HEADER_LEN => frame::HEADER_LEN,
            Part::Frames { .. } => match parse_written_header(&self.pending) {
                Some((len, _)) if len <= MAX_PAYLOAD => frame::HEADER_LEN + len,
                // Bad: acted on at once.
                _ => frame::HEADER_LEN,
            },
        }
    }

    /// Acts on a whole header or frame in `pending`.
    fn consume(&mut self, on_record: &mut impl FnMut(Record<'_>)) -> Result<(), BackupError> {
        // Taken out for the call (and its allocation put back), as records borrow from it.
        let pending = std::mem::take(&mut self.pending);
        let at = self.pending_at;
        let acted = self
            .act_on(&pending, on_record)
            .map_err(|reason| match reason {
                Bad::Header(e) => BackupError::Header(e),
                Bad::At(reason) => BackupError::Damaged { offset: at, reason },
            });
        self.pending_at += pending.len() as u64;
        self.pending = pending;
        self.pending.clear();
        acted
    }

    fn act_on(
        &mut self,
        pending: &[u8],
        on_record: &mut impl FnMut(Record<'_>),
    ) -> Result<(), Bad> {
        match self.part {
            Part::Header => {
                let head: &[u8; HEADER_LEN] = pending
                    .try_into()
                    .map_err(|_| Bad::At("incomplete header"))?;
                format::parse(head).map_err(Bad::Header)?;
                self.part = Part::Frames { next_seq: 0 };
            }
            Part::Ended => return Err(Bad::At("data after its end record")),
            Part::Frames { next_seq } => {
                let (header, payload) = pending.split_at(frame::HEADER_LEN);
                let Some((len, seq)) = parse_written_header(header) else {
                    return Err(Bad::At("no valid frame header"));
                };
                if len > MAX_PAYLOAD {
                    return Err(Bad::At("a frame longer than any backup writes"));
                }
                if !written_payload_holds(header, payload) {
                    return Err(Bad::At("checksum mismatch"));
                }
                if seq != next_seq {
                    return Err(Bad::At("frame out of sequence"));
                }
                let ended = self.records_of(payload, on_record).map_err(Bad::At)?;
                self.part = if ended {
                    Part::Ended
                } else {
                    Part::Frames {
                        next_seq: next_seq + 1,
                    }
                };
            }
        }
        Ok(())
    }

    /// Hands over the records of a checked frame; whether it holds the end record.
    fn records_of(
        &mut self,
        payload: &[u8],
        on_record: &mut impl FnMut(Record<'_>),
    ) -> Result<bool, &'static str> {
        let mut ended = false;
        for record in decode_all(payload) {
            let record = record.map_err(|e| e.0)?;
            if ended {
                return Err("data after its end record");
            }
            match record {
                Record::Create { bucket } => {
                    self.summary.buckets += 1;
                    self.summary.data_bytes += bucket.len() as u64;
                }
                Record::Put { key, value, .. } => {
                    self.summary.keys += 1;
                    self.summary.data_bytes += (key.len() + value.len()) as u64;
                }
                Record::SnapshotEnd { records } if records == self.records => ended = true,
                Record::SnapshotEnd { .. } => return Err("wrong record count in its end record"),
                Record::Delete { .. } => return Err("a delete, which no backup holds"),
            }
            if !ended {
                self.records += 1;
                on_record(record);
            }
        }
        Ok(ended)
    }
}

/// Why a backup file cannot be read: the file, or what it holds.
#[derive(Debug)]
pub enum ReadError {
    /// The OS refused to read it.
    Io(io::Error),
    /// What it holds is not a whole backup this build reads.
    Backup(BackupError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "cannot read it: {e}"),
            ReadError::Backup(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads the whole backup file at `path`, handing each record to `on_record`; its summary
/// once whole. The records of a damaged file are handed over up to the damage: call it
/// first with nothing to do (`verify`) before acting on them.
pub(crate) fn read_file(
    path: &Path,
    mut on_record: impl FnMut(Record<'_>),
) -> Result<Summary, ReadError> {
    let mut file = File::open(path).map_err(ReadError::Io)?;
    let mut reader = Reader::new();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        };
        reader
            .feed_records(&chunk[..n], &mut on_record)
            .map_err(ReadError::Backup)?;
    }
    reader.finish().map_err(ReadError::Backup)
}

/// Checks the backup file at `path` whole: every checksum, the record count, the end.
pub fn verify(path: &Path) -> Result<Summary, ReadError> {
    read_file(path, |_| {})
}
