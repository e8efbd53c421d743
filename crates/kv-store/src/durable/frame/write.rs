//! Writing frames: one reusable buffer per writer.

use std::io;

use super::{HEADER_LEN, LEN_AT, MAGIC_LEN, SEQ_AT, WRITTEN};

/// Builds frames in one reusable buffer: [`start`](Self::start), append the payload to
/// [`payload`](Self::payload), then [`seal`](Self::seal).
#[derive(Default)]
pub(crate) struct FrameBuf {
    buf: Vec<u8>,
}

impl FrameBuf {
    /// Begins a new frame (forgetting the previous one, keeping its allocation).
    pub(crate) fn start(&mut self) {
        self.buf.clear();
        self.buf.resize(HEADER_LEN, 0);
    }

    /// The buffer to append records to; everything past the header is payload.
    pub(crate) fn payload(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Bytes of payload so far.
    pub(crate) fn payload_len(&self) -> usize {
        self.buf.len().saturating_sub(HEADER_LEN)
    }

    /// Fills in the header and returns the whole frame, ready to write; fails only for a
    /// payload over 4 GiB.
    pub(crate) fn seal(&mut self, seq: u64, synced: u64) -> io::Result<&[u8]> {
        let len = u32::try_from(self.payload_len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "a frame payload over 4 GiB")
        })?;
        let layout = WRITTEN;
        let payload_crc = crc32fast::hash(&self.buf[HEADER_LEN..]);
        let header = &mut self.buf[..HEADER_LEN];
        header[..MAGIC_LEN].copy_from_slice(&layout.magic);
        put(header, LEN_AT, &len.to_le_bytes());
        put(header, SEQ_AT, &seq.to_le_bytes());
        if let Some(at) = layout.synced_at {
            put(header, at, &synced.to_le_bytes());
        }
        put(header, layout.payload_crc_at, &payload_crc.to_le_bytes());
        let header_crc = crc32fast::hash(&header[..layout.header_crc_at]);
        put(header, layout.header_crc_at, &header_crc.to_le_bytes());
        Ok(&self.buf)
    }

    /// Shrinks an unusually large buffer back after a big frame.
    pub(crate) fn shrink_to(&mut self, capacity: usize) {
        self.buf.shrink_to(capacity);
    }
}

pub(super) fn put(header: &mut [u8], at: usize, value: &[u8]) {
    header[at..at + value.len()].copy_from_slice(value);
}
