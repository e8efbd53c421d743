//! What kv-bench's integration tests share: a short load run, and a kv-server in this
//! process. A test file declares `pub mod common;`, so a helper it does not use is no dead
//! code there.

use std::net::SocketAddr;
use std::time::Duration;

use kv_bench::load::LoadConfig;
use kv_bench::workload::Proto;
use kv_server::kv::Kv;
use kv_store::MemoryStore;
use line_server::{bind, serve, Auth, Password, ServeError, ServerConfig};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A kv-server (KV mode over the in-memory store, behind `Auth` as the binary serves it) on
/// a runtime of its own, since kv-bench blocks the test's thread and runs its own runtimes;
/// stopped when dropped.
pub struct KvServer {
    pub addr: SocketAddr,
    runtime: Runtime,
    shutdown: CancellationToken,
    serving: Option<JoinHandle<Result<(), ServeError>>>,
}

impl KvServer {
    /// Serves on a free loopback port with `config`; clients must `AUTH` with `password`
    /// if one is given.
    pub fn start(config: ServerConfig, password: Option<&str>) -> Self {
        let password = password.map(|p| Password::new(p.as_bytes()));
        let runtime = Runtime::new().expect("server runtime");
        let listener = {
            let _in_runtime = runtime.enter();
            bind(([127, 0, 0, 1], 0).into()).expect("bind a free port")
        };
        let addr = listener.local_addr().expect("the bound address");
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let serving = runtime.spawn(async move {
            let kv = Auth::new(Kv::new(MemoryStore::new()), password.map(Into::into), false);
            serve(listener, &config, kv, token).await
        });
        Self {
            addr,
            runtime,
            shutdown,
            serving: Some(serving),
        }
    }
}

impl Drop for KvServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(serving) = self.serving.take() {
            let stopped = self.runtime.block_on(serving);
            // Not while unwinding: a second panic would hide the test's own message.
            if !std::thread::panicking() {
                stopped
                    .expect("serve does not panic")
                    .expect("serve stops cleanly when cancelled");
            }
        }
    }
}

/// A short, small load run against `addr` (0.3 s, 4 connections × 8 in flight, 100 keys):
/// tests change what they test with struct update syntax.
pub fn short_load(addr: SocketAddr, proto: Proto) -> LoadConfig {
    LoadConfig {
        label: "test".into(),
        addr,
        proto,
        conns: 4,
        pipeline: 8,
        duration: Duration::from_millis(300),
        warmup: Duration::from_millis(50),
        value_size: 16,
        keys: 100,
        get_ratio: 0.9,
        threads: 2,
        progress: false,
        server_pid: None,
        pin: None,
        tls: None,
        password: None,
    }
}
