//! The end-to-end harness: runs the real `kv-server` binary on `--port 0` and talks to it
//! over real loopback sockets with plain blocking std I/O. Only what needs a process is
//! tested this way (flags, environment, signals, exit statuses, logs, resource limits, the
//! disk); the machinery's behaviour is tested in-process in `crates/line-server/tests`.
//!
//! One module per concept: [`builder`] and [`server`] (the process), [`logs`] (its
//! stderr), [`client`] (a connection), [`disk`] (directories, a disk that fills up),
//! [`proc`] (what `/proc` says about the process), [`http`] (a request to the metrics
//! port), [`openmetrics`] (a checker of what `/metrics` serves), [`openssl`] (TLS sessions
//! and certificate serials through `openssl`), [`notify_socket`] (a service manager's end of
//! sd_notify) and [`redis_cluster`] (a real Redis Cluster on loopback, for the cluster
//! engine).
//!
//! Everything is bounded in time: a client socket has read and write timeouts, waiting for
//! a log line or an exit has an explicit deadline, and every process a test starts is
//! killed when its [`TestServer`] is dropped (also when the test panics).
//!
//! Test files declare `pub mod common;`: the helpers are then public items of the test
//! crate, so one that a test file does not use is not dead code there (each file in
//! `tests/` is a crate of its own that compiles this module anew).

use std::time::Duration;

pub mod builder;
pub mod client;
pub mod disk;
pub mod http;
pub mod logs;
pub mod notify_socket;
pub mod openmetrics;
pub mod openssl;
pub mod proc;
pub mod redis_cluster;
pub mod server;

pub use builder::Finished;
pub use client::{ask, Client};
pub use disk::{temp_dir, SmallDisk};
pub use logs::log_level;
pub use server::TestServer;

/// Upper bound for anything that should happen "at once": generous, because a noisy
/// 2-core machine running the suite in parallel can stall a process for seconds. Never
/// used to assert that something was fast.
pub const PATIENCE: Duration = Duration::from_secs(10);
