//! Window results as NDJSON: one object per (window, group), with
//! `window_start`, `window_end`, the key columns and the aggregates.

use std::io::{self, Write};

use tally_protocol::QuerySpec;

use super::WindowResult;
use crate::output::ResultSet;

/// How window bounds are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// `"2024-05-01T12:00:00.000Z"` (UTC).
    Rfc3339,
    /// Milliseconds since the epoch, a JSON number.
    EpochMs,
}

/// Writes window results as NDJSON lines.
pub struct NdjsonWriter {
    query: QuerySpec,
    titles: Vec<String>,
    time: TimeFormat,
}

impl NdjsonWriter {
    /// `titles`: one per aggregate (as the user wrote them); empty for the
    /// query's own titles (`mean(temp)`).
    pub fn new(query: QuerySpec, titles: Vec<String>, time: TimeFormat) -> Self {
        let titles = if titles.len() == query.aggregates.len() {
            titles
        } else {
            query.aggregates.iter().map(|a| a.title()).collect()
        };
        NdjsonWriter {
            query,
            titles,
            time,
        }
    }

    /// Writes one line per group of `w` (none for an empty window).
    pub fn write(&self, out: &mut dyn Write, w: &WindowResult) -> io::Result<()> {
        let set = ResultSet::new(&self.query, &w.groups);
        let mut line = Vec::with_capacity(128);
        for g in &w.groups {
            line.clear();
            line.extend_from_slice(b"{\"window_start\":");
            self.time_value(&mut line, w.start_ms);
            line.extend_from_slice(b",\"window_end\":");
            self.time_value(&mut line, w.end_ms);
            for (name, k) in self.query.group_by.iter().zip(&g.key) {
                line.push(b',');
                json_string(&mut line, name);
                line.push(b':');
                match k {
                    Some(b) => json_string(&mut line, &String::from_utf8_lossy(b)),
                    None => line.extend_from_slice(b"null"),
                }
            }
            for (title, cell) in self.titles.iter().zip(set.cells(g.as_group_ref())) {
                line.push(b',');
                json_string(&mut line, title);
                line.push(b':');
                match cell.text() {
                    Some(t) if t.parse::<f64>().is_ok_and(f64::is_finite) => {
                        line.extend_from_slice(t.as_bytes())
                    }
                    _ => line.extend_from_slice(b"null"),
                }
            }
            line.extend_from_slice(b"}\n");
            out.write_all(&line)?;
        }
        Ok(())
    }

    fn time_value(&self, line: &mut Vec<u8>, ms: i64) {
        match self.time {
            TimeFormat::EpochMs => line.extend_from_slice(ms.to_string().as_bytes()),
            TimeFormat::Rfc3339 => {
                line.push(b'"');
                line.extend_from_slice(rfc3339(ms).as_bytes());
                line.push(b'"');
            }
        }
    }
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    match serde_json::to_string(s) {
        Ok(t) => out.extend_from_slice(t.as_bytes()),
        Err(_) => out.extend_from_slice(b"null"),
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// (year, month, day) of days since 1970-01-01 (Howard Hinnant).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_bytes::ByteBuf;
    use tally_protocol::{AggFunc, Aggregate, GroupState, InputFormat, NumState, OnError};

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_250), "2023-11-14T22:13:20.250Z");
        assert_eq!(rfc3339(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn lines() {
        let query = QuerySpec {
            kernel: "delimited".into(),
            input: InputFormat {
                delimiter: b',',
                quote: None,
                header: false,
                columns: vec!["k".into(), "v".into()],
                format: Default::default(),
            },
            group_by: vec!["k".into()],
            aggregates: vec![
                Aggregate {
                    func: AggFunc::Count,
                    column: None,
                },
                Aggregate {
                    func: AggFunc::Mean,
                    column: Some("v".into()),
                },
                Aggregate {
                    func: AggFunc::Stddev,
                    column: Some("v".into()),
                },
            ],
            on_error: OnError::Fail,
            panes: None,
        };
        let w = WindowResult {
            start_ms: 0,
            end_ms: 1000,
            records: 2,
            groups: vec![
                GroupState {
                    key: vec![None],
                    rows: 1,
                    values: vec![NumState::default()],
                },
                GroupState {
                    key: vec![Some(ByteBuf::from(b"a\"b".to_vec()))],
                    rows: 1,
                    values: vec![NumState::from_exact(1, 25, None, 1, 25, 25)],
                },
            ],
        };
        let mut out = Vec::new();
        NdjsonWriter::new(query, vec![], TimeFormat::EpochMs)
            .write(&mut out, &w)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"window_start\":0,\"window_end\":1000,\"k\":null,\"count\":1,\"mean(v)\":null,\"stddev(v)\":null}\n\
             {\"window_start\":0,\"window_end\":1000,\"k\":\"a\\\"b\",\"count\":1,\"mean(v)\":2.5,\"stddev(v)\":null}\n"
        );
    }
}
