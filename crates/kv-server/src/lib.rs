//! kv-server's KV mode as a library: the bucket protocol ([`kv::Kv`]) over any
//! `kv_store::Store`, served by the `line-server` machinery. The `kv-server` binary
//! (`main.rs`) adds flags, logging and signals.
//!
//! # Layout
//! - [`kv`]: the session that ties a connection to the store (`kv/mod.rs`), running each
//!   request against the store (`kv/apply.rs`), closing on a line of HTTP
//!   (`kv/cross_protocol.rs`), the per-thread counters and latency histogram
//!   ([`kv::counters`]) and `INFO` (`kv/info.rs`). The grammar — parsing requests, encoding replies — is the
//!   `kv-protocol` crate's, shared with `kv-client` and `kv-bench`.
//!
//! The binary, not part of the library:
//! - `main.rs`: settings → logging → signals → storage → listener (bound, or passed by a
//!   service manager) → [`line_server::serve`].
//! - `cli.rs` and `settings.rs`: flags and environment onto the binary's settings; every
//!   default comes from the libraries' `Default`s.
//! - `log_writer.rs`: a log writer that a broken stderr cannot block or crash.
//! - `signals.rs`: SIGINT/SIGTERM into a graceful shutdown (a second signal exits); SIGHUP
//!   into reloads.
//! - `reload.rs`: what SIGHUP re-reads (TLS files, the password file) and hands the server.
//! - `notify.rs` and `lifecycle.rs`: sd_notify(3) readiness, reloads and status for a
//!   service manager.
//! - `activation.rs`: socket activation (sd_listen_fds(3)).
//! - `metrics/`: the HTTP endpoint of `--metrics-port` (`/metrics`, `/livez`, `/readyz`).
//!
//! # Embedding
//! ```no_run
//! use kv_server::kv::Kv;
//! use kv_store::MemoryStore;
//! use line_server::{bind, serve, ServerConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = bind(([127, 0, 0, 1], 0).into())?;
//! let shutdown = CancellationToken::new(); // cancel it to shut down gracefully
//! serve(listener, &ServerConfig::default(), Kv::new(MemoryStore::new()), shutdown).await?;
//! # Ok(()) }
//! ```

pub mod kv;
