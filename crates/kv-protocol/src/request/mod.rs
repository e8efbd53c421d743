//! Requests: parsed from a line (the server's side) and encoded into one (the client's and
//! the bench's side), by the same types. One file per command with words.
//!
//! Parsing looks at nothing but the line, so a wrong number of words is `UNKNOWN COMMAND`
//! whether or not the bucket exists (PROTOCOL.md, "KV mode"). A line of HTTP is a parse
//! result of its own ([`Parsed::CrossProtocol`]), looked for only among lines that are no
//! request.

mod create;
mod delete;
mod get;
mod put;

pub use create::Create;
pub use delete::Delete;
pub use get::Get;
pub use put::Put;

use bytes::BufMut;

use crate::words::{self, check_word, InvalidWord, MAX_WORDS};

/// The second word of `COUNT SUBSCRIPTIONS bucket` (any case; encoded in upper case).
const SUBSCRIPTIONS: &[u8] = b"SUBSCRIPTIONS";
use crate::{cross_protocol, Verb};

/// One request of PROTOCOL.md, "KV mode". Borrows its words: from the line it was parsed
/// from, or from whoever built it to encode it. Copying one copies a few slices, never
/// bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// `CREATE bucket`
    Create(Create<'a>),
    /// `PUT bucket key value`
    Put(Put<'a>),
    /// `GET bucket key`
    Get(Get<'a>),
    /// `DELETE bucket key`
    Delete(Delete<'a>),
    /// `PING`: answered `PONG`.
    Ping,
    /// `QUIT`: answered `OK`, then the server closes the connection.
    Quit,
    /// `INFO` or `INFO section`: answered with report lines, then `OK`
    /// ([`crate::Reply::Report`]).
    Info {
        /// Only this section (case-insensitive); `None`: every section.
        section: Option<&'a [u8]>,
    },
    /// `SUBSCRIBE bucket`: no reply; the connection then receives the bucket's changes as
    /// [`crate::Event`] lines (`NOT FOUND` for a missing bucket).
    Subscribe {
        /// The bucket.
        bucket: &'a [u8],
    },
    /// `UNSUBSCRIBE`: answered `OK`; no event follows it.
    Unsubscribe,
    /// `COUNT SUBSCRIPTIONS bucket`: answered the number of connections subscribed to
    /// the bucket as a value line, then `OK` (`NOT FOUND` for a missing bucket).
    CountSubscriptions {
        /// The bucket.
        bucket: &'a [u8],
    },
    /// `BACKUP`: answered with the backup itself, a stream of bytes in the backup file
    /// format (it begins with a non-ASCII byte), or an `ERROR` line; see PROTOCOL.md,
    /// "Backup".
    Backup,
}

/// What a line is, to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A valid request.
    Request(Request<'a>),
    /// Not a request: a line of HTTP, from a web browser or HTTP client talking to the
    /// wrong port (maybe sent by a hostile web page). PROTOCOL.md, "KV mode": the
    /// connection is closed without a reply, so that nothing after this line runs.
    CrossProtocol,
    /// Anything else — unknown verb, wrong number of words, empty line — answered
    /// `UNKNOWN COMMAND`.
    Unknown,
}

impl<'a> Request<'a> {
    /// Parses `line`, given without its terminator (`\n` or `\r\n`). Borrows the words
    /// from `line` and allocates nothing; any bytes at all are accepted (the answer may be
    /// [`Parsed::Unknown`]), none make it panic.
    // Inlinable across crates: it is the server's per-request hot path, and the servers
    // that call it live in another crate.
    #[inline]
    pub fn parse(line: &'a [u8]) -> Parsed<'a> {
        let mut words = [&line[..0]; MAX_WORDS];
        let mut count = 0;
        for word in words::split(line) {
            let Some(slot) = words.get_mut(count) else {
                return not_a_request(words[0], line);
            };
            *slot = word;
            count += 1;
        }
        let Some((verb, args)) = words[..count].split_first() else {
            return Parsed::Unknown;
        };
        let request = match Verb::parse(verb) {
            Some(Verb::Create) => Create::parse(args).map(Request::Create),
            Some(Verb::Put) => Put::parse(args).map(Request::Put),
            Some(Verb::Get) => Get::parse(args).map(Request::Get),
            Some(Verb::Delete) => Delete::parse(args).map(Request::Delete),
            Some(Verb::Ping) => args.is_empty().then_some(Request::Ping),
            Some(Verb::Quit) => args.is_empty().then_some(Request::Quit),
            Some(Verb::Info) => match args {
                [] => Some(Request::Info { section: None }),
                [section] => Some(Request::Info {
                    section: Some(section),
                }),
                _ => None,
            },
            Some(Verb::Subscribe) => match args {
                [bucket] => Some(Request::Subscribe { bucket }),
                _ => None,
            },
            Some(Verb::Unsubscribe) => args.is_empty().then_some(Request::Unsubscribe),
            Some(Verb::Backup) => args.is_empty().then_some(Request::Backup),
            Some(Verb::Count) => match args {
                [what, bucket] if what.eq_ignore_ascii_case(SUBSCRIPTIONS) => {
                    Some(Request::CountSubscriptions { bucket })
                }
                _ => None,
            },
            None => None,
        };
        match request {
            Some(request) => Parsed::Request(request),
            None => not_a_request(verb, line),
        }
    }

    /// Appends the request's line: its verb in upper case, each word after one space, then
    /// `\r\n` (e.g. `PUT shopping milk 1\r\n`). [`Request::parse`] reads it back — without
    /// its terminator — as this same request, provided every word passes
    /// [`Request::validate`]; a word that does not would be read as different words.
    pub fn encode(&self, out: &mut impl BufMut) {
        match self {
            Request::Create(create) => create.encode(out),
            Request::Put(put) => put.encode(out),
            Request::Get(get) => get.encode(out),
            Request::Delete(delete) => delete.encode(out),
            Request::Ping => encode_line(out, Verb::Ping, &[]),
            Request::Quit => encode_line(out, Verb::Quit, &[]),
            Request::Info { section: None } => encode_line(out, Verb::Info, &[]),
            Request::Info {
                section: Some(section),
            } => encode_line(out, Verb::Info, &[section]),
            Request::Subscribe { bucket } => encode_line(out, Verb::Subscribe, &[bucket]),
            Request::Unsubscribe => encode_line(out, Verb::Unsubscribe, &[]),
            Request::Backup => encode_line(out, Verb::Backup, &[]),
            Request::CountSubscriptions { bucket } => {
                encode_line(out, Verb::Count, &[SUBSCRIPTIONS, bucket]);
            }
        }
    }

    /// What the request asks; what [`crate::Reply::decode`] needs to read its reply.
    pub fn verb(&self) -> Verb {
        match self {
            Request::Create(_) => Verb::Create,
            Request::Put(_) => Verb::Put,
            Request::Get(_) => Verb::Get,
            Request::Delete(_) => Verb::Delete,
            Request::Ping => Verb::Ping,
            Request::Quit => Verb::Quit,
            Request::Info { .. } => Verb::Info,
            Request::Subscribe { .. } => Verb::Subscribe,
            Request::Unsubscribe => Verb::Unsubscribe,
            Request::CountSubscriptions { .. } => Verb::Count,
            Request::Backup => Verb::Backup,
        }
    }

    /// Checks that every word can travel as one ([`check_word`]): not empty, no
    /// whitespace. A request that passes survives [`Request::encode`] then
    /// [`Request::parse`] unchanged.
    pub fn validate(&self) -> Result<(), InvalidWord> {
        match self {
            Request::Create(create) => create.words().iter().try_for_each(|w| check_word(w)),
            Request::Put(put) => put.words().iter().try_for_each(|w| check_word(w)),
            Request::Get(get) => get.words().iter().try_for_each(|w| check_word(w)),
            Request::Delete(delete) => delete.words().iter().try_for_each(|w| check_word(w)),
            Request::Ping
            | Request::Quit
            | Request::Unsubscribe
            | Request::Backup
            | Request::Info { section: None } => Ok(()),
            Request::Info {
                section: Some(section),
            }
            | Request::Subscribe { bucket: section }
            | Request::CountSubscriptions { bucket: section } => check_word(section),
        }
    }

    /// `CREATE bucket`.
    pub fn create(bucket: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Request::Create(Create {
            bucket: bucket.as_ref(),
        })
    }

    /// `PUT bucket key value`.
    pub fn put(
        bucket: &'a (impl AsRef<[u8]> + ?Sized),
        key: &'a (impl AsRef<[u8]> + ?Sized),
        value: &'a (impl AsRef<[u8]> + ?Sized),
    ) -> Self {
        Request::Put(Put {
            bucket: bucket.as_ref(),
            key: key.as_ref(),
            value: value.as_ref(),
        })
    }

    /// `GET bucket key`.
    pub fn get(
        bucket: &'a (impl AsRef<[u8]> + ?Sized),
        key: &'a (impl AsRef<[u8]> + ?Sized),
    ) -> Self {
        Request::Get(Get {
            bucket: bucket.as_ref(),
            key: key.as_ref(),
        })
    }

    /// `DELETE bucket key`.
    pub fn delete(
        bucket: &'a (impl AsRef<[u8]> + ?Sized),
        key: &'a (impl AsRef<[u8]> + ?Sized),
    ) -> Self {
        Request::Delete(Delete {
            bucket: bucket.as_ref(),
            key: key.as_ref(),
        })
    }
}

/// A line with at least one word that is no valid request: HTTP, or `UNKNOWN COMMAND`.
/// Valid requests never get here, so the check costs them nothing.
fn not_a_request<'a>(first_word: &[u8], line: &[u8]) -> Parsed<'a> {
    if cross_protocol::is_http(first_word, line) {
        Parsed::CrossProtocol
    } else {
        Parsed::Unknown
    }
}

/// Appends `VERB word word…\r\n` for a request of KV mode.
fn encode_line(out: &mut impl BufMut, verb: Verb, words: &[&[u8]]) {
    encode_words(out, verb.as_bytes(), words);
}

/// Appends `verb word word…\r\n`: the one place a request line is written (also `AUTH`'s,
/// which is no [`Request`]).
pub(crate) fn encode_words(out: &mut impl BufMut, verb: &[u8], words: &[&[u8]]) {
    out.put_slice(verb);
    for word in words {
        out.put_u8(b' ');
        out.put_slice(word);
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
