//! What kv-bench's integration tests share.

use std::net::SocketAddr;
use std::time::Duration;

use kv_bench::load::LoadConfig;
use kv_bench::workload::Proto;

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
