//! Stream batches: inline records, delimited or NDJSON, aggregated whole or
//! split into event-time panes.
//!
//! A query with [`PaneSpec`] reads each record's event time, puts the
//! record in pane `p = floor(time / pane_ms)`, and computes its closure
//! class `k`: how many of the pane's windows the watermark of the records
//! *before it in this batch* (their largest time minus the lateness) has
//! already closed. Each `(p, k)` bucket has its own [`Aggregator`] — the
//! same kernel as `tally run` — and its groups go out with `p` and `k`
//! (decimal text) in front of their keys. The coordinator, which knows the
//! watermark of the earlier batches, finishes the lateness judgement; see
//! PROTOCOL.md.

use memchr::memchr;
use tally_protocol::packed::key_parts;
use tally_protocol::{Counters, ErrorKind, OnError, PaneSpec, QuerySpec, RecordFormat, Source};

use super::aggregator::Aggregator;
use super::columns::Columns;
use super::event_time::parse_event_ms;
use super::ndjson::FieldExtractor;
use super::scan::{Span, Splitter};
use super::source::Locator;
use super::MAX_BAD_SAMPLES;
use crate::{PreparedQuery, TaskFailure, TaskOutput};

/// Whether `query` is one for [`PanedQuery`] (NDJSON records, or panes).
pub(crate) fn handles(query: &QuerySpec) -> bool {
    query.panes.is_some() || query.input.format == RecordFormat::Ndjson
}

/// How fields are found in a record.
enum Records {
    /// Delimited text; the splitter stops after `wanted` fields.
    Delimited { wanted: usize },
    /// NDJSON; field `i` is the dotted path `names[i]`.
    Ndjson { names: Vec<String> },
}

/// Pane arithmetic, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Panes {
    pane_ms: i64,
    windows_per_pane: i64,
    lateness_ms: i64,
    /// Field index of the event time.
    time_field: usize,
}

impl Panes {
    /// The closure class of a record in pane `p` under `watermark`.
    fn closed(&self, p: i64, watermark: Option<i64>) -> i64 {
        match watermark {
            None => 0,
            Some(w) => (w.div_euclid(self.pane_ms) - p).clamp(0, self.windows_per_pane),
        }
    }
}

/// A prepared stream query.
pub(crate) struct PanedQuery {
    query: QuerySpec,
    squares: Vec<bool>,
    columns: Columns,
    records: Records,
    panes: Option<Panes>,
}

impl PanedQuery {
    pub(crate) fn new(query: &QuerySpec) -> Result<Self, TaskFailure> {
        let query_err = |m: String| TaskFailure::new(ErrorKind::Query, m);
        let time_name = query.panes.as_ref().map(|p| p.time_field.as_str());
        let (columns, records, time_field) = match query.input.format {
            RecordFormat::Ndjson => {
                let mut names: Vec<String> = Vec::new();
                let wanted = query
                    .group_by
                    .iter()
                    .map(String::as_str)
                    .chain(query.value_columns())
                    .chain(time_name);
                for n in wanted {
                    if !names.iter().any(|m| m == n) {
                        names.push(n.to_string());
                    }
                }
                let columns = Columns::resolve(query, &names, "the wanted fields")?;
                let time = time_name.and_then(|t| names.iter().position(|n| n == t));
                (columns, Records::Ndjson { names }, time)
            }
            RecordFormat::Delimited => {
                let input = &query.input;
                if input.header {
                    return Err(query_err(
                        "stream batches carry no header: name the columns (header false, columns)"
                            .into(),
                    ));
                }
                let columns = Columns::resolve(query, &input.columns, "the given column names")?;
                let time = match time_name {
                    None => None,
                    Some(t) => {
                        Some(input.columns.iter().position(|n| n == t).ok_or_else(|| {
                            query_err(format!(
                                "time field `{t}` is not among the columns ({})",
                                input.columns.join(",")
                            ))
                        })?)
                    }
                };
                let wanted = columns.wanted.max(time.map_or(0, |t| t + 1));
                (columns, Records::Delimited { wanted }, time)
            }
        };
        let panes = match (&query.panes, time_field) {
            (None, _) => None,
            (Some(spec), Some(time_field)) => Some(panes_of(spec, time_field)?),
            (Some(spec), None) => {
                return Err(query_err(format!("no time field `{}`", spec.time_field)))
            }
        };
        Ok(PanedQuery {
            squares: query
                .value_columns()
                .into_iter()
                .map(|c| query.needs_m2(c))
                .collect(),
            query: query.clone(),
            columns,
            records,
            panes,
        })
    }
}

fn panes_of(spec: &PaneSpec, time_field: usize) -> Result<Panes, TaskFailure> {
    let pane_ms = i64::try_from(spec.pane_ms).unwrap_or(0);
    let lateness_ms = i64::try_from(spec.lateness_ms).unwrap_or(i64::MAX / 4);
    if pane_ms <= 0 || spec.windows_per_pane == 0 {
        return Err(TaskFailure::new(
            ErrorKind::Query,
            "panes need pane_ms > 0 and windows_per_pane >= 1",
        ));
    }
    Ok(Panes {
        pane_ms,
        windows_per_pane: i64::from(spec.windows_per_pane),
        lateness_ms,
        time_field,
    })
}

/// Per-task state: the buckets and the running watermark.
struct Batch<'c> {
    columns: &'c Columns,
    squares: &'c [bool],
    panes: Option<Panes>,
    /// `(pane, class)` -> aggregator; few per batch, the last one is hot.
    buckets: Vec<((i64, i64), Aggregator<'c>)>,
    last: usize,
    max_event: Option<i64>,
}

/// Why one record was left out.
enum Bad {
    /// The aggregator's complaint.
    Value(super::aggregator::BadRecord),
    /// The time field is missing or unreadable.
    Time(String),
}

impl<'c> Batch<'c> {
    fn add(&mut self, base: &[u8], spans: &[Span]) -> Result<(), Bad> {
        let Some(panes) = self.panes else {
            if self.buckets.is_empty() {
                self.buckets
                    .push(((0, 0), Aggregator::new(self.columns, self.squares)));
            }
            let agg = &mut self.buckets[0].1;
            return agg.add(base, spans).map_err(Bad::Value);
        };
        let field = spans
            .get(panes.time_field)
            .and_then(|&(a, b)| base.get(a..b))
            .unwrap_or_default();
        let Some(t) = parse_event_ms(field) else {
            let shown = String::from_utf8_lossy(field.get(..60).unwrap_or(field)).into_owned();
            return Err(Bad::Time(if field.is_empty() {
                "the time field is empty or missing".into()
            } else {
                format!("time field: `{shown}` is not epoch seconds/milliseconds or RFC 3339")
            }));
        };
        let p = t.div_euclid(panes.pane_ms);
        let watermark = self.max_event.map(|m| m.saturating_sub(panes.lateness_ms));
        let k = panes.closed(p, watermark);
        let bucket = (p, k);
        let i = if self.buckets.get(self.last).is_some_and(|b| b.0 == bucket) {
            self.last
        } else {
            match self.buckets.iter().position(|b| b.0 == bucket) {
                Some(i) => i,
                None => {
                    self.buckets
                        .push((bucket, Aggregator::new(self.columns, self.squares)));
                    self.buckets.len() - 1
                }
            }
        };
        self.last = i;
        self.buckets[i].1.add(base, spans).map_err(Bad::Value)?;
        self.max_event = Some(self.max_event.map_or(t, |m| m.max(t)));
        Ok(())
    }
}

impl PreparedQuery for PanedQuery {
    fn run(&mut self, source: &Source) -> Result<TaskOutput, TaskFailure> {
        let Source::Inline {
            name,
            first_line,
            first_byte,
            bytes,
        } = source
        else {
            return Err(TaskFailure::new(
                ErrorKind::Query,
                "NDJSON and pane queries take inline batches only (tally stream)",
            ));
        };
        let data: &[u8] = bytes;
        let query = &self.query;
        let columns = &self.columns;
        let value_names = query.value_columns();
        let mut batch = Batch {
            columns,
            squares: &self.squares,
            panes: self.panes,
            buckets: Vec::new(),
            last: 0,
            max_event: None,
        };
        let mut locator = Locator::new(name, data, *first_line, *first_byte);
        let (mut bad_records, mut bad_samples) = (0u64, Vec::new());
        // One record, or a line that is not a record (NDJSON syntax).
        let mut record = |rec: Result<(&[u8], &[Span]), String>,
                          at: usize|
         -> Result<(), TaskFailure> {
            let bad = match rec {
                Ok((base, spans)) => match batch.add(base, spans) {
                    Ok(()) => return Ok(()),
                    Err(Bad::Value(b)) => b.message(base, columns, &query.group_by, &value_names),
                    Err(Bad::Time(m)) => m,
                },
                Err(m) => m,
            };
            match query.on_error {
                OnError::Fail => Err(TaskFailure::new(ErrorKind::Input, bad).at(locator.at(at))),
                OnError::Skip => {
                    bad_records += 1;
                    if bad_samples.len() < MAX_BAD_SAMPLES {
                        bad_samples.push(locator.at(at));
                    }
                    Ok(())
                }
            }
        };
        match &self.records {
            Records::Delimited { wanted } => {
                let quote = query.input.quote.filter(|&q| memchr(q, data).is_some());
                let mut splitter = Splitter::new(query.input.delimiter, quote, *wanted);
                let mut each =
                    |base: &[u8], spans: &[Span], at: usize| record(Ok((base, spans)), at);
                if quote.is_none() {
                    splitter.scan_plain(data, 0, data.len(), &mut each)?;
                } else {
                    splitter.scan_quoted(data, 0, data.len(), &mut each)?;
                }
            }
            Records::Ndjson { names } => {
                let mut fields = FieldExtractor::new(names);
                let mut pos = 0;
                while pos < data.len() {
                    let nl = memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
                    let line = &data[pos..nl];
                    if line.iter().any(|b| !b.is_ascii_whitespace()) {
                        match fields.extract(line) {
                            Ok(()) => record(Ok((&fields.buf, &fields.spans)), pos)?,
                            Err(e) => record(
                                Err(format!(
                                    "not an NDJSON record: expected {} at column {}",
                                    e.what,
                                    e.at + 1
                                )),
                                pos,
                            )?,
                        }
                    }
                    pos = nl + 1;
                }
            }
        }
        let mut output = TaskOutput {
            counters: Counters {
                bytes: data.len() as u64,
                bad_records,
                max_event_ms: batch.max_event,
                ..Counters::default()
            },
            bad_samples,
            ..TaskOutput::default()
        };
        let paned = batch.panes.is_some();
        for ((p, k), agg) in batch.buckets {
            output.counters.records += agg.records;
            let partial = agg.into_partial();
            if !paned && output.partial.is_empty() {
                output.partial = partial;
                continue;
            }
            // Paned, each key starts with the pane and class numbers.
            let (p, k) = (p.to_string(), k.to_string());
            let prefix = [Some(p.as_bytes()), Some(k.as_bytes())];
            let prefix = if paned { &prefix[..] } else { &[] };
            for g in partial.groups() {
                output.partial.push_group(
                    prefix.iter().copied().chain(key_parts(g.encoded_key)),
                    g.rows,
                    g.values.iter().cloned(),
                );
            }
        }
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_bytes::ByteBuf;
    use tally_protocol::{AggFunc, Aggregate, InputFormat};

    fn query(format: RecordFormat, panes: Option<PaneSpec>) -> QuerySpec {
        QuerySpec {
            kernel: "delimited".into(),
            input: InputFormat {
                delimiter: b',',
                quote: Some(b'"'),
                header: false,
                columns: vec!["ts".into(), "k".into(), "v".into()],
                format,
            },
            group_by: vec!["k".into()],
            aggregates: vec![Aggregate {
                func: AggFunc::Sum,
                column: Some("v".into()),
            }],
            on_error: OnError::Fail,
            panes,
        }
    }

    fn run(q: &QuerySpec, data: &str) -> Result<TaskOutput, TaskFailure> {
        PanedQuery::new(q)?.run(&Source::Inline {
            name: "t".into(),
            first_line: 1,
            first_byte: 0,
            bytes: ByteBuf::from(data.as_bytes().to_vec()),
        })
    }

    fn keyed(out: &TaskOutput) -> Vec<(Vec<String>, u64, f64)> {
        let mut v: Vec<(Vec<String>, u64, f64)> = tally_protocol::Partial::from(&out.partial)
            .groups
            .iter()
            .map(|g| {
                (
                    g.key
                        .iter()
                        .map(|k| {
                            k.as_ref()
                                .map_or("-".into(), |b| String::from_utf8_lossy(b).into_owned())
                        })
                        .collect(),
                    g.rows,
                    g.values[0].sum(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn panes_and_closure_classes() {
        // Tumbling 10 s windows, lateness 2 s. The third record (t=5)
        // comes after t=13: watermark 11 closed window [0,10): class 1.
        let spec = PaneSpec {
            time_field: "ts".into(),
            pane_ms: 10_000,
            windows_per_pane: 1,
            lateness_ms: 2_000,
        };
        let q = query(RecordFormat::Delimited, Some(spec));
        let out = run(&q, "1,a,1\n13,a,2\n5,a,4\n\"9\",b,8\n").unwrap();
        assert_eq!(out.counters.records, 4);
        assert_eq!(out.counters.max_event_ms, Some(13_000));
        let s = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            keyed(&out),
            vec![
                (s(&["0", "0", "a"]), 1, 1.0),
                (s(&["0", "1", "a"]), 1, 4.0),
                (s(&["0", "1", "b"]), 1, 8.0),
                (s(&["1", "0", "a"]), 1, 2.0),
            ]
        );
    }

    #[test]
    fn ndjson_without_panes_and_errors() {
        let mut q = query(RecordFormat::Ndjson, None);
        q.group_by = vec!["u.k".into()];
        let out = run(
            &q,
            "{\"u\":{\"k\":\"x\"},\"v\":1.5}\n\n{\"v\":\"2\",\"u\":{\"k\":\"x\"}}\n{\"v\":null}\n",
        )
        .unwrap();
        let s = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(keyed(&out), vec![(s(&["-"]), 1, 0.0), (s(&["x"]), 2, 3.5)]);
        let e = run(&q, "{\"v\":1}\n{\"v\":oops\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Input);
        assert_eq!(e.location.and_then(|l| l.line), Some(2));
        let e = run(&q, "{\"v\":\"abc\"}\n").unwrap_err();
        assert!(e.message.contains("`abc` is not a number"), "{}", e.message);
        q.on_error = OnError::Skip;
        let out = run(&q, "{\"v\":1}\nnope\n{\"v\":\"x\"}\n").unwrap();
        assert_eq!((out.counters.records, out.counters.bad_records), (1, 2));
    }

    #[test]
    fn bad_times_are_input_errors() {
        let spec = PaneSpec {
            time_field: "ts".into(),
            pane_ms: 1000,
            windows_per_pane: 2,
            lateness_ms: 0,
        };
        let q = query(RecordFormat::Ndjson, Some(spec));
        let e = run(&q, "{\"ts\":\"yesterday\",\"v\":1}\n").unwrap_err();
        assert!(e.message.contains("yesterday"), "{}", e.message);
        let out = run(
            &q,
            "{\"ts\":\"1970-01-01T00:00:01.5Z\",\"k\":\"a\",\"v\":1}\n",
        )
        .unwrap();
        assert_eq!(out.counters.max_event_ms, Some(1500));
    }
}
