//! The same query on the same data prints the same bytes for any `-j`
//! (ARCHITECTURE: chunk boundaries depend only on the files and the chunk
//! size, partials are merged in chunk order), and, for the exact aggregates
//! (count, sum, min, max, mean of decimals), for any chunk size too.
//! Floating-point results depend on the order of additions, so these tests
//! catch a merge in arrival order (different bytes for different `-j`).
//! `var`/`stddev` merge their partials in floating point (Chan et al.), so
//! their last digits may change with the chunk size (README says so); they
//! are checked across worker counts at each chunk size.

use std::path::{Path, PathBuf};

use crate::util::{assert_same, generated, onebrc_args, parse_csv, tally_bytes};

fn onebrc() -> PathBuf {
    generated("1brc-1m-seed1.txt", &["1brc", "--rows", "1000000"])
}

fn events() -> PathBuf {
    generated(
        "events-200k-seed7.csv",
        &["events", "--rows", "200000", "--seed", "7"],
    )
}

const WORKERS: [&str; 4] = ["1", "2", "3", "8"];

/// Runs `args` with each of `runs` (extra flags); asserts that every output
/// is the bytes of the first, and returns them.
fn same_bytes(label: &str, args: &[String], runs: &[Vec<String>]) -> Vec<u8> {
    let mut first: Option<(String, Vec<u8>)> = None;
    for run in runs {
        let mut a = args.to_vec();
        a.extend(run.iter().cloned());
        let out = tally_bytes(&a);
        let this = run.join(" ");
        match &first {
            None => first = Some((this, out)),
            Some((first_label, expected)) if *expected != out => {
                assert_same(
                    &format!("{label}: `{first_label}` vs `{this}`"),
                    &String::from_utf8_lossy(expected),
                    &String::from_utf8_lossy(&out),
                );
                panic!("{label}: `{first_label}` and `{this}` differ in bytes that are not UTF-8");
            }
            Some(_) => {}
        }
    }
    let (_, bytes) = first.expect("at least one run");
    assert!(!bytes.is_empty(), "{label}: empty output");
    bytes
}

/// `-j N --chunk-size C` for each worker count in [`WORKERS`].
fn each_worker_count(chunk: &str) -> Vec<Vec<String>> {
    WORKERS
        .iter()
        .map(|j| ["-j", j, "--chunk-size", chunk].map(String::from).to_vec())
        .collect()
}

/// Every worker count at each chunk size: all the same bytes.
fn same_bytes_everywhere(label: &str, args: &[String], chunks: &[&str]) -> Vec<u8> {
    let runs: Vec<Vec<String>> = chunks.iter().flat_map(|c| each_worker_count(c)).collect();
    same_bytes(label, args, &runs)
}

fn run_args(file: &Path, rest: &[&str]) -> Vec<String> {
    let mut a = vec!["run".to_string(), file.display().to_string()];
    a.extend(rest.iter().map(|s| s.to_string()));
    a
}

fn onebrc_csv(agg: &str) -> Vec<String> {
    crate::util::onebrc_query(&onebrc(), agg, "csv")
}

fn events_by_country(agg: &str) -> Vec<String> {
    run_args(
        &events(),
        &["--by", "country", "--agg", agg, "--format", "csv"],
    )
}

/// Aggregates whose printed value comes from exact sums, counts, min and
/// max: no float rounding that depends on the chunking.
const EXACT_AGGS: &str = "count,sum(temp),mean(temp),min(temp),max(temp)";

/// With variance: `m2` is a float merged chunk by chunk.
const STDDEV_AGGS: &str = "count,sum(temp),mean(temp),stddev(temp)";

const EVENT_AGGS: &str = "count,count(latency_ms),sum(latency_ms),mean(latency_ms),min(latency_ms),max(bytes),mean(bytes)";
const EVENT_VAR_AGGS: &str = "count,mean(latency_ms),stddev(latency_ms),var(bytes)";

#[test]
fn onebrc_format_1brc() {
    let out = same_bytes_everywhere(
        "1M rows, --format 1brc",
        &onebrc_args(&onebrc()),
        &["1M", "64K", "333333"],
    );
    // 413 stations, as generated.
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches('=').count(), 413, "{text}");
}

#[test]
fn onebrc_csv_exact_aggregates() {
    let out = same_bytes_everywhere(
        "1M rows, --format csv",
        &onebrc_csv(EXACT_AGGS),
        &["1M", "64K", "333333"],
    );
    let text = String::from_utf8(out).unwrap();
    let records = parse_csv(&text);
    assert_eq!(records.len(), 414, "header and 413 stations");
    // The counts add up to the rows generated.
    let rows: u64 = records[1..]
        .iter()
        .map(|r| r[1].parse::<u64>().unwrap())
        .sum();
    assert_eq!(rows, 1_000_000);
}

#[test]
fn onebrc_csv_stddev_any_worker_count() {
    for chunk in ["1M", "64K"] {
        same_bytes(
            &format!("1M rows, stddev, chunk {chunk}"),
            &onebrc_csv(STDDEV_AGGS),
            &each_worker_count(chunk),
        );
    }
}

#[test]
fn events_exact_aggregates() {
    let out = same_bytes_everywhere(
        "events by country",
        &events_by_country(EVENT_AGGS),
        &["8M", "64K", "10000"],
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 51, "header and 50 countries:\n{text}");
}

#[test]
fn events_stddev_any_worker_count() {
    for chunk in ["8M", "64K", "10000"] {
        same_bytes(
            &format!("events, stddev, chunk {chunk}"),
            &events_by_country(EVENT_VAR_AGGS),
            &each_worker_count(chunk),
        );
    }
}

#[test]
fn events_every_format_any_worker_count() {
    for format in ["csv", "json", "ndjson", "table"] {
        let args = run_args(
            &events(),
            &[
                "--by",
                "country,status",
                "--agg",
                "count,mean(latency_ms),stddev(latency_ms),sum(bytes)",
                "--format",
                format,
            ],
        );
        for chunk in ["8M", "100K"] {
            same_bytes(
                &format!("events --format {format}, chunk {chunk}"),
                &args,
                &each_worker_count(chunk),
            );
        }
    }
}

#[test]
fn many_groups_any_worker_count_and_chunk_size() {
    // 300,000 stations in 1M rows: a task of the larger chunks holds more
    // groups than the fast table's first sizes (and than its old limit of
    // 65,536), so its table grows while tasks run, in every worker.
    let file = generated(
        "1brc-1m-300k-stations.txt",
        &["1brc", "--rows", "1000000", "--stations", "300000"],
    );
    let out = same_bytes_everywhere(
        "1M rows, 300,000 stations",
        &crate::util::onebrc_query(&file, EXACT_AGGS, "csv"),
        &["64M", "2M", "256K"],
    );
    let text = String::from_utf8(out).unwrap();
    let records = parse_csv(&text);
    let groups = records.len() - 1;
    assert!(
        (200_000..=300_000).contains(&groups),
        "{groups} stations in 1M rows of 300,000"
    );
    let rows: u64 = records[1..]
        .iter()
        .map(|r| r[1].parse::<u64>().unwrap())
        .sum();
    assert_eq!(rows, 1_000_000);
}
