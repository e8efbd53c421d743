//! How long the durable store takes to write and then reopen N keys.
//!
//! ```text
//! cargo run --release -p kv-store --example durable_recovery -- [KEYS] [DIR]
//! ```
//!
//! Writes KEYS distinct keys (16-byte values) from 64 concurrent writers (so group commit
//! batches them), closes the store, reopens it twice — once replaying the journal, once
//! from a snapshot after a forced compaction — and prints each phase's time.

use std::path::PathBuf;
use std::time::Instant;

use kv_store::{DurableOptions, DurableStore, FsyncPolicy, Outcome, StoreClient};

const WRITERS: usize = 64;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let keys: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("kv-durable-recovery"));
    let _ = std::fs::remove_dir_all(&dir);

    let started = Instant::now();
    let store = DurableStore::open(&dir, FsyncPolicy::Always)?;
    done(StoreClient::new(&store).create(b"bench").await)?;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut client = StoreClient::new(&store);
        writers.push(tokio::spawn(async move {
            for i in (w..keys).step_by(WRITERS) {
                let key = format!("key:{i:012}");
                done(
                    client
                        .put(b"bench", key.as_bytes(), b"0123456789abcdef")
                        .await,
                )?;
            }
            Ok::<_, String>(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    store.close().await;
    drop(store);
    let elapsed = started.elapsed();
    println!(
        "wrote {keys} keys in {:.2} s ({:.0} writes/s, {WRITERS} writers, sync per group)",
        elapsed.as_secs_f64(),
        keys as f64 / elapsed.as_secs_f64()
    );
    println!("files: {}", describe_dir(&dir)?);

    reopen(&dir, "reopen replaying the journal").await?;

    // A tiny threshold makes the first write trigger a compaction into a snapshot.
    let options = DurableOptions {
        compact_after_bytes: 1,
        ..DurableOptions::default()
    };
    let store = DurableStore::open_with(&dir, options)?;
    let mut client = StoreClient::new(&store);
    done(
        client
            .put(b"bench", b"key:000000000000", b"0123456789abcdef")
            .await,
    )?;
    let started = Instant::now();
    store.close().await; // waits for the snapshot
    println!(
        "snapshot of {keys} keys written in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    drop(store);
    println!("files: {}", describe_dir(&dir)?);
    reopen(&dir, "reopen from the snapshot").await?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Opens the store, reports how long that took and what it loaded, and closes it.
async fn reopen(dir: &std::path::Path, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let store = DurableStore::open(dir, FsyncPolicy::Always)?;
    println!(
        "{what}: {:.0} ms, {:?} (buckets, keys)",
        started.elapsed().as_secs_f64() * 1e3,
        store.stats()
    );
    store.close().await;
    Ok(())
}

fn describe_dir(dir: &std::path::Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        files.push(format!(
            "{} ({} B)",
            entry.file_name().to_string_lossy(),
            entry.metadata()?.len()
        ));
    }
    files.sort();
    Ok(files.join(", "))
}

/// `Ok` for a request carried out; its outcome as the error otherwise.
fn done(outcome: Outcome) -> Result<(), String> {
    match outcome {
        Outcome::Done => Ok(()),
        other => Err(format!("{other:?}")),
    }
}
