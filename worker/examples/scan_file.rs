//! The 1BRC query (`min, mean, max` of column 2 by column 1, `;`-separated,
//! no header, `"` quoting as the CLI's default) through the delimited kernel
//! in this process, on one core:
//! no coordinator, no pipes. A way to time the kernel alone on a real file,
//! where the criterion benchmarks use a synthetic chunk held in memory.
//!
//! ```sh
//! cargo run --release -p tally-worker --example scan_file -- FILE [file|hot] [PART/PARTS]
//! ```
//!
//! `file` (the default) reads the file in 16 MiB tasks as a worker does;
//! `hot` runs the first 16 MiB task as many times, with the chunk in cache.
//! `PART/PARTS` (`file` only) reads only the PART-th (from 0) of PARTS
//! equal byte ranges of the file: PARTS of these processes side by side
//! are the kernel on PARTS cores with no coordinator, pipes or merging,
//! which `bench/run.sh` times against one process on the whole file to
//! show what the machine itself gives for a second core.

use std::error::Error;
use std::time::Instant;

use tally_worker::tally_protocol::{QuerySpec, Source};
use tally_worker::Registry;

const CHUNK: u64 = 16 << 20;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: scan_file FILE [file|hot] [PART/PARTS]";
    let path = args.next().ok_or(usage)?;
    let mode = args.next().unwrap_or_else(|| "file".into());
    let (part, parts) = match args.next() {
        None => (0, 1),
        Some(p) => p
            .split_once('/')
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
            .filter(|&(a, b)| a < b)
            .ok_or(usage)?,
    };
    let mut query = QuerySpec::one_brc();
    // As `tally run FILE --delimiter ';' --no-header` reads it (bench/run.sh's
    // Q1): quoting on, with `"`, the CLI's default.
    query.input.quote = Some(b'"');
    let registry = Registry::with_builtins();
    let kernel = registry.get("delimited").ok_or("no delimited kernel")?;
    let mut prepared = kernel.prepare(&query).map_err(|e| e.message)?;
    let len = std::fs::metadata(&path)?.len();
    // A task takes the records that start in its range (as in a worker):
    // the parts together take each record once.
    let (from, to) = (len * part / parts, len * (part + 1) / parts);
    let ranges: Vec<(u64, u64)> = match mode.as_str() {
        "file" => (0..(to - from).div_ceil(CHUNK))
            .map(|i| (from + i * CHUNK, (from + (i + 1) * CHUNK).min(to)))
            .collect(),
        "hot" if parts == 1 => vec![(0, CHUNK.min(len)); len.div_ceil(CHUNK) as usize],
        "hot" => return Err("PART/PARTS is for `file` only".into()),
        other => return Err(format!("unknown mode `{other}` (file or hot)").into()),
    };
    let started = Instant::now();
    let mut records = 0;
    for (start, end) in ranges {
        let source = Source::FileRange {
            path: path.clone(),
            start,
            end,
            start_in_quotes: false,
        };
        records += prepared
            .run(&source)
            .map_err(|e| e.message)?
            .counters
            .records;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{mode}: {records} records in {:.1} ms, {:.1} ns/record",
        secs * 1e3,
        secs * 1e9 / records.max(1) as f64
    );
    Ok(())
}
