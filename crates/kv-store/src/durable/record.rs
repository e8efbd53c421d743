//! One write as it is stored on disk: the unit of both the journal and the snapshot.
//!
//! Encoding: a tag byte, then each field as a little-endian `u32` length and its bytes.
//! Records carry no checksum of their own; the frame around them does ([`super::frame`]).

use bytes::Bytes;

const CREATE: u8 = 1;
const PUT: u8 = 2;
const DELETE: u8 = 3;
/// Last record of a snapshot: how many records came before it.
const SNAPSHOT_END: u8 = 0xFF;

/// A write, owned: what writers queue for the committer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Create {
        bucket: Bytes,
    },
    Put {
        bucket: Bytes,
        key: Bytes,
        value: Bytes,
    },
    Delete {
        bucket: Bytes,
        key: Bytes,
    },
}

impl Op {
    /// Bytes of keys, values and names it carries (for bounding a group's size).
    pub(crate) fn size(&self) -> usize {
        match self {
            Op::Create { bucket } => bucket.len(),
            Op::Put { bucket, key, value } => bucket.len() + key.len() + value.len(),
            Op::Delete { bucket, key } => bucket.len() + key.len(),
        }
    }

    pub(crate) fn as_record(&self) -> Record<'_> {
        match self {
            Op::Create { bucket } => Record::Create { bucket },
            Op::Put { bucket, key, value } => Record::Put { bucket, key, value },
            Op::Delete { bucket, key } => Record::Delete { bucket, key },
        }
    }
}

/// A record, borrowed from a buffer (when reading) or from its owner (when writing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Create {
        bucket: &'a [u8],
    },
    Put {
        bucket: &'a [u8],
        key: &'a [u8],
        value: &'a [u8],
    },
    Delete {
        bucket: &'a [u8],
        key: &'a [u8],
    },
    /// Closes a snapshot; `records` counts the records before it.
    SnapshotEnd {
        records: u64,
    },
}

/// A record that does not parse although its frame's checksum holds: a bug or a file from
/// another program, never a torn write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

impl Record<'_> {
    /// Appends the encoded record to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Record::Create { bucket } => {
                out.push(CREATE);
                put_field(out, bucket);
            }
            Record::Put { bucket, key, value } => {
                out.push(PUT);
                put_field(out, bucket);
                put_field(out, key);
                put_field(out, value);
            }
            Record::Delete { bucket, key } => {
                out.push(DELETE);
                put_field(out, bucket);
                put_field(out, key);
            }
            Record::SnapshotEnd { records } => {
                out.push(SNAPSHOT_END);
                out.extend_from_slice(&records.to_le_bytes());
            }
        }
    }

    /// Decodes the record at the front of `input` and advances past it.
    pub(crate) fn decode<'a>(input: &mut &'a [u8]) -> Result<Record<'a>, Malformed> {
        let (&tag, rest) = input.split_first().ok_or(Malformed("empty record"))?;
        *input = rest;
        Ok(match tag {
            CREATE => Record::Create {
                bucket: take_field(input)?,
            },
            PUT => Record::Put {
                bucket: take_field(input)?,
                key: take_field(input)?,
                value: take_field(input)?,
            },
            DELETE => Record::Delete {
                bucket: take_field(input)?,
                key: take_field(input)?,
            },
            SNAPSHOT_END => Record::SnapshotEnd {
                records: u64::from_le_bytes(take_array(input)?),
            },
            _ => return Err(Malformed("unknown record type")),
        })
    }
}

/// Every record in `payload`, in order.
pub(crate) fn decode_all(
    mut payload: &[u8],
) -> impl Iterator<Item = Result<Record<'_>, Malformed>> {
    std::iter::from_fn(move || {
        if payload.is_empty() {
            return None;
        }
        let record = Record::decode(&mut payload);
        if record.is_err() {
            payload = &[];
        }
        Some(record)
    })
}

fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    // Fields are protocol tokens, bounded by the server's line limit (far below 4 GiB).
    let len = u32::try_from(field.len()).expect("a field longer than 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(field);
}

fn take_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], Malformed> {
    let (head, rest) = input
        .split_first_chunk::<N>()
        .ok_or(Malformed("truncated record"))?;
    *input = rest;
    Ok(*head)
}

fn take_field<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], Malformed> {
    let len = u32::from_le_bytes(take_array(input)?) as usize;
    if input.len() < len {
        return Err(Malformed("truncated record"));
    }
    let (field, rest) = input.split_at(len);
    *input = rest;
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_record() -> impl Strategy<Value = (u8, Vec<u8>, Vec<u8>, Vec<u8>, u64)> {
        (
            0u8..4,
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<u64>(),
        )
    }

    fn build<'a>(parts: &'a (u8, Vec<u8>, Vec<u8>, Vec<u8>, u64)) -> Record<'a> {
        let (kind, bucket, key, value, records) = parts;
        match kind {
            0 => Record::Create { bucket },
            1 => Record::Put { bucket, key, value },
            2 => Record::Delete { bucket, key },
            _ => Record::SnapshotEnd { records: *records },
        }
    }

    proptest! {
        #[test]
        fn any_sequence_of_records_decodes_to_itself(parts in proptest::collection::vec(any_record(), 0..20)) {
            let records: Vec<Record> = parts.iter().map(build).collect();
            let mut buf = Vec::new();
            for r in &records {
                r.encode(&mut buf);
            }
            let decoded: Vec<Record> = decode_all(&buf).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(decoded, records);
        }

        #[test]
        fn a_cut_record_is_malformed_never_a_panic(parts in any_record(), cut in 0usize..400) {
            let mut buf = Vec::new();
            build(&parts).encode(&mut buf);
            let cut = cut % buf.len();
            let mut input = &buf[..cut];
            prop_assert!(Record::decode(&mut input).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for record in decode_all(&bytes) {
                let _ = record;
            }
        }
    }
}
