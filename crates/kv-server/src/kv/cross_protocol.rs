//! A line of HTTP on the kv port → no reply, the connection closed, a warning (PROTOCOL.md,
//! "KV mode").
//!
//! Which lines are HTTP is grammar, decided in `kv_protocol` (where the why is told:
//! cross-protocol scripting from web pages); what the server does about one is here.

use std::net::SocketAddr;
use std::time::Duration;

use line_server::{Flow, Throttle};
use tracing::warn;

/// Process-wide, as Redis' `logged_time` is: each offending connection is cheap to open,
/// so a per-connection limit would still let a flood of them flood the log.
static WARNINGS: Throttle = Throttle::new(Duration::from_secs(60));

/// Counts the refusal, warns (at most once a minute, process-wide) and hangs up without a word: the client is
/// not a kv client, nothing after this line on the connection may run, and an HTTP client
/// gets nothing it could show to the page that sent it.
pub(super) fn hang_up(peer: SocketAddr) -> Flow {
    super::counters::count_cross_protocol();
    if let Some(not_logged) = WARNINGS.allow() {
        // The offending bytes are not logged: they are the client's to choose.
        warn!(
            peer = %peer,
            similar_not_logged = not_logged,
            "possible SECURITY ATTACK: an HTTP request (POST, Host: or an HTTP request line) \
             reached the kv port, maybe from a web page using cross-protocol scripting; \
             connection closed without a reply (logged at most once a minute)"
        );
    }
    Flow::Close
}
