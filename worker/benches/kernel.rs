//! The delimited kernel over 1BRC-style data (`name;-12.3\n`), and the
//! decimal parser alone.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_bytes::ByteBuf;
use tally_worker::delimited::parse_number;
use tally_worker::tally_protocol::{AggFunc, Aggregate, InputFormat, OnError, QuerySpec, Source};
use tally_worker::Registry;

const STATIONS: usize = 413;
const SIZE: usize = 16 << 20;

/// A deterministic 1BRC-style buffer of about `SIZE` bytes.
fn measurements() -> Vec<u8> {
    let names: Vec<String> = (0..STATIONS)
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
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let name = &names[(state % STATIONS as u64) as usize];
        let tenths = ((state >> 32) % 1999) as i64 - 999;
        let sign = if tenths < 0 { "-" } else { "" };
        let t = tenths.abs();
        out.extend_from_slice(format!("{name};{sign}{}.{}\n", t / 10, t % 10).as_bytes());
    }
    out
}

fn query() -> QuerySpec {
    QuerySpec {
        kernel: "delimited".into(),
        input: InputFormat {
            delimiter: b';',
            quote: None,
            header: false,
            columns: vec!["station".into(), "temp".into()],
            format: Default::default(),
        },
        group_by: vec!["station".into()],
        aggregates: [AggFunc::Min, AggFunc::Mean, AggFunc::Max]
            .into_iter()
            .map(|func| Aggregate {
                func,
                column: Some("temp".into()),
            })
            .collect(),
        on_error: OnError::Fail,
        panes: None,
    }
}

fn kernel(c: &mut Criterion) {
    let data = measurements();
    let source = Source::Inline {
        name: "bench".into(),
        first_line: 1,
        bytes: ByteBuf::from(data.clone()),
    };
    let registry = Registry::with_builtins();
    let Some(kernel) = registry.get("delimited") else {
        panic!("no delimited kernel");
    };
    let mut group = c.benchmark_group("delimited");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(20);
    for (name, quote) in [("1brc", None), ("1brc-quote-check", Some(b'"'))] {
        let mut q = query();
        q.input.quote = quote;
        let Ok(mut prepared) = kernel.prepare(&q) else {
            panic!("prepare failed");
        };
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
