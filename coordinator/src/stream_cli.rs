//! `tally stream`: flags, their validation into a [`StreamConfig`], and the
//! command itself (a reader thread pushing stdin or a followed file, the
//! main thread printing windows as NDJSON as they close).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use tally_coordinator::query::{parse_aggregates, parse_columns, parse_duration, parse_size};
use tally_coordinator::stream::output::{NdjsonWriter, TimeFormat};
use tally_coordinator::stream::reader::header_names;
use tally_coordinator::stream::{
    StreamConfig, StreamHandle, StreamSummary, TimeMode, WindowMode, WindowSpec,
};
use tally_coordinator::ErrorPolicy;
use tally_protocol::{Aggregate, InputFormat, QuerySpec, RecordFormat};

use crate::cli::{delimiter_and_quote, OnErrorArg, PoolArgs};

/// `tally stream` flags.
#[derive(Args, Debug)]
pub struct StreamArgs {
    /// Follow this file as it grows (like `tail -f`) instead of reading
    /// stdin; the stream then ends only by Ctrl-C / SIGTERM.
    #[arg(long, value_name = "FILE")]
    pub follow: Option<PathBuf>,
    /// Records are NDJSON (one JSON object per line; fields by name,
    /// nested fields by a dotted path such as `req.ms`) [default: CSV /
    /// delimited text].
    #[arg(long)]
    pub ndjson: bool,
    /// Key columns, comma-separated [default: none, one global row].
    #[arg(long)]
    pub by: Option<String>,
    /// Aggregates: count, sum(x), min(x), max(x), mean(x), var(x),
    /// stddev(x), count(x). A bare `mean` (`sum`, ...) means the first
    /// column: `seq 100 | tally stream --agg mean`.
    #[arg(long, default_value = "count")]
    pub agg: String,
    /// Field delimiter, one byte (delimited input).
    #[arg(short = 'd', long, default_value = ",")]
    pub delimiter: String,
    /// Quote byte for RFC 4180 fields, or `none` (delimited input).
    #[arg(long, default_value = "\"")]
    pub quote: String,
    /// The first line names the columns (delimited input).
    #[arg(long, conflicts_with = "columns")]
    pub header: bool,
    /// Column names, comma-separated (delimited input) [default: one
    /// column, `value`, unless --header].
    #[arg(long)]
    pub columns: Option<String>,
    /// Tumbling windows of this length (e.g. 10s, 500ms) [default: no
    /// windows, one running result every --every].
    #[arg(long)]
    pub window: Option<String>,
    /// Sliding windows: a new window every SLIDE (must divide --window).
    /// Costs one merge of panes per window, not a copy per record.
    #[arg(long, requires = "window")]
    pub slide: Option<String>,
    /// Without --window: emit the running result this often [default: 1s].
    #[arg(long, conflicts_with = "window")]
    pub every: Option<String>,
    /// Event time from this field (epoch s or ms, or RFC 3339) [default:
    /// processing time, when tally cut the record's batch].
    #[arg(long)]
    pub time_field: Option<String>,
    /// Event time: how far behind the largest time seen a record may be
    /// and still count; later ones are counted as late, in no window.
    #[arg(long, default_value = "0s", requires = "time_field")]
    pub lateness: String,
    /// Event time: after this long without input, emit every open window.
    #[arg(long, requires = "time_field")]
    pub idle_timeout: Option<String>,
    /// Cut a batch at this many bytes of whole records. Larger batches
    /// cost fewer messages and add latency.
    #[arg(long, default_value = "1M")]
    pub batch_size: String,
    /// Cut a batch when its oldest record has waited this long.
    #[arg(long, default_value = "5ms")]
    pub linger: String,
    /// Batches held at once (sent or waiting to be merged) [default: 3 per
    /// worker]. Memory is about this times --batch-size.
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// How window_start / window_end print.
    #[arg(long, value_enum, default_value = "rfc3339")]
    pub time_format: TimeFormatArg,
    /// A record that does not parse: stop (fail), or count it and go on (skip).
    #[arg(long, value_enum, default_value = "fail")]
    pub on_error: OnErrorArg,
    /// Attempts per batch before it is poison.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// A batch running longer than this has its worker killed and the
    /// batch sent elsewhere.
    #[arg(long, default_value = "60s")]
    pub task_timeout: String,
    /// Pool flags.
    #[command(flatten)]
    pub pool: PoolArgs,
}

/// Window-bound formats.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum TimeFormatArg {
    /// `2024-05-01T12:00:00.000Z`.
    Rfc3339,
    /// Milliseconds since the epoch.
    Ms,
}

/// The validated configuration, the output titles, and the columns read
/// from a header (when `--header`).
struct Plan {
    config: StreamConfig,
    titles: Vec<String>,
}

fn millis(text: &str, flag: &str) -> Result<u64> {
    let d = parse_duration(text).with_context(|| flag.to_string())?;
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        bail!("{flag} must be at least 1ms");
    }
    Ok(ms)
}

/// `mean` -> `mean(first)`; returns the rewritten text and the titles.
fn default_columns(agg: &str, first: Option<&str>) -> Result<(Vec<Aggregate>, Vec<String>)> {
    let mut depth = 0i32;
    let mut items = Vec::new();
    let mut start = 0;
    for (i, ch) in agg.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&agg[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&agg[start..]);
    let mut aggregates = Vec::new();
    let mut titles = Vec::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let bare = !item.contains('(') && !item.eq_ignore_ascii_case("count");
        let text = match (bare, first) {
            (true, Some(col)) => format!("{item}({col})"),
            (true, None) => bail!(
                "--agg: `{item}` needs a field, as in `{item}(latency_ms)` (a bare `{item}` \
                 means the first column of delimited input)"
            ),
            (false, _) => item.to_string(),
        };
        let mut parsed = parse_aggregates(&text)?;
        if let Some(a) = parsed.pop() {
            titles.push(if bare { item.to_string() } else { a.title() });
            aggregates.push(a);
        }
    }
    if aggregates.is_empty() {
        bail!("--agg: no aggregate given");
    }
    Ok((aggregates, titles))
}

impl StreamArgs {
    fn plan(&self, header: Option<Vec<String>>, name: &str) -> Result<Plan> {
        let (delimiter, quote) = delimiter_and_quote(&self.delimiter, &self.quote)?;
        let group_by = match &self.by {
            Some(b) => parse_columns(b, "--by")?,
            None => Vec::new(),
        };
        let (format, columns) = if self.ndjson {
            if self.header || self.columns.is_some() {
                bail!("--header and --columns are for delimited input, not --ndjson");
            }
            (RecordFormat::Ndjson, Vec::new())
        } else {
            let columns = match (&self.columns, header) {
                (Some(c), _) => parse_columns(c, "--columns")?,
                (None, Some(h)) => h,
                (None, None) => vec!["value".to_string()],
            };
            (RecordFormat::Delimited, columns)
        };
        let (aggregates, titles) = default_columns(&self.agg, columns.first().map(String::as_str))?;
        if format == RecordFormat::Delimited {
            let wanted = group_by
                .iter()
                .chain(aggregates.iter().filter_map(|a| a.column.as_ref()))
                .chain(self.time_field.as_ref());
            let hint = if self.columns.is_none() && !self.header {
                "; name the columns with --columns a,b,c or read them from a first line with --header"
            } else {
                ""
            };
            crate::cli::check_columns(wanted, &columns, "the columns", hint)?;
        }
        let on_error = ErrorPolicy::from(self.on_error);
        let query = QuerySpec {
            kernel: "delimited".into(),
            input: InputFormat {
                delimiter,
                quote,
                header: false,
                columns,
                format,
            },
            group_by,
            aggregates,
            on_error: self.on_error.into(),
            panes: None,
        };
        let pool = self.pool.to_config()?;
        let workers = pool.workers;
        let mut config = StreamConfig::new(query, pool);
        config.window = match &self.window {
            Some(w) => {
                let size_ms = millis(w, "--window")?;
                let slide_ms = match &self.slide {
                    Some(s) => millis(s, "--slide")?,
                    None => size_ms,
                };
                WindowMode::Windowed(WindowSpec { size_ms, slide_ms })
            }
            None => WindowMode::Running {
                every: Duration::from_millis(millis(
                    self.every.as_deref().unwrap_or("1s"),
                    "--every",
                )?),
            },
        };
        config.time = match &self.time_field {
            Some(field) => TimeMode::Event {
                field: field.clone(),
                lateness_ms: u64::try_from(
                    parse_duration(&self.lateness)
                        .context("--lateness")?
                        .as_millis(),
                )
                .unwrap_or(u64::MAX),
            },
            None => TimeMode::Processing,
        };
        config.idle_timeout = match &self.idle_timeout {
            Some(t) => Some(parse_duration(t).context("--idle-timeout")?),
            None => None,
        };
        config.batch_bytes = usize::try_from(parse_size(&self.batch_size).context("--batch-size")?)
            .unwrap_or(usize::MAX)
            .max(1);
        config.linger = parse_duration(&self.linger).context("--linger")?;
        if let Some(n) = self.max_in_flight {
            if n == 0 {
                bail!("--max-in-flight must be at least 1");
            }
            config.max_in_flight = n;
        } else {
            config.max_in_flight = 3 * workers;
        }
        config.max_attempts = self.max_attempts.max(1);
        config.task_timeout = parse_duration(&self.task_timeout).context("--task-timeout")?;
        config.on_error = on_error;
        config.name = name.to_string();
        Ok(Plan { config, titles })
    }
}

/// Reads from `input` and pushes until end of input (or, following a file,
/// forever); ends quietly when the stream has stopped. Each read goes into
/// a fresh buffer that is handed over whole (no copy).
fn pump(
    mut input: Box<dyn BufRead + Send>,
    follow: bool,
    pusher: tally_coordinator::stream::Pusher,
) {
    const CHUNK: usize = 256 << 10;
    // Bytes the header read left buffered come first.
    let buffered = match input.fill_buf() {
        Ok(b) => b.to_vec(),
        Err(_) => Vec::new(),
    };
    input.consume(buffered.len());
    if !buffered.is_empty() && pusher.push(buffered).is_err() {
        return;
    }
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let n = match input.read(&mut chunk) {
            Ok(0) if follow => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("reading the input: {e}");
                return;
            }
        };
        chunk.truncate(n);
        if pusher.push(chunk).is_err() {
            return;
        }
    }
}

/// `tally stream`.
pub fn run(args: &StreamArgs) -> Result<ExitCode> {
    let (mut input, name): (Box<dyn BufRead + Send>, String) = match &args.follow {
        Some(path) => {
            let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            (
                Box::new(BufReader::with_capacity(256 << 10, f)),
                path.display().to_string(),
            )
        }
        None => (
            Box::new(BufReader::with_capacity(256 << 10, StdinReader)),
            "<stdin>".to_string(),
        ),
    };
    let (mut first_line, mut first_byte) = (1, 0);
    let header = if args.header && !args.ndjson {
        let mut line = Vec::new();
        input
            .read_until(b'\n', &mut line)
            .context("reading the header line")?;
        first_line = 2;
        first_byte = line.len() as u64;
        let (delimiter, quote) = delimiter_and_quote(&args.delimiter, &args.quote)?;
        Some(header_names(&line, delimiter, quote))
    } else {
        None
    };
    let Plan { mut config, titles } = args.plan(header, &name)?;
    config.first_line = first_line;
    config.first_byte = first_byte;
    let time = match args.time_format {
        TimeFormatArg::Rfc3339 => TimeFormat::Rfc3339,
        TimeFormatArg::Ms => TimeFormat::EpochMs,
    };
    let writer = NdjsonWriter::new(config.query.clone(), titles, time);
    let mut stream = StreamHandle::start(config)?;
    let Some(pusher) = stream.pusher() else {
        bail!("the stream did not start");
    };
    stream.close_input();
    let follow = args.follow.is_some();
    std::thread::Builder::new()
        .name("tally-input".into())
        .spawn(move || pump(input, follow, pusher))
        .context("cannot start the input thread")?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for window in stream.results().iter() {
        writer.write(&mut out, &window)?;
        out.flush()?;
    }
    let summary = stream.finish()?;
    Ok(report(&summary))
}

/// Stdin, read without its lock held across threads.
struct StdinReader;

impl Read for StdinReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::stdin().lock().read(buf)
    }
}

fn report(s: &StreamSummary) -> ExitCode {
    if s.late.total > 0 {
        eprintln!(
            "tally: {} late record(s) behind the watermark, counted in no window:",
            s.late.total
        );
        for (start, n) in s.late.by_window.iter().take(20) {
            eprintln!(
                "  window starting {}: {n}",
                tally_coordinator::stream::output::rfc3339(*start)
            );
        }
        if s.late.by_window.len() > 20 {
            eprintln!("  ... and {} more windows", s.late.by_window.len() - 20);
        }
    }
    crate::commands::report_losses(s.bad_records, &s.bad_samples, s.workers_lost, "batches");
    if s.skipped_batches.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "tally: PARTIAL RESULT: {} batch(es) failed on every attempt and are not counted (from lines {:?})",
        s.skipped_batches.len(),
        s.skipped_batches
    );
    ExitCode::from(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_aggregates_take_the_first_column() {
        let (a, t) = default_columns("count, mean,max(x)", Some("value")).unwrap();
        assert_eq!(t, ["count", "mean", "max(x)"]);
        assert_eq!(a[1].column.as_deref(), Some("value"));
        assert!(default_columns("mean", None).is_err());
    }
}
