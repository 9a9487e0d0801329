//! The delimited kernel on one 16 MiB chunk: 1BRC-style data
//! (`name;-12.3\n`, the fast path: scanning, parsing and hashing fused)
//! with 413 and with 10,000 keys, an events CSV through the general path
//! (field splitting, several value columns, short keys), and the decimal
//! parser alone. `cargo bench -p tally-worker` prints bytes/s for each.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_bytes::ByteBuf;
use tally_worker::delimited::parse_number;
use tally_worker::tally_protocol::{AggFunc, Aggregate, QuerySpec, Source};
use tally_worker::Registry;

const SIZE: usize = 16 << 20;

/// A deterministic xorshift step.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A deterministic 1BRC-style buffer of about `SIZE` bytes.
fn measurements(stations: usize) -> Vec<u8> {
    let names: Vec<String> = (0..stations)
        .map(|i| {
            format!(
                "Station {i:03} {}",
                &"Abcdefghijklmnopqrstuvwxyz"[..(i * 7) % 20]
            )
        })
        .collect();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::with_capacity(SIZE + 64);
    while out.len() < SIZE {
        let state = next(&mut state);
        let name = &names[(state % stations as u64) as usize];
        let tenths = ((state >> 32) % 1999) as i64 - 999;
        let sign = if tenths < 0 { "-" } else { "" };
        let t = tenths.abs();
        out.extend_from_slice(format!("{name};{sign}{}.{}\n", t / 10, t % 10).as_bytes());
    }
    out
}

/// A deterministic events CSV (the shape of `tally gen events`) of about
/// `SIZE` bytes, without a header.
fn events() -> Vec<u8> {
    const COUNTRIES: [&str; 8] = ["US", "IN", "CN", "BR", "DE", "FR", "JP", "NG"];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(SIZE + 128);
    let mut ts = 1_700_000_000_000u64;
    while out.len() < SIZE {
        let r = next(&mut state);
        ts += r % 5;
        let line = format!(
            "{ts},u{},{},{},{}.{:03},{},/api/v1/items/{}\n",
            r % 400_000,
            COUNTRIES[(r >> 20) as usize % COUNTRIES.len()],
            [200, 200, 200, 404, 500][(r >> 24) as usize % 5],
            (r >> 28) % 400,
            (r >> 40) % 1000,
            (r >> 16) % 50_000,
            (r >> 8) % 100_000,
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn events_query() -> QuerySpec {
    let mut q = QuerySpec::one_brc();
    q.input.delimiter = b',';
    q.input.quote = Some(b'"');
    q.input.columns = [
        "ts",
        "user",
        "country",
        "status",
        "latency_ms",
        "bytes",
        "path",
    ]
    .map(String::from)
    .to_vec();
    q.group_by = vec!["country".into()];
    q.aggregates = vec![
        Aggregate {
            func: AggFunc::Count,
            column: None,
        },
        Aggregate {
            func: AggFunc::Sum,
            column: Some("bytes".into()),
        },
        Aggregate {
            func: AggFunc::Mean,
            column: Some("latency_ms".into()),
        },
        Aggregate {
            func: AggFunc::Stddev,
            column: Some("latency_ms".into()),
        },
    ];
    q
}

fn kernel(c: &mut Criterion) {
    let registry = Registry::with_builtins();
    let Some(kernel) = registry.get("delimited") else {
        panic!("no delimited kernel");
    };
    let mut group = c.benchmark_group("delimited");
    group.sample_size(20);
    let with_quote = |quote| {
        let mut q = QuerySpec::one_brc();
        q.input.quote = quote;
        q
    };
    let cases = [
        ("1brc", measurements(413), with_quote(None)),
        (
            "1brc-quote-check",
            measurements(413),
            with_quote(Some(b'"')),
        ),
        (
            "1brc-10k-keys",
            measurements(10_000),
            with_quote(Some(b'"')),
        ),
        ("events-csv", events(), events_query()),
    ];
    for (name, data, q) in cases {
        group.throughput(Throughput::Bytes(data.len() as u64));
        let source = Source::Inline {
            name: "bench".into(),
            first_line: 1,
            first_byte: 0,
            bytes: ByteBuf::from(data),
        };
        let Ok(mut prepared) = kernel.prepare(&q) else {
            panic!("prepare failed");
        };
        // A failing run would be timed as if it worked.
        if let Err(e) = prepared.run(&source) {
            panic!("{name}: {}", e.message);
        }
        group.bench_function(name, |b| {
            b.iter(|| black_box(prepared.run(black_box(&source)).is_ok()))
        });
    }
    group.finish();
}

fn parser(c: &mut Criterion) {
    let values: Vec<String> = (0..4096)
        .map(|i| {
            format!(
                "{}{}.{}",
                if i % 3 == 0 { "-" } else { "" },
                (i * 37) % 100,
                i % 10
            )
        })
        .collect();
    let bytes: u64 = values.iter().map(|v| v.len() as u64).sum();
    let mut group = c.benchmark_group("parse_number");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("short_decimals", |b| {
        b.iter(|| {
            values
                .iter()
                .filter(|v| parse_number(black_box(v.as_bytes())).is_some())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, kernel, parser);
criterion_main!(benches);
