//! The backup file's header: what the file is and which format version it holds.
//!
//! ```text
//! magic "\x89KVB\r\n\x1a\n" (8) | version u32 | header CRC u32
//! ```
//!
//! little-endian, CRC-32 (IEEE) of the bytes before it; the frames follow. The magic
//! follows the data files' (and PNG's): a non-ASCII first byte, then line endings that a
//! text-mode copy would mangle, and a `B` where data files have an `S`, so neither is
//! taken for the other.

use std::fmt;

/// The format version this build writes and reads.
pub const CURRENT: u32 = 1;

const MAGIC: [u8; 8] = *b"\x89KVB\r\n\x1a\n";
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + MAGIC.len();
const CRC_AT: usize = VERSION_AT + size_of::<u32>();
/// Bytes of the header; the first frame starts here.
pub const HEADER_LEN: usize = CRC_AT + size_of::<u32>();

/// The header of a backup in the current version.
pub(crate) fn header() -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[MAGIC_AT..VERSION_AT].copy_from_slice(&MAGIC);
    header[VERSION_AT..CRC_AT].copy_from_slice(&CURRENT.to_le_bytes());
    let crc = crc32fast::hash(&header[..CRC_AT]);
    header[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Why a header is not one this build reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// It does not begin with the backup magic: not a backup at all.
    NotABackup,
    /// The magic is there but the header's checksum does not hold.
    Damaged,
    /// A backup of this format version, which this build does not read.
    UnsupportedVersion(u32),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::NotABackup => f.write_str("not a kv-server backup (no backup header)"),
            HeaderError::Damaged => f.write_str("its header is damaged (checksum mismatch)"),
            HeaderError::UnsupportedVersion(v) => write!(
                f,
                "backup format version {v}, {}; this kv-server reads version {CURRENT}",
                if *v > CURRENT {
                    "written by a newer kv-server"
                } else {
                    "which this version cannot read"
                }
            ),
        }
    }
}

/// Checks the first [`HEADER_LEN`] bytes of a backup.
pub(crate) fn parse(head: &[u8; HEADER_LEN]) -> Result<(), HeaderError> {
    if head[MAGIC_AT..VERSION_AT] != MAGIC {
        return Err(HeaderError::NotABackup);
    }
    let field =
        |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    if crc32fast::hash(&head[..CRC_AT]) != field(CRC_AT) {
        return Err(HeaderError::Damaged);
    }
    match field(VERSION_AT) {
        CURRENT => Ok(()),
        other => Err(HeaderError::UnsupportedVersion(other)),
    }
}

/// Whether `head` (the first bytes of a file, however few) can be the start of a backup.
pub(crate) fn could_begin(head: &[u8]) -> bool {
    let n = head.len().min(MAGIC.len());
    head[..n] == MAGIC[..n]
}

/// Whether `first` can begin a backup (a reply that does not is an `ERROR` line).
pub fn starts_a_backup(first: u8) -> bool {
    first == MAGIC[0]
}

#[cfg(test)]
pub(crate) fn with_version(version: u32) -> [u8; HEADER_LEN] {
    let mut header = header();
    header[VERSION_AT..CRC_AT].copy_from_slice(&version.to_le_bytes());
    let crc = crc32fast::hash(&header[..CRC_AT]);
    header[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_sixteen_bytes_and_reads_back() {
        assert_eq!(HEADER_LEN, 16);
        assert_eq!(parse(&header()), Ok(()));
    }

    #[test]
    fn a_newer_version_is_named_and_a_flipped_bit_is_damage() {
        let newer = parse(&with_version(7)).expect_err("version 7 is not read");
        assert_eq!(newer, HeaderError::UnsupportedVersion(7));
        assert!(newer.to_string().contains("newer"), "{newer}");
        let mut damaged = header();
        damaged[VERSION_AT] ^= 4;
        assert_eq!(parse(&damaged), Err(HeaderError::Damaged));
    }

    #[test]
    fn a_data_file_is_not_a_backup() {
        let mut journal = [0u8; HEADER_LEN];
        journal[..8].copy_from_slice(b"\x89KVS\r\n\x1a\n");
        assert_eq!(parse(&journal), Err(HeaderError::NotABackup));
    }
}
