//! The in-process harness of the machinery's tests: [`start`] serves a protocol with
//! [`line_server::serve`] on a free loopback port, on the test's own runtime; [`Client`]
//! talks to it over a real socket. No process is started: these tests need none.
//!
//! Everything is bounded in time: every wait of the client, and the wait for `serve` to
//! return, has a deadline ([`PATIENCE`]); a server still running when its [`TestServer`]
//! is dropped is told to shut down, and the test's runtime ends its tasks.
//!
//! Test files declare `pub mod common;`: the helpers are then public items of the test
//! crate, so one that a test file does not use is not dead code there (each file in
//! `tests/` is a crate of its own that compiles this module anew).

use std::time::Duration;

pub mod client;
pub mod gate;
pub mod server;
pub mod tls;

pub use client::Client;
pub use gate::Gate;
pub use server::{start, start_on, TestServer};

/// Upper bound for anything that should happen "at once": generous, because a loaded
/// 2-core machine can stall a task for seconds. Never used to assert that something was
/// fast.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Waits until `done()` holds, polling every few milliseconds; panics with `what` if it
/// does not within [`PATIENCE`]. For effects a test cannot await directly (a counter the
/// server bumps just after the client saw the outcome).
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
