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

use std::io::{self, Read};

const MAGIC: [u8; 4] = *b"KVf3";
/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 32;

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
        self.buf[0..4].copy_from_slice(&MAGIC);
        self.buf[4..8].copy_from_slice(&len.to_le_bytes());
        self.buf[8..16].copy_from_slice(&seq.to_le_bytes());
        self.buf[16..24].copy_from_slice(&synced.to_le_bytes());
        let payload_crc = crc32fast::hash(&self.buf[HEADER_LEN..]);
        self.buf[24..28].copy_from_slice(&payload_crc.to_le_bytes());
        let header_crc = crc32fast::hash(&self.buf[..28]);
        self.buf[28..32].copy_from_slice(&header_crc.to_le_bytes());
        Ok(&self.buf)
    }

    /// Shrinks an unusually large buffer back after a big frame.
    pub(crate) fn shrink_to(&mut self, capacity: usize) {
        self.buf.shrink_to(capacity);
    }
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
    /// Where the next (or the bad) frame starts.
    offset: u64,
    file_len: u64,
    next_seq: u64,
    payload: Vec<u8>,
    /// Where the bad frame ends, if its header is whole.
    claimed_end: Option<u64>,
}

impl<R: Read> FrameReader<R> {
    /// `input` positioned at the start of a file of `file_len` bytes.
    pub(crate) fn new(input: R, file_len: u64) -> Self {
        Self {
            input,
            offset: 0,
            file_len,
            next_seq: 0,
            payload: Vec::new(),
            claimed_end: None,
        }
    }

    /// The next frame. After `Bad` or `End` the reader must not be used again.
    pub(crate) fn next(&mut self) -> io::Result<Next> {
        let remaining = self.file_len - self.offset;
        if remaining == 0 {
            return Ok(Next::End);
        }
        if remaining < HEADER_LEN as u64 {
            return Ok(Next::Bad("incomplete frame header"));
        }
        let mut header = [0u8; HEADER_LEN];
        self.input.read_exact(&mut header)?;
        let Some(len) = parse_header(&header) else {
            return Ok(Next::Bad("no valid frame header"));
        };
        self.claimed_end = Some(self.offset + (HEADER_LEN + len) as u64);
        if len as u64 > remaining - HEADER_LEN as u64 {
            return Ok(Next::Bad("frame runs past the end of the file"));
        }
        self.payload.clear();
        self.payload.resize(len, 0);
        self.input.read_exact(&mut self.payload)?;
        if !payload_checksum_holds(&header, &self.payload) {
            return Ok(Next::Bad("checksum mismatch"));
        }
        if seq_of(&header) != self.next_seq {
            return Ok(Next::Bad("frame out of sequence"));
        }
        self.claimed_end = None;
        self.offset += (HEADER_LEN + len) as u64;
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

    /// Bytes of valid frames read so far: where the next (or the bad) frame starts.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Frames read so far (the sequence number the next frame must have).
    pub(crate) fn frames(&self) -> u64 {
        self.next_seq
    }
}

/// The payload length, if `header` is a whole frame header (marker and checksum).
fn parse_header(header: &[u8; HEADER_LEN]) -> Option<usize> {
    let stored = u32::from_le_bytes([header[28], header[29], header[30], header[31]]);
    if header[0..4] != MAGIC || crc32fast::hash(&header[..28]) != stored {
        return None;
    }
    Some(u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize)
}

fn seq_of(header: &[u8; HEADER_LEN]) -> u64 {
    u64_at(header, 8)
}

fn synced_of(header: &[u8; HEADER_LEN]) -> u64 {
    u64_at(header, 16)
}

fn u64_at(header: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut value = [0u8; 8];
    value.copy_from_slice(&header[at..at + 8]);
    u64::from_le_bytes(value)
}

fn payload_checksum_holds(header: &[u8; HEADER_LEN], payload: &[u8]) -> bool {
    let stored = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
    crc32fast::hash(payload) == stored
}

/// Where in `bytes` a valid frame numbered `min_seq` or later starts, if anywhere, and
/// its *synced* count.
///
/// Tells a torn final write (nothing valid follows the damage: the write was never
/// acknowledged) from damage in the middle of a file (acknowledged frames follow it).
pub(crate) fn find_valid_frame(bytes: &[u8], min_seq: u64) -> Option<(usize, u64)> {
    let mut at = 0;
    while at + HEADER_LEN <= bytes.len() {
        let start = at + bytes[at..].windows(4).position(|w| w == MAGIC)?;
        if let Some(header) = bytes
            .get(start..start + HEADER_LEN)
            .and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok())
        {
            if let Some(len) = parse_header(header) {
                let end = start + HEADER_LEN + len;
                if end <= bytes.len()
                    && seq_of(header) >= min_seq
                    && payload_checksum_holds(header, &bytes[start + HEADER_LEN..end])
                {
                    return Some((start, synced_of(header)));
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
        let mut reader = FrameReader::new(file, file.len() as u64);
        let mut payloads = Vec::new();
        loop {
            match reader.next().unwrap() {
                Next::Frame => payloads.push(reader.payload().to_vec()),
                other => return (payloads, other, reader.offset()),
            }
        }
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
        assert_eq!(find_valid_frame(&file[1..], 0), Some((HEADER_LEN, 1))); // frame 1
        assert_eq!(find_valid_frame(&file[1..], 2), Some((third - 1, 2)));
        assert_eq!(find_valid_frame(&file[1..], 3), None);
        assert_eq!(find_valid_frame(&[0u8; 4096], 0), None);
        assert_eq!(find_valid_frame(&b"KVf3".repeat(20), 0), None);
    }

    #[test]
    fn a_frame_image_inside_a_torn_frame_is_not_taken_for_a_frame() {
        // A client's value that is a whole, valid frame with a high sequence number...
        let planted = file_of(&[b"x".as_slice(); 6])[5 * (HEADER_LEN + 1)..].to_vec();
        assert_eq!(find_valid_frame(&planted, 5), Some((0, 5)));
        // ...inside a frame whose write was torn (its header reached the disk).
        let mut outer = file_of(&[&[b"padding".as_slice(), &planted, b"tail"].concat()]);
        let whole = outer.len();
        outer.truncate(whole - 2);
        let mut reader = FrameReader::new(&outer[..], outer.len() as u64);
        assert_eq!(
            reader.next().unwrap(),
            Next::Bad("frame runs past the end of the file")
        );
        assert_eq!(reader.claimed_end(), Some(whole as u64));
        // A search from the next byte would find the planted frame; the claimed end skips it.
        assert!(find_valid_frame(&outer[1..], 1).is_some());
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
                prop_assert!(find_valid_frame(&file[offset as usize..cut], read.len() as u64).is_none());
            }
        }
    }
}
