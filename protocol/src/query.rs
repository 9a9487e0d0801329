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
