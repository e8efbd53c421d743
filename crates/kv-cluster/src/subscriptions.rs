//! Subscriptions in cluster mode (SPEC §14): a subscriber on any front-end receives the
//! changes made through every front-end, over Redis' sharded pub/sub.
//!
//! # Publishing
//! The write script publishes each change that took effect on the bucket's shard channel,
//! in the same atomic step as the write (`layout::WRITE_SCRIPT`, which says why there).
//!
//! # Receiving
//! Per front-end, one Redis subscription per bucket that has local subscribers: the first
//! local subscriber of a bucket makes this [`Hub`] send `SSUBSCRIBE channel` to the master
//! that owns the channel's slot (Redis docs, `SSUBSCRIBE`: "shard channels are assigned to
//! slots by the same algorithm used to assign keys to slots"; a node that does not own it
//! answers `MOVED`, which is followed); each `smessage` is fanned out to the local
//! subscribers through kv-store's [`Topic`], the same bounded queues memory mode uses. Once
//! the last local subscriber is gone, [`sweep`] sends `SUNSUBSCRIBE` (within
//! [`SWEEP_INTERVAL`]).
//!
//! # Which connection
//! One plain (not cluster) multiplexed connection per master, in RESP3, with a push sender:
//! redis-rs 1.8 hands every push message (`smessage`, `ssubscribe`, `sunsubscribe`) to it, and
//! a `Disconnection` push when the connection breaks (`src/aio/multiplexed_connection.rs`,
//! `PipelineSink::send_result` and `send_disconnect`); such a connection never reconnects by
//! itself. redis-rs' cluster connection also does `SSUBSCRIBE` (`ClusterConnection::ssubscribe`,
//! `src/cluster_handling/async_connection/mod.rs`), but it resubscribes on its own after a
//! reconnection or a failover (`src/subscription_tracker.rs`): the events published in the
//! gap would be missed without anyone knowing, which is the one thing a subscriber must never
//! see. Here, a subscription whose connection broke is lost, and said so.
//!
//! # Losing a subscription
//! The local subscribers of a bucket are ended with [`Ended::Lost`] (the client gets
//! `ERROR subscription lost` and is closed) when its Redis subscription may have missed an
//! event: its node's connection broke (the master died or restarted, a failover), Redis
//! dropped it (a `sunsubscribe` this hub did not ask for: the slot moved to another node),
//! or the node stopped answering (a `PING` every [`SWEEP_INTERVAL`] not answered within the
//! store timeout: a frozen master is replaced by its replica, whose writes the old
//! connection would never see). A manual failover loses nothing: the demoted master stays
//! in the shard, and Redis forwards shard messages to every node of the shard (Redis docs,
//! `SPUBLISH`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use kv_protocol::Event;
use kv_store::subscription::Topic;
use kv_store::{Ended, StoreError, Subscription};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use tokio::time::Instant;
use tracing::warn;

/// How often unused Redis subscriptions are ended and the nodes subscribed on are `PING`ed.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// Most nodes tried for one `SSUBSCRIBE` (redirects and unreachable nodes together): with a
/// known layout it takes one, after a failover two.
const MAX_ATTEMPTS: usize = 8;

/// This front-end's Redis subscriptions, and the local subscribers of each.
pub(crate) struct Hub {
    state: Mutex<State>,
    /// Held across each `SSUBSCRIBE` and `SUNSUBSCRIBE` round trip: a bucket's first
    /// subscriber and the end of its last never cross (a `SUNSUBSCRIBE` of a bucket being
    /// subscribed again would end the new subscription).
    serial: tokio::sync::Mutex<()>,
    /// `HOST:PORT` of the nodes given: where to ask first for a slot not seen yet.
    seeds: Vec<String>,
    timeout: Duration,
    next_link: AtomicU64,
}

#[derive(Default)]
struct State {
    /// By shard channel (the bucket's key).
    channels: HashMap<Bytes, Channel>,
    /// By `HOST:PORT`.
    links: HashMap<String, Link>,
    /// Which node answered for a slot last (from `MOVED` and successful subscriptions).
    homes: HashMap<u16, String>,
}

/// One Redis subscription.
struct Channel {
    topic: Arc<Topic>,
    /// The [`Link`] it was made over.
    link: u64,
    /// Redis confirmed it (its `ssubscribe` push came): a `sunsubscribe` after that is Redis
    /// dropping it; one before is the answer to this hub's own earlier `SUNSUBSCRIBE`.
    confirmed: bool,
}

/// A connection to one node, for subscriptions only.
struct Link {
    id: u64,
    connection: MultiplexedConnection,
}

impl Hub {
    pub(crate) fn new(seeds: Vec<String>, timeout: Duration) -> Arc<Hub> {
        Arc::new(Hub {
            state: Mutex::new(State::default()),
            serial: tokio::sync::Mutex::new(()),
            seeds,
            timeout,
            next_link: AtomicU64::new(0),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many connections of this front-end are subscribed to the bucket under `key`.
    pub(crate) fn subscribers(&self, key: &[u8]) -> usize {
        self.state()
            .channels
            .get(key)
            .map_or(0, |c| c.topic.subscribers())
    }

    /// A new local subscription to the bucket under `key`, active when this returns: for
    /// the bucket's first local subscriber, once Redis confirmed the `SSUBSCRIBE`, so that
    /// every write that takes effect after that is received. Gives up at `deadline`.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        key: &Bytes,
        limit: usize,
        deadline: Instant,
    ) -> Result<Subscription, StoreError> {
        let Ok(_serial) = tokio::time::timeout_at(deadline, self.serial.lock()).await else {
            return Err(self.timed_out());
        };
        {
            let mut state = self.state();
            match state.channels.get(key) {
                Some(channel) if channel.confirmed => return Ok(channel.topic.subscribe(limit)),
                // Left by a subscription that gave up waiting for its `SSUBSCRIBE`, whose
                // outcome is unknown: joining it could mean waiting for events that never
                // come. Its subscribers (if any joined) are told; a new one is made.
                Some(_) => {
                    if let Some(stale) = state.channels.remove(key) {
                        stale.topic.end(Ended::Lost);
                    }
                }
                None => {}
            }
        }
        let topic = Arc::new(Topic::default());
        // Subscribed before the SSUBSCRIBE goes out: the first event may follow its
        // confirmation at once. Dropped with the error if it fails (then [`sweep`] ends a
        // Redis subscription that was made after all).
        let subscription = topic.subscribe(limit);
        match tokio::time::timeout_at(deadline, self.ssubscribe(key, &topic)).await {
            Ok(Ok(())) => Ok(subscription),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> StoreError {
        StoreError::new(format!(
            "timeout: the cluster did not confirm the subscription within {} ms",
            self.timeout.as_millis()
        ))
    }

    /// `SSUBSCRIBE key` on the master of its slot, following `MOVED`, trying the seeds for a
    /// slot not seen yet (or whose node did not answer).
    async fn ssubscribe(
        self: &Arc<Self>,
        key: &Bytes,
        topic: &Arc<Topic>,
    ) -> Result<(), StoreError> {
        let slot = slot(key);
        let mut next = self.state().homes.get(&slot).cloned();
        let mut seeds = self.seeds.iter();
        let mut last_error = String::from("no node to ask");
        for _ in 0..MAX_ATTEMPTS {
            let Some(node) = next.take().or_else(|| seeds.next().cloned()) else {
                break;
            };
            let (link, mut connection) = match self.link(&node).await {
                Ok(link) => link,
                Err(e) => {
                    last_error = format!("{node}: {e}");
                    continue;
                }
            };
            self.state().channels.insert(
                key.clone(),
                Channel {
                    topic: Arc::clone(topic),
                    link,
                    confirmed: false,
                },
            );
            let reply = redis::cmd("SSUBSCRIBE")
                .arg(&key[..])
                .query_async::<Value>(&mut connection)
                .await;
            let mut state = self.state();
            match reply {
                Ok(_) => {
                    state.homes.insert(slot, node);
                    return Ok(());
                }
                Err(e) => {
                    if state
                        .channels
                        .get(key)
                        .is_some_and(|c| Arc::ptr_eq(&c.topic, topic))
                    {
                        state.channels.remove(key);
                    }
                    if let Some((addr, _)) = e.redirect_node() {
                        state.homes.insert(slot, addr.to_string());
                        next = Some(addr.to_string());
                    }
                    last_error = format!("{node}: {e}");
                }
            }
        }
        Err(StoreError::new(format!(
            "cluster: cannot subscribe ({last_error})"
        )))
    }

    /// The link to `node` (`HOST:PORT`), connecting if there is none.
    async fn link(self: &Arc<Self>, node: &str) -> Result<(u64, MultiplexedConnection), String> {
        if let Some(link) = self.state().links.get(node) {
            return Ok((link.id, link.connection.clone()));
        }
        let id = self.next_link.fetch_add(1, Relaxed);
        let hub = Arc::downgrade(self);
        // Runs on the connection's task, for each push message as it is read: it only
        // takes a lock held briefly and queues (never blocks), as redis-rs requires of a
        // push sender (`AsyncPushSender::send`, `src/aio/mod.rs`).
        let on_push = move |push: PushInfo| -> Result<(), Infallible> {
            if let Some(hub) = hub.upgrade() {
                hub.on_push(id, push);
            }
            Ok(())
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_push_sender(on_push);
        // RESP3: push messages arrive beside replies on one connection, which can then
        // still answer PING (RESP2 would restrict a subscribed connection).
        let client = redis::Client::open(format!("redis://{node}/?protocol=resp3"))
            .map_err(|e| e.to_string())?;
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        self.state().links.insert(
            node.to_string(),
            Link {
                id,
                connection: connection.clone(),
            },
        );
        Ok((id, connection))
    }

    /// A push message from the link `link`.
    fn on_push(&self, link: u64, push: PushInfo) {
        let mut state = self.state();
        let mut data = push.data.into_iter();
        let channel = match data.next() {
            Some(Value::BulkString(channel)) => Some(channel),
            _ => None,
        };
        // The subscription of `channel` made over this link, if there is one (a push of
        // an older link, or of a channel ended since, concerns no one).
        let ours = |state: &State, channel: &[u8]| {
            state
                .channels
                .get(channel)
                .filter(|c| c.link == link)
                .map(|c| c.confirmed)
        };
        match (push.kind, channel) {
            (PushKind::SMessage, Some(channel)) if ours(&state, &channel).is_some() => {
                let Some(Value::BulkString(line)) = data.next() else {
                    return;
                };
                // Only a line the write script published: anything else on the channel
                // (another program's SPUBLISH) is not a change of the bucket.
                let line = Bytes::from(line);
                let is_event = line.strip_suffix(b"\r\n").and_then(Event::decode).is_some();
                if let (true, Some(c)) = (is_event, state.channels.get(&channel[..])) {
                    c.topic.publish(&line);
                }
            }
            (PushKind::SSubscribe, Some(channel)) if ours(&state, &channel).is_some() => {
                if let Some(c) = state.channels.get_mut(&channel[..]) {
                    c.confirmed = true;
                }
            }
            // Redis dropped a confirmed subscription by itself (Redis 7 does when the node
            // stops serving the channel's slot, as after a slot migration).
            (PushKind::SUnsubscribe, Some(channel)) if ours(&state, &channel) == Some(true) => {
                warn!(
                    channel = %String::from_utf8_lossy(&channel),
                    "the cluster ended a subscription (its slot moved): its subscribers are \
                     told the subscription was lost"
                );
                if let Some(c) = state.channels.remove(&channel[..]) {
                    c.topic.end(Ended::Lost);
                }
            }
            (PushKind::Disconnection, _) => lose_link(&mut state, link, "its connection broke"),
            _ => {}
        }
    }

    /// Ends the Redis subscriptions no local subscriber uses any more, closes links that
    /// carry none, and `PING`s the others: a node that does not answer within the timeout
    /// loses its subscriptions.
    async fn sweep_once(&self) {
        {
            let _serial = self.serial.lock().await;
            let unused: Vec<(Bytes, Option<MultiplexedConnection>)> = {
                let mut state = self.state();
                let keys: Vec<Bytes> = state
                    .channels
                    .iter()
                    .filter(|(_, c)| c.topic.subscribers() == 0)
                    .map(|(key, _)| key.clone())
                    .collect();
                let mut unused = Vec::with_capacity(keys.len());
                for key in keys {
                    if let Some(c) = state.channels.remove(&key) {
                        let link = state.links.values().find(|l| l.id == c.link);
                        unused.push((key, link.map(|l| l.connection.clone())));
                    }
                }
                unused
            };
            for (key, connection) in unused {
                let Some(mut connection) = connection else {
                    continue;
                };
                let mut command = redis::cmd("SUNSUBSCRIBE");
                command.arg(&key[..]);
                let unsubscribe = command.query_async::<Value>(&mut connection);
                // A node that does not answer loses the link below, or already did.
                let _ = tokio::time::timeout(self.timeout, unsubscribe).await;
            }
            let mut state = self.state();
            let State {
                channels, links, ..
            } = &mut *state;
            links.retain(|_, l| channels.values().any(|c| c.link == l.id));
        }
        let links: Vec<(u64, MultiplexedConnection)> = self
            .state()
            .links
            .values()
            .map(|l| (l.id, l.connection.clone()))
            .collect();
        let timeout = self.timeout;
        let pings = links.into_iter().map(|(id, mut connection)| async move {
            let command = redis::cmd("PING");
            let ping = command.query_async::<Value>(&mut connection);
            let answered = matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(_)));
            (id, answered)
        });
        for (id, answered) in join_all(pings).await {
            if !answered {
                lose_link(
                    &mut self.state(),
                    id,
                    "its node did not answer PING in time",
                );
            }
        }
    }
}

/// Ends every subscription made over the link `link` ([`Ended::Lost`]) and forgets the link,
/// so that the next subscriber connects again.
fn lose_link(state: &mut State, link: u64, why: &str) {
    let lost: Vec<Bytes> = state
        .channels
        .iter()
        .filter(|(_, c)| c.link == link)
        .map(|(key, _)| key.clone())
        .collect();
    state.links.retain(|_, l| l.id != link);
    if !lost.is_empty() {
        warn!(
            buckets = lost.len(),
            "a cluster subscription link was lost ({why}): its subscribers are told the \
             subscription was lost"
        );
    }
    for key in lost {
        if let Some(c) = state.channels.remove(&key) {
            c.topic.end(Ended::Lost);
        }
    }
}

/// Runs [`Hub::sweep_once`] every [`SWEEP_INTERVAL`] until the store is dropped.
pub(crate) async fn sweep(hub: Weak<Hub>) {
    loop {
        tokio::time::sleep(SWEEP_INTERVAL).await;
        let Some(hub) = hub.upgrade() else {
            return;
        };
        hub.sweep_once().await;
    }
}

/// The cluster slot of `key` (Redis Cluster specification, "Key distribution model" and
/// "Hash tags": CRC16/XMODEM of the hash tag if there is a non-empty one, else of the whole
/// key, modulo 16384). Only a first guess of where to subscribe: a wrong one is `MOVED`.
fn slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % 16384
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use redis::cluster_routing::{Route, SlotAddr};
    use std::task::{Context, Poll, Waker};

    fn push(kind: PushKind, data: &[&[u8]]) -> PushInfo {
        PushInfo {
            kind,
            data: data.iter().map(|d| Value::BulkString(d.to_vec())).collect(),
        }
    }

    /// A hub with a subscription to `channel` over link `link`, not yet confirmed.
    fn hub_with(channel: &'static [u8], link: u64) -> (Arc<Hub>, Subscription) {
        let hub = Hub::new(Vec::new(), Duration::from_secs(1));
        let topic = Arc::new(Topic::default());
        let subscription = topic.subscribe(1024);
        hub.state().channels.insert(
            Bytes::from_static(channel),
            Channel {
                topic,
                link,
                confirmed: false,
            },
        );
        (hub, subscription)
    }

    fn poll(subscription: &mut Subscription) -> Poll<Result<String, Ended>> {
        let mut out = BytesMut::new();
        let mut cx = Context::from_waker(Waker::noop());
        subscription
            .poll_events(Some(&mut out), &mut cx)
            .map_ok(|_| String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn events_of_the_link_are_fanned_out_and_anything_else_is_not() {
        let (hub, mut subscription) = hub_with(b"{}kv:b", 1);
        hub.on_push(1, push(PushKind::SSubscribe, &[b"{}kv:b"]));
        hub.on_push(1, push(PushKind::SMessage, &[b"{}kv:b", b"k SET TO 1\r\n"]));
        // Not an event line; another link's message; another channel's.
        hub.on_push(1, push(PushKind::SMessage, &[b"{}kv:b", b"hello"]));
        hub.on_push(2, push(PushKind::SMessage, &[b"{}kv:b", b"k DELETED\r\n"]));
        hub.on_push(1, push(PushKind::SMessage, &[b"{}kv:c", b"k DELETED\r\n"]));
        assert_eq!(
            poll(&mut subscription),
            Poll::Ready(Ok("k SET TO 1\r\n".into()))
        );
        assert_eq!(hub.subscribers(b"{}kv:b"), 1);
    }

    #[test]
    fn a_sunsubscribe_from_redis_loses_a_confirmed_subscription_only() {
        let (hub, mut subscription) = hub_with(b"{}kv:b", 1);
        // Before the confirmation: the answer to an earlier SUNSUBSCRIBE of this hub's own.
        hub.on_push(1, push(PushKind::SUnsubscribe, &[b"{}kv:b"]));
        assert_eq!(poll(&mut subscription), Poll::Pending);
        hub.on_push(1, push(PushKind::SSubscribe, &[b"{}kv:b"]));
        hub.on_push(1, push(PushKind::SUnsubscribe, &[b"{}kv:b"]));
        assert_eq!(poll(&mut subscription), Poll::Ready(Err(Ended::Lost)));
        assert_eq!(
            hub.subscribers(b"{}kv:b"),
            0,
            "forgotten: the next one subscribes anew"
        );
    }

    #[test]
    fn a_broken_link_loses_its_subscriptions_and_no_other() {
        let (hub, mut on_it) = hub_with(b"{}kv:b", 1);
        let topic = Arc::new(Topic::default());
        let mut elsewhere = topic.subscribe(1024);
        hub.state().channels.insert(
            Bytes::from_static(b"{}kv:c"),
            Channel {
                topic,
                link: 2,
                confirmed: true,
            },
        );
        hub.on_push(
            1,
            PushInfo {
                kind: PushKind::Disconnection,
                data: Vec::new(),
            },
        );
        assert_eq!(poll(&mut on_it), Poll::Ready(Err(Ended::Lost)));
        assert_eq!(poll(&mut elsewhere), Poll::Pending);
    }

    #[test]
    fn slots_are_those_redis_and_its_client_compute() {
        // The specification's check value for CRC16/XMODEM.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        for key in [
            &b"{}kv:shopping"[..],
            b"{}kv:{x}a",
            b"foo{bar}baz",
            b"{}",
            b"a{}b",
        ] {
            assert_eq!(
                Route::new(slot(key), SlotAddr::Master),
                Route::with_key(key, SlotAddr::Master),
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }
}
