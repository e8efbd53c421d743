// fdatasync floor: (a) 64-byte append + sync_data (file grows -> size metadata also flushed)
// (b) 64-byte overwrite inside a preallocated, already-synced file + sync_data (pure data flush)
use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};
fn run(name: &str, f: &mut std::fs::File, secs: f64, overwrite: bool) {
    let buf = [7u8; 64];
    let (t0, mut n, mut lats) = (Instant::now(), 0u64, Vec::<Duration>::new());
    while t0.elapsed().as_secs_f64() < secs {
        if overwrite { f.seek(SeekFrom::Start((n % 16384) * 64)).unwrap(); }
        let t = Instant::now();
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
        lats.push(t.elapsed());
        n += 1;
    }
    lats.sort();
    let ms = |p: f64| lats[((lats.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    println!("{name}: {n} syncs in {:.2}s = {:.0}/s; p50 {:.3}ms p99 {:.3}ms", t0.elapsed().as_secs_f64(), n as f64 / t0.elapsed().as_secs_f64(), ms(0.5), ms(0.99));
}
fn main() {
    let dir = std::env::args().nth(1).unwrap_or("data".into());
    let secs: f64 = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(5.0);
    std::fs::create_dir_all(&dir).unwrap();
    let p = format!("{dir}/append.log");
    let _ = std::fs::remove_file(&p);
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&p).unwrap();
    run("append64+fdatasync", &mut f, secs, false);
    let p2 = format!("{dir}/overwrite.log");
    let mut g = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(&p2).unwrap();
    g.write_all(&vec![0u8; 16384 * 64]).unwrap();
    g.sync_all().unwrap();
    run("overwrite64+fdatasync (preallocated)", &mut g, secs, true);
}
