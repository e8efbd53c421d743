//! kv-server's hot-path parsing: line-server's line decoder over a pipelined read, and
//! kv-protocol's request parser over the requests the benchmark sends.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kv_protocol::{Parsed, Request};
use line_server::{trim_terminator, LineDecoder};

/// 32 pipelined requests, 90% GET, as kv-bench sends them at `--pipeline 32`.
fn pipelined_batch() -> Vec<u8> {
    let mut batch = Vec::new();
    for i in 0..32 {
        if i % 10 == 9 {
            batch
                .extend_from_slice(format!("PUT bench key:{i:04} 0123456789abcdef\r\n").as_bytes());
        } else {
            batch.extend_from_slice(format!("GET bench key:{i:04}\r\n").as_bytes());
        }
    }
    batch
}

fn bench_decoder(c: &mut Criterion) {
    let batch = pipelined_batch();
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Elements(32));
    group.bench_function("LineDecoder: 32 pipelined lines", |b| {
        b.iter(|| {
            let mut decoder = LineDecoder::new(65536);
            let mut rest = black_box(&batch[..]);
            let mut lines = 0;
            while let Ok(Some(n)) = decoder.next_line(rest) {
                rest = &rest[n..];
                lines += 1;
            }
            lines
        })
    });
    group.finish();
}

fn bench_request_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("Request::parse");
    group.throughput(Throughput::Elements(1));
    for (name, line) in [
        ("GET", &b"GET bench key:0042\r\n"[..]),
        ("PUT", b"PUT bench key:0042 0123456789abcdef\r\n"),
        ("unknown", b"FROB a b c d e\r\n"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                matches!(
                    Request::parse(trim_terminator(black_box(line))),
                    Parsed::Request(_)
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decoder, bench_request_parse);
criterion_main!(benches);
