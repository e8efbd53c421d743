//! The journal: an append-only file of frames, one per group commit.
//!
//! Appending is one `pwrite` and (for a durable commit) one `fdatasync`. The file is
//! extended ahead of the frames with zeros, [`PREALLOCATE`] at a time and synced once, so
//! the `fdatasync` of each commit flushes only data — it need not also commit a new file
//! size to the filesystem's journal (measured on the target disk: 10.2k overwrite syncs/s
//! against 8.0k append syncs/s, `bench/engine-eval/throughput.txt`). Zeros after the last
//! frame are therefore the normal end of a journal.
//!
//! A failed append (disk full, I/O error) may leave part of a frame behind; the file is cut
//! back to the last whole frame before anything else is written, so damage never sits in
//! front of valid frames — which is how [`replay`] tells a torn final write (dropped: it was
//! never acknowledged) from damage in the middle (refused: acknowledged writes follow it).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use tracing::warn;

use super::dir::{remove_if_present, DataDir};
use super::error::RecoveryError;
use super::format::{self, Format, Kind, FILE_HEADER_LEN};
use super::frame::{find_valid_frame, FrameBuf, FrameReader, Next, HEADER_LEN};
use super::record::{decode_all, Record};

/// How far ahead of its frames the journal is extended with zeros.
const PREALLOCATE: u64 = 4 << 20;
/// How long to extend only as needed after preallocating failed.
const PREALLOCATE_RETRY: Duration = Duration::from_secs(10);
/// Zeros written per call while extending.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// The journal being appended to.
pub(crate) struct Journal {
    file: File,
    generation: u64,
    /// Bytes of whole frames: where the next frame goes.
    len: u64,
    /// Frames written: the next frame's sequence number.
    frames: u64,
    /// Frames known to be on stable storage.
    synced: u64,
    /// File size: zeros from `len` up to here.
    allocated: u64,
    /// A failed append may have left bytes past `len`.
    dirty_tail: bool,
    /// After preallocating failed (disk nearly full), extend only as needed until then.
    preallocate_after: Instant,
}

impl Journal {
    /// Starts a new journal of `generation`, holding only its file header: written and
    /// synced under a temporary name, then renamed, so a journal under its final name
    /// always begins with a whole header (a crash leaves at most a temporary, removed at
    /// the next start).
    pub(crate) fn create(dir: &DataDir, generation: u64) -> io::Result<Self> {
        let temporary = dir.journal_in_progress(generation);
        let created = write_header(&temporary).and_then(|file| {
            std::fs::rename(&temporary, dir.journal(generation))?;
            dir.sync()?;
            Ok(file)
        });
        let file = match created {
            Ok(file) => file,
            Err(e) => {
                // Leave nothing half-made to block the next attempt.
                let _ = remove_if_present(&temporary);
                let _ = remove_if_present(&dir.journal(generation));
                return Err(e);
            }
        };
        let len = FILE_HEADER_LEN as u64;
        Ok(Self {
            file,
            generation,
            len,
            frames: 0,
            synced: 0,
            allocated: len,
            dirty_tail: false,
            preallocate_after: Instant::now(),
        })
    }

    /// Continues the journal of `generation` after [`replay`] found it `replayed`: a torn
    /// tail is cut off (and the cut made durable) first.
    pub(crate) fn resume(dir: &DataDir, generation: u64, replayed: &Replayed) -> io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .open(dir.journal(generation))?;
        let mut journal = Self {
            file,
            generation,
            len: replayed.len,
            frames: replayed.frames,
            synced: replayed.frames,
            allocated: replayed.file_len,
            dirty_tail: replayed.torn > 0,
            preallocate_after: Instant::now(),
        };
        journal.cut_tail()?;
        Ok(journal)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes of whole frames.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Seals `frame` and appends it; with `sync`, returns only once it is on stable storage.
    /// On error nothing of the frame counts: it is cut off before the next append.
    pub(crate) fn append(&mut self, frame: &mut FrameBuf, sync: bool) -> io::Result<()> {
        self.cut_tail()?;
        let bytes = frame.seal(self.frames, self.synced)?;
        let end = self.len + bytes.len() as u64;
        if end > self.allocated {
            self.extend(end)?;
        }
        self.dirty_tail = true;
        let mut written = self.file.write_all_at(bytes, self.len);
        if sync && written.is_ok() {
            written = self.file.sync_data();
        }
        if let Err(e) = written {
            // Give the space back now if we can; `cut_tail` retries before the next append.
            let _ = self.cut_tail();
            return Err(e);
        }
        self.dirty_tail = false;
        self.len += bytes.len() as u64;
        self.frames += 1;
        if sync {
            self.synced = self.frames;
        }
        Ok(())
    }

    /// Makes every appended frame durable.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.synced = self.frames;
        Ok(())
    }

    /// Drops the zeros after the last frame, once no more frames will follow.
    pub(crate) fn trim(&mut self) {
        let trimmed = self
            .file
            .set_len(self.len)
            .and_then(|()| self.file.sync_data());
        match trimmed {
            Ok(()) => self.allocated = self.len,
            // Harmless: zeros after the last frame read as the end of the journal.
            Err(e) => warn!("cannot trim journal {}: {e}", self.generation),
        }
    }

    /// Makes the file at least `end` bytes long, zero-filled and synced: [`PREALLOCATE`]
    /// more if the disk has room, else exactly `end`.
    fn extend(&mut self, end: u64) -> io::Result<()> {
        self.dirty_tail = true;
        let ahead = Instant::now() >= self.preallocate_after;
        if !ahead || self.fill_zeros(end + PREALLOCATE).is_err() {
            if ahead {
                // Short of space: extend frame by frame for a while rather than writing
                // (and cutting off) megabytes of zeros for every failed group.
                self.preallocate_after = Instant::now() + PREALLOCATE_RETRY;
                self.cut_tail()?;
                self.dirty_tail = true;
            }
            self.fill_zeros(end)?;
        }
        self.dirty_tail = false;
        Ok(())
    }

    fn fill_zeros(&mut self, target: u64) -> io::Result<()> {
        while self.allocated < target {
            let chunk = (target - self.allocated).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..chunk], self.allocated)?;
            self.allocated += chunk as u64;
        }
        // Size and blocks are durable now; the frames' own syncs need only flush data.
        self.file.sync_data()
    }

    /// Cuts off what a failed append or extension left past the last whole frame, so that
    /// it can never be read as a frame: a write answered ERROR must not come back.
    fn cut_tail(&mut self) -> io::Result<()> {
        if !self.dirty_tail {
            return Ok(());
        }
        // Zero the partial frame's header first: that needs no new space (the file is
        // preallocated past it), so it works even where truncating cannot.
        let zeroed = if self.allocated >= self.len + HEADER_LEN as u64 {
            self.file.write_all_at(&ZEROS[..HEADER_LEN], self.len)
        } else {
            Err(io::Error::other("no room to zero"))
        };
        let truncated = self.file.set_len(self.len);
        if truncated.is_ok() {
            self.allocated = self.len;
        }
        if let (Err(_), Err(e)) = (zeroed, truncated) {
            return Err(e);
        }
        self.file.sync_data()?;
        self.dirty_tail = false;
        Ok(())
    }

    /// Makes sure nothing of a failed append is left (retrying the cut if it failed
    /// before): required before this journal is closed or another follows it.
    pub(crate) fn settle(&mut self) -> io::Result<()> {
        self.cut_tail()
    }
}

/// Creates `path` holding a journal's file header, synced.
fn write_header(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().create_new(true).write(true).open(path)?;
    file.write_all_at(&format::header(Kind::Journal), 0)?;
    file.sync_all()?;
    Ok(file)
}

/// Cuts a journal of an earlier format version back to its whole frames before it is
/// upgraded: once a newer journal follows it, a torn tail would read as damage.
pub(crate) fn cut_legacy_tail(path: &Path, replayed: &Replayed) -> io::Result<()> {
    if replayed.torn == 0 {
        return Ok(());
    }
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(replayed.len)?;
    file.sync_all()
}

/// What [`replay`] found in a journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// Bytes of whole, valid frames.
    pub(crate) len: u64,
    /// How many.
    pub(crate) frames: u64,
    /// Bytes of a torn final write after them (only ever in the newest journal), not
    /// counting the zeros that follow.
    pub(crate) torn: u64,
    /// Valid frames after the torn one were dropped with it: none of them was synced when
    /// written after it (`--fsync everysec` and a power loss).
    pub(crate) dropped_unsynced: bool,
    /// The file's size, zeros after the frames included.
    pub(crate) file_len: u64,
}

/// Hands every record of the journal at `path`, of `format`, to `apply`, in order.
///
/// After the last frame come zeros (preallocated space) or nothing. A journal ending
/// instead in an incomplete or invalid frame of its own format after which no valid frame
/// follows ended in a write that never finished, so never acknowledged: that is accepted
/// in the newest journal (`newest`) only, and reported in [`Replayed::torn`]. Any other
/// damage is an error: acknowledged writes would be lost by going on.
pub(crate) fn replay(
    path: &Path,
    format: &Format,
    newest: bool,
    mut apply: impl FnMut(Record<'_>),
) -> Result<Replayed, RecoveryError> {
    let damaged = |offset: u64, reason: &str| RecoveryError::damaged(path, offset, reason);
    let (mut file, file_len) =
        format::open_frames(path, format).map_err(RecoveryError::io(path, "read"))?;
    let mut reader = FrameReader::new(
        BufReader::new(&mut file),
        format.layout,
        format.frames_at,
        file_len,
    );
    let reason = loop {
        match reader.next().map_err(RecoveryError::io(path, "read"))? {
            Next::Frame => {
                for record in decode_all(reader.payload()) {
                    match record {
                        Ok(Record::SnapshotEnd { .. }) => {
                            return Err(damaged(reader.offset(), "a snapshot record in a journal"))
                        }
                        Ok(record) => apply(record),
                        Err(e) => return Err(damaged(reader.offset(), e.0)),
                    }
                }
            }
            Next::End => {
                return Ok(Replayed {
                    len: reader.offset(),
                    frames: reader.frames(),
                    torn: 0,
                    dropped_unsynced: false,
                    file_len,
                })
            }
            Next::Bad(reason) => break reason,
        }
    };
    let (len, frames) = (reader.offset(), reader.frames());
    // A bad frame whose header is whole is skipped as a unit: the search for valid frames
    // after it must not look inside its payload (client data).
    let search_from = reader.claimed_end().map_or(1, |end| end - len);
    let mut rest = Vec::new();
    file.seek(SeekFrom::Start(len))
        .and_then(|_| file.read_to_end(&mut rest))
        .map_err(RecoveryError::io(path, "read"))?;
    let torn = rest
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    let replayed = Replayed {
        len,
        frames,
        torn: torn as u64,
        dropped_unsynced: false,
        file_len,
    };
    if torn == 0 {
        return Ok(replayed); // preallocated zeros
    }
    let after = rest.get(search_from as usize..).unwrap_or_default();
    if let Some((at, synced)) = find_valid_frame(after, format.layout, frames) {
        // A later frame says the bad one was not yet on stable storage when it was written:
        // with `--fsync everysec` a power loss may keep the later and lose the earlier, and
        // dropping both is within what that mode allows. Otherwise it is damage.
        if newest && synced <= frames {
            return Ok(Replayed {
                dropped_unsynced: true,
                ..replayed
            });
        }
        let at = search_from as usize + at;
        return Err(damaged(
            len,
            &format!("{reason}; valid frames follow at byte {}", len + at as u64),
        ));
    }
    if !newest {
        return Err(damaged(len, reason));
    }
    Ok(replayed)
}
