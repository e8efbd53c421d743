//! A password held so that it is not shown by accident: `Debug` prints `<redacted>`, there
//! is no `Display`, and its bytes are wiped when it is dropped.

use std::fmt;
use std::io;
use std::path::Path;

use zeroize::Zeroizing;

/// A password for `AUTH`. Read it with [`Secret::expose`] only to send it.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Holds `password` as it is.
    pub fn new(password: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(password.into()))
    }

    /// The password in the file at `path`, read as the server reads its
    /// `--requirepass-file` (one file can serve both): the first line, without a UTF-8
    /// byte-order mark or line terminator.
    ///
    /// Errors (`InvalidData`/`InvalidInput`, or the OS's, each naming the file): the file
    /// cannot be read or is not UTF-8, or its first line is empty or holds whitespace,
    /// which `AUTH` cannot carry.
    pub fn from_file(path: &Path) -> io::Result<Self> {
        let named = |e: &dyn fmt::Display| format!("password file {}: {e}", path.display());
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| io::Error::new(e.kind(), named(&e)))?,
        );
        // Editors that save "UTF-8 with BOM" start the file with U+FEFF (the server skips
        // it too).
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let line = text.lines().next().unwrap_or_default();
        Self::checked(line.as_bytes())
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, named(&why)))
    }

    /// `password` if `AUTH` can carry it: not empty, no space, tab, `\r` or `\n`.
    /// Errors: a sentence saying which rule it breaks.
    pub fn checked(password: &[u8]) -> Result<Self, &'static str> {
        match kv_protocol::check_word(password) {
            Ok(()) => Ok(Self::new(password)),
            Err(kv_protocol::InvalidWord::Empty) => Err("the password is empty"),
            Err(kv_protocol::InvalidWord::Whitespace) => {
                Err("the password holds whitespace, which AUTH cannot carry")
            }
        }
    }

    /// The password's bytes, to send.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_nothing_of_the_password() {
        let secret = Secret::new("hunter2");
        let shown = format!("{secret:?} {:#?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn a_file_gives_its_first_line_without_a_byte_order_mark() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("password");
        std::fs::write(&path, "\u{feff}s3cret\r\nsecond line\n").expect("write");
        let secret = Secret::from_file(&path).expect("a password");
        assert_eq!(secret.expose(), b"s3cret");
    }

    #[test]
    fn an_unusable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let missing = dir.path().join("missing");
        let e = Secret::from_file(&missing).expect_err("no such file");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("missing"), "{e}");
        let spaced = dir.path().join("spaced");
        std::fs::write(&spaced, "two words\n").expect("write");
        let e = Secret::from_file(&spaced).expect_err("whitespace");
        assert!(e.to_string().contains("whitespace"), "{e}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").expect("write");
        assert!(Secret::from_file(&empty).is_err());
    }
}
