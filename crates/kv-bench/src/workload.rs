//! What is sent and what must come back: every request and its exact expected reply,
//! precomputed once per run for each key, for each protocol.
//!
//! A PUT always writes the key's own fixed value (the one the preload wrote), so every
//! GET has exactly one right answer even while other connections write concurrently:
//! that is what lets the generator check every reply byte for byte.
//!
//! KV requests and replies are written by `kv-protocol`, the grammar kv-server itself
//! parses and answers with; the tables are built once, before the run, so the hot loop
//! only copies bytes.

use std::fmt;
use std::str::FromStr;

use kv_protocol::{Reply, Request, Verb};

/// The bucket kv mode benchmarks in.
pub const KV_BUCKET: &str = "bench";

/// Which wire protocol the generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// kv-server's KV mode: `GET bucket key` / `PUT bucket key value`.
    Kv,
    /// Any line echo: the KV request lines are sent and must come back unchanged.
    Echo,
    /// Redis inline commands `GET k` / `SET k v`.
    Redis,
    /// memcached's text protocol `get k` / `set k 0 0 n`.
    Memcached,
}

impl Proto {
    /// Every protocol, in `--help` order.
    pub const ALL: [Proto; 4] = [Proto::Kv, Proto::Echo, Proto::Redis, Proto::Memcached];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Kv => "kv",
            Proto::Echo => "echo",
            Proto::Redis => "redis",
            Proto::Memcached => "memcached",
        }
    }

    /// A request that any server of this protocol answers with a fixed reply, used to
    /// make sure an idle connection has been accepted and served once.
    pub fn ping(self) -> (&'static [u8], ReplyCheck) {
        match self {
            Proto::Kv => (b"PING\r\n", ReplyCheck::Exact(b"PONG\r\n")),
            Proto::Echo => (b"ping\r\n", ReplyCheck::Exact(b"ping\r\n")),
            Proto::Redis => (b"PING\r\n", ReplyCheck::Exact(b"+PONG\r\n")),
            // The version string varies; any `VERSION ...` line will do.
            Proto::Memcached => (b"version\r\n", ReplyCheck::LineStartingWith(b"VERSION ")),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Proto {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Proto::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown protocol {s:?} (expected kv, echo, redis or memcached)")
            })
    }
}

/// How the reply to a ping is recognised.
#[derive(Debug, Clone, Copy)]
pub enum ReplyCheck {
    Exact(&'static [u8]),
    LineStartingWith(&'static [u8]),
}

/// The two operations of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Put,
}

impl Op {
    /// The KV verb of this operation: what a KV reply must be read as.
    pub fn kv_verb(self) -> Verb {
        match self {
            Op::Get => Verb::Get,
            Op::Put => Verb::Put,
        }
    }
}

/// One request's bytes and the reply it must get.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: Box<[u8]>,
    pub reply: Box<[u8]>,
}

/// Every key's GET and PUT exchanges, plus what to send before the run.
#[derive(Debug)]
pub struct Workload {
    pub proto: Proto,
    gets: Vec<Exchange>,
    puts: Vec<Exchange>,
}

impl Workload {
    /// Builds the tables for `keys` keys with values of `value_size` bytes.
    pub fn new(proto: Proto, keys: usize, value_size: usize) -> Self {
        let width = digits(keys.saturating_sub(1));
        let mut gets = Vec::with_capacity(keys);
        let mut puts = Vec::with_capacity(keys);
        for index in 0..keys {
            let key = format!("key:{index:0width$}");
            let value = value_for(index, value_size);
            gets.push(get_exchange(proto, &key, &value));
            puts.push(put_exchange(proto, &key, &value));
        }
        Self { proto, gets, puts }
    }

    /// Number of keys.
    pub fn keys(&self) -> usize {
        self.gets.len()
    }

    /// The exchange for `op` on key number `key`.
    pub fn exchange(&self, op: Op, key: usize) -> &Exchange {
        match op {
            Op::Get => &self.gets[key],
            Op::Put => &self.puts[key],
        }
    }

    /// What must be sent (and answered exactly) before the measured run so that every GET
    /// finds its key: the bucket, then every key. Empty for echo.
    pub fn preload(&self) -> Vec<Exchange> {
        let mut steps = Vec::new();
        match self.proto {
            Proto::Echo => return steps,
            Proto::Kv => steps.push(Exchange {
                request: kv_request(Request::create(KV_BUCKET)).into(),
                reply: kv_reply(Reply::Ok).into(),
            }),
            Proto::Redis | Proto::Memcached => {}
        }
        steps.extend(self.puts.iter().cloned());
        steps
    }
}

/// Decimal digits of `n` (at least 1), so keys sort and have one length.
fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The fixed value of key `index`: printable, no whitespace (it travels inside a line).
pub fn value_for(index: usize, size: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..size)
        .map(|j| ALPHABET[(index.wrapping_mul(31).wrapping_add(j * 7)) % ALPHABET.len()])
        .collect()
}

/// A KV request's line, as kv-protocol writes it.
fn kv_request(request: Request<'_>) -> Vec<u8> {
    let mut line = Vec::new();
    request.encode(&mut line);
    line
}

/// A KV reply's bytes, as kv-protocol writes them.
fn kv_reply(reply: Reply<'_>) -> Vec<u8> {
    let mut bytes = Vec::new();
    reply.encode(&mut bytes);
    bytes
}

fn get_exchange(proto: Proto, key: &str, value: &[u8]) -> Exchange {
    let (request, reply) = match proto {
        Proto::Kv => (
            kv_request(Request::get(KV_BUCKET, key)),
            kv_reply(Reply::Value(Some(value))),
        ),
        // Echo is sent the KV lines, and must send them back.
        Proto::Echo => {
            let line = kv_request(Request::get(KV_BUCKET, key));
            (line.clone(), line)
        }
        Proto::Redis => (
            format!("GET {key}\r\n").into_bytes(),
            [format!("${}\r\n", value.len()).as_bytes(), value, b"\r\n"].concat(),
        ),
        Proto::Memcached => (
            format!("get {key}\r\n").into_bytes(),
            [
                format!("VALUE {key} 0 {}\r\n", value.len()).as_bytes(),
                value,
                b"\r\nEND\r\n",
            ]
            .concat(),
        ),
    };
    Exchange {
        request: request.into(),
        reply: reply.into(),
    }
}

fn put_exchange(proto: Proto, key: &str, value: &[u8]) -> Exchange {
    let (request, reply): (Vec<u8>, Vec<u8>) = match proto {
        Proto::Kv => (
            kv_request(Request::put(KV_BUCKET, key, value)),
            kv_reply(Reply::Ok),
        ),
        Proto::Echo => {
            let line = kv_request(Request::put(KV_BUCKET, key, value));
            (line.clone(), line)
        }
        Proto::Redis => (
            [format!("SET {key} ").as_bytes(), value, b"\r\n"].concat(),
            b"+OK\r\n".to_vec(),
        ),
        Proto::Memcached => (
            [
                format!("set {key} 0 0 {}\r\n", value.len()).as_bytes(),
                value,
                b"\r\n",
            ]
            .concat(),
            b"STORED\r\n".to_vec(),
        ),
    };
    Exchange {
        request: request.into(),
        reply: reply.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_get_expects_the_value_then_ok() {
        let w = Workload::new(Proto::Kv, 10, 4);
        let e = w.exchange(Op::Get, 3);
        assert_eq!(&*e.request, b"GET bench key:3\r\n");
        assert_eq!(&*e.reply, [&value_for(3, 4)[..], b"\r\nOK\r\n"].concat());
    }

    #[test]
    fn redis_and_memcached_use_their_own_framing() {
        let r = Workload::new(Proto::Redis, 100, 2);
        let v = value_for(7, 2);
        assert_eq!(
            &*r.exchange(Op::Put, 7).request,
            [b"SET key:07 ", &v[..], b"\r\n"].concat()
        );
        assert_eq!(
            &*r.exchange(Op::Get, 7).reply,
            [b"$2\r\n", &v[..], b"\r\n"].concat()
        );
        let m = Workload::new(Proto::Memcached, 100, 2);
        assert_eq!(
            &*m.exchange(Op::Put, 7).request,
            [b"set key:07 0 0 2\r\n", &v[..], b"\r\n"].concat()
        );
        assert_eq!(
            &*m.exchange(Op::Get, 7).reply,
            [b"VALUE key:07 0 2\r\n", &v[..], b"\r\nEND\r\n"].concat()
        );
    }

    #[test]
    fn echo_expects_its_own_line_back() {
        let w = Workload::new(Proto::Echo, 10, 4);
        let e = w.exchange(Op::Put, 1);
        assert_eq!(e.request, e.reply);
        assert!(w.preload().is_empty());
    }

    #[test]
    fn kv_preload_creates_the_bucket_then_writes_every_key() {
        let w = Workload::new(Proto::Kv, 5, 16);
        let steps = w.preload();
        assert_eq!(steps.len(), 6);
        assert_eq!(&*steps[0].request, b"CREATE bench\r\n");
    }

    #[test]
    fn values_hold_no_whitespace() {
        for i in 0..1000 {
            assert!(value_for(i, 16).iter().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn kv_requests_are_words_kv_protocol_reads_back() {
        let key = "key:0042";
        let value = value_for(42, 16);
        for request in [
            Request::create(KV_BUCKET),
            Request::get(KV_BUCKET, key),
            Request::put(KV_BUCKET, key, &value),
        ] {
            assert_eq!(request.validate(), Ok(()));
        }
        let w = Workload::new(Proto::Kv, 100, 16);
        assert_eq!(
            &*w.exchange(Op::Put, 42).request,
            [b"PUT bench key:42 ", &value_for(42, 16)[..], b"\r\n"].concat()
        );
    }

    #[test]
    fn the_kv_ping_is_kv_protocols_ping() {
        let (ping, check) = Proto::Kv.ping();
        assert_eq!(ping, kv_request(Request::Ping));
        let ReplyCheck::Exact(pong) = check else {
            panic!("a PING has one right reply")
        };
        assert_eq!(pong, kv_reply(Reply::Pong));
    }
}
