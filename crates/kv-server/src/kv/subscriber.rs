//! A subscribed connection (PROTOCOL.md, "Subscriptions"): `SUBSCRIBE bucket` makes the
//! session a subscriber; the bucket's events are pushed to it while it waits for input
//! (`Session::poll_push`), and only `PING`, `QUIT` and `UNSUBSCRIBE` are served meanwhile.

use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use kv_protocol::{Parsed, Reply, Request};
use kv_store::{Ended, Subscription};
use line_server::{trim_terminator, Flow, Throttle};
use tracing::warn;

use super::counters;
use super::cross_protocol;

/// Sent for any other request while subscribed; the subscription goes on.
const ONLY_PING_QUIT_UNSUBSCRIBE: &[u8] =
    b"subscribed: only PING, QUIT and UNSUBSCRIBE until UNSUBSCRIBE";
/// Sent before a subscriber that fell behind is disconnected.
const TOO_SLOW: &[u8] = b"too slow: unsent events passed --subscriber-buffer-bytes";
/// Sent before a subscriber whose subscription the store lost is disconnected.
const LOST: &[u8] = b"subscription lost";

/// Process-wide, as the cross-protocol warning: a flood of slow subscribers must not flood
/// the log.
static SLOW_WARNINGS: Throttle = Throttle::new(Duration::from_secs(60));

/// A live subscription, counted in `INFO`'s `subscribers` for as long as it lives.
pub(super) struct Subscribed(Subscription);

impl Subscribed {
    pub(super) fn new(subscription: Subscription) -> Self {
        counters::count_subscription(true);
        Self(subscription)
    }

    /// The events queued so far, appended to `out` (see `Session::poll_push`); a
    /// subscription that ended is told to the client, then the connection closes.
    pub(super) fn poll_push(
        &mut self,
        mut out: Option<&mut BytesMut>,
        peer: SocketAddr,
        cx: &mut Context<'_>,
    ) -> Poll<Flow> {
        match self.0.poll_events(out.as_deref_mut(), cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(events)) => {
                counters::count_events_sent(events);
                Poll::Ready(Flow::Continue)
            }
            Poll::Ready(Err(why)) => {
                let said = match why {
                    Ended::Slow => {
                        counters::count_slow_subscriber();
                        warn_slow(peer);
                        TOO_SLOW
                    }
                    Ended::Lost => LOST,
                };
                // The client is told, if it can still be (it reads: there is room).
                if let Some(out) = out {
                    Reply::Error(said).encode(out);
                }
                Poll::Ready(Flow::Close)
            }
        }
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        counters::count_subscription(false);
    }
}

/// Answers `line` for a subscribed session; the `bool` says whether the subscription ends
/// (a `QUIT` or `UNSUBSCRIBE`, or a line of HTTP that closes the connection).
pub(super) fn on_line(line: &[u8], peer: SocketAddr, out: &mut BytesMut) -> (Flow, bool) {
    let parsed = Request::parse(trim_terminator(line));
    if let Parsed::Request(request) = parsed {
        counters::count_verb(request.verb());
    }
    match parsed {
        Parsed::Request(Request::Ping) => {
            Reply::Pong.encode(out);
            (Flow::Continue, false)
        }
        Parsed::Request(Request::Quit) => {
            Reply::Ok.encode(out);
            (Flow::Close, true)
        }
        Parsed::Request(Request::Unsubscribe) => {
            Reply::Ok.encode(out);
            (Flow::Continue, true)
        }
        Parsed::CrossProtocol => (cross_protocol::hang_up(peer), true),
        Parsed::Request(_) | Parsed::Unknown => {
            Reply::Error(ONLY_PING_QUIT_UNSUBSCRIBE).encode(out);
            (Flow::Continue, false)
        }
    }
}

fn warn_slow(peer: SocketAddr) {
    if let Some(not_logged) = SLOW_WARNINGS.allow() {
        warn!(
            peer = %peer,
            similar_not_logged = not_logged,
            "subscriber disconnected: its unsent events passed --subscriber-buffer-bytes \
             (logged at most once a minute)"
        );
    }
}
