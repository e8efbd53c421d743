//! How many bytes of server memory one idle kv-server connection holds, by part: the
//! `Connection` state, the future of its `run()` (what the task stores), and the allocator's
//! own view. Evidence for BENCHMARKS.md's idle-memory analysis.
//!
//! `cargo run --release --manifest-path crates/store-bench/Cargo.toml --example connection_size`

use std::io;
use std::mem::size_of_val;
use std::sync::Arc;

use kv_server::connection::{Connection, ConnectionSettings};
use kv_server::echo::Echo;
use kv_server::fault::FaultHooks;
use kv_server::kv::Kv;
use kv_server::protocol::Protocol;
use kv_store::MemoryStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let settings = Arc::new(ConnectionSettings {
        max_line_bytes: 65536,
        idle_timeout: None,
        debug_commands: false,
        faults: FaultHooks::default(),
    });
    let slots = Arc::new(Semaphore::new(16));
    let kv = Kv::new(MemoryStore::new());
    report("kv:  ", &listener, &slots, &settings, |peer| {
        kv.open_session(peer)
    })
    .await?;
    report("echo:", &listener, &slots, &settings, |peer| {
        Echo.open_session(peer)
    })
    .await?;
    Ok(())
}

/// Accepts one loopback connection, builds its `Connection` with the session `open` gives,
/// and prints the sizes of the connection and of its `run()` future.
async fn report<S: kv_server::protocol::Session>(
    label: &str,
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    settings: &Arc<ConnectionSettings>,
    open: impl FnOnce(std::net::SocketAddr) -> S,
) -> io::Result<()> {
    let _client = TcpStream::connect(listener.local_addr()?).await?;
    let (stream, peer) = listener.accept().await?;
    let permit = Arc::clone(slots)
        .acquire_owned()
        .await
        .map_err(io::Error::other)?;
    let conn = Connection::new(
        stream,
        peer,
        open(peer),
        Arc::clone(settings),
        CancellationToken::new(),
        permit,
    );
    println!("{label} Connection {} bytes", size_of_val(&conn));
    let run = conn.run();
    println!(
        "{label} Connection::run() future {} bytes",
        size_of_val(&run)
    );
    Ok(())
}
