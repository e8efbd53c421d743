//! The store candidates under the mix: 90% GET / 10% PUT over 10,000 preloaded
//! keys with 16-byte values, from 1 and from 2 threads at once (this machine has 2 cores,
//! and kv-server runs one runtime worker per core).
//!
//! Each measured iteration is one operation on each thread; throughput is reported in
//! total operations per second.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use store_bench::{Candidate, DashMapCandidate, KvStore, MutexMap, PapayaMap, RwLockMap};

const KEYS: usize = 10_000;
const VALUE: &[u8; 16] = b"0123456789abcdef";
const GET_PERCENT: u64 = 90;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("key:{i:04}").into_bytes())
        .collect()
}

fn preloaded<C: Candidate + Default>(keys: &[Vec<u8>]) -> C {
    let map = C::default();
    let mut local = map.local();
    for key in keys {
        map.put(&mut local, key, VALUE);
    }
    map
}

/// `iters` operations of the mix on `threads` threads at once; wall time from a common
/// start to the last thread's end.
fn mixed<C: Candidate>(map: &C, keys: &[Vec<u8>], threads: usize, iters: u64) -> Duration {
    let start = Barrier::new(threads);
    let elapsed = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                    let (mut local, mut out) = (map.local(), BytesMut::with_capacity(64));
                    start.wait();
                    let began = Instant::now();
                    for _ in 0..iters {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let key = &keys[(rng % KEYS as u64) as usize];
                        if (rng >> 32) % 100 < GET_PERCENT {
                            black_box(map.get(&mut local, key, &mut out));
                            out.clear();
                        } else {
                            map.put(&mut local, key, VALUE);
                        }
                    }
                    began.elapsed()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    });
    elapsed
}

fn bench_candidates(c: &mut Criterion) {
    let keys = keys();
    for threads in [1usize, 2] {
        let mut group = c.benchmark_group(format!("store/{threads}-threads/90get-10put"));
        group.throughput(Throughput::Elements(threads as u64));
        group.measurement_time(Duration::from_secs(3));
        group.warm_up_time(Duration::from_secs(1));
        macro_rules! candidate {
            ($name:literal, $ty:ty) => {
                let map: $ty = preloaded(&keys);
                group.bench_function($name, |b| {
                    b.iter_custom(|iters| mixed(&map, &keys, threads, iters))
                });
            };
        }
        candidate!("Mutex<HashMap>", MutexMap);
        candidate!("RwLock<HashMap>", RwLockMap);
        candidate!("kv-store sharded RwLock (MemoryStore pipeline)", KvStore);
        candidate!("dashmap", DashMapCandidate);
        candidate!("papaya", PapayaMap);
        group.finish();
    }
}

criterion_group!(benches, bench_candidates);
criterion_main!(benches);
