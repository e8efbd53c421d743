// Shared benchmark harness, included by bench-fjall and bench-redb via #[path].
// Only std (threads + std::sync::mpsc) so the binary is also the "minimal binary" for compile timing.
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub type KV = (Vec<u8>, Vec<u8>);

pub trait Engine: Send + Sync + 'static {
    fn open(dir: &str) -> Result<Self, String>
    where
        Self: Sized;
    /// Apply all writes atomically-ish and make them durable with ONE sync before returning.
    fn write_durable(&self, batch: &[KV]) -> Result<(), String>;
    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>, String>;
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D049BB133111EB);
    x ^ (x >> 31)
}
/// ~21-byte key "bNN/k<16 hex>", bucket-prefixed; 16-byte value.
pub fn key(i: u64) -> Vec<u8> {
    let h = splitmix(i);
    format!("b{:02}/k{:016x}", h % 16, h).into_bytes()
}
pub fn val(i: u64) -> Vec<u8> {
    format!("v{:015}", i).into_bytes()
}

fn pct(v: &mut Vec<Duration>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort();
    let idx = ((v.len() as f64 - 1.0) * p) as usize;
    v[idx].as_secs_f64() * 1e3
}

pub fn single<E: Engine>(dir: &str, secs: f64) {
    let e = E::open(dir).unwrap();
    let t0 = Instant::now();
    let mut i = 0u64;
    let mut lats = Vec::new();
    while t0.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        e.write_durable(&[(key(i), val(i))]).unwrap();
        lats.push(t.elapsed());
        i += 1;
    }
    let el = t0.elapsed().as_secs_f64();
    println!(
        "single: {} writes in {:.2}s = {:.0} writes/s; lat p50 {:.2}ms p99 {:.2}ms",
        i, el, i as f64 / el, pct(&mut lats, 0.5), pct(&mut lats, 0.99)
    );
}

pub fn group<E: Engine>(dir: &str, secs: f64, writers: usize) {
    let e = Arc::new(E::open(dir).unwrap());
    type Req = (KV, mpsc::SyncSender<Result<(), String>>);
    let (tx, rx) = mpsc::channel::<Req>();
    let ec = e.clone();
    let committer = std::thread::spawn(move || {
        let (mut batches, mut items) = (0u64, 0u64);
        while let Ok(first) = rx.recv() {
            let mut reqs = vec![first];
            while let Ok(r) = rx.try_recv() {
                reqs.push(r);
            }
            let batch: Vec<KV> = reqs.iter().map(|r| r.0.clone()).collect();
            let res = ec.write_durable(&batch); // ONE durable sync for the whole batch
            for (_, ack) in reqs {
                let _ = ack.send(res.clone());
            }
            batches += 1;
            items += batch.len() as u64;
        }
        (batches, items)
    });
    let t0 = Instant::now();
    let mut hs = Vec::new();
    for w in 0..writers {
        let tx = tx.clone();
        hs.push(std::thread::spawn(move || {
            let mut lats = Vec::new();
            let mut n = 0u64;
            while t0.elapsed().as_secs_f64() < secs {
                let i = (w as u64) << 40 | n;
                let (atx, arx) = mpsc::sync_channel(1);
                let t = Instant::now();
                tx.send(((key(i), val(i)), atx)).unwrap();
                arx.recv().unwrap().unwrap();
                lats.push(t.elapsed());
                n += 1;
            }
            lats
        }));
    }
    drop(tx);
    let mut lats: Vec<Duration> = hs.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let el = t0.elapsed().as_secs_f64();
    let (batches, items) = committer.join().unwrap();
    println!(
        "group({} writers): {} acked writes in {:.2}s = {:.0} writes/s; {} syncs ({:.0}/s), avg batch {:.1}; ack lat p50 {:.2}ms p99 {:.2}ms",
        writers, items, el, items as f64 / el, batches, batches as f64 / el,
        items as f64 / batches as f64, pct(&mut lats, 0.5), pct(&mut lats, 0.99)
    );
}

/// Write n keys (i = 0..n) in batches of 10k, one durable sync per batch, then drop (clean close).
pub fn load<E: Engine>(dir: &str, n: u64) {
    let t0 = Instant::now();
    let e = E::open(dir).unwrap();
    let mut i = 0;
    while i < n {
        let end = (i + 10_000).min(n);
        let b: Vec<KV> = (i..end).map(|j| (key(j), val(j))).collect();
        e.write_durable(&b).unwrap();
        i = end;
    }
    let tl = t0.elapsed();
    drop(e);
    println!("load: {} keys written in {:.2}s, close took {:.2}s total {:.2}s",
        n, tl.as_secs_f64(), (t0.elapsed() - tl).as_secs_f64(), t0.elapsed().as_secs_f64());
}

/// Time open + first read; then check `check` keys (i = 0..check) present.
pub fn open<E: Engine>(dir: &str, check: u64) {
    let t0 = Instant::now();
    let e = match E::open(dir) {
        Ok(e) => e,
        Err(err) => {
            println!("open FAILED after {:.3}s: {}", t0.elapsed().as_secs_f64(), err);
            return;
        }
    };
    let to = t0.elapsed();
    let r = e.get(&key(0));
    let tr = t0.elapsed();
    println!("open: {:.1}ms, open+first read: {:.1}ms (first read = {:?})",
        to.as_secs_f64() * 1e3, tr.as_secs_f64() * 1e3, r.map(|o| o.is_some()));
    if check > 0 {
        let t1 = Instant::now();
        let mut missing = 0;
        let mut errs = 0;
        for i in 0..check {
            match e.get(&key(i)) {
                Ok(Some(v)) if v == val(i) => {}
                Ok(_) => missing += 1,
                Err(_) => errs += 1,
            }
        }
        println!("verify: {} keys, {} missing/wrong, {} errors, {:.2}s", check, missing, errs, t1.elapsed().as_secs_f64());
    }
}

/// Crash victim: single writer writing keys start.., printing each acked index (flushed) to stdout.
pub fn crashwriter<E: Engine>(dir: &str, start: u64) {
    use std::io::Write;
    let e = E::open(dir).unwrap();
    let out = std::io::stdout();
    let mut i = start;
    loop {
        // batches of 100 keys per durable write to make the journal/file grow quickly
        let b: Vec<KV> = (i..i + 100).map(|j| (key(j), val(j))).collect();
        e.write_durable(&b).unwrap();
        i += 100;
        let mut o = out.lock();
        writeln!(o, "{}", i).unwrap();
        o.flush().unwrap();
    }
}

/// After a crash: verify keys start..end present.
pub fn verify_range<E: Engine>(dir: &str, start: u64, end: u64) {
    let t0 = Instant::now();
    let e = match E::open(dir) {
        Ok(e) => e,
        Err(err) => {
            println!("open FAILED: {}", err);
            return;
        }
    };
    let to = t0.elapsed();
    let _ = e.get(&key(0));
    println!("reopen after kill -9: open {:.1}ms, open+first read {:.1}ms", to.as_secs_f64() * 1e3, t0.elapsed().as_secs_f64() * 1e3);
    let mut missing = 0;
    for i in start..end {
        if e.get(&key(i)).unwrap() != Some(val(i)) {
            missing += 1;
        }
    }
    println!("verify acked {}..{}: {} missing", start, end, missing);
}

/// Second open of the same dir while the first is open (same process).
pub fn lock<E: Engine>(dir: &str) {
    let _a = E::open(dir).unwrap();
    match E::open(dir) {
        Ok(_) => println!("lock: second open in same process SUCCEEDED (no lock!)"),
        Err(e) => println!("lock: second open in same process failed: {}", e),
    }
    if std::env::var("HOLD").is_ok() {
        println!("holding open for 5s");
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// ENOSPC: write until an error, then call `free` (delete filler), retry on same handle, then reopen.
pub fn enospc<E: Engine>(dir: &str, filler: &str) {
    let e = E::open(dir).unwrap();
    let mut i = 0u64;
    let err = loop {
        let b: Vec<KV> = (i..i + 100).map(|j| (key(j), val(j))).collect();
        if let Err(err) = e.write_durable(&b) {
            break err;
        }
        i += 100;
    };
    println!("enospc: first error after {} acked keys: {}", i, err);
    std::fs::remove_file(filler).unwrap();
    println!("enospc: filler removed, space available again");
    let b = vec![(key(i), val(i))];
    match e.write_durable(&b) {
        Ok(()) => println!("enospc: retry on SAME handle succeeded"),
        Err(err) => println!("enospc: retry on same handle: {}", err),
    }
    match e.get(&key(0)) {
        Ok(v) => println!("enospc: read on same handle ok: {}", v.is_some()),
        Err(err) => println!("enospc: read on same handle: {}", err),
    }
    drop(e);
    let t0 = Instant::now();
    match E::open(dir) {
        Ok(e2) => {
            let mut missing = 0;
            for j in 0..i {
                if e2.get(&key(j)).unwrap() != Some(val(j)) {
                    missing += 1;
                }
            }
            println!("enospc: reopen ok in {:.1}ms, {} of {} acked keys missing", t0.elapsed().as_secs_f64() * 1e3, missing, i);
            match e2.write_durable(&[(key(i + 1), val(i + 1))]) {
                Ok(()) => println!("enospc: write after reopen ok"),
                Err(err) => println!("enospc: write after reopen: {}", err),
            }
        }
        Err(err) => println!("enospc: reopen failed: {}", err),
    }
}

pub fn main_for<E: Engine>() {
    let a: Vec<String> = std::env::args().collect();
    let dir = a.get(2).map(|s| s.as_str()).unwrap_or("db");
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    match a.get(1).map(|s| s.as_str()) {
        Some("single") => single::<E>(dir, arg(3, "5").parse().unwrap()),
        Some("group") => group::<E>(dir, arg(3, "5").parse().unwrap(), arg(4, "50").parse().unwrap()),
        Some("load") => load::<E>(dir, arg(3, "1000000").parse().unwrap()),
        Some("open") => open::<E>(dir, arg(3, "0").parse().unwrap()),
        Some("crashwriter") => crashwriter::<E>(dir, arg(3, "0").parse().unwrap()),
        Some("verify") => verify_range::<E>(dir, arg(3, "0").parse().unwrap(), arg(4, "0").parse().unwrap()),
        Some("lock") => lock::<E>(dir),
        Some("enospc") => enospc::<E>(dir, &arg(3, "")),
        _ => eprintln!("usage: {} single|group|load|open|crashwriter|verify|lock|enospc DIR [args]", a[0]),
    }
}
