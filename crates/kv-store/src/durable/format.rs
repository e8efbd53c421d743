//! What a data file is and which format version it holds: the file header.
//!
//! Since format version 4 every journal and snapshot begins with a header, written and
//! synced under a temporary name before the file gets its final name, so a file under its
//! final name never has a torn header:
//!
//! ```text
//! magic "\x89KVS\r\n\x1a\n" (8) | kind "JRNL" or "SNAP" (4) | version u32 | header CRC u32
//! ```
//!
//! little-endian, CRC-32 (IEEE) of the bytes before it. The magic follows PNG's: a
//! non-ASCII first byte, then line endings that a text-mode copy would mangle, so a
//! damaged copy is recognised as such. After the header come the frames ([`super::frame`]).
//!
//! The versions released so far, and what this build does with each (README, "Format
//! versions and upgrades": upgrade without losing a write, or refuse naming the version,
//! never read as damage):
//!
//! | version | how it is recognised | here |
//! |---|---|---|
//! | 1 | a `kv.redb` file (the redb-based store) | refused, directory untouched |
//! | 2 | no header; frames start with `KVf2` | read, then upgraded |
//! | 3 | no header; frames start with `KVf3` | read, then upgraded |
//! | 4 | this header, version 4 | current |
//! | 5 or more | this header | refused, directory untouched |
//!
//! Pre-release frames `KVf1` (never released) are refused too. A headerless journal that
//! holds no frame at all (empty, or only preallocated zeros) was written by version 2 or 3
//! and holds nothing to lose.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::frame::{Layout, KVF2, KVF3};

/// The format version this build writes.
pub(crate) const CURRENT: u32 = 4;

const MAGIC: [u8; 8] = *b"\x89KVS\r\n\x1a\n";
const MAGIC_AT: usize = 0;
const KIND_AT: usize = MAGIC_AT + MAGIC.len();
const KIND_LEN: usize = 4;
const VERSION_AT: usize = KIND_AT + KIND_LEN;
const CRC_AT: usize = VERSION_AT + size_of::<u32>();
/// Bytes of the file header; the first frame starts here.
pub(crate) const FILE_HEADER_LEN: usize = CRC_AT + size_of::<u32>();

/// Which kind of data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Journal,
    Snapshot,
}

impl Kind {
    fn tag(self) -> [u8; KIND_LEN] {
        match self {
            Kind::Journal => *b"JRNL",
            Kind::Snapshot => *b"SNAP",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Journal => "journal",
            Kind::Snapshot => "snapshot",
        }
    }
}

/// The header of a file of `kind` in the current version.
pub(crate) fn header(kind: Kind) -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[MAGIC_AT..KIND_AT].copy_from_slice(&MAGIC);
    header[KIND_AT..VERSION_AT].copy_from_slice(&kind.tag());
    header[VERSION_AT..CRC_AT].copy_from_slice(&CURRENT.to_le_bytes());
    let crc = crc32fast::hash(&header[..CRC_AT]);
    header[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// How to read a file's frames, as its beginning says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Format {
    /// The format version (2 and 3 are headerless; see the module's table).
    pub(crate) version: u32,
    /// Where the first frame starts.
    pub(crate) frames_at: u64,
    pub(crate) layout: &'static Layout,
}

impl Format {
    /// Whether the file must be rewritten in the current format.
    pub(crate) fn is_legacy(&self) -> bool {
        self.version < CURRENT
    }
}

/// Why a file's beginning cannot be read as a file of this build or of an earlier version
/// it upgrades.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FormatError {
    /// Written by a version this build does not read (a newer one, or an old one with no
    /// upgrade path); says which.
    Unsupported(String),
    /// Not a data file of `kind` at all (or its header is damaged).
    Foreign(&'static str),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Unsupported(version) => f.write_str(version),
            FormatError::Foreign(reason) => f.write_str(reason),
        }
    }
}

/// Reads the beginning of the file of `kind` at `path`: how its frames are to be read.
pub(crate) fn probe(path: &Path, kind: Kind) -> io::Result<Result<Format, FormatError>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    detect(&mut file, len, kind)
}

/// Opens the file at `path` of `format`, positioned at its first frame; and its length.
pub(crate) fn open_frames(path: &Path, format: &Format) -> io::Result<(File, u64)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(format.frames_at))?;
    Ok((file, len))
}

/// Reads the beginning of a file of `kind` (`file_len` bytes, `input` at its start) and
/// says how its frames are to be read.
fn detect(
    input: &mut impl Read,
    file_len: u64,
    kind: Kind,
) -> io::Result<Result<Format, FormatError>> {
    let mut head = [0u8; FILE_HEADER_LEN];
    let have = (file_len.min(FILE_HEADER_LEN as u64)) as usize;
    input.read_exact(&mut head[..have])?;
    let head = &head[..have];
    if head.starts_with(&MAGIC) {
        return Ok(parse(head, kind));
    }
    // Headerless: versions 2 and 3 start with their first frame.
    let legacy = |version, layout| {
        Ok(Ok(Format {
            version,
            frames_at: 0,
            layout,
        }))
    };
    if head.starts_with(&KVF2.magic()) {
        legacy(2, &KVF2)
    } else if head.starts_with(&KVF3.magic()) {
        legacy(3, &KVF3)
    } else if head.starts_with(b"KVf1") {
        Ok(Err(FormatError::Unsupported(
            "frames \"KVf1\" of a pre-release kv-server, which this version cannot read".into(),
        )))
    } else if kind == Kind::Journal && head.iter().all(|&b| b == 0) {
        // A version 2 or 3 journal that never got a frame (new ones always have a header):
        // nothing in it to lose, whatever follows is checked as frames of version 3.
        legacy(3, &KVF3)
    } else {
        Ok(Err(FormatError::Foreign(
            "it does not begin with a kv-server file header",
        )))
    }
}

/// Checks a header that starts with the magic.
fn parse(head: &[u8], kind: Kind) -> Result<Format, FormatError> {
    if head.len() < FILE_HEADER_LEN {
        return Err(FormatError::Foreign("its file header is incomplete"));
    }
    let field =
        |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    if crc32fast::hash(&head[..CRC_AT]) != field(CRC_AT) {
        return Err(FormatError::Foreign(
            "its file header is damaged (checksum mismatch)",
        ));
    }
    if head[KIND_AT..VERSION_AT] != kind.tag() {
        return Err(FormatError::Foreign(match kind {
            Kind::Journal => "it is not a journal",
            Kind::Snapshot => "it is not a snapshot",
        }));
    }
    let version = field(VERSION_AT);
    if version != CURRENT {
        return Err(FormatError::Unsupported(format!(
            "{} format version {version}, {}; this kv-server reads versions 2 to {CURRENT}",
            kind.name(),
            if version > CURRENT {
                "written by a newer kv-server"
            } else {
                "which this version cannot read"
            }
        )));
    }
    Ok(Format {
        version,
        frames_at: FILE_HEADER_LEN as u64,
        layout: &KVF3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_bytes(bytes: &[u8], kind: Kind) -> Result<Format, FormatError> {
        detect(&mut &bytes[..], bytes.len() as u64, kind).unwrap()
    }

    fn with_version(kind: Kind, version: u32) -> Vec<u8> {
        let mut header = header(kind).to_vec();
        header[VERSION_AT..CRC_AT].copy_from_slice(&version.to_le_bytes());
        let crc = crc32fast::hash(&header[..CRC_AT]);
        header[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        header
    }

    #[test]
    fn the_header_is_twenty_bytes_and_reads_back_as_the_current_version() {
        assert_eq!(FILE_HEADER_LEN, 20);
        let format = detect_bytes(&header(Kind::Journal), Kind::Journal).unwrap();
        assert_eq!(format.version, CURRENT);
        assert_eq!(format.frames_at, FILE_HEADER_LEN as u64);
        assert!(!format.is_legacy());
    }

    #[test]
    fn a_journal_header_is_not_taken_for_a_snapshot() {
        assert_eq!(
            detect_bytes(&header(Kind::Journal), Kind::Snapshot),
            Err(FormatError::Foreign("it is not a snapshot"))
        );
    }

    #[test]
    fn a_newer_version_is_unsupported_and_named() {
        let Err(FormatError::Unsupported(why)) =
            detect_bytes(&with_version(Kind::Snapshot, 9), Kind::Snapshot)
        else {
            panic!("a newer version must be unsupported");
        };
        assert!(why.contains("version 9"), "{why}");
        assert!(why.contains("newer"), "{why}");
    }

    #[test]
    fn headerless_files_are_recognised_by_their_first_frame() {
        let v2 = detect_bytes(b"KVf2\x05\0\0\0", Kind::Journal).unwrap();
        assert_eq!((v2.version, v2.frames_at, v2.layout), (2, 0, &KVF2));
        let v3 = detect_bytes(b"KVf3\x05\0\0\0", Kind::Snapshot).unwrap();
        assert_eq!((v3.version, v3.layout), (3, &KVF3));
        assert!(v3.is_legacy());
        assert!(matches!(
            detect_bytes(b"KVf1\x05\0\0\0", Kind::Journal),
            Err(FormatError::Unsupported(_))
        ));
    }

    #[test]
    fn an_empty_or_zeroed_journal_is_an_old_journal_without_frames() {
        assert_eq!(detect_bytes(b"", Kind::Journal).unwrap().version, 3);
        assert_eq!(detect_bytes(&[0; 64], Kind::Journal).unwrap().version, 3);
        assert!(detect_bytes(b"", Kind::Snapshot).is_err());
    }

    #[test]
    fn a_damaged_or_foreign_beginning_is_never_read_as_frames() {
        let mut damaged = header(Kind::Journal);
        damaged[VERSION_AT] ^= 1;
        assert!(matches!(
            detect_bytes(&damaged, Kind::Journal),
            Err(FormatError::Foreign(_))
        ));
        assert!(matches!(
            detect_bytes(b"SQLite format 3\0", Kind::Journal),
            Err(FormatError::Foreign(_))
        ));
        assert!(matches!(
            detect_bytes(&header(Kind::Journal)[..10], Kind::Journal),
            Err(FormatError::Foreign(_))
        ));
    }
}
