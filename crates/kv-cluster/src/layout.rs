//! Where a bucket lives in the cluster, and the commands that read and write it.
//!
//! One Redis hash per bucket, under the key `{}kv:` followed by the bucket's name. Redis
//! Cluster places a key by the CRC16 of its *hash tag* — the bytes between the first `{`
//! and the first `}` after it — when that tag is not empty, and by the whole key otherwise
//! (Redis Cluster specification, "Hash tags"). The leading `{}` is an empty tag, so the
//! whole key is hashed and braces in a user's bucket name cannot steer which node holds it.
//!
//! The hash holds one field per key, and a marker field `" "` (a single space) with an empty
//! value that says the bucket exists, even when it has no key: no user key can be a space
//! (the protocol splits words on whitespace), so the marker never collides with one.
//!
//! - `CREATE` is `HSETNX key " " ""`: sets the marker if absent, and is `OK` either way.
//! - `GET` is `HMGET key " " field`: one command answers both "does the bucket exist?" (the
//!   marker) and the value.
//! - `PUT` and `DELETE` run [`WRITE_SCRIPT`], which checks the marker and writes in one
//!   atomic step, so that a `PUT` never creates a bucket nor writes into one that is not there,
//!   and in the same step publishes the change's event (`SPUBLISH`) on the bucket's shard
//!   channel, which has the bucket key's name ([`channel`], see `subscriptions.rs`).
//!
//! Every request touches one key, so the requests of a run on one bucket can travel as one
//! pipeline to the one master that holds it. The trade-off: a bucket lives on one master,
//! and cannot outgrow it (the guide's unit of placement is the bucket too).

use bytes::Bytes;
use kv_protocol::Event;
use kv_store::{Outcome, StoreError};
use redis::{Cmd, Value};

/// What every bucket's Redis key starts with: an empty hash tag, then a namespace.
pub const KEY_PREFIX: &[u8] = b"{}kv:";

/// The hash field that says the bucket exists (a word can never be whitespace).
pub const MARKER: &[u8] = b" ";

/// The script behind `PUT` (`ARGV`: key, value, event) and `DELETE` (`ARGV`: key, event):
/// writes only if the bucket's marker is there, atomically (Redis runs a script without
/// interleaving other commands), then publishes the event line on the bucket's shard
/// channel. Returns 1 when it wrote, 0 when the bucket does not exist (and publishes
/// nothing then).
///
/// Publishing inside the script, rather than as a command of its own in the pipeline, is
/// what makes an event mean a write that took effect: a pipeline cannot make a command
/// depend on an earlier one's reply, and the script's `SPUBLISH` runs in the same atomic
/// step as the write, so the events of one bucket go out in the order its writes were
/// applied, whichever front-end sent them. The channel is the bucket key itself: shard
/// channels are a namespace of their own, and hashed to slots by the same algorithm as keys
/// (Redis docs, `SPUBLISH`: "shard channels are assigned to slots by the same algorithm
/// used to assign keys to slots"), so it is on the slot the script runs for, as Redis
/// Cluster requires of every key and shard channel a script touches.
pub const WRITE_SCRIPT: &str = "\
if redis.call('HEXISTS', KEYS[1], ' ') == 0 then return 0 end
if #ARGV == 3 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
else redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('SPUBLISH', KEYS[1], ARGV[#ARGV])
return 1";

/// The Redis key of the bucket named `name`.
pub fn bucket_key(name: &[u8]) -> Bytes {
    let mut key = Vec::with_capacity(KEY_PREFIX.len() + name.len());
    key.extend_from_slice(KEY_PREFIX);
    key.extend_from_slice(name);
    Bytes::from(key)
}

/// The shard channel the changes of the bucket under the Redis key `key` are published on:
/// the key itself (see [`WRITE_SCRIPT`] why).
pub fn channel(key: &[u8]) -> &[u8] {
    key
}

/// One request of a pipeline, on the bucket the pipeline is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `CREATE bucket`.
    Create,
    /// `PUT bucket key value`.
    Put(Bytes, Bytes),
    /// `DELETE bucket key`.
    Delete(Bytes),
    /// `GET bucket key`.
    Get(Bytes),
}

impl Op {
    /// Whether it changes the bucket (and so waits for replicas with `WAIT`); `CREATE`
    /// does.
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get(_))
    }

    /// The command that carries it out on the bucket under `key`; `script_sha` is the SHA-1
    /// of [`WRITE_SCRIPT`] (`EVALSHA` sends 40 bytes instead of the script).
    pub fn command(&self, key: &[u8], script_sha: &str) -> Cmd {
        self.command_with(key, ("EVALSHA", script_sha))
    }

    /// The same with the script's text (`EVAL`): for a node that does not have the script
    /// (`NOSCRIPT`). Unlike `SCRIPT LOAD`, it names the key, so it follows the cluster's
    /// redirects to the node that holds the bucket, and that node caches the script.
    pub fn command_with_script(&self, key: &[u8]) -> Cmd {
        self.command_with(key, ("EVAL", WRITE_SCRIPT))
    }

    /// `(verb, script)`: `EVALSHA` with the SHA-1, or `EVAL` with the text.
    fn command_with(&self, key: &[u8], (eval, script): (&str, &str)) -> Cmd {
        match self {
            Op::Create => {
                let mut cmd = redis::cmd("HSETNX");
                cmd.arg(key).arg(MARKER).arg("");
                cmd
            }
            Op::Get(field) => {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(key).arg(MARKER).arg(&field[..]);
                cmd
            }
            Op::Put(field, value) => {
                let mut cmd = redis::cmd(eval);
                cmd.arg(script).arg(1).arg(key).arg(&field[..]);
                cmd.arg(&value[..]);
                cmd.arg(
                    &event_line(Event::Set {
                        key: &field[..],
                        value: &value[..],
                    })[..],
                );
                cmd
            }
            Op::Delete(field) => {
                let mut cmd = redis::cmd(eval);
                cmd.arg(script).arg(1).arg(key).arg(&field[..]);
                cmd.arg(&event_line(Event::Deleted { key: &field[..] })[..]);
                cmd
            }
        }
    }

    /// What the cluster's reply to [`Op::command`] means.
    pub fn outcome(&self, reply: Value) -> Result<Outcome, StoreError> {
        match (self, reply) {
            (_, Value::ServerError(e)) => Err(StoreError::new(format!("cluster: {e}"))),
            (Op::Get(_), Value::Array(mut fields)) if fields.len() == 2 => {
                let value = fields.pop();
                match (fields.pop(), value) {
                    (Some(Value::Nil), _) => Ok(Outcome::NoBucket),
                    (_, Some(Value::Nil)) => Ok(Outcome::Value(None)),
                    (_, Some(Value::BulkString(value))) => Ok(Outcome::Value(Some(value.into()))),
                    (_, other) => Err(unexpected(&other)),
                }
            }
            (Op::Create, Value::Int(_)) => Ok(Outcome::Done),
            (Op::Put(..) | Op::Delete(_), Value::Int(1)) => Ok(Outcome::Done),
            (Op::Put(..) | Op::Delete(_), Value::Int(0)) => Ok(Outcome::NoBucket),
            (_, other) => Err(unexpected(&other)),
        }
    }
}

/// The line a subscriber receives for `event`, exactly as a local subscriber gets it in
/// memory mode ([`kv_store::subscription::encode`]): the script publishes it as it is, and
/// each front-end hands it on unchanged.
fn event_line(event: Event<'_>) -> Bytes {
    kv_store::subscription::encode(event)
}

/// `WAIT replicas timeout_ms`: blocks until `replicas` replicas acknowledged every write
/// this connection made before it, or the timeout passed; replies how many did (Redis
/// docs, `WAIT`). A timeout of 0 would block forever, so it is at least 1.
pub fn wait_command(replicas: u32, timeout_ms: u64) -> Cmd {
    let mut cmd = redis::cmd("WAIT");
    cmd.arg(replicas).arg(timeout_ms.max(1));
    cmd
}

/// The error for a reply no command here can give.
fn unexpected(reply: &impl std::fmt::Debug) -> StoreError {
    StoreError::new(format!("cluster: unexpected reply {reply:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::{Route, SlotAddr};

    #[test]
    fn braces_in_a_bucket_name_do_not_steer_its_slot() {
        // With a leading empty tag the whole key is hashed, so `{x}a` and `{x}b` (which
        // would share the tag `x` without it) land on different slots, as Redis hashes them.
        let a = Route::with_key(bucket_key(b"{x}a"), SlotAddr::Master);
        let b = Route::with_key(bucket_key(b"{x}b"), SlotAddr::Master);
        assert_ne!(a, b);
        assert_eq!(&bucket_key(b"shop")[..], b"{}kv:shop");
    }

    #[test]
    fn a_get_reply_says_whether_the_bucket_and_the_key_exist() {
        let get = Op::Get(Bytes::from_static(b"k"));
        let reply = |marker: Value, value: Value| get.outcome(Value::Array(vec![marker, value]));
        assert_eq!(reply(Value::Nil, Value::Nil), Ok(Outcome::NoBucket));
        let marker = || Value::BulkString(Vec::new());
        assert_eq!(reply(marker(), Value::Nil), Ok(Outcome::Value(None)));
        assert_eq!(
            reply(marker(), Value::BulkString(b"v".to_vec())),
            Ok(Outcome::Value(Some(Bytes::from_static(b"v"))))
        );
    }

    #[test]
    fn writes_carry_the_event_line_a_local_subscriber_gets_last() {
        let last_arg = |op: Op| -> Vec<u8> {
            match op.command(b"{}kv:b", "sha").args_iter().last() {
                Some(redis::Arg::Simple(arg)) => arg.to_vec(),
                other => panic!("{other:?}"),
            }
        };
        let put = Op::Put(Bytes::from_static(b"milk"), Bytes::from_static(b"1"));
        assert_eq!(last_arg(put), b"milk SET TO 1\r\n");
        assert_eq!(
            last_arg(Op::Delete(Bytes::from_static(b"milk"))),
            b"milk DELETED\r\n"
        );
    }

    #[test]
    fn a_write_reply_says_whether_the_bucket_exists() {
        let put = Op::Put(Bytes::from_static(b"k"), Bytes::from_static(b"v"));
        assert_eq!(put.outcome(Value::Int(1)), Ok(Outcome::Done));
        assert_eq!(put.outcome(Value::Int(0)), Ok(Outcome::NoBucket));
        assert!(put.outcome(Value::Okay).is_err());
    }
}
