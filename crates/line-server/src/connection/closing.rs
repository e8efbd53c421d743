//! How a connection ends when the server, not the client, decides: at shutdown (answer
//! everything already received, then close) and after `Flow::Close` (close with a FIN the
//! client's last reply survives).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::transport::Transport;
use super::{Connection, Next};
use crate::protocol::{Flow, Session};

/// After the server decides to close (QUIT, line too long), how long and how much unread
/// input it drains so the close is a FIN, not an RST that could destroy the last reply.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

impl<S: Session, T: Transport> Connection<S, T> {
    /// Shutting down: answers every complete line already received — also what still sits
    /// in the socket's receive buffer, which the runtime may not have reported readable
    /// yet, and what arrived while a command was running — then closes (PROTOCOL.md, "Shutdown"). A client
    /// that keeps sending is cut by the shutdown deadline.
    pub(super) async fn finish_for_shutdown(&mut self) -> io::Result<Next> {
        // A push held back for gathering (`wire::poll_push_or_read`) goes first.
        self.flush().await?;
        loop {
            match self.stream.read_now(&mut self.input)? {
                None => break,
                Some(0) => {
                    self.answer_eof().await?;
                    break;
                }
                Some(_) => {}
            }
            let flow = self.handle_buffered_lines().await?;
            self.flush().await?;
            if flow == Flow::Close {
                self.linger_close().await?;
                return Ok(Next::Stop);
            }
        }
        self.close_write().await?;
        Ok(Next::Stop)
    }

    /// The client closed its side: a protocol may still answer an unterminated last line.
    pub(super) async fn answer_eof(&mut self) -> io::Result<()> {
        if !self.input.is_empty() {
            self.session
                .on_unterminated_eof(&self.input, &mut self.output);
            self.input.clear();
        }
        self.flush().await
    }

    /// Sends FIN (over TLS, `close_notify` first). Bounded: over TLS the alert waits for
    /// the client to read what rustls still holds, and a client that never reads must not
    /// keep its connection slot; the alert is best effort anyway.
    pub(super) async fn close_write(&mut self) -> io::Result<()> {
        match tokio::time::timeout(LINGER_TIME, self.stream.shutdown()).await {
            Ok(closed) => closed,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Closes after the server chose to: send FIN, then drain (bounded) what the client
    /// is still sending, so the kernel does not answer it with an RST that could make the
    /// client lose our last reply.
    pub(super) async fn linger_close(&mut self) -> io::Result<()> {
        self.close_write().await?;
        // On the heap: an array here would sit in every connection's future, idle or not.
        let mut scratch = vec![0u8; 4096];
        let mut drained = 0;
        let drain = async {
            while drained < LINGER_BYTES {
                match self.stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
        Ok(())
    }
}
