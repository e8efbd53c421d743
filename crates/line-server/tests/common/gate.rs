//! [`Gate`]: a tiny protocol whose requests wait for the test, so a test can have a
//! connection busy for exactly as long as it needs, without sleeping and hoping.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use line_server::{trim_terminator, Flow, Protocol, Session};
use tokio::sync::watch;

use super::PATIENCE;

/// Echoes every line but `wait`, which is answered `done\r\n` once the test has called
/// [`Gate::open`] (at once if it already has). Clones share one gate.
#[derive(Clone)]
pub struct Gate {
    /// `wait` lines that have begun to wait, ever.
    waiting: Arc<watch::Sender<usize>>,
    /// Whether the gate is open.
    open: Arc<watch::Sender<bool>>,
}

/// A closed gate.
impl Default for Gate {
    fn default() -> Gate {
        Gate {
            waiting: Arc::new(watch::channel(0).0),
            open: Arc::new(watch::channel(false).0),
        }
    }
}

impl Gate {
    /// Waits until `n` `wait` lines in all have reached the server and begun to wait.
    pub async fn until_waiting(&self, n: usize) {
        let mut waiting = self.waiting.subscribe();
        tokio::time::timeout(PATIENCE, waiting.wait_for(|w| *w >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} `wait` lines never reached the server"))
            .expect("the gate is alive");
    }

    /// Lets every `wait` line, present and future, be answered.
    pub fn open(&self) {
        self.open.send_replace(true);
    }
}

/// One connection's conversation with the gate.
pub struct GateSession(Gate);

impl Protocol for Gate {
    type Session = GateSession;

    fn open_session(&self, _peer: SocketAddr) -> GateSession {
        GateSession(self.clone())
    }
}

impl Session for GateSession {
    async fn on_line(&mut self, line: &[u8], out: &mut BytesMut) -> Flow {
        if trim_terminator(line) != b"wait" {
            out.extend_from_slice(line);
            return Flow::Continue;
        }
        let mut open = self.0.open.subscribe();
        self.0.waiting.send_modify(|w| *w += 1);
        let _ = open.wait_for(|open| *open).await;
        out.extend_from_slice(b"done\r\n");
        Flow::Continue
    }
}
