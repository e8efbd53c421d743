//! Checksummed frames: how the journal and snapshot files are cut into verifiable pieces.
//!
//! A frame is one group commit (or one slice of a snapshot):
//!
//! ```text
//! magic "KVf3" | payload length u32 | sequence number u64 | synced u64 | payload CRC u32
//! | header CRC u32 | payload
//! ```
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

use std::io::{self, Read};

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

const MAGIC_LEN: usize = 4;
const LEN_AT: usize = MAGIC_LEN;
const SEQ_AT: usize = LEN_AT + size_of::<u32>();
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
const WRITTEN: &Layout = &KVF3;
/// The longest header of any layout read (the buffer size for one).
const MAX_HEADER_LEN: usize = KVF3.header_len;
/// Bytes before the payload of a frame this build writes.
pub(crate) const HEADER_LEN: usize = WRITTEN.header_len;

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

fn put(header: &mut [u8], at: usize, value: &[u8]) {
    header[at..at + value.len()].copy_from_slice(value);
}

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

fn u32_at(header: &[u8], at: usize) -> u32 {
    let mut value = [0u8; 4];
    value.copy_from_slice(&header[at..at + 4]);
    u32::from_le_bytes(value)
}

fn u64_at(header: &[u8], at: usize) -> u64 {
    let mut value = [0u8; 8];
    value.copy_from_slice(&header[at..at + 8]);
    u64::from_le_bytes(value)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file_of(payloads: &[&[u8]]) -> Vec<u8> {
        let mut frame = FrameBuf::default();
        let mut file = Vec::new();
        for (seq, payload) in payloads.iter().enumerate() {
            frame.start();
            frame.payload().extend_from_slice(payload);
            file.extend_from_slice(frame.seal(seq as u64, seq as u64).unwrap());
        }
        file
    }

    /// Reads `file` to its end or first bad frame: (payloads, verdict, offset).
    fn read_all(file: &[u8]) -> (Vec<Vec<u8>>, Next, u64) {
        let mut reader = FrameReader::new(file, &KVF3, 0, file.len() as u64);
        let mut payloads = Vec::new();
        loop {
            match reader.next().unwrap() {
                Next::Frame => payloads.push(reader.payload().to_vec()),
                other => return (payloads, other, reader.offset()),
            }
        }
    }

    #[test]
    fn the_layouts_are_as_documented() {
        assert_eq!(
            (KVF2.header_len, KVF2.payload_crc_at, KVF2.synced_at),
            (24, 16, None)
        );
        assert_eq!(
            (KVF3.header_len, KVF3.payload_crc_at, KVF3.synced_at),
            (32, 24, Some(16))
        );
        assert_eq!(HEADER_LEN, 32);
    }

    #[test]
    fn frames_read_back_in_order() {
        let file = file_of(&[b"one", b"", b"three"]);
        let (payloads, end, offset) = read_all(&file);
        assert_eq!(payloads, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        assert_eq!(end, Next::End);
        assert_eq!(offset, file.len() as u64);
    }

    #[test]
    fn a_flipped_bit_is_a_checksum_mismatch_at_that_frame() {
        let mut file = file_of(&[b"first", b"second"]);
        let second = HEADER_LEN + 5;
        file[second + HEADER_LEN + 2] ^= 0x10;
        let (payloads, end, offset) = read_all(&file);
        assert_eq!(payloads.len(), 1);
        assert_eq!(end, Next::Bad("checksum mismatch"));
        assert_eq!(offset, second as u64);
    }

    #[test]
    fn a_swapped_frame_is_out_of_sequence() {
        let a = file_of(&[b"a", b"b"]);
        let mut swapped = a[HEADER_LEN + 1..].to_vec();
        swapped.extend_from_slice(&a[..HEADER_LEN + 1]);
        assert_eq!(read_all(&swapped).1, Next::Bad("frame out of sequence"));
    }

    #[test]
    fn valid_frames_are_found_after_damage_but_not_in_garbage() {
        let file = file_of(&[b"a", b"b", b"c"]);
        let third = 2 * (HEADER_LEN + 1);
        assert_eq!(
            find_valid_frame(&file[1..], &KVF3, 0),
            Some((HEADER_LEN, 1))
        ); // frame 1
        assert_eq!(find_valid_frame(&file[1..], &KVF3, 2), Some((third - 1, 2)));
        assert_eq!(find_valid_frame(&file[1..], &KVF3, 3), None);
        assert_eq!(find_valid_frame(&[0u8; 4096], &KVF3, 0), None);
        assert_eq!(find_valid_frame(&b"KVf3".repeat(20), &KVF3, 0), None);
    }

    #[test]
    fn a_frame_image_inside_a_torn_frame_is_not_taken_for_a_frame() {
        // A client's value that is a whole, valid frame with a high sequence number...
        let planted = file_of(&[b"x".as_slice(); 6])[5 * (HEADER_LEN + 1)..].to_vec();
        assert_eq!(find_valid_frame(&planted, &KVF3, 5), Some((0, 5)));
        // ...inside a frame whose write was torn (its header reached the disk).
        let mut outer = file_of(&[&[b"padding".as_slice(), &planted, b"tail"].concat()]);
        let whole = outer.len();
        outer.truncate(whole - 2);
        let mut reader = FrameReader::new(&outer[..], &KVF3, 0, outer.len() as u64);
        assert_eq!(
            reader.next().unwrap(),
            Next::Bad("frame runs past the end of the file")
        );
        assert_eq!(reader.claimed_end(), Some(whole as u64));
        // A search from the next byte would find the planted frame; the claimed end skips it.
        assert!(find_valid_frame(&outer[1..], &KVF3, 1).is_some());
    }

    proptest! {
        /// A file cut anywhere reads as its whole frames, then one bad frame or the end.
        #[test]
        fn a_cut_file_reads_its_whole_frames_then_stops(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8),
            cut in any::<proptest::sample::Index>(),
        ) {
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let file = file_of(&refs);
            let cut = cut.index(file.len() + 1);
            let (read, end, offset) = read_all(&file[..cut]);
            prop_assert_eq!(&read[..], &payloads[..read.len()]);
            prop_assert!(offset as usize <= cut);
            if end == Next::End {
                prop_assert_eq!(offset as usize, cut);
            } else {
                prop_assert!(find_valid_frame(&file[offset as usize..cut], &KVF3, read.len() as u64).is_none());
            }
        }
    }
}
