//! kv-server: a supervised, concurrent, line-oriented TCP server — the server that the
//! Elixir "Mix and OTP" guide builds in "Task and gen_tcp", production-grade.
//!
//! # Layout
//! - [`config`]: every setting with its default, validated in one place.
//! - [`listener`]: binding the socket (reuseaddr, deep backlog).
//! - [`supervisor`]: OTP restart intensity for the acceptor.
//! - [`acceptor`]: accept loop, connection limit, accept-error handling.
//! - [`connection`]: one client: framing, limits, idle timeout, batched writes.
//! - [`framing`]: the pure line decoder.
//! - [`protocol`]: the seam a protocol implements; [`echo`] is one.
//! - [`kv`]: KV mode — typed commands (one file each) and replies over a `kv_store::Store`.
//! - [`fault`]: `--debug-commands` fault injection.
//! - [`server`]: the supervision tree and its shutdown order.
//! - [`shutdown`]: SIGINT/SIGTERM handling.
//! - [`limits`]: raising the open-file limit.
//! - [`log_writer`]: a log writer that a broken stderr cannot block or crash.
//! - [`throttle`]: at most one log line per interval for warnings clients can trigger.
//!
//! Embedding: bind with [`listener::bind`], then run [`server::serve`] with a protocol and
//! a `CancellationToken` you cancel to shut down.

pub mod acceptor;
pub mod config;
pub mod connection;
pub mod echo;
pub mod fault;
pub mod framing;
pub mod kv;
pub mod limits;
pub mod listener;
pub mod log_writer;
pub mod protocol;
pub mod server;
pub mod shutdown;
pub mod supervisor;
pub mod throttle;

pub use config::{Config, Mode};
pub use server::{serve, ServeError};
