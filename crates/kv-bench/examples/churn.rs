//! Connection churn: `CONCURRENCY` tasks, each connecting, sending `PING`, reading the
//! reply and closing, again and again for `SECONDS`; prints connections per second and,
//! given the server's PID, its CPU time per connection. One single-threaded runtime, as
//! kv-bench's generator threads.
//!
//! `cargo run --release -p kv-bench --example churn -- ADDR CONCURRENCY SECONDS [PID]`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args.get(1).ok_or("ADDR")?.parse()?;
    let concurrency: usize = args.get(2).ok_or("CONCURRENCY")?.parse()?;
    let seconds: f64 = args.get(3).ok_or("SECONDS")?.parse()?;
    let pid: Option<u32> = args.get(4).map(|p| p.parse()).transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu_before = pid.map(cpu_ticks).transpose()?;
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(seconds);
    runtime.block_on(async {
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (done, errors) = (Arc::clone(&done), Arc::clone(&errors));
                tokio::spawn(async move {
                    while Instant::now() < end {
                        match once(addr).await {
                            Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                            Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    print!(
        "{:.0} connections/s ({n} in {elapsed:.1} s, {} errors)",
        n as f64 / elapsed,
        errors.load(Ordering::Relaxed)
    );
    if let (Some(pid), Some(before)) = (pid, cpu_before) {
        let used = cpu_ticks(pid)? - before;
        // Clock ticks are 10 ms (USER_HZ 100).
        let micros = used as f64 * 10_000.0 / n.max(1) as f64;
        print!(", server CPU {micros:.1} µs per connection");
    }
    println!();
    Ok(())
}

async fn once(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(b"PING\r\n").await?;
    let mut reply = [0u8; 6];
    stream.read_exact(&mut reply).await?;
    Ok(())
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').ok_or("stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}
