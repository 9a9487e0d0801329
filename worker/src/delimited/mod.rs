//! The built-in `"delimited"` kernel: grouped count, sum, min, max, mean,
//! variance and standard deviation over delimited text and CSV.
//!
//! A task is a byte range of a file (mapped, not read) or an inline batch of
//! whole records. The path through a task:
//!
//! 1. `source`: find the first record the chunk owns (a record belongs to
//!    the chunk its first byte is in; the quote parity at the chunk start
//!    says whether a newline is a record end) and count the chunk's quotes.
//! 2. `scan`: split records into fields; a chunk without any quote byte
//!    takes the plain path (`memchr`, no copy), others go through `csv-core`.
//! 3. `aggregator`: parse the value fields ([`parse_number`]: short decimals
//!    exactly, the rest as floats), find the group in the `table` by
//!    borrowed key bytes, and add to its integer accumulators
//!    (`accumulate`).
//! 4. The table becomes a [`Partial`](tally_protocol::Partial).

mod accumulate;
mod aggregator;
mod columns;
mod event_time;
mod fast;
mod ndjson;
mod number;
mod pane;
mod scan;
mod source;
mod table;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use memchr::memchr;
use tally_protocol::{Counters, ErrorKind, Location, OnError, PackedPartial, QuerySpec, Source};

use crate::{Kernel, PreparedQuery, TaskFailure, TaskOutput};
use aggregator::{Aggregator, MaskedPlan};
use columns::Columns;
use scan::{next_record_end, RecordSink, Span, Splitter, Sse2Window};
use source::{count_byte, first_record, FileCache, Locator};

pub use number::{parse_number, Number};

/// Locations of skipped records kept per task.
const MAX_BAD_SAMPLES: usize = 10;

/// The `"delimited"` kernel. See the [module documentation](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct DelimitedKernel;

impl DelimitedKernel {
    /// The kernel's name in queries.
    pub const NAME: &'static str = "delimited";
}

impl Kernel for DelimitedKernel {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn prepare(&self, query: &QuerySpec) -> Result<Box<dyn PreparedQuery>, TaskFailure> {
        // Stream batches (NDJSON records, event-time panes): see `pane.rs`.
        if pane::handles(query) {
            return Ok(Box::new(pane::PanedQuery::new(query)?));
        }
        Ok(Box::new(Delimited::new(query)?))
    }
}

/// A prepared delimited query.
struct Delimited {
    query: QuerySpec,
    /// Per value column: whether variance is wanted.
    squares: Vec<bool>,
    /// Columns resolved against `input.columns`: for inline sources, and
    /// for files without a header.
    listed: Result<Arc<Columns>, TaskFailure>,
    files: FileCache,
    kept: KeptTables,
}

/// What a prepared query keeps from one task to the next.
#[derive(Default)]
struct KeptTables {
    /// The fast path's table: the groups of one chunk are mostly those of
    /// the next, so a task starts with its keys in place instead of
    /// inserting them all again.
    fast: Option<fast::FastTable>,
    /// Set once a task filled the fast table (4,194,304 keys):
    /// the file has more keys than the fast path takes, and its groups
    /// would all be merged into the general table again; later tasks go
    /// the general way from their first record (same results).
    fast_overflowed: bool,
    /// The general path's table, emptied, its memory kept (see
    /// [`table::GroupTable::clear`]).
    general: Option<table::GroupTable>,
    /// The last task's partial, sent and handed back
    /// ([`PreparedQuery::recycle`]): the next partial is built in its
    /// memory.
    partial: Option<PackedPartial>,
}

impl Delimited {
    fn new(query: &QuerySpec) -> Result<Self, TaskFailure> {
        let input = &query.input;
        let query_err = |m: String| TaskFailure::new(ErrorKind::Query, m);
        if matches!(input.delimiter, b'\n' | b'\r') {
            return Err(query_err("the delimiter cannot be a line end".into()));
        }
        if let Some(q) = input.quote {
            if q == input.delimiter || matches!(q, b'\n' | b'\r') {
                return Err(query_err(format!(
                    "the quote byte {:?} cannot be the delimiter or a line end",
                    char::from(q)
                )));
            }
        }
        let listed =
            Columns::resolve(query, &input.columns, "the given column names").map(Arc::new);
        if !input.header {
            if let Err(e) = &listed {
                return Err(e.clone());
            }
        }
        Ok(Delimited {
            squares: query
                .value_columns()
                .into_iter()
                .map(|c| query.needs_m2(c))
                .collect(),
            query: query.clone(),
            listed,
            files: FileCache::default(),
            kept: KeptTables::default(),
        })
    }
}

impl PreparedQuery for Delimited {
    fn run(&mut self, source: &Source) -> Result<TaskOutput, TaskFailure> {
        match source {
            Source::Inline {
                name,
                first_line,
                first_byte,
                bytes,
            } => {
                let columns = self.listed.clone()?;
                let task = Task {
                    data: bytes,
                    name,
                    first_line: *first_line,
                    first_byte: *first_byte,
                    start: 0,
                    end: bytes.len(),
                    start_in_quotes: false,
                    skip_header: false,
                    count_quotes: false,
                };
                aggregate(&self.query, &self.squares, &columns, &task, &mut self.kept)
            }
            Source::FileRange {
                path,
                start,
                end,
                start_in_quotes,
            } => {
                let file = self.files.open(path)?;
                if file.bytes().is_empty() && self.query.input.header {
                    return Err(TaskFailure::new(
                        ErrorKind::Input,
                        format!(
                            "{path}: the file is empty, but a header line naming the columns \
                             was expected (use --no-header --columns for header-less data)"
                        ),
                    ));
                }
                if file.bytes().is_empty() {
                    return Ok(TaskOutput {
                        counters: Counters {
                            start_in_quotes: *start_in_quotes,
                            ..Counters::default()
                        },
                        ..TaskOutput::default()
                    });
                }
                let header = self.query.input.header;
                let columns = if header {
                    if file.columns.is_none() {
                        file.columns = Some(header_columns(&self.query, file.bytes(), path));
                    }
                    match &file.columns {
                        Some(columns) => columns.clone()?,
                        None => header_columns(&self.query, file.bytes(), path)?,
                    }
                } else {
                    self.listed.clone()?
                };
                let task = Task {
                    data: file.bytes(),
                    name: path,
                    first_line: 1,
                    first_byte: 0,
                    start: usize::try_from(*start).unwrap_or(usize::MAX),
                    end: usize::try_from(*end).unwrap_or(usize::MAX),
                    start_in_quotes: *start_in_quotes,
                    skip_header: header,
                    count_quotes: true,
                };
                aggregate(&self.query, &self.squares, &columns, &task, &mut self.kept)
            }
        }
    }

    fn recycle(&mut self, partial: PackedPartial) {
        self.kept.partial = Some(partial);
    }
}

/// Resolves the query's columns against the header of a file.
fn header_columns(query: &QuerySpec, data: &[u8], path: &str) -> Result<Arc<Columns>, TaskFailure> {
    let input = &query.input;
    let (record, _) = source::header(data, input.quote, path)?;
    let record = record.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(record);
    let mut splitter = Splitter::new(input.delimiter, input.quote, usize::MAX);
    let names: Vec<String> = splitter
        .split_all(record)
        .iter()
        .map(|f| String::from_utf8_lossy(number::trim_spaces(f)).into_owned())
        .collect();
    Columns::resolve(query, &names, &format!("the header of `{path}`")).map(Arc::new)
}

/// One task's bytes and how to read them.
struct Task<'a> {
    /// The whole file (offsets are file offsets), or the inline batch.
    data: &'a [u8],
    /// Path or stream name, for locations.
    name: &'a str,
    /// Line number of `data[0]`.
    first_line: u64,
    /// Byte offset of `data[0]` in the whole input.
    first_byte: u64,
    /// The owned range.
    start: usize,
    end: usize,
    start_in_quotes: bool,
    /// Whether the file's first record is a header.
    skip_header: bool,
    /// Whether to report quote bytes in `start..end` (file sources).
    count_quotes: bool,
}

/// How the records of a task are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `fast`: the `key<delim>d.d` loop, other records one by one through
    /// the plain splitter; gives up at the first quote byte.
    Fast,
    /// Plain splitter: no record holds a quote byte.
    Plain,
    /// RFC 4180 through csv-core.
    Quoted,
}

/// Aggregates the records a task owns.
fn aggregate(
    query: &QuerySpec,
    squares: &[bool],
    columns: &Columns,
    task: &Task<'_>,
    kept: &mut KeptTables,
) -> Result<TaskOutput, TaskFailure> {
    let data = task.data;
    let quote = query.input.quote;
    let end = task.end.min(data.len());
    let start = task.start.min(end);
    let empty = || TaskOutput {
        counters: Counters {
            start_in_quotes: task.start_in_quotes,
            quotes: match (quote, task.count_quotes) {
                (Some(q), true) => count_byte(q, data.get(start..end).unwrap_or_default()),
                _ => 0,
            },
            ..Counters::default()
        },
        ..TaskOutput::default()
    };
    let first = if start == 0 && task.skip_header {
        next_record_end(data, 0, quote, false).map_or(data.len(), |nl| nl + 1)
    } else {
        match first_record(data, start, end, quote, task.start_in_quotes) {
            Some(first) => first,
            None => return Ok(empty()),
        }
    };
    if first >= end {
        return Ok(empty());
    }

    // The fast loop first, when the query has its shape; it also proves the
    // records quote-free, so the quote count is that of the bytes before
    // the first record.
    let fast_shape =
        columns.key_fields == [0] && columns.value_fields == [1] && columns.wanted == 2;
    if fast_shape && !kept.fast_overflowed {
        if let Some(mut output) =
            read_records(query, squares, columns, task, first, end, Mode::Fast, kept)?
        {
            if let (Some(q), true) = (quote, task.count_quotes) {
                output.counters.quotes = count_byte(q, data.get(start..first).unwrap_or_default());
            }
            return Ok(output);
        }
    }

    // Plain path when no record the task scans holds a quote byte: the
    // records in `first..end`, and the tail of the last one.
    let tail_end =
        memchr(b'\n', data.get(end - 1..).unwrap_or_default()).map_or(data.len(), |i| end + i);
    let plain = match quote {
        None => true,
        Some(q) => memchr(q, data.get(first..tail_end).unwrap_or_default()).is_none(),
    };
    let mode = if plain { Mode::Plain } else { Mode::Quoted };
    let mut output =
        read_records(query, squares, columns, task, first, end, mode, kept)?.unwrap_or_default();
    // The quotes of `start..end`, from those of the records read
    // (`first..stop`, counted while reading them) rather than another pass
    // over the chunk: add the bytes before the first record, take off the
    // tail of the last one past `end`.
    output.counters.quotes = match (quote, task.count_quotes) {
        (Some(q), true) => {
            let stop = first.saturating_add(output.counters.bytes as usize);
            let before = count_byte(q, data.get(start..first).unwrap_or_default());
            let read = output.counters.quotes;
            if stop >= end {
                (before + read)
                    .saturating_sub(count_byte(q, data.get(end..stop).unwrap_or_default()))
            } else {
                before + read + count_byte(q, data.get(stop..end).unwrap_or_default())
            }
        }
        _ => 0,
    };
    Ok(output)
}

/// Where a task's split records go: the aggregator, and the bad records
/// under `--on-error`.
struct TaskRecords<'t> {
    query: &'t QuerySpec,
    columns: &'t Columns,
    value_names: Vec<&'t str>,
    aggregator: Aggregator<'t>,
    /// Set when the query has the shape [`Aggregator::add_masked`] takes.
    masked: Option<MaskedPlan>,
    locator: Locator<'t>,
    bad_records: u64,
    bad_samples: Vec<Location>,
}

impl RecordSink<TaskFailure> for &mut TaskRecords<'_> {
    #[inline(always)]
    fn record(&mut self, base: &[u8], spans: &[Span], at: usize) -> Result<(), TaskFailure> {
        let Err(bad) = self.aggregator.add(base, spans) else {
            return Ok(());
        };
        match self.query.on_error {
            OnError::Fail => {
                let message =
                    bad.message(base, self.columns, &self.query.group_by, &self.value_names);
                Err(TaskFailure::new(ErrorKind::Input, message).at(self.locator.at(at)))
            }
            OnError::Skip => {
                self.bad_records += 1;
                if self.bad_samples.len() < MAX_BAD_SAMPLES {
                    self.bad_samples.push(self.locator.at(at));
                }
                Ok(())
            }
        }
    }

    #[inline(always)]
    fn masked(&mut self, data: &[u8], pos: usize, line: usize, delims: u64) -> bool {
        match &self.masked {
            Some(plan) => self.aggregator.add_masked(plan, data, pos, line, delims),
            None => false,
        }
    }
}

/// Reads the records starting in `first..end` in `mode`; `None` when the
/// fast mode met a quote byte.
#[allow(clippy::too_many_arguments)]
fn read_records(
    query: &QuerySpec,
    squares: &[bool],
    columns: &Columns,
    task: &Task<'_>,
    first: usize,
    end: usize,
    mode: Mode,
    kept: &mut KeptTables,
) -> Result<Option<TaskOutput>, TaskFailure> {
    let data = task.data;
    let quote = query.input.quote;
    let mut output = TaskOutput {
        counters: Counters {
            start_in_quotes: task.start_in_quotes,
            ..Counters::default()
        },
        ..TaskOutput::default()
    };
    let mut record = TaskRecords {
        query,
        columns,
        value_names: query.value_columns(),
        aggregator: Aggregator::with_table(columns, squares, kept.general.take()),
        masked: MaskedPlan::new(columns, squares),
        locator: Locator::new(task.name, data, task.first_line, task.first_byte),
        bad_records: 0,
        bad_samples: Vec::new(),
    };
    let mut splitter = Splitter::new(query.input.delimiter, quote, columns.wanted);
    let mut fast_table = None;
    let stop = match mode {
        Mode::Fast => {
            let squares = squares.first().copied().unwrap_or(true);
            let mut table = kept
                .fast
                .take()
                .unwrap_or_else(|| fast::FastTable::new(squares));
            table.reset();
            let table = fast_table.insert(table);
            let window = Sse2Window(splitter.plain_bytes());
            let scanned = fast::scan(
                data,
                first,
                end,
                query.input.delimiter,
                quote,
                table,
                // SAFETY: SSE2 windows run on every processor.
                |pos| unsafe { splitter.plain_in(window, data, pos, pos + 1, &mut record) },
            )?;
            match scanned {
                fast::Scan::Done(stop) => stop,
                fast::Scan::Quoted => {
                    kept.fast = fast_table;
                    kept.general = Some(record.aggregator.into_table());
                    return Ok(None);
                }
            }
        }
        Mode::Plain => splitter.scan_plain(data, first, end, &mut record)?,
        Mode::Quoted => splitter.scan_quoted(data, first, end, &mut record)?,
    };
    // The fast groups go straight into the partial when no record took the
    // general path; otherwise both tables merge.
    let TaskRecords {
        mut aggregator,
        bad_records,
        bad_samples,
        ..
    } = record;
    let recycled = kept.partial.take().unwrap_or_default();
    let direct = match &fast_table {
        Some(table) => aggregator.fast_partial(table, recycled),
        None => Err(recycled),
    };
    if direct.is_err() {
        if let Some(table) = &fast_table {
            aggregator.merge_fast(table);
        }
    }
    if let Some(table) = fast_table {
        kept.fast_overflowed |= table.is_full();
        if table.worth_keeping() {
            kept.fast = Some(table);
        }
    }
    output.counters.records = aggregator.records;
    output.counters.bytes = stop.saturating_sub(first) as u64;
    // Quote bytes in the records read (none in those of the fast and plain
    // modes).
    output.counters.quotes = splitter.quotes;
    output.counters.bad_records = bad_records;
    output.bad_samples = bad_samples;
    let (partial, general) = match direct {
        Ok((partial, records)) => {
            output.counters.records = records;
            (partial, aggregator.into_table())
        }
        Err(recycled) => aggregator.into_parts(recycled),
    };
    output.partial = partial;
    kept.general = Some(general);
    Ok(Some(output))
}
