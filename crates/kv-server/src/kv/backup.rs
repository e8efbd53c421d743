//! A connection sending a backup (PROTOCOL.md, "Backup"): after `BACKUP`, the store's
//! backup is written to the client as fast as it reads and no faster, then the connection
//! is back to requests. Over plain TCP, a thread of its own writes it into the socket
//! (`Session::handoff`), so the event loop copies none of it; over TLS it is pushed to the
//! connection piece by piece (`Session::poll_push`), made a few pieces ahead on a thread
//! of its own. The client sends nothing meanwhile: a line that arrives during the backup
//! could only be answered inside it, so it ends the backup and the connection.

use std::io::{self, Write};
use std::task::{Context, Poll};

use bytes::BytesMut;
use kv_store::Backup;
use line_server::{Flow, Handoff};

use super::counters;

/// A backup being sent.
pub(super) struct Sending {
    backup: Backup,
    /// A piece was handed over at the last poll: the next one yields first.
    handed_over: bool,
}

impl Sending {
    pub(super) fn new(backup: Backup) -> Self {
        counters::count_backup_started();
        Self {
            backup,
            handed_over: false,
        }
    }

    /// The backup as a job for a thread that writes it into the client's socket itself
    /// (`Session::handoff`). Only before [`Self::poll_push`] took a piece.
    pub(super) fn into_handoff(self) -> Handoff {
        Box::new(move |out| self.backup.write_to(&mut Counted(out)))
    }

    /// The next piece, appended to `out`; `Ready(None)` once the backup has been handed
    /// over whole. Asked only for an end (`out` is `None`), a backup has none to report.
    pub(super) fn poll_push(
        &mut self,
        out: Option<&mut BytesMut>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Flow>> {
        let Some(out) = out else {
            return Poll::Pending;
        };
        if std::mem::take(&mut self.handed_over) {
            // One piece per turn of the connection's task: the other connections of its
            // event loop run between two, so a client that reads fast cannot make the loop
            // write a whole backup before it serves anyone else (tokio's cooperative budget
            // would let 128 writes go first).
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.backup.poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(piece)) => {
                counters::count_backup_bytes(piece.len());
                out.extend_from_slice(&piece);
                self.handed_over = true;
                Poll::Ready(Some(Flow::Continue))
            }
            Poll::Ready(None) => Poll::Ready(None),
        }
    }
}

/// A writer that counts what it wrote as backup bytes sent.
struct Counted<'a>(&'a mut dyn Write);

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.0.write(buf)?;
        counters::count_backup_bytes(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
