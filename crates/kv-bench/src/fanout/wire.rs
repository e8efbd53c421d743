//! The bytes of a fan-out run, per protocol: subscribing, the barrier, a write and its
//! reply, and reading what a subscriber receives.
//!
//! kv-server: `SUBSCRIBE bench` then `PING` (its `PONG` says the subscription is active),
//! writes are `PUT bench wN <value>` answered `OK`, events arrive as `wN SET TO <value>`.
//! Redis: `SUBSCRIBE bench` (confirmed by its `subscribe` push), writes are
//! `PUBLISH bench <value>` answered with the number of receivers, messages arrive as
//! `message` pushes. Both answer `PING` in subscribed mode, after every event of a write
//! acknowledged before it: that is the barrier that ends a run.
//!
//! Every value starts with its write's send time (the *stamp*: nanoseconds since the run's
//! epoch, 16 decimal digits), so a subscriber knows each event's publish-to-delivery
//! latency from the value alone.

use kv_protocol::{Event, Put, Reply};

use crate::workload::{Proto, KV_BUCKET};

/// Digits of a stamp at the start of every value: the least `--value-size` allows.
pub const STAMP_DIGITS: usize = 16;

/// Byte that pads a value past its stamp.
const PAD: u8 = b'x';

/// Redis' confirmation of `SUBSCRIBE bench` (RESP2: kind, channel, channels now held).
const REDIS_SUBSCRIBED: &[u8] = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nbench\r\n:1\r\n";
/// Redis' answer to `PING` in subscribed mode (RESP2).
const REDIS_PONG: &[u8] = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n";
/// The start of every Redis message on channel `bench`, up to the value's length.
const REDIS_MESSAGE: &[u8] = b"*3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$";

/// What a subscriber found at the front of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    /// Not a whole message yet.
    Incomplete,
    /// An event carrying `value`, `len` bytes long.
    Event { value: &'a [u8], len: usize },
    /// The answer to the barrier (`PING`), `len` bytes long.
    Barrier { len: usize },
    /// The server ended the subscription (kv-server: an `ERROR` line, e.g. too slow;
    /// Redis: an error reply).
    Ended,
    /// Something else, `len` bytes long: a wrong message.
    Wrong { len: usize },
}

/// The fan-out protocol of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire(Proto);

impl Wire {
    /// The wire of `proto`; only kv-server's and Redis' have subscriptions.
    pub fn new(proto: Proto) -> Result<Self, String> {
        match proto {
            Proto::Kv | Proto::Redis => Ok(Self(proto)),
            other => Err(format!(
                "fan-out mode (--subscribers) speaks kv or redis, not {other}"
            )),
        }
    }

    /// The protocol.
    pub fn proto(self) -> Proto {
        self.0
    }

    /// What to send once, before anything else, and its exact reply: kv-server's bucket
    /// must exist; Redis needs nothing.
    pub fn setup(self) -> Option<(Vec<u8>, Vec<u8>)> {
        match self.0 {
            Proto::Kv => {
                let mut ok = Vec::new();
                Reply::Ok.encode(&mut ok);
                Some((format!("CREATE {KV_BUCKET}\r\n").into_bytes(), ok))
            }
            _ => None,
        }
    }

    /// What a subscriber sends to subscribe, and the exact reply that says it is active.
    pub fn subscribe(self) -> (Vec<u8>, &'static [u8]) {
        match self.0 {
            Proto::Kv => (
                format!("SUBSCRIBE {KV_BUCKET}\r\nPING\r\n").into_bytes(),
                b"PONG\r\n",
            ),
            _ => (
                format!("SUBSCRIBE {KV_BUCKET}\r\n").into_bytes(),
                REDIS_SUBSCRIBED,
            ),
        }
    }

    /// The barrier: once its answer arrives, every event of a write acknowledged before
    /// it was sent has arrived too.
    pub fn barrier(self) -> &'static [u8] {
        b"PING\r\n"
    }

    /// The write a writer sends, with key `key` (kv-server; Redis has none) and values
    /// of `value_size` bytes (at least [`STAMP_DIGITS`]): encoded once, stamped per write.
    pub fn write(self, key: &[u8], value_size: usize) -> Write {
        let mut value = vec![b'0'; STAMP_DIGITS];
        value.resize(value_size.max(STAMP_DIGITS), PAD);
        let mut bytes = Vec::new();
        match self.0 {
            Proto::Kv => Put {
                bucket: KV_BUCKET.as_bytes(),
                key,
                value: &value,
            }
            .encode(&mut bytes),
            _ => {
                bytes.extend_from_slice(b"PUBLISH ");
                bytes.extend_from_slice(KV_BUCKET.as_bytes());
                bytes.push(b' ');
                bytes.extend_from_slice(&value);
                bytes.extend_from_slice(b"\r\n");
            }
        }
        // The value is the last word of either request.
        let stamp_at = bytes.len() - 2 - value.len();
        Write { bytes, stamp_at }
    }

    /// The length of the write's reply at the front of `input`: `Some(Ok(len))` for a
    /// right one (kv-server: `OK`; Redis: an integer, its receivers), `Some(Err(len))`
    /// for a wrong one, `None` if not whole yet.
    pub fn write_reply(self, input: &[u8]) -> Option<Result<usize, usize>> {
        let newline = input.iter().position(|&b| b == b'\n')?;
        let len = newline + 1;
        let Some(line) = input[..newline].strip_suffix(b"\r") else {
            return Some(Err(len));
        };
        let right = match self.0 {
            Proto::Kv => line == b"OK",
            _ => line
                .strip_prefix(b":")
                .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit)),
        };
        Some(if right { Ok(len) } else { Err(len) })
    }

    /// What is at the front of a subscriber's `input`.
    pub fn received(self, input: &[u8]) -> Received<'_> {
        match self.0 {
            Proto::Kv => received_kv(input),
            _ => received_redis(input),
        }
    }
}

/// One writer's request, encoded once: each write is a copy with its stamp filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    bytes: Vec<u8>,
    /// Where the stamp's digits are in `bytes`.
    stamp_at: usize,
}

impl Write {
    /// Appends the write, its value stamped `stamp`.
    pub fn append(&self, stamp: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let at = start + self.stamp_at;
        let mut digits = [0; STAMP_DIGITS];
        encode_stamp(stamp, &mut digits);
        out[at..at + STAMP_DIGITS].copy_from_slice(&digits);
    }
}

fn received_kv(input: &[u8]) -> Received<'_> {
    let Some(newline) = input.iter().position(|&b| b == b'\n') else {
        return Received::Incomplete;
    };
    let len = newline + 1;
    let Some(line) = input[..newline].strip_suffix(b"\r") else {
        return Received::Wrong { len };
    };
    if line == b"PONG" {
        return Received::Barrier { len };
    }
    if line.starts_with(b"ERROR ") {
        return Received::Ended;
    }
    match Event::decode(line) {
        Some(Event::Set { value, .. }) => Received::Event { value, len },
        _ => Received::Wrong { len },
    }
}

fn received_redis(input: &[u8]) -> Received<'_> {
    if let Some(rest) = input.strip_prefix(REDIS_MESSAGE) {
        let Some(digits) = rest.iter().position(|&b| b == b'\r') else {
            return Received::Incomplete;
        };
        let Some(size) = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse::<usize>().ok())
        else {
            return Received::Wrong { len: input.len() };
        };
        let start = REDIS_MESSAGE.len() + digits + 2;
        let len = start + size + 2;
        if input.len() < len {
            return Received::Incomplete;
        }
        if &input[start - 2..start] != b"\r\n" || &input[len - 2..len] != b"\r\n" {
            return Received::Wrong { len };
        }
        return Received::Event {
            value: &input[start..start + size],
            len,
        };
    }
    if input.starts_with(REDIS_PONG) {
        return Received::Barrier {
            len: REDIS_PONG.len(),
        };
    }
    if input.first() == Some(&b'-') {
        return Received::Ended;
    }
    // A prefix of a message or of the PONG, still arriving.
    if REDIS_MESSAGE.starts_with(input) || REDIS_PONG.starts_with(input) {
        return Received::Incomplete;
    }
    // Anything else: skip a line, so the next message is found again.
    match input.iter().position(|&b| b == b'\n') {
        Some(newline) => Received::Wrong { len: newline + 1 },
        None => Received::Incomplete,
    }
}

/// Writes `stamp` as [`STAMP_DIGITS`] decimal digits, zero-padded (stamps past 10¹⁶ ns,
/// about 115 days, keep their last digits).
pub fn encode_stamp(mut stamp: u64, out: &mut [u8; STAMP_DIGITS]) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (stamp % 10) as u8;
        stamp /= 10;
    }
}

/// The stamp at the start of `value`, if it has one.
pub fn decode_stamp(value: &[u8]) -> Option<u64> {
    let digits = value.get(..STAMP_DIGITS)?;
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kv_and_redis_have_subscriptions() {
        assert!(Wire::new(Proto::Kv).is_ok());
        assert!(Wire::new(Proto::Redis).is_ok());
        assert!(Wire::new(Proto::Echo).is_err());
        assert!(Wire::new(Proto::Memcached).is_err());
    }

    #[test]
    fn stamps_are_sixteen_digits_and_read_back() {
        let mut digits = [0; STAMP_DIGITS];
        encode_stamp(1_234_567, &mut digits);
        assert_eq!(&digits, b"0000000001234567");
        assert_eq!(decode_stamp(b"0000000001234567xxxx"), Some(1_234_567));
        assert_eq!(decode_stamp(b"000000000123456"), None, "too short");
        assert_eq!(decode_stamp(b"00000000012345x7"), None, "not digits");
    }

    #[test]
    fn kv_writes_are_puts_whose_events_carry_the_stamped_value() {
        let wire = Wire::new(Proto::Kv).expect("kv");
        let mut out = Vec::new();
        wire.write(b"w3", 20).append(42, &mut out);
        assert_eq!(out, b"PUT bench w3 0000000000000042xxxx\r\n");
        assert_eq!(wire.write_reply(b"OK\r\nOK"), Some(Ok(4)));
        assert_eq!(wire.write_reply(b"NOT FOUND\r\n"), Some(Err(11)));
        assert_eq!(wire.write_reply(b"OK\r"), None);
        let events = b"w3 SET TO 0000000000000042xxxx\r\nPONG\r\n";
        let Received::Event { value, len } = wire.received(events) else {
            panic!("an event");
        };
        assert_eq!((decode_stamp(value), len), (Some(42), 32));
        assert_eq!(wire.received(&events[32..]), Received::Barrier { len: 6 });
        assert_eq!(wire.received(b"w3 SET TO 00"), Received::Incomplete);
        assert_eq!(wire.received(b"ERROR too slow: ...\r\n"), Received::Ended);
        assert_eq!(
            wire.received(b"w3 DELETED\r\n"),
            Received::Wrong { len: 12 }
        );
    }

    #[test]
    fn redis_writes_are_publishes_whose_messages_carry_the_stamped_value() {
        let wire = Wire::new(Proto::Redis).expect("redis");
        let mut out = Vec::new();
        let write = wire.write(b"", 16);
        write.append(7, &mut out);
        write.append(8, &mut out);
        assert_eq!(
            out,
            b"PUBLISH bench 0000000000000007\r\nPUBLISH bench 0000000000000008\r\n"
        );
        assert_eq!(wire.write_reply(b":100\r\n"), Some(Ok(6)));
        assert_eq!(wire.write_reply(b"-ERR x\r\n"), Some(Err(8)));
        let message = b"*3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$16\r\n0000000000000007\r\n";
        assert_eq!(
            wire.received(message),
            Received::Event {
                value: b"0000000000000007",
                len: message.len()
            }
        );
        for cut in 1..message.len() {
            assert_eq!(
                wire.received(&message[..cut]),
                Received::Incomplete,
                "{cut}"
            );
        }
        assert_eq!(
            wire.received(REDIS_PONG),
            Received::Barrier {
                len: REDIS_PONG.len()
            }
        );
        assert_eq!(wire.received(&REDIS_PONG[..5]), Received::Incomplete);
        assert_eq!(wire.received(b"-ERR\r\n"), Received::Ended);
        assert_eq!(wire.received(b"+OK\r\n"), Received::Wrong { len: 5 });
    }

    #[test]
    fn subscribing_is_confirmed_by_an_exact_reply() {
        let (sent, reply) = Wire::new(Proto::Kv).expect("kv").subscribe();
        assert_eq!(
            (&sent[..], reply),
            (&b"SUBSCRIBE bench\r\nPING\r\n"[..], &b"PONG\r\n"[..])
        );
        let (sent, reply) = Wire::new(Proto::Redis).expect("redis").subscribe();
        assert_eq!(sent, b"SUBSCRIBE bench\r\n");
        assert_eq!(reply, REDIS_SUBSCRIBED);
    }
}
