//! Line framing: a pure decoder that finds `\n`-terminated lines in a byte buffer.
//!
//! It knows nothing of sockets, so the same code is what unit and property tests hit.
//! A line that cannot fit under the limit is a value ([`LineTooLong`]), found as soon as
//! the buffered bytes prove it, without waiting for its newline: that is what keeps memory
//! bounded while an endless line streams in.

/// The buffered bytes hold a line longer than the limit (its terminator included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

/// Finds complete lines, remembering how far it has already scanned so that a long line
/// arriving in many small reads is scanned once, not once per read (no O(n²)).
#[derive(Debug, Clone)]
pub struct LineDecoder {
    /// Longest accepted line, counting its `\n` (and any `\r` before it).
    max_line_bytes: usize,
    /// Bytes of the current partial line already searched for `\n`.
    scanned: usize,
}

impl LineDecoder {
    /// A decoder accepting lines of up to `max_line_bytes` bytes, terminator included.
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            max_line_bytes: max_line_bytes.max(1),
            scanned: 0,
        }
    }

    /// Returns the length (terminator included) of the first complete line of `pending`,
    /// `None` if more bytes are needed, or [`LineTooLong`] once the line cannot fit.
    ///
    /// `pending` must start where the previous line ended: after `Ok(Some(n))` the caller
    /// consumes exactly `n` bytes before calling again.
    pub fn next_line(&mut self, pending: &[u8]) -> Result<Option<usize>, LineTooLong> {
        let search_end = pending.len().min(self.max_line_bytes);
        let start = self.scanned.min(search_end);
        match memchr_newline(&pending[start..search_end]) {
            Some(offset) => {
                self.scanned = 0;
                Ok(Some(start + offset + 1))
            }
            // `max_line_bytes` bytes without a newline: the line would be longer.
            None if pending.len() >= self.max_line_bytes => Err(LineTooLong),
            None => {
                self.scanned = search_end;
                Ok(None)
            }
        }
    }
}

/// Position of the first `\n`. The std slice search compiles to a fast byte loop; a
/// dedicated SIMD crate did not pay for itself at our line lengths.
fn memchr_newline(haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == b'\n')
}

/// Strips one trailing `\n` and then one `\r`, if present.
pub fn trim_terminator(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The words of a line without its terminator: runs of bytes between spaces and tabs (the
/// rule of the wrappers' own lines, `AUTH` and `DEBUG`, as of kv-protocol's requests).
pub(crate) fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    trim_terminator(line)
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_all(decoder: &mut LineDecoder, mut input: &[u8]) -> Result<Vec<Vec<u8>>, LineTooLong> {
        let mut lines = Vec::new();
        while let Some(n) = decoder.next_line(input)? {
            lines.push(input[..n].to_vec());
            input = &input[n..];
        }
        Ok(lines)
    }

    #[test]
    fn finds_lines_with_their_terminators() {
        let mut d = LineDecoder::new(100);
        let lines = split_all(&mut d, b"hello\r\nis it me\nrest").unwrap();
        assert_eq!(lines, vec![b"hello\r\n".to_vec(), b"is it me\n".to_vec()]);
    }

    #[test]
    fn waits_for_more_bytes_on_a_partial_line() {
        let mut d = LineDecoder::new(100);
        assert_eq!(d.next_line(b"par"), Ok(None));
        assert_eq!(d.next_line(b"partial"), Ok(None));
        assert_eq!(d.next_line(b"partial\n"), Ok(Some(8)));
    }

    #[test]
    fn accepts_a_line_of_exactly_the_limit() {
        let mut d = LineDecoder::new(4);
        assert_eq!(d.next_line(b"abc\n"), Ok(Some(4)));
        assert_eq!(d.next_line(b"ab\r\n"), Ok(Some(4)));
    }

    #[test]
    fn rejects_a_terminated_line_one_byte_over_the_limit() {
        let mut d = LineDecoder::new(4);
        assert_eq!(d.next_line(b"abcd\n"), Err(LineTooLong));
    }

    #[test]
    fn rejects_an_unterminated_line_as_soon_as_it_cannot_fit() {
        let mut d = LineDecoder::new(4);
        assert_eq!(d.next_line(b"abc"), Ok(None));
        assert_eq!(d.next_line(b"abcd"), Err(LineTooLong));
    }

    #[test]
    fn trims_crlf_and_lf() {
        assert_eq!(trim_terminator(b"a\r\n"), b"a");
        assert_eq!(trim_terminator(b"a\n"), b"a");
        assert_eq!(trim_terminator(b"a"), b"a");
        assert_eq!(trim_terminator(b"a\r"), b"a");
    }

    proptest! {
        /// However the input is cut into reads, the decoder yields the same lines as a
        /// one-shot split, and never a line longer than the limit.
        #[test]
        fn chunking_never_changes_the_lines(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..8),
            max in 1usize..64,
        ) {
            let expected = split_all(&mut LineDecoder::new(max), &input);
            // Feed the same bytes in chunks, as a socket would.
            let mut decoder = LineDecoder::new(max);
            let mut buffered: Vec<u8> = Vec::new();
            let mut got = Vec::new();
            let mut cut_points: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cut_points.push(input.len());
            cut_points.sort_unstable();
            let mut fed = 0;
            let mut outcome = Ok(());
            'feed: for cut in cut_points {
                buffered.extend_from_slice(&input[fed..cut]);
                fed = cut;
                loop {
                    match decoder.next_line(&buffered) {
                        Ok(Some(n)) => { got.push(buffered.drain(..n).collect::<Vec<u8>>()); }
                        Ok(None) => break,
                        Err(e) => { outcome = Err(e); break 'feed; }
                    }
                }
            }
            for line in &got { prop_assert!(line.len() <= max); prop_assert_eq!(line.last(), Some(&b'\n')); }
            match expected {
                Ok(lines) => { prop_assert_eq!(outcome, Ok(())); prop_assert_eq!(got, lines); }
                Err(e) => { prop_assert_eq!(outcome, Err(e)); }
            }
        }
    }
}
