//! kv-protocol: the KV wire grammar of kv-server (PROTOCOL.md, "KV mode"), once, for
//! everyone who speaks it. The server parses requests and encodes replies with it; the
//! client and the load generator encode requests and decode replies with the same types, as
//! mini-redis's `cmd::Get` is both its server's parser and its client's encoder. Pure: no
//! I/O, no store, no runtime — bytes in, values out, and back.
//!
//! # Layout
//! - [`request`]: [`Request`] — parsed from a line ([`Request::parse`], borrowing its
//!   words) and encoded into one ([`Request::encode`]); one file per command with words
//!   ([`Create`], [`Put`], [`Get`], [`Delete`]).
//! - [`verb`]: [`Verb`] — the first word, case-insensitive; also what a reply decoder
//!   must be told, since a GET's value line carries no marker.
//! - [`words`]: the separator rule (runs of spaces and tabs), [`MAX_WORDS`], and which
//!   byte strings can be a word at all ([`check_word`]).
//! - `cross_protocol`: which lines are HTTP, not requests ([`Parsed::CrossProtocol`]).
//! - [`event`]: [`Event`] — a change to a bucket, as its subscribers receive it.
//! - [`auth`]: [`Auth`] — `AUTH password`, which the server's machinery answers in front
//!   of every protocol, so it is no [`Request`]; its reply is one line
//!   ([`Reply::decode_line`]).
//! - [`reply`]: [`Reply`] — encoded ([`Reply::encode`], the exact bytes of PROTOCOL.md,
//!   "KV mode") and decoded from the front of a buffer ([`Reply::decode`] → [`Decoded`]).
//!
//! # Example
//! ```
//! use kv_protocol::{Decoded, Parsed, Reply, Request, Verb};
//!
//! // The client's side: encode a request.
//! let mut wire = Vec::new();
//! Request::get("shopping", "milk").encode(&mut wire);
//! assert_eq!(wire, b"GET shopping milk\r\n");
//!
//! // The server's side: parse it (without its line terminator), answer it.
//! let Parsed::Request(request) = Request::parse(b"GET shopping milk") else { panic!() };
//! assert_eq!(request, Request::get("shopping", "milk"));
//! let mut answer = Vec::new();
//! Reply::Value(Some(b"1")).encode(&mut answer);
//! assert_eq!(answer, b"1\r\nOK\r\n");
//!
//! // The client's side again: decode the reply, knowing what it asked.
//! assert_eq!(
//!     Reply::decode(&answer, Verb::Get),
//!     Decoded::Reply { reply: Reply::Value(Some(b"1")), len: 7 }
//! );
//! ```

#![warn(missing_docs)]

pub mod auth;
mod cross_protocol;
pub mod event;
pub mod reply;
pub mod request;
pub mod verb;
pub mod words;

pub use auth::Auth;
pub use event::Event;
pub use reply::{Decoded, Reply};
pub use request::{Create, Delete, Get, Parsed, Put, Request};
pub use verb::Verb;
pub use words::{check_word, InvalidWord, MAX_WORDS};
