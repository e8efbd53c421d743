//! The bare tokio line-echo baseline that kv-server's echo mode is measured against.
//!
//! As little as a correct line echo can be: a multi-thread runtime, one task per
//! connection, one reused 8 KiB buffer; every read's complete lines go back in one write
//! (replies of lines that arrived together are batched), a partial line waits for its end.
//! No limits, no supervision, no shutdown — that machinery is what the comparison prices.
//!
//! `cargo run --release -p kv-bench --example tokio_echo -- [PORT] [--skip-doomed-read]`
//! (0 picks a free port; the port is printed as `Accepting connections on port N`, like
//! kv-server's log line).
//!
//! `--skip-doomed-read` is an experiment, not part of the baseline: after a read that did
//! not fill the buffer (so the socket was drained), clear tokio's readiness without a
//! syscall, so the next read parks at once instead of first failing with `EAGAIN`.
//! BENCHMARKS.md reports what that saves.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> io::Result<()> {
    let skip_doomed_read = std::env::args().any(|a| a == "--skip-doomed-read");
    let port: u16 = match std::env::args().nth(1).filter(|a| !a.starts_with("--")) {
        Some(arg) => arg
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "usage: tokio_echo [PORT]"))?,
        None => 4041,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "Accepting connections on port {}",
        listener.local_addr()?.port()
    );
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    // A client leaving mid-line is not this baseline's concern.
                    let _ = if skip_doomed_read {
                        echo_skipping_doomed_reads(stream).await
                    } else {
                        echo(stream).await
                    };
                });
            }
            // EMFILE and friends: wait a moment rather than spin.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

async fn echo(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 8192];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        // Everything up to the last newline is complete lines: echo them in one write.
        if let Some(last) = buf[..filled].iter().rposition(|b| *b == b'\n') {
            stream.write_all(&buf[..=last]).await?;
            buf.copy_within(last + 1..filled, 0);
            filled -= last + 1;
        }
    }
}

/// [`echo`], reading through `try_read` + `readable` and clearing readiness after a read
/// that drained the socket (tokio only clears readiness it has seen, so no wake-up is lost).
async fn echo_skipping_doomed_reads(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut stream = stream;
    let mut buf = vec![0u8; 8192];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let room = buf.len() - filled;
        let n = match stream.try_read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                stream.readable().await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        if n < room {
            let _ = stream.try_io(Interest::READABLE, || {
                Err::<(), _>(io::ErrorKind::WouldBlock.into())
            });
        }
        filled += n;
        if let Some(last) = buf[..filled].iter().rposition(|b| *b == b'\n') {
            stream.write_all(&buf[..=last]).await?;
            buf.copy_within(last + 1..filled, 0);
            filled -= last + 1;
        }
    }
}
