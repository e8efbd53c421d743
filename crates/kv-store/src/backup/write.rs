//! Writing a backup: a frozen view of the store, encoded frame by frame and handed, a frame
//! at a time, to whoever sends it on (a writer on the same thread, or a bounded channel to
//! the connection).

use std::io;

use bytes::Bytes;

use super::format;
use super::FRAME_TARGET;
use crate::durable::frame::FrameBuf;
use crate::durable::record::Record;
use crate::memory::FrozenView;

/// Encodes `view` as a backup, handing each piece (the header, then each sealed frame) to
/// `send` with whether it is the last, which says `false` when nobody takes more (the
/// client left): the backup stops there. Returns whether it was written whole.
pub(super) fn write(view: FrozenView, mut send: impl FnMut(Bytes, bool) -> bool) -> bool {
    let mut out = Frames {
        frame: FrameBuf::default(),
        seq: 0,
        records: 0,
    };
    out.frame.start();
    if !send(Bytes::copy_from_slice(&format::header()), false) {
        return false;
    }
    for (name, bucket) in view.buckets() {
        out.add(Record::Create { bucket: name });
        for shard in 0..bucket.shard_count() {
            let keys = view.keys(bucket, shard);
            for key in keys.iter() {
                view.value(bucket, key, |value| {
                    if let Some(value) = value {
                        out.add(Record::Put {
                            bucket: name,
                            key,
                            value,
                        });
                    }
                });
                if out.frame.payload_len() >= FRAME_TARGET && !out.seal(&mut send, false) {
                    return false;
                }
            }
            view.done_with(bucket, shard);
        }
    }
    let records = out.records;
    Record::SnapshotEnd { records }.encode(out.frame.payload());
    let Some(last) = out.sealed() else {
        return false;
    };
    // Ended before its last piece is sent: a client that has the end may begin the next.
    drop(view);
    send(last, true)
}

/// The frame being filled, and how many came before it.
struct Frames {
    frame: FrameBuf,
    seq: u64,
    /// Records added so far (the end record counts them).
    records: u64,
}

impl Frames {
    fn add(&mut self, record: Record<'_>) {
        record.encode(self.frame.payload());
        self.records += 1;
    }

    /// Seals the frame and sends it (`last`: with the end record); whether it was taken.
    fn seal(&mut self, send: &mut impl FnMut(Bytes, bool) -> bool, last: bool) -> bool {
        self.sealed().is_some_and(|sealed| send(sealed, last))
    }

    /// The frame, sealed; the next one begun.
    fn sealed(&mut self) -> Option<Bytes> {
        let sealed = match self.frame.seal(self.seq, self.seq) {
            Ok(sealed) => Bytes::copy_from_slice(sealed),
            Err(e) => return too_big(e),
        };
        self.seq += 1;
        self.frame.start();
        self.frame.shrink_to(FRAME_TARGET * 2);
        Some(sealed)
    }
}

/// A frame over 4 GiB: a record that large cannot exist (a value is one line), so this is
/// a bug; the backup stops short, and its reader says it is incomplete.
fn too_big(e: io::Error) -> Option<Bytes> {
    tracing::error!("backup stopped: {e}");
    None
}
