//! Checksummed frames: how the journal and snapshot files are cut into verifiable pieces.
//!
//! A frame is one group commit (or one slice of a snapshot). Format versions 3 and 4
//! ([`super::format`]) write the [`KVF3`] layout:
//!
//! ```text
//! magic "KVf3" | payload length u32 | sequence number u64 | synced u64 | payload CRC u32
//! | header CRC u32 | payload
//! ```
//!
//! Version 2 wrote [`KVF2`], the same without *synced*; it is read only to upgrade.
//!
//! *synced* counts the frames of the file that were on stable storage when this one was
//! written (all before it with `--fsync always`; fewer with `everysec`), so that recovery
//! can tell a lost frame that was never synced from damage to one that was.
//!
//! all little-endian; the CRCs are CRC-32 (IEEE). The payload checksum makes a torn or
//! bit-flipped frame recognisable; the header's own checksum says whether its length can
//! be trusted, so that the search for valid frames after a bad one (which tells a torn
//! final write from damage in the middle) skips the payload of a frame whose header is
//! whole — a client's value that happens to look like a frame is never mistaken for one.
//! Sequence numbers count frames from 0 within a file, so a frame that is valid but out of
//! place is recognised too.

/// Where each field of a frame header sits, for one format version.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    magic: [u8; 4],
    /// Where the *synced* count is, if this layout has one.
    synced_at: Option<usize>,
    payload_crc_at: usize,
    header_crc_at: usize,
    /// Bytes before the payload.
    header_len: usize,
}

pub(super) const MAGIC_LEN: usize = 4;
pub(super) const LEN_AT: usize = MAGIC_LEN;
pub(super) const SEQ_AT: usize = LEN_AT + size_of::<u32>();
const AFTER_SEQ: usize = SEQ_AT + size_of::<u64>();

impl Layout {
    /// Lays the fields out in their documented order after the sequence number.
    const fn new(magic: [u8; 4], with_synced: bool) -> Layout {
        let payload_crc_at = if with_synced {
            AFTER_SEQ + size_of::<u64>()
        } else {
            AFTER_SEQ
        };
        let header_crc_at = payload_crc_at + size_of::<u32>();
        Layout {
            magic,
            synced_at: if with_synced { Some(AFTER_SEQ) } else { None },
            payload_crc_at,
            header_crc_at,
            header_len: header_crc_at + size_of::<u32>(),
        }
    }

    /// The magic every frame of this layout starts with.
    pub(crate) const fn magic(&self) -> [u8; 4] {
        self.magic
    }

    /// The payload length, if `header` is a whole frame header (marker and checksum).
    fn parse_header(&self, header: &[u8]) -> Option<usize> {
        let header = header.get(..self.header_len)?;
        let stored = u32_at(header, self.header_crc_at);
        if header[..MAGIC_LEN] != self.magic
            || crc32fast::hash(&header[..self.header_crc_at]) != stored
        {
            return None;
        }
        Some(u32_at(header, LEN_AT) as usize)
    }

    fn seq_of(&self, header: &[u8]) -> u64 {
        u64_at(header, SEQ_AT)
    }

    /// Frames synced when this one was written; a layout without the field promised
    /// every earlier frame synced, so nothing before it may be dropped.
    fn synced_of(&self, header: &[u8]) -> u64 {
        self.synced_at.map_or(u64::MAX, |at| u64_at(header, at))
    }

    fn payload_checksum_holds(&self, header: &[u8], payload: &[u8]) -> bool {
        crc32fast::hash(payload) == u32_at(header, self.payload_crc_at)
    }
}

/// Format version 2's frames (no *synced* count).
pub(crate) const KVF2: Layout = Layout::new(*b"KVf2", false);
/// Format versions 3 and 4: the frames this build writes.
pub(crate) const KVF3: Layout = Layout::new(*b"KVf3", true);
/// The layout of the frames this build writes.
pub(super) const WRITTEN: &Layout = &KVF3;
/// The longest header of any layout read (the buffer size for one).
pub(super) const MAX_HEADER_LEN: usize = KVF3.header_len;
/// Bytes before the payload of a frame this build writes.
pub(crate) const HEADER_LEN: usize = WRITTEN.header_len;

pub(super) fn u32_at(header: &[u8], at: usize) -> u32 {
    let mut value = [0u8; 4];
    value.copy_from_slice(&header[at..at + 4]);
    u32::from_le_bytes(value)
}

pub(super) fn u64_at(header: &[u8], at: usize) -> u64 {
    let mut value = [0u8; 8];
    value.copy_from_slice(&header[at..at + 8]);
    u64::from_le_bytes(value)
}

mod read;
mod write;

pub(crate) use read::{
    find_valid_frame, parse_written_header, written_payload_holds, FrameReader, Next,
};
pub(crate) use write::FrameBuf;

#[cfg(test)]
mod tests;
