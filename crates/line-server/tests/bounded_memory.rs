//! Memory stays bounded under bad input (docs/OPERATIONS.md, "Behaviour under failure"): a line that
//! never ends, and a client that sends without ever reading its replies, are pushed back by
//! TCP instead of being buffered by the server.
//!
//! The server runs in this process, so what it holds is measured exactly: a global
//! allocator counts the bytes this test binary holds on the heap. The tests here take
//! turns, so that one's allocations are not counted in the other's measure.

pub mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{start, PATIENCE};
use line_server::{Echo, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::Mutex;

/// Growth of the heap allowed while a hostile client sends tens of MiB; a server that
/// buffered what these tests send would grow far beyond it.
const HEAP_GROWTH_BOUND: usize = 16 << 20;
/// How long a write may block before the test concludes that the server stopped reading.
const STALLED: Duration = Duration::from_secs(3);

/// The system allocator, counting the bytes held.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to `System` unchanged; only a counter is kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            HELD.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            HELD.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            HELD.fetch_add(new_size, Ordering::Relaxed);
            HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Held by each test for its whole run: one measure at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

fn heap_held() -> usize {
    HELD.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_line_gets_the_error_without_the_server_buffering_it() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = start(
        Echo,
        ServerConfig {
            max_line_bytes: 16,
            ..ServerConfig::default()
        },
    );
    server.connect().await.echo(b"warm up\r\n").await;
    let chunk = vec![b'z'; 64 * 1024];
    let baseline = heap_held();

    let mut client = server.connect().await;
    let (mut from_server, mut to_server) = client.stream().split();
    // 64 MiB with no newline while the reply is read; the server stops reading it, so
    // the writes fail (reset, broken pipe) or block: all tolerated.
    let send = async {
        let mut sent = 0usize;
        while sent < 64 * 1024 * 1024 {
            match tokio::time::timeout(STALLED, to_server.write(&chunk)).await {
                Ok(Ok(n)) => sent += n,
                Ok(Err(_)) | Err(_) => break,
            }
        }
        sent
    };
    let (sent, ()) = tokio::join!(send, expect_line_too_long_then_closed(&mut from_server));

    let grown = heap_held().saturating_sub(baseline);
    assert!(
        grown < HEAP_GROWTH_BOUND,
        "the heap grew by {grown} bytes while a client sent {sent} bytes of one line"
    );
    server.connect().await.echo(b"still serving\r\n").await;
}

async fn expect_line_too_long_then_closed(from_server: &mut ReadHalf<'_>) {
    let expected = b"ERROR line too long\r\n";
    let mut reply = [0u8; 21];
    tokio::time::timeout(PATIENCE, from_server.read_exact(&mut reply))
        .await
        .expect("the error line within PATIENCE")
        .expect("the error line");
    assert_eq!(&reply, expected);
    let mut rest = [0u8; 64];
    match tokio::time::timeout(PATIENCE, from_server.read(&mut rest)).await {
        Ok(Ok(0)) => {}
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_pushed_back_without_the_server_buffering_its_replies() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = start(Echo, ServerConfig::default());
    server.connect().await.echo(b"warm up\r\n").await;

    // The pattern the flooder sends: 8-byte lines, repeated.
    let pattern: Vec<u8> = (0..8_192)
        .flat_map(|i| format!("{i:07}\n").into_bytes())
        .collect();
    const CAP: usize = 256 * 1024 * 1024;
    let mut flooder = server.connect().await;
    let baseline = heap_held();

    // Writes until a write blocks for a while (the server stopped reading) or CAP is
    // reached, reading nothing.
    let sent = flood(flooder.stream().split().1, &pattern, CAP).await;
    assert!(
        sent < CAP,
        "the server accepted {sent} bytes from a client that reads none of its replies"
    );

    // Meanwhile the server holds no more than bounded buffers and serves others.
    let grown = heap_held().saturating_sub(baseline);
    assert!(
        grown < HEAP_GROWTH_BOUND,
        "the heap grew by {grown} bytes while a client sent {sent} bytes it never read"
    );
    server
        .connect()
        .await
        .echo(b"others are served meanwhile\r\n")
        .await;

    // When the flooder finally reads, it gets exactly what it sent, in order.
    flooder.shutdown_write().await;
    let stream = flooder.stream();
    let mut received = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => panic!("reading the echo back after {received} bytes: {e}"),
            Err(_) => panic!("no echo within {PATIENCE:?} after {received} bytes"),
        };
        for (k, byte) in buf[..n].iter().enumerate() {
            let expected = pattern[(received + k) % pattern.len()];
            assert_eq!(*byte, expected, "echo differs at byte {}", received + k);
        }
        received += n;
    }
    assert_eq!(received, sent, "echoed bytes vs sent bytes");
}

/// Writes `pattern` over and over until a write has blocked for [`STALLED`] or `cap` bytes
/// are sent; returns how many were.
async fn flood(mut to_server: WriteHalf<'_>, pattern: &[u8], cap: usize) -> usize {
    let mut sent = 0usize;
    while sent < cap {
        let at = sent % pattern.len();
        match tokio::time::timeout(STALLED, to_server.write(&pattern[at..])).await {
            Ok(Ok(n)) => sent += n,
            Ok(Err(e)) => panic!("flooding write failed: {e}"),
            Err(_stalled) => break,
        }
    }
    sent
}

/// A client waiting in the middle of a line keeps that partial line buffered, and nothing
/// more: the server holds no reply buffer for a line it has not received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_waiting_mid_line_hold_only_what_they_sent() {
    let _turn = ONE_AT_A_TIME.lock().await;
    const CLIENTS: usize = 100;
    // Under the default `max_line_bytes`: the line stays acceptable, just unfinished.
    const PARTIAL: usize = 40_000;
    let server = start(Echo, ServerConfig::default());
    server.connect().await.echo(b"warm up\r\n").await;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(server.connect().await);
    }
    let baseline = heap_held();
    let chunk = vec![b'z'; PARTIAL];
    for client in &mut clients {
        client.send(&chunk).await;
    }
    // Every byte read by the server (what it holds is then what it keeps while waiting).
    let each_read = async {
        while heap_held().saturating_sub(baseline) < CLIENTS * PARTIAL {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = tokio::time::timeout(PATIENCE, each_read).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_client = heap_held().saturating_sub(baseline) / CLIENTS;
    assert!(
        per_client < 2 * PARTIAL,
        "each client waiting mid-line holds {per_client} bytes for the {PARTIAL} it sent"
    );
}
