//! A connection sending a backup (PROTOCOL.md, "Backup"): after `BACKUP`, the store's
//! backup is pushed to the connection piece by piece (`Session::poll_push`), as fast as
//! the client reads it and no faster (the store makes a few pieces ahead, then waits).
//! Then the connection is back to requests. The client sends nothing meanwhile: a line
//! that arrives during the backup could only be answered inside it, so it ends the backup
//! and the connection.

use std::task::{Context, Poll};

use bytes::BytesMut;
use kv_store::Backup;
use line_server::Flow;

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
