//! Every wrapper forwards every callback (protocol.rs, "Wrappers"): a probe protocol that
//! records what reaches it is wrapped in each wrapper, alone and stacked as the binary
//! stacks them, and each callback is made once through the wrapper. A callback added to
//! the traits belongs in [`Callback`] and [`drive`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_util::FutureExt;
use line_server::{Auth, Faulty, Flow, Handoff, Protocol, ServerStats, Session};
use tokio::sync::Notify;

/// One callback of [`Protocol`] or [`Session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callback {
    OnStart,
    OpenSession,
    AcceptorHook,
    OnOpen,
    OnLine,
    OnBatchEnd,
    Screen,
    OnUnterminatedEof,
    PollPush,
    Handoff,
    IsListening,
}

const EVERY_CALLBACK: [Callback; 11] = [
    Callback::OnStart,
    Callback::OpenSession,
    Callback::AcceptorHook,
    Callback::OnOpen,
    Callback::OnLine,
    Callback::OnBatchEnd,
    Callback::Screen,
    Callback::OnUnterminatedEof,
    Callback::PollPush,
    Callback::Handoff,
    Callback::IsListening,
];

/// What reached the probe, in order.
type Seen = Arc<Mutex<Vec<Callback>>>;

/// Records every callback; its acceptor hook fires once `fire` is rung.
struct Probe {
    seen: Seen,
    fire: Arc<Notify>,
}

struct ProbeSession {
    seen: Seen,
}

fn record(seen: &Seen, callback: Callback) {
    seen.lock().expect("not poisoned").push(callback);
}

impl Protocol for Probe {
    type Session = ProbeSession;

    fn on_start(&mut self, _: &Arc<ServerStats>) {
        record(&self.seen, Callback::OnStart);
    }

    fn open_session(&self, _: SocketAddr) -> ProbeSession {
        record(&self.seen, Callback::OpenSession);
        ProbeSession {
            seen: Arc::clone(&self.seen),
        }
    }

    async fn acceptor_hook(&self) {
        self.fire.notified().await;
        record(&self.seen, Callback::AcceptorHook);
    }
}

impl Session for ProbeSession {
    fn on_open(&mut self, _: &mut BytesMut) -> Flow {
        record(&self.seen, Callback::OnOpen);
        Flow::Continue
    }

    async fn on_line(&mut self, _: &[u8], _: &mut BytesMut) -> Flow {
        record(&self.seen, Callback::OnLine);
        Flow::Continue
    }

    async fn on_batch_end(&mut self, _: &mut BytesMut) {
        record(&self.seen, Callback::OnBatchEnd);
    }

    fn screen(&mut self, _: &[u8]) -> Flow {
        record(&self.seen, Callback::Screen);
        Flow::Continue
    }

    fn on_unterminated_eof(&mut self, _: &[u8], _: &mut BytesMut) {
        record(&self.seen, Callback::OnUnterminatedEof);
    }

    fn poll_push(&mut self, _: Option<&mut BytesMut>, _: &mut Context<'_>) -> Poll<Flow> {
        record(&self.seen, Callback::PollPush);
        Poll::Pending
    }

    fn handoff(&mut self) -> Option<Handoff> {
        record(&self.seen, Callback::Handoff);
        None
    }

    fn is_listening(&self) -> bool {
        record(&self.seen, Callback::IsListening);
        false
    }
}

/// Wraps a probe with `wrap`, makes each callback once through the wrapper, and fails
/// naming every callback that did not reach the probe.
fn assert_forwards_every_callback<P: Protocol>(wrap: impl FnOnce(Probe) -> P) {
    let seen = Seen::default();
    let fire = Arc::new(Notify::new());
    let mut protocol = wrap(Probe {
        seen: Arc::clone(&seen),
        fire: Arc::clone(&fire),
    });
    drive(&mut protocol, &fire);
    let seen = seen.lock().expect("not poisoned");
    let missed: Vec<_> = EVERY_CALLBACK
        .into_iter()
        .filter(|callback| !seen.contains(callback))
        .collect();
    assert!(missed.is_empty(), "never reached the probe: {missed:?}");
}

fn drive<P: Protocol>(protocol: &mut P, fire: &Notify) {
    protocol.on_start(&ServerStats::new());
    fire.notify_one();
    let _ = protocol.acceptor_hook().now_or_never();
    let peer = "127.0.0.1:1".parse().expect("address");
    let mut session = protocol.open_session(peer);
    let mut out = BytesMut::new();
    session.on_open(&mut out);
    let _ = session.on_line(b"hello\n", &mut out).now_or_never();
    let _ = session.on_batch_end(&mut out).now_or_never();
    session.screen(b"hello\n");
    session.on_unterminated_eof(b"rest", &mut out);
    let _ = session.poll_push(
        Some(&mut out),
        &mut Context::from_waker(std::task::Waker::noop()),
    );
    let _ = session.handoff();
    session.is_listening();
}

// Each wrapper serving (no password to wait for, protected mode off), so every line is the
// wrapped session's.

#[test]
fn auth_forwards_every_callback() {
    assert_forwards_every_callback(|probe| Auth::new(probe, None, false));
}

#[test]
fn faulty_forwards_every_callback() {
    assert_forwards_every_callback(Faulty::new);
}

#[test]
fn the_binarys_stack_forwards_every_callback() {
    assert_forwards_every_callback(|probe| Auth::new(Faulty::new(probe), None, false));
}
