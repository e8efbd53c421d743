//! What an idle connection costs a tokio server as a function of its task's future size:
//! a server whose per-connection task holds only the socket plus PAD bytes across its one
//! await. Measured from outside with
//! `kv-bench --idle 10000 --idle-silent --proto echo --server-pid PID --addr 127.0.0.1:PORT`
//! for PAD = 0, 256, 512 and 1024, it separates the fixed cost (socket registration, task
//! header, allocator) from the cost per byte of future. Evidence for BENCHMARKS.md.
//!
//! `idle_task_cost PORT PAD` (multi-thread runtime, as kv-server uses).

use std::hint::black_box;
use std::io;

use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let pad: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "Accepting connections on port {}",
        listener.local_addr()?.port()
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        match pad {
            0 => drop(tokio::spawn(hold::<0>(stream))),
            256 => drop(tokio::spawn(hold::<256>(stream))),
            512 => drop(tokio::spawn(hold::<512>(stream))),
            _ => drop(tokio::spawn(hold::<1024>(stream))),
        }
    }
}

/// Waits until the client closes (it sends nothing), keeping `N` bytes alive in the future
/// across the await. `readable()` may wake spuriously, hence the loop.
async fn hold<const N: usize>(stream: TcpStream) {
    let pad = [7u8; N];
    let mut byte = [0u8; 1];
    loop {
        if stream.readable().await.is_err() {
            break;
        }
        match stream.try_read(&mut byte) {
            Ok(0) => break,
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => break,
            _ => {}
        }
    }
    black_box(&pad);
}
