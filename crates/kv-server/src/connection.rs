//! One client's connection: read, frame, dispatch, write — with every limit enforced.
//!
//! This is the seed's `serve/1` loop grown up. Per round it handles *every* complete line
//! already buffered and sends all their replies in one write (pipelining costs one syscall
//! per batch, not per reply), then reads again. Because it only reads once its replies are
//! written, a client that never reads its replies stops being read from: the kernel's
//! buffers fill and TCP flow control pushes back, while our own buffers stay bounded.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::fault::{Fault, FaultHooks};
use crate::framing::{LineDecoder, LineTooLong};
use crate::protocol::{replies, Flow, Session};

/// Read at least this many bytes' room per read call.
const READ_CHUNK: usize = 8 * 1024;
/// Replies beyond this are written out before more lines are handled, so a burst of
/// requests with large replies cannot grow the output buffer without bound.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;
/// After the server decides to close (QUIT, line too long), how long and how much unread
/// input it drains so the close is a FIN, not an RST that could destroy the last reply.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

/// Settings shared by every connection (one allocation, not one per client).
#[derive(Debug)]
pub struct ConnectionSettings {
    /// Longest accepted line, terminator included.
    pub max_line_bytes: usize,
    /// Close a client silent for this long.
    pub idle_timeout: Option<Duration>,
    /// Whether `DEBUG ...` lines inject faults.
    pub debug_commands: bool,
    /// How a `DEBUG ACCEPTOR-PANIC` reaches the acceptor.
    pub faults: FaultHooks,
}

/// Why the read side stopped waiting.
enum ReadOutcome {
    /// New bytes are buffered.
    Data,
    /// The client closed (or half-closed) its side.
    Eof,
    /// No byte arrived within the idle timeout.
    IdleTimeout,
    /// The server is shutting down and this connection has nothing in flight.
    Shutdown,
}

/// The state of one served client.
pub struct Connection<S> {
    /// The client's socket.
    stream: TcpStream,
    /// For logs.
    peer: SocketAddr,
    /// The protocol's per-client state.
    session: S,
    /// Finds lines in `input`.
    decoder: LineDecoder,
    /// Received bytes not yet handled; released while the connection is idle.
    input: BytesMut,
    /// Replies not yet written; released while the connection is idle.
    output: BytesMut,
    /// Limits and hooks common to all connections.
    settings: Arc<ConnectionSettings>,
    /// Cancelled when the server shuts down.
    shutdown: CancellationToken,
    /// When the idle timeout fires, if enabled; moved forward by every received byte.
    idle_deadline: Option<Instant>,
}

impl<S: Session> Connection<S> {
    /// Wraps an accepted socket.
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        session: S,
        settings: Arc<ConnectionSettings>,
        shutdown: CancellationToken,
    ) -> Self {
        let idle_deadline = settings.idle_timeout.map(|t| Instant::now() + t);
        Self {
            stream,
            peer,
            session,
            decoder: LineDecoder::new(settings.max_line_bytes),
            input: BytesMut::new(),
            output: BytesMut::new(),
            settings,
            shutdown,
            idle_deadline,
        }
    }

    /// Serves the client until it leaves, misbehaves, or the server shuts down.
    /// A client vanishing is an ordinary event, logged at debug level only.
    pub async fn run(mut self) {
        match self.serve().await {
            Ok(()) => debug!(peer = %self.peer, "connection closed"),
            Err(e) if is_disconnect(&e) => debug!(peer = %self.peer, "client went away: {e}"),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                info!(peer = %self.peer, "closing idle connection (no input, replies not read)")
            }
            Err(e) => warn!(peer = %self.peer, "connection error: {e}"),
        }
    }

    async fn serve(&mut self) -> io::Result<()> {
        loop {
            let flow = self.handle_buffered_lines().await?;
            self.flush().await?;
            if flow == Flow::Close {
                return self.linger_close().await;
            }
            // Shutting down: what was received has been answered; close now.
            if self.shutdown.is_cancelled() {
                return self.stream.shutdown().await;
            }
            match self.read_more().await? {
                ReadOutcome::Data => {}
                ReadOutcome::Eof => {
                    if !self.input.is_empty() {
                        self.session
                            .on_unterminated_eof(&self.input, &mut self.output);
                        self.input.clear();
                    }
                    self.flush().await?;
                    return self.stream.shutdown().await;
                }
                ReadOutcome::IdleTimeout => {
                    info!(peer = %self.peer, "closing idle connection");
                    return self.stream.shutdown().await;
                }
                ReadOutcome::Shutdown => return self.stream.shutdown().await,
            }
        }
    }

    /// Handles every complete line in `input`, in order, appending replies to `output`.
    async fn handle_buffered_lines(&mut self) -> io::Result<Flow> {
        let Self {
            stream,
            peer,
            session,
            decoder,
            input,
            output,
            settings,
            idle_deadline,
            ..
        } = self;
        let mut consumed = 0;
        let flow = loop {
            let line_len = match decoder.next_line(&input[consumed..]) {
                Ok(Some(len)) => len,
                Ok(None) => break Flow::Continue,
                Err(LineTooLong) => {
                    debug!(peer = %peer, "line too long; closing");
                    output.extend_from_slice(replies::LINE_TOO_LONG);
                    break Flow::Close;
                }
            };
            let line = &input[consumed..consumed + line_len];
            consumed += line_len;
            let flow = dispatch(session, line, output, settings, *peer).await;
            if flow == Flow::Close {
                break flow;
            }
            if output.len() >= OUTPUT_HIGH_WATER {
                write_out(stream, output, *idle_deadline).await?;
            }
        };
        input.advance(consumed);
        Ok(flow)
    }

    /// Writes all pending replies.
    async fn flush(&mut self) -> io::Result<()> {
        write_out(&mut self.stream, &mut self.output, self.idle_deadline).await
    }

    /// Waits for and reads more input. While waiting, the connection holds no buffers.
    async fn read_more(&mut self) -> io::Result<ReadOutcome> {
        loop {
            if self.input.capacity() - self.input.len() < READ_CHUNK / 2 {
                self.input.reserve(READ_CHUNK);
            }
            match self.stream.try_read_buf(&mut self.input) {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(_) => {
                    if let Some(timeout) = self.settings.idle_timeout {
                        self.idle_deadline = Some(Instant::now() + timeout);
                    }
                    return Ok(ReadOutcome::Data);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // Nothing to read yet. An idle connection should cost almost nothing, so
            // give back the buffers (a partial line, if any, is kept).
            if self.input.is_empty() {
                self.input = BytesMut::new();
            }
            self.output = BytesMut::new();
            tokio::select! {
                biased;
                ready = self.stream.readable() => ready?,
                () = self.shutdown.cancelled() => return Ok(ReadOutcome::Shutdown),
                () = sleep_until(self.idle_deadline) => return Ok(ReadOutcome::IdleTimeout),
            }
        }
    }

    /// Closes after the server chose to: send FIN, then drain (bounded) what the client
    /// is still sending, so the kernel does not answer it with an RST that could make the
    /// client lose our last reply.
    async fn linger_close(&mut self) -> io::Result<()> {
        self.stream.shutdown().await?;
        let mut scratch = [0u8; 4096];
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

/// Routes a line to fault injection (if enabled and it is a `DEBUG` command) or to the
/// protocol.
async fn dispatch<S: Session>(
    session: &mut S,
    line: &[u8],
    output: &mut BytesMut,
    settings: &ConnectionSettings,
    peer: SocketAddr,
) -> Flow {
    if settings.debug_commands {
        if let Some(fault) = Fault::parse(line) {
            return inject(fault, output, settings, peer).await;
        }
    }
    session.on_line(line, output).await
}

/// Carries out a `DEBUG` command.
async fn inject(
    fault: Fault,
    output: &mut BytesMut,
    settings: &ConnectionSettings,
    peer: SocketAddr,
) -> Flow {
    match fault {
        Fault::PanicConnection => panic!("DEBUG PANIC requested by {peer}"),
        Fault::PanicAcceptor => {
            warn!(peer = %peer, "DEBUG ACCEPTOR-PANIC requested");
            settings.faults.request_acceptor_panic();
        }
        Fault::Sleep(duration) => tokio::time::sleep(duration).await,
    }
    output.extend_from_slice(replies::OK);
    Flow::Continue
}

/// Writes `output` in full and empties it. A client that stops reading while also
/// sending nothing is cut at the idle deadline, so it cannot pin a task forever.
async fn write_out(
    stream: &mut TcpStream,
    output: &mut BytesMut,
    idle_deadline: Option<Instant>,
) -> io::Result<()> {
    if output.is_empty() {
        return Ok(());
    }
    match idle_deadline {
        None => stream.write_all(output).await?,
        Some(deadline) => tokio::time::timeout_at(deadline, stream.write_all(output))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??,
    }
    output.clear();
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Errors that only mean the client is gone.
fn is_disconnect(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected | UnexpectedEof
    )
}
