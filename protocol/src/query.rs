//! The query a coordinator prepares on every worker before sending tasks.

use serde::{Deserialize, Serialize};

/// A grouped aggregate query over records of delimited text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuerySpec {
    /// Name of the worker kernel that runs it (`"delimited"` for the
    /// built-in one).
    pub kernel: String,
    /// How records and fields are found in the bytes.
    pub input: InputFormat,
    /// Key columns, by name; empty for one global group.
    pub group_by: Vec<String>,
    /// Aggregates, in output order.
    pub aggregates: Vec<Aggregate>,
    /// What a worker does with a record whose value does not parse.
    pub on_error: OnError,
    /// Event-time panes (streams): when set, the worker reads each record's
    /// time, and answers with one group per pane, closure class and key
    /// (see [`PaneSpec`]). Absent on the wire when `None`, so version 1
    /// frames are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panes: Option<PaneSpec>,
}

/// How a stream's records fall into panes (slices of event time) for
/// tumbling and sliding windows.
///
/// A window of `windows_per_pane` panes starts at every pane boundary
/// (tumbling windows have one pane per window). With the pane index
/// `p = floor(time_ms / pane_ms)`, pane `p` belongs to the windows that
/// end at `(p + 1 + j) * pane_ms`, `j` in `0..windows_per_pane`.
///
/// The worker answers with groups whose key starts with two extra entries,
/// both decimal ASCII: the pane index `p`, and the closure class `k`: how
/// many of the pane's windows were already closed, for this record, by the
/// watermark the records *before it in the same task* establish (the
/// largest time seen in the task minus `lateness_ms`). `k ==
/// windows_per_pane` means the record is late for every window it belongs
/// to. The coordinator combines `k` with the watermark of the earlier
/// tasks, so lateness is judged record by record whatever the batching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaneSpec {
    /// The field (column name, or dotted path in NDJSON) holding the event
    /// time: epoch seconds or milliseconds (numbers; values below 10^11 are
    /// seconds) or RFC 3339 text.
    pub time_field: String,
    /// Pane length in milliseconds (the window slide), > 0.
    pub pane_ms: u64,
    /// Panes per window (window length / slide), >= 1.
    pub windows_per_pane: u32,
    /// Allowed lateness in milliseconds: the watermark trails the largest
    /// event time by this much.
    pub lateness_ms: u64,
}

/// The shape of delimited text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFormat {
    /// Field delimiter byte (`b','`, `b';'`, `b'\t'`, ...).
    pub delimiter: u8,
    /// Quote byte for RFC 4180 quoting; `None` reads quotes as data.
    pub quote: Option<u8>,
    /// Whether the first record of each file is a header naming the columns.
    pub header: bool,
    /// Column names when there is no header (ignored when `header`).
    pub columns: Vec<String>,
    /// How records are written. Absent on the wire for
    /// [`RecordFormat::Delimited`], so version 1 frames are unchanged.
    #[serde(default, skip_serializing_if = "RecordFormat::is_delimited")]
    pub format: RecordFormat,
}

impl InputFormat {
    /// NDJSON records: the fields that only delimited text uses at their
    /// neutral values (`,`, no quote, no header, no column list).
    pub fn ndjson() -> Self {
        InputFormat {
            delimiter: b',',
            quote: None,
            header: false,
            columns: Vec::new(),
            format: RecordFormat::Ndjson,
        }
    }
}

/// The record syntax of an input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordFormat {
    /// Delimited text / CSV: fields by position, named by a header or by
    /// [`InputFormat::columns`].
    #[default]
    Delimited,
    /// One JSON object per line; columns are field names, nested fields
    /// by a dotted path (`req.latency_ms`). `delimiter`, `quote`, `header`
    /// and `columns` are ignored.
    Ndjson,
}

impl RecordFormat {
    /// Whether this is [`RecordFormat::Delimited`] (the wire default).
    pub fn is_delimited(&self) -> bool {
        *self == RecordFormat::Delimited
    }
}

/// What to do with a record whose value does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Fail the task, naming file and line.
    Fail,
    /// Count the record as bad, leave it out, and go on.
    Skip,
}

/// One aggregate of the query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Aggregate {
    /// The function.
    pub func: AggFunc,
    /// The value column; `None` only for `count` (rows in the group).
    pub column: Option<String>,
}

/// Aggregate functions. All of them are computed from a [`crate::NumState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFunc {
    /// Rows (no column) or non-null values (with a column).
    Count,
    /// Sum of non-null values.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Arithmetic mean.
    Mean,
    /// Sample variance (n - 1).
    Var,
    /// Sample standard deviation (n - 1).
    Stddev,
}

impl AggFunc {
    /// The function's name as written in a query.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Mean => "mean",
            AggFunc::Var => "var",
            AggFunc::Stddev => "stddev",
        }
    }

    /// Parses a function name (`avg` is `mean`, `std` is `stddev`).
    pub fn parse(name: &str) -> Option<AggFunc> {
        Some(match name.to_ascii_lowercase().as_str() {
            "count" => AggFunc::Count,
            "sum" => AggFunc::Sum,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "mean" | "avg" => AggFunc::Mean,
            "var" | "variance" => AggFunc::Var,
            "stddev" | "std" => AggFunc::Stddev,
            _ => return None,
        })
    }
}

impl Aggregate {
    /// The output column title: `count`, `mean(latency_ms)`.
    pub fn title(&self) -> String {
        match &self.column {
            None => self.func.name().to_string(),
            Some(c) => format!("{}({c})", self.func.name()),
        }
    }
}

impl QuerySpec {
    /// The One Billion Row Challenge query, tally's yardstick: min, mean
    /// and max of `temp` by `station` over `station;temp` lines (no header,
    /// no quoting), with the built-in `delimited` kernel.
    pub fn one_brc() -> Self {
        QuerySpec {
            kernel: "delimited".into(),
            input: InputFormat {
                delimiter: b';',
                quote: None,
                header: false,
                columns: vec!["station".into(), "temp".into()],
                format: RecordFormat::Delimited,
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

    /// The distinct value columns, in order of first use. A group's
    /// [`crate::GroupState::values`] holds one state per entry, in this order.
    pub fn value_columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for a in &self.aggregates {
            if let Some(c) = &a.column {
                if !out.contains(&c.as_str()) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// Whether the sum of squared deviations must be kept for `column`
    /// (only `var` and `stddev` need it; it costs a multiply per value).
    pub fn needs_m2(&self, column: &str) -> bool {
        self.aggregates.iter().any(|a| {
            matches!(a.func, AggFunc::Var | AggFunc::Stddev) && a.column.as_deref() == Some(column)
        })
    }
}
