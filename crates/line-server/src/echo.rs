//! Echo mode: the seed's server. Every line goes back byte for byte.

use std::net::SocketAddr;

use bytes::BytesMut;

use crate::protocol::{Flow, Protocol, Session};

/// Writes every line back unchanged, `\r\n` and non-UTF-8 bytes included.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

/// An echo conversation holds no state.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoSession;

impl Protocol for Echo {
    type Session = EchoSession;

    fn open_session(&self, _peer: SocketAddr) -> EchoSession {
        EchoSession
    }
}

impl Session for EchoSession {
    async fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Flow {
        out.extend_from_slice(line);
        Flow::Continue
    }

    /// The seed echoes what it receives; a last line without newline is still received.
    fn on_unterminated_eof(&mut self, rest: &[u8], out: &mut BytesMut) {
        out.extend_from_slice(rest);
    }
}
