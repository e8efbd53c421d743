//! The journal: an append-only file of frames, one per group commit.
//!
//! Appending is one `write` and (for a durable commit) one `fdatasync`. A failed append
//! (disk full, I/O error) may leave part of a frame behind; the file is cut back to the
//! last whole frame before anything else is appended, so damage never sits in front of
//! valid frames — which is how [`replay`] tells a torn final write (dropped: it was never
//! acknowledged) from damage in the middle (refused: acknowledged writes follow it).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::dir::DataDir;
use super::frame::{find_valid_frame, FrameBuf, FrameReader, Next};
use super::record::{decode_all, Record};

/// The journal being appended to.
pub(crate) struct Journal {
    file: File,
    generation: u64,
    /// Bytes of whole frames: where the next frame goes.
    len: u64,
    /// Frames written: the next frame's sequence number.
    frames: u64,
    /// A failed append may have left bytes past `len`.
    dirty_tail: bool,
}

impl Journal {
    /// Starts a new, empty journal of `generation`.
    pub(crate) fn create(dir: &DataDir, generation: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.journal(generation))?;
        dir.sync()?;
        Ok(Self {
            file,
            generation,
            len: 0,
            frames: 0,
            dirty_tail: false,
        })
    }

    /// Continues the journal of `generation` after [`replay`] found it `replayed`: a torn
    /// tail is cut off (and the cut made durable) first.
    pub(crate) fn resume(dir: &DataDir, generation: u64, replayed: &Replayed) -> io::Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .open(dir.journal(generation))?;
        let mut journal = Self {
            file,
            generation,
            len: replayed.len,
            frames: replayed.frames,
            dirty_tail: replayed.discarded > 0,
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
        let bytes = frame.seal(self.frames);
        self.dirty_tail = true;
        let written =
            self.file.write_all(bytes).and_then(
                |()| {
                    if sync {
                        self.file.sync_data()
                    } else {
                        Ok(())
                    }
                },
            );
        if let Err(e) = written {
            // Give the space back now if we can; `cut_tail` retries before the next append.
            let _ = self.cut_tail();
            return Err(e);
        }
        self.dirty_tail = false;
        self.len += bytes.len() as u64;
        self.frames += 1;
        Ok(())
    }

    /// Makes every appended frame durable.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Cuts off what a failed append left past the last whole frame.
    fn cut_tail(&mut self) -> io::Result<()> {
        if self.dirty_tail {
            self.file.set_len(self.len)?;
            self.file.sync_data()?;
            self.dirty_tail = false;
        }
        Ok(())
    }
}

/// What [`replay`] found in a journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// Bytes of whole, valid frames.
    pub(crate) len: u64,
    /// How many.
    pub(crate) frames: u64,
    /// Bytes after them: a torn final write (only ever in the newest journal).
    pub(crate) discarded: u64,
}

/// Hands every record of the journal at `path` to `apply`, in order.
///
/// A journal ending in an incomplete or invalid frame after which no valid frame follows
/// ended in a write that never finished, so never acknowledged: that is accepted, in the
/// newest journal (`newest`) only, and reported in [`Replayed::discarded`]. Any other damage
/// is an error: acknowledged writes would be lost by going on.
pub(crate) fn replay(
    path: &Path,
    newest: bool,
    mut apply: impl FnMut(Record<'_>),
) -> Result<Replayed, String> {
    let damaged = |offset: u64, reason: &str| {
        format!("{} is damaged at byte {offset} ({reason})", path.display())
    };
    let mut file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let file_len = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    let mut reader = FrameReader::new(BufReader::new(&mut file), file_len);
    let reason = loop {
        let next = reader
            .next()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        match next {
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
                    discarded: 0,
                })
            }
            Next::Bad(reason) => break reason,
        }
    };
    let (len, frames) = (reader.offset(), reader.frames());
    if !newest {
        return Err(damaged(len, reason));
    }
    let mut rest = Vec::new();
    file.seek(SeekFrom::Start(len))
        .and_then(|_| file.read_to_end(&mut rest))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if let Some(at) = find_valid_frame(&rest, frames) {
        return Err(damaged(
            len,
            &format!("{reason}; valid frames follow at byte {}", len + at as u64),
        ));
    }
    Ok(Replayed {
        len,
        frames,
        discarded: rest.len() as u64,
    })
}
