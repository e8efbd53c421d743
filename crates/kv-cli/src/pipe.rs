//! Standard input that is no terminal: every line sent, pipelined, every reply printed in
//! order; exit 1 if any was an error, with a count on stderr.
//!
//! Like `redis-cli --pipe`, the writing does not wait for replies: one task reads lines
//! and writes requests in batches (a write per [`FLUSH_BYTES`], or whenever standard input
//! has nothing more ready), another reads replies and prints them. Unlike it, the requests
//! in flight are bounded by [`WINDOW`]: past that the writer waits for replies, so memory
//! stays bounded however long the input, and a server that stops reading slows kv-cli down
//! instead of filling its memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kv_client::{ConnectOptions, Error, Expect, Receiver, Sender, FLUSH_BYTES};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};

use crate::connect;
use crate::line::{self, Typed};
use crate::output::{self, Status};

/// Requests in flight at most: enough to keep the connection busy (at ~30 bytes a request,
/// about half a megabyte on the wire), few enough that memory is small and fixed.
pub const WINDOW: usize = 16 * 1024;

/// Bytes of standard input read at once.
const STDIN_BUFFER: usize = 256 * 1024;

/// What the reading side saw.
#[derive(Debug, Default)]
struct Tally {
    replies: u64,
    errors: u64,
    /// Why the replies stopped before the requests did, if they did.
    lost: Option<Error>,
    /// Some reply was `ERROR NOAUTH ...`.
    noauth: bool,
}

/// Sends standard input's lines to the server as `options` say; prints every reply.
pub async fn run(options: &ConnectOptions) -> Status {
    let client = match connect::connect(options).await {
        Ok(client) => client,
        Err(message) => {
            output::complain(&message);
            return Status::Unavailable;
        }
    };
    let (sender, receiver) = client.into_split();
    let (in_flight, replies_wanted) = mpsc::channel(WINDOW);
    let sent = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write_lines(sender, in_flight, Arc::clone(&sent)));
    let tally = read_replies(receiver, replies_wanted).await;
    // Replies stopped early: the writer may be waiting on standard input, for nothing.
    if tally.lost.is_some() {
        writer.abort();
    }
    let refused = match writer.await {
        Ok(Ok(refused)) => refused,
        Ok(Err(e)) if tally.lost.is_none() => {
            output::complain(&format!("reading standard input failed: {e}"));
            return Status::Error;
        }
        Ok(Err(_)) | Err(_) => 0,
    };
    conclude(&tally, sent.load(Ordering::Relaxed), refused, options)
}

/// Reads standard input line by line and queues each line to send; returns how many lines
/// were not sent (refused here). Errors: standard input or the connection failed.
async fn write_lines(
    mut sender: Sender,
    in_flight: mpsc::Sender<Expect>,
    sent: Arc<AtomicU64>,
) -> Result<u64, Error> {
    let mut stdin = BufReader::with_capacity(STDIN_BUFFER, tokio::io::stdin());
    let mut line = Vec::new();
    let (mut number, mut refused) = (0u64, 0u64);
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        number += 1;
        // An unterminated last line is sent too, terminated: it is what a script meant.
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        match queue(&mut sender, text) {
            Ok(Some(expect)) => {
                sent.fetch_add(1, Ordering::Relaxed);
                if !send_expect(&mut sender, &in_flight, expect).await? {
                    break;
                }
            }
            Ok(None) => {}
            Err(why) => {
                refused += 1;
                output::complain(&format!("line {number} not sent: {why}"));
            }
        }
        // Nothing more ready to read: send what is queued rather than wait with it.
        if sender.queued() >= FLUSH_BYTES || stdin.buffer().is_empty() {
            sender.flush().await?;
        }
    }
    sender.flush().await?;
    Ok(refused)
}

/// Queues `text` if it is to be sent: the reply to read, `None` for a blank line.
/// Errors: why it is not sent.
fn queue(sender: &mut Sender, text: &[u8]) -> Result<Option<Expect>, String> {
    match line::classify(text) {
        Typed::Blank => Ok(None),
        Typed::Send(outgoing) => sender.queue(&outgoing).map(Some).map_err(|e| e.to_string()),
        Typed::Subscribe(_) => Err(line::SUBSCRIBE_NOT_YET.into()),
        Typed::Refused(why) => Err(why.into()),
    }
}

/// Tells the reader which reply comes next; when the window is full, first writes what is
/// queued (the replies that will make room need their requests sent) and waits. `false`:
/// the reader has stopped.
async fn send_expect(
    sender: &mut Sender,
    in_flight: &mpsc::Sender<Expect>,
    expect: Expect,
) -> Result<bool, Error> {
    match in_flight.try_send(expect) {
        Ok(()) => Ok(true),
        Err(TrySendError::Closed(_)) => Ok(false),
        Err(TrySendError::Full(expect)) => {
            sender.flush().await?;
            Ok(in_flight.send(expect).await.is_ok())
        }
    }
}

/// Reads the replies in order and prints them; stdout is flushed whenever no reply is
/// due, so output keeps up with a slow producer.
async fn read_replies(mut receiver: Receiver, mut wanted: mpsc::Receiver<Expect>) -> Tally {
    let mut stdout = BufWriter::with_capacity(64 * 1024, tokio::io::stdout());
    let mut text = Vec::new();
    let mut tally = Tally::default();
    loop {
        let expect = match wanted.try_recv() {
            Ok(expect) => expect,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                if stdout.flush().await.is_err() {
                    break;
                }
                match wanted.recv().await {
                    Some(expect) => expect,
                    None => break,
                }
            }
        };
        let reply = match receiver.next(expect).await {
            Ok(reply) => reply,
            Err(e) => {
                tally.lost = Some(e);
                break;
            }
        };
        tally.replies += 1;
        tally.errors += u64::from(reply.is_error());
        tally.noauth |= connect::noauth_hint(reply.reply).is_some();
        text.clear();
        output::push_reply(&mut text, reply.wire);
        // stdout closed (`kv-cli < in | head`): nothing more to show anyone.
        if stdout.write_all(&text).await.is_err() {
            break;
        }
    }
    let _ = stdout.flush().await;
    tally
}

/// The exit status, and on stderr what went wrong: a count of errors, requests left
/// unanswered, how to give a password.
fn conclude(tally: &Tally, sent: u64, refused: u64, options: &ConnectOptions) -> Status {
    if tally.noauth {
        output::complain(&connect::password_hint());
    }
    let unanswered = sent.saturating_sub(tally.replies);
    if unanswered > 0 {
        let why = tally
            .lost
            .as_ref()
            .map(|e| connect::explain_lost(e, options))
            .unwrap_or_else(|| "the replies stopped".into());
        output::complain(&format!(
            "{why}: {} repl{} received, {unanswered} request(s) unanswered",
            tally.replies,
            if tally.replies == 1 { "y" } else { "ies" },
        ));
        return Status::Unavailable;
    }
    let errors = tally.errors + refused;
    if errors > 0 {
        output::complain(&format!(
            "{errors} error(s) in {} line(s) ({} error replies, {refused} line(s) not sent)",
            sent + refused,
            tally.errors
        ));
        return Status::Error;
    }
    Status::Ok
}
