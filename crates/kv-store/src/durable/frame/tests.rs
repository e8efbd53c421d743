//! Frames written and read back, cut, damaged and searched.

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
