//! line-server: a supervised, concurrent, line-oriented TCP server — the server that the
//! Elixir "Mix and OTP" guide builds in "Task and gen_tcp", as a library: protocols plug in
//! through [`Protocol`] and [`Session`], the machinery does the rest. It knows nothing of
//! any particular protocol but [`Echo`], its reference.
//!
//! # Layout
//! The supervision tree, one module per node, then the pieces it is made of:
//! - `server`: [`serve`] — the tree and its shutdown order, with a deadline it keeps.
//! - `supervisor`: OTP restart intensity for the acceptor; escalation.
//! - `acceptor`: accept loop, connection limit, accept-error classes and back-off.
//! - `event_loops`: one single-threaded runtime per core that connections live on, fed
//!   by the acceptor.
//! - `balance`: which loops take new clients — as few as keep up with the load (each
//!   loop's busy fraction), the one with the fewest connections first — and how many
//!   connections each loop should shed when that number changes.
//! - `migration`: a connection moving to another loop at a batch boundary.
//! - `connection`: one client: framing, limits, idle timeout, batched writes, the
//!   session's pushed lines (gathered for one turn of the event loop, then sent while it
//!   waits, a bounded number per turn), a stream written by a thread of the session's
//!   (`handoff`), the
//!   drain at shutdown; generic over its `Transport` (TCP, or TLS over it).
//! - `stopping`: how connections learn that shutdown began and that its deadline passed,
//!   with no cost per request.
//! - `framing`: the pure line decoder (unit and property tested).
//! - `protocol`: the seam a protocol implements; [`echo`] is the reference one.
//! - `fault`: fault injection as a wrapper around any protocol ([`Faulty`]).
//! - `auth`: password authentication and protected mode, a wrapper too ([`Auth`]); the
//!   password replaceable while serving ([`SharedPassword`]).
//! - `tls`: TLS settings and the handshake, on each connection's own task ([`Tls`]);
//!   the certificate replaceable while serving ([`Tls::replace`]).
//! - `config`: [`ServerConfig`], every default and `validate()`.
//! - `listener`: binding the socket (reuseaddr, deep backlog), or adopting one a service
//!   manager passed.
//! - `limits`: raising the open-file limit.
//! - `throttle`: at most one log line per interval for warnings clients can trigger.
//! - `stats`: connection and supervision counters, for `INFO` and metrics.
//!
//! # Budgets
//! Three budgets explain most of the unusual code here and in the KV session; each is
//! held by a test or a benchmark, not by a comment's numbers:
//! - **An idle connection costs its socket and a small task, nothing more.** Ten thousand
//!   idle clients are the usual case, so a connection waits holding no buffers, and its
//!   task's future keeps only what waiting needs (the work on a batch is a future of its
//!   own, on the heap while it runs). Held by `connection::tests::
//!   the_idle_task_future_stays_small` (≤ 512 bytes) and, for KV, by kv-server's
//!   `kv::tests::an_in_memory_session_stays_small` (≤ 88 bytes: the task then fits
//!   jemalloc's 640-byte class). Measured whole by kv-bench's idle mode (BENCHMARKS.md).
//! - **No lock or atomic shared between event loops per request.** Counters are per loop
//!   or per thread, shutdown is read from a line no one writes while serving
//!   (`stopping`), whether to move to another loop from a line written only when the
//!   active loops change (`balance`, once per batch), and a session caches what it looks
//!   up. Held by
//!   `bench/before_after.sh` (server CPU per request, several rounds) and `perf` profiles.
//! - **One read, one write per batch of requests.** Every complete line of a read is
//!   handled before the replies leave together, and a drained socket is not read again
//!   until the reactor says so. Held by `tests/batch.rs` (lines sent together are one
//!   batch) and `strace -c` of a kv-bench run (BENCHMARKS.md).
//!
//! # Embedding
//! ```no_run
//! use line_server::{bind, serve, Echo, ServerConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = bind(([127, 0, 0, 1], 4040).into())?;
//! let shutdown = CancellationToken::new(); // cancel it to shut down gracefully
//! serve(listener, &ServerConfig::default(), Echo, shutdown).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod acceptor;
mod auth;
mod balance;
mod config;
mod connection;
mod echo;
mod event_loops;
mod fault;
mod framing;
mod limits;
mod listener;
mod migration;
mod protocol;
mod server;
mod stats;
mod stopping;
mod supervisor;
mod throttle;
mod tls;

// Each item has one path: the crate's root.
pub use auth::{Auth, AuthSession, Password, SharedPassword, MAX_AUTH_FAILURES};
pub use config::{ConfigError, ServerConfig};
pub use echo::{Echo, EchoSession};
pub use fault::{Faulty, FaultySession};
pub use framing::{trim_terminator, LineDecoder, LineTooLong};
pub use limits::raise_open_file_limit;
pub use listener::{adopt, bind, LISTEN_BACKLOG};
pub use protocol::{replies, Flow, Handoff, Protocol, Session};
pub use server::{serve, ServeError};
pub use stats::{ServerStats, StatsSnapshot};
pub use supervisor::Escalation;
pub use throttle::Throttle;
pub use tls::{Tls, TlsError};
