//! A log writer that never blocks, fails or panics in the code that logs: a broken stderr
//! loses log lines and changes nothing else (docs/OPERATIONS.md, "Behaviour under failure").
//!
//! Writing log lines straight to stderr lets stderr change what the server does: a write
//! to a pipe whose reader stopped reading blocks the thread that logged, and a failed write
//! (reader gone, disk full) is reported by tracing-subscriber with `eprintln!`, which
//! panics — in the signal task, the acceptor or the durable committer, whichever logged.
//!
//! So lines go through a bounded queue to one writer thread. A full queue drops the line
//! instead of waiting; a failed write drops the line instead of reporting it anywhere.
//! Both are counted, and once writing works again the next line written is preceded by a
//! note saying how many were lost.
//!
//! Why not `tracing-appender`'s lossy `non_blocking`, which does the queueing: its guard,
//! the only way to wait for queued lines before an exit, `println!`s when the queue is
//! full, which panics when stdout is gone; and it neither counts failed writes nor
//! reports losses once the sink recovers.

use std::io::{self, Write};
use std::panic::{catch_unwind, UnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines queued while the writer thread is behind; more are dropped. A line is a few
/// hundred bytes, so this bounds the queue to a few MiB.
pub const QUEUE_LINES: usize = 16 * 1024;

/// Queues log lines for a writer thread; cheap to clone, and every clone feeds the same
/// thread. It is a [`MakeWriter`] for `tracing_subscriber::fmt`.
#[derive(Clone, Debug)]
pub struct LossyWriter {
    queue: SyncSender<Vec<u8>>,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Lines accepted into the queue.
    queued: AtomicU64,
    /// Lines lost: the queue was full or the sink failed.
    lost: AtomicU64,
    /// Lines the writer thread is done with (written or lost); `flush_within` waits on it.
    done: Mutex<u64>,
    progress: Condvar,
}

impl LossyWriter {
    /// Starts the thread that writes queued lines to `sink`, in order. It runs until every
    /// clone of the returned writer is gone.
    pub fn spawn<W: Write + Send + 'static>(sink: W, capacity: usize) -> io::Result<Self> {
        let (queue, lines) = mpsc::sync_channel(capacity);
        let shared = Arc::new(Shared::default());
        let for_thread = Arc::clone(&shared);
        thread::Builder::new()
            .name("kv-log-writer".into())
            .spawn(move || write_lines(lines, sink, &for_thread))?;
        Ok(Self { queue, shared })
    }

    /// Queues `line` (which should end in `\n`), or drops and counts it if the queue is
    /// full or the writer thread is gone. Never waits.
    pub fn push(&self, line: &[u8]) {
        match self.queue.try_send(line.to_vec()) {
            Ok(()) => {
                self.shared.queued.fetch_add(1, Ordering::Release);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits until the lines queued so far have been written (or lost), for at most
    /// `timeout`: before the process exits, so its last lines are not left in the queue,
    /// but without hanging the exit on a stderr that does not drain. Returns whether they
    /// all were.
    pub fn flush_within(&self, timeout: Duration) -> bool {
        let target = self.shared.queued.load(Ordering::Acquire);
        let deadline = Instant::now() + timeout;
        let mut done = self
            .shared
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *done < target {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            done = self
                .shared
                .progress
                .wait_timeout(done, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Lines lost so far, because the queue was full or the sink failed.
    pub fn lost_lines(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }
}

/// tracing-subscriber formats each event into a buffer and hands it over in one
/// `write_all`; accepting it whole (and never reporting an error) keeps the subscriber
/// from ever reaching its own error reporting.
impl Write for &LossyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LossyWriter {
    type Writer = &'a LossyWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// Runs `log`, a log call that comes right before something that must happen (an exit, an
/// escalation), so that even a log call that panics cannot stop it. With [`LossyWriter`]
/// none should; this keeps those paths safe with any subscriber (with tracing-subscriber's
/// default writer, a failed stderr write is reported with `eprintln!`, which panics).
pub fn log_regardless(log: impl FnOnce() + UnwindSafe) {
    let _ = catch_unwind(log);
}

/// The writer thread: one line at a time, dropping (and counting) what the sink refuses.
fn write_lines(lines: Receiver<Vec<u8>>, mut sink: impl Write, shared: &Shared) {
    let mut reported_lost = 0;
    // A line cut short by a failed write: start the next write on a fresh line.
    let mut mid_line = false;
    for line in lines {
        let lost = shared.lost.load(Ordering::Relaxed);
        if lost > reported_lost {
            let note = format!(
                "{}kv-server: {} log line(s) lost (stderr failed or could not keep up)\n",
                if mid_line { "\n" } else { "" },
                lost - reported_lost
            );
            match write_fully(&mut sink, note.as_bytes()) {
                Ok(()) => {
                    reported_lost = lost;
                    mid_line = false;
                }
                Err(cut) => mid_line |= cut,
            }
        }
        let written = if mid_line {
            write_fully(&mut sink, b"\n").and_then(|()| write_fully(&mut sink, &line))
        } else {
            write_fully(&mut sink, &line)
        };
        match written {
            Ok(()) => mid_line = false,
            Err(cut) => {
                mid_line |= cut;
                shared.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = sink.flush();
        let mut done = shared.done.lock().unwrap_or_else(PoisonError::into_inner);
        *done += 1;
        shared.progress.notify_all();
    }
}

/// Writes all of `bytes`; on failure, `Err(true)` if some of them were written.
fn write_fully(sink: &mut impl Write, mut bytes: &[u8]) -> Result<(), bool> {
    let mut cut = false;
    while !bytes.is_empty() {
        match sink.write(bytes) {
            Ok(0) => return Err(cut),
            Ok(n) => {
                bytes = &bytes[n..];
                cut = true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(cut),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink shared with the test, which can be told to fail (whole, or after some bytes).
    #[derive(Clone, Default)]
    struct Sink {
        written: Arc<Mutex<Vec<u8>>>,
        /// `None`: writes succeed; `Some(n)`: accept `n` more bytes, then fail.
        budget: Arc<Mutex<Option<usize>>>,
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.written.lock().unwrap()).into_owned()
        }

        fn fail_after(&self, bytes: Option<usize>) {
            *self.budget.lock().unwrap() = bytes;
        }
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut budget = self.budget.lock().unwrap();
            let n = match *budget {
                None => buf.len(),
                Some(0) => return Err(io::Error::from(io::ErrorKind::BrokenPipe)),
                Some(left) => {
                    let n = left.min(buf.len());
                    *budget = Some(left - n);
                    n
                }
            };
            self.written.lock().unwrap().extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn lines_are_written_in_order_and_a_flush_waits_for_them() {
        let sink = Sink::default();
        let writer = LossyWriter::spawn(sink.clone(), 64).unwrap();
        for i in 0..50 {
            writer.push(format!("line {i}\n").as_bytes());
        }
        assert!(writer.flush_within(WAIT));
        let expected: String = (0..50).map(|i| format!("line {i}\n")).collect();
        assert_eq!(sink.text(), expected);
        assert_eq!(writer.lost_lines(), 0);
    }

    #[test]
    fn failed_writes_are_dropped_counted_and_reported_once_writing_works_again() {
        let sink = Sink::default();
        let writer = LossyWriter::spawn(sink.clone(), 64).unwrap();
        sink.fail_after(Some(0));
        writer.push(b"lost 1\n");
        writer.push(b"lost 2\n");
        assert!(writer.flush_within(WAIT));
        assert_eq!(writer.lost_lines(), 2);
        sink.fail_after(None);
        writer.push(b"back\n");
        assert!(writer.flush_within(WAIT));
        assert_eq!(
            sink.text(),
            "kv-server: 2 log line(s) lost (stderr failed or could not keep up)\nback\n"
        );
    }

    #[test]
    fn a_line_cut_short_by_a_failure_does_not_run_into_the_next() {
        let sink = Sink::default();
        let writer = LossyWriter::spawn(sink.clone(), 64).unwrap();
        sink.fail_after(Some(3));
        writer.push(b"partial\n");
        assert!(writer.flush_within(WAIT));
        sink.fail_after(None);
        writer.push(b"next\n");
        assert!(writer.flush_within(WAIT));
        assert_eq!(
            sink.text(),
            "par\nkv-server: 1 log line(s) lost (stderr failed or could not keep up)\nnext\n"
        );
    }

    /// A sink that blocks until released: a pipe whose reader stopped reading.
    struct Stuck(Arc<(Mutex<bool>, Condvar)>);

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (released, cvar) = &*self.0;
            let guard = released.lock().unwrap();
            drop(cvar.wait_while(guard, |released| !*released).unwrap());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_sink_neither_blocks_the_logger_nor_an_exit_beyond_its_bound() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let writer = LossyWriter::spawn(Stuck(gate.clone()), 4).unwrap();
        let started = Instant::now();
        for _ in 0..100 {
            writer.push(b"line\n");
        }
        assert!(!writer.flush_within(Duration::from_millis(50)));
        assert!(
            started.elapsed() < WAIT,
            "pushing to a full queue must not wait"
        );
        // One line is in the sink, at most `4` in the queue; the rest were dropped.
        assert!(writer.lost_lines() >= 95, "{}", writer.lost_lines());
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        assert!(writer.flush_within(WAIT));
    }
}
