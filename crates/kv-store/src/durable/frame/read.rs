//! Reading frames: one after the other, and searching for one after damage.

use std::io::{self, Read};

use super::{Layout, MAGIC_LEN, MAX_HEADER_LEN, WRITTEN};

/// What [`FrameReader::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A valid frame; its payload is in [`FrameReader::payload`].
    Frame,
    /// The end of the file, exactly at a frame boundary.
    End,
    /// Not a valid frame at [`FrameReader::offset`] (torn, damaged or foreign); the reason.
    /// [`FrameReader::claimed_end`] says where it ends if its header is whole.
    Bad(&'static str),
}

/// Reads frames one after the other from a file of known length.
pub(crate) struct FrameReader<R> {
    input: R,
    layout: &'static Layout,
    /// Where the next (or the bad) frame starts, in bytes from the start of the file.
    offset: u64,
    file_len: u64,
    next_seq: u64,
    payload: Vec<u8>,
    /// Where the bad frame ends, if its header is whole.
    claimed_end: Option<u64>,
}

impl<R: Read> FrameReader<R> {
    /// `input` positioned at byte `start` of a file of `file_len` bytes, where the frames
    /// (of `layout`) begin.
    pub(crate) fn new(input: R, layout: &'static Layout, start: u64, file_len: u64) -> Self {
        Self {
            input,
            layout,
            offset: start,
            file_len,
            next_seq: 0,
            payload: Vec::new(),
            claimed_end: None,
        }
    }

    /// The next frame. After `Bad` or `End` the reader must not be used again.
    pub(crate) fn next(&mut self) -> io::Result<Next> {
        let header_len = self.layout.header_len;
        let remaining = self.file_len.saturating_sub(self.offset);
        if remaining == 0 {
            return Ok(Next::End);
        }
        if remaining < header_len as u64 {
            return Ok(Next::Bad("incomplete frame header"));
        }
        let mut buf = [0u8; MAX_HEADER_LEN];
        let header = &mut buf[..header_len];
        self.input.read_exact(header)?;
        let Some(len) = self.layout.parse_header(header) else {
            return Ok(Next::Bad("no valid frame header"));
        };
        self.claimed_end = Some(self.offset + (header_len + len) as u64);
        if len as u64 > remaining - header_len as u64 {
            return Ok(Next::Bad("frame runs past the end of the file"));
        }
        self.payload.clear();
        self.payload.resize(len, 0);
        self.input.read_exact(&mut self.payload)?;
        if !self.layout.payload_checksum_holds(header, &self.payload) {
            return Ok(Next::Bad("checksum mismatch"));
        }
        if self.layout.seq_of(header) != self.next_seq {
            return Ok(Next::Bad("frame out of sequence"));
        }
        self.claimed_end = None;
        self.offset += (header_len + len) as u64;
        self.next_seq += 1;
        Ok(Next::Frame)
    }

    /// After `Bad`: where the bad frame ends by its own (checksummed) header, if whole.
    pub(crate) fn claimed_end(&self) -> Option<u64> {
        self.claimed_end
    }

    /// The payload of the frame last returned.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Where the next (or the bad) frame starts: the end of the valid frames read so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Frames read so far (the sequence number the next frame must have).
    pub(crate) fn frames(&self) -> u64 {
        self.next_seq
    }
}

/// Where in `bytes` a valid frame of `layout` numbered `min_seq` or later starts, if
/// anywhere, and its *synced* count.
///
/// Tells a torn final write (nothing valid follows the damage: the write was never
/// acknowledged) from damage in the middle of a file (acknowledged frames follow it).
pub(crate) fn find_valid_frame(
    bytes: &[u8],
    layout: &Layout,
    min_seq: u64,
) -> Option<(usize, u64)> {
    let mut at = 0;
    while at + layout.header_len <= bytes.len() {
        let start = at
            + bytes[at..]
                .windows(MAGIC_LEN)
                .position(|w| w == layout.magic)?;
        if let Some(header) = bytes.get(start..start + layout.header_len) {
            if let Some(len) = layout.parse_header(header) {
                let end = start + layout.header_len + len;
                if end <= bytes.len()
                    && layout.seq_of(header) >= min_seq
                    && layout.payload_checksum_holds(header, &bytes[start + layout.header_len..end])
                {
                    return Some((start, layout.synced_of(header)));
                }
            }
        }
        at = start + 1;
    }
    None
}

/// A frame header of the layout this build writes ([`super::HEADER_LEN`] bytes), checked
/// on its own: for a reader that gets frames from a stream rather than a file of known
/// length (a backup arriving over a connection). Its payload length and sequence number,
/// if the header is whole.
pub(crate) fn parse_written_header(header: &[u8]) -> Option<(usize, u64)> {
    let len = WRITTEN.parse_header(header)?;
    Some((len, WRITTEN.seq_of(header)))
}

/// Whether `payload` is the one `header` (whole, of the layout this build writes) was
/// sealed with.
pub(crate) fn written_payload_holds(header: &[u8], payload: &[u8]) -> bool {
    WRITTEN.payload_checksum_holds(header, payload)
}
