//! Prints merged groups as a table, CSV, JSON, NDJSON or the 1BRC line.
//!
//! Numbers print the same for any worker count because the states they
//! come from are merged in chunk order. Exact sums print as exact decimals;
//! other values as the shortest decimal that reads back as the same `f64`.

use std::io::{self, Write};

use tally_protocol::{AggFunc, GroupState, NumState, QuerySpec};

use crate::config::OutputFormat;

/// One printed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value (no non-null input, or variance of one value).
    Null,
    /// A count.
    Count(u64),
    /// An exact decimal: `mantissa / 10^scale`.
    Exact(i64, u8),
    /// Any other number.
    Float(f64),
}

impl Cell {
    /// The cell as text; `None` for null.
    pub fn text(&self) -> Option<String> {
        match *self {
            Cell::Null => None,
            Cell::Count(n) => Some(n.to_string()),
            Cell::Exact(m, s) => Some(format_exact(m, s)),
            Cell::Float(f) => Some(format_float(f)),
        }
    }

    fn is_numeric(&self) -> bool {
        !matches!(self, Cell::Null)
    }
}

/// `12345, 2` -> `123.45`; `-5, 1` -> `-0.5`.
pub fn format_exact(mantissa: i64, scale: u8) -> String {
    let neg = mantissa < 0;
    let digits = mantissa.unsigned_abs().to_string();
    let scale = scale as usize;
    let mut s = String::with_capacity(digits.len() + 3);
    if neg {
        s.push('-');
    }
    if scale == 0 {
        s.push_str(&digits);
    } else if digits.len() > scale {
        s.push_str(&digits[..digits.len() - scale]);
        s.push('.');
        s.push_str(&digits[digits.len() - scale..]);
    } else {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', scale - digits.len()));
        s.push_str(&digits);
    }
    s
}

/// Shortest text that reads back as `f`; `-0` prints as `0`.
pub fn format_float(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    format!("{f}")
}

/// The value of one aggregate for one group.
pub fn cell(func: AggFunc, rows: u64, state: Option<&NumState>) -> Cell {
    let Some(s) = state else {
        return match func {
            AggFunc::Count => Cell::Count(rows),
            _ => Cell::Null,
        };
    };
    let float = |v: Option<f64>| v.map_or(Cell::Null, Cell::Float);
    match func {
        AggFunc::Count => Cell::Count(s.count),
        AggFunc::Sum => match s.exact_sum() {
            _ if s.count == 0 => Cell::Null,
            Some((m, sc)) => Cell::Exact(m, sc),
            None => Cell::Float(s.sum()),
        },
        AggFunc::Min => float(s.min()),
        AggFunc::Max => float(s.max()),
        AggFunc::Mean => float(s.mean()),
        AggFunc::Var => float(s.var()),
        AggFunc::Stddev => float(s.stddev()),
    }
}

/// The result of a query, ready to print.
pub struct ResultSet<'a> {
    query: &'a QuerySpec,
    groups: &'a [GroupState],
    /// For each aggregate, the index of its value column's state.
    value_index: Vec<Option<usize>>,
}

impl<'a> ResultSet<'a> {
    /// `groups` must be sorted as they should print.
    pub fn new(query: &'a QuerySpec, groups: &'a [GroupState]) -> Self {
        let columns = query.value_columns();
        let value_index = query
            .aggregates
            .iter()
            .map(|a| {
                a.column
                    .as_deref()
                    .and_then(|c| columns.iter().position(|v| *v == c))
            })
            .collect();
        ResultSet {
            query,
            groups,
            value_index,
        }
    }

    /// Column titles: keys, then aggregates.
    pub fn titles(&self) -> Vec<String> {
        let mut t: Vec<String> = self.query.group_by.clone();
        t.extend(self.query.aggregates.iter().map(|a| a.title()));
        t
    }

    /// The aggregate cells of one group.
    pub fn cells(&self, g: &GroupState) -> Vec<Cell> {
        self.query
            .aggregates
            .iter()
            .zip(&self.value_index)
            .map(|(a, idx)| cell(a.func, g.rows, idx.and_then(|i| g.values.get(i))))
            .collect()
    }

    /// Writes the result in `format`.
    pub fn write(&self, out: &mut dyn Write, format: OutputFormat) -> io::Result<()> {
        match format {
            OutputFormat::Table => self.write_table(out),
            OutputFormat::Csv => self.write_csv(out),
            OutputFormat::Json => self.write_json(out, false),
            OutputFormat::Ndjson => self.write_json(out, true),
            OutputFormat::OneBrc => self.write_1brc(out),
        }
    }

    fn write_table(&self, out: &mut dyn Write) -> io::Result<()> {
        let titles = self.titles();
        let nkeys = self.query.group_by.len();
        let mut rows: Vec<Vec<(Vec<u8>, bool)>> = Vec::with_capacity(self.groups.len());
        for g in self.groups {
            let mut row: Vec<(Vec<u8>, bool)> = g
                .key
                .iter()
                .map(|k| (k.as_ref().map(|b| b.to_vec()).unwrap_or_default(), false))
                .collect();
            for c in self.cells(g) {
                let numeric = c.is_numeric();
                row.push((c.text().unwrap_or_default().into_bytes(), numeric));
            }
            rows.push(row);
        }
        let width = |b: &[u8]| String::from_utf8_lossy(b).chars().count();
        let mut widths: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
        for row in &rows {
            for (w, (cell, _)) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        for (i, t) in titles.iter().enumerate() {
            if i > 0 {
                out.write_all(b"  ")?;
            }
            let pad = widths[i] - t.chars().count();
            if i >= nkeys {
                write!(out, "{}{t}", " ".repeat(pad))?;
            } else if i + 1 == titles.len() {
                write!(out, "{t}")?;
            } else {
                write!(out, "{t}{}", " ".repeat(pad))?;
            }
        }
        out.write_all(b"\n")?;
        for row in &rows {
            for (i, (cell, numeric)) in row.iter().enumerate() {
                if i > 0 {
                    out.write_all(b"  ")?;
                }
                let pad = " ".repeat(widths[i] - width(cell));
                if *numeric || i >= nkeys {
                    out.write_all(pad.as_bytes())?;
                    out.write_all(cell)?;
                } else {
                    out.write_all(cell)?;
                    if i + 1 < row.len() {
                        out.write_all(pad.as_bytes())?;
                    }
                }
            }
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn write_csv(&self, out: &mut dyn Write) -> io::Result<()> {
        let titles = self.titles();
        for (i, t) in titles.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            write_csv_field(out, t.as_bytes())?;
        }
        out.write_all(b"\n")?;
        for g in self.groups {
            let mut first = true;
            for k in &g.key {
                if !first {
                    out.write_all(b",")?;
                }
                first = false;
                write_csv_field(out, k.as_deref().map(|b| &b[..]).unwrap_or(b""))?;
            }
            for c in self.cells(g) {
                if !first {
                    out.write_all(b",")?;
                }
                first = false;
                out.write_all(c.text().unwrap_or_default().as_bytes())?;
            }
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn write_json(&self, out: &mut dyn Write, lines: bool) -> io::Result<()> {
        let titles = self.titles();
        if !lines {
            out.write_all(b"[")?;
        }
        for (n, g) in self.groups.iter().enumerate() {
            if !lines {
                out.write_all(if n == 0 { b"\n  " } else { b",\n  " })?;
            }
            out.write_all(b"{")?;
            let mut i = 0;
            for k in &g.key {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_json_string(out, &titles[i])?;
                out.write_all(b":")?;
                match k {
                    Some(b) => write_json_string(out, &String::from_utf8_lossy(b))?,
                    None => out.write_all(b"null")?,
                }
                i += 1;
            }
            for c in self.cells(g) {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_json_string(out, &titles[i])?;
                out.write_all(b":")?;
                out.write_all(c.text().as_deref().unwrap_or("null").as_bytes())?;
                i += 1;
            }
            out.write_all(b"}")?;
            if lines {
                out.write_all(b"\n")?;
            }
        }
        if !lines {
            out.write_all(if self.groups.is_empty() {
                b"]\n"
            } else {
                b"\n]\n"
            })?;
        }
        Ok(())
    }

    /// `{name=min/mean/max, ...}`, each rounded to one decimal, half toward
    /// positive infinity, the mean from the exact sum.
    fn write_1brc(&self, out: &mut dyn Write) -> io::Result<()> {
        let find = |f: AggFunc| self.query.aggregates.iter().position(|a| a.func == f);
        let (Some(imin), Some(imean), Some(imax)) =
            (find(AggFunc::Min), find(AggFunc::Mean), find(AggFunc::Max))
        else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--format 1brc needs min, mean and max of one column",
            ));
        };
        out.write_all(b"{")?;
        for (n, g) in self.groups.iter().enumerate() {
            if n > 0 {
                out.write_all(b", ")?;
            }
            if let Some(Some(k)) = g.key.first() {
                out.write_all(k)?;
            }
            out.write_all(b"=")?;
            let state = |i: usize| self.value_index[i].and_then(|v| g.values.get(v));
            let min = state(imin).and_then(NumState::min).map(round_tenths_f64);
            let mean = state(imean).and_then(mean_tenths);
            let max = state(imax).and_then(NumState::max).map(round_tenths_f64);
            let text = |t: Option<i128>| t.map(format_tenths).unwrap_or_else(|| "null".into());
            write!(out, "{}/{}/{}", text(min), text(mean), text(max))?;
        }
        out.write_all(b"}\n")
    }
}

/// `x` in tenths, rounded half toward positive infinity.
fn round_tenths_f64(x: f64) -> i128 {
    (x * 10.0 + 0.5).floor() as i128
}

/// The mean in tenths, rounded half toward positive infinity, from the exact
/// sum when there is one.
fn mean_tenths(s: &NumState) -> Option<i128> {
    if s.count == 0 {
        return None;
    }
    if let Some((m, scale)) = s.exact_sum() {
        // mean*10 = 10*m / (count * 10^scale); floor(mean*10 + 1/2)
        //         = floor((20*m + d) / (2*d)) with d = count * 10^scale.
        let d = i128::from(s.count).checked_mul(10i128.pow(u32::from(scale)))?;
        let num = 20 * i128::from(m) + d;
        return Some(num.div_euclid(2 * d));
    }
    s.mean().map(round_tenths_f64)
}

/// Tenths as `-12.3`; zero prints as `0.0`.
fn format_tenths(t: i128) -> String {
    let sign = if t < 0 { "-" } else { "" };
    let a = t.unsigned_abs();
    format!("{sign}{}.{}", a / 10, a % 10)
}

fn write_csv_field(out: &mut dyn Write, field: &[u8]) -> io::Result<()> {
    let needs_quotes = field
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if !needs_quotes {
        return out.write_all(field);
    }
    out.write_all(b"\"")?;
    for part in field.split(|&b| b == b'"').enumerate() {
        if part.0 > 0 {
            out.write_all(b"\"\"")?;
        }
        out.write_all(part.1)?;
    }
    out.write_all(b"\"")
}

fn write_json_string(out: &mut dyn Write, s: &str) -> io::Result<()> {
    let text = serde_json::to_string(s).map_err(io::Error::other)?;
    out.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_decimals_print_exactly() {
        assert_eq!(format_exact(12345, 2), "123.45");
        assert_eq!(format_exact(-5, 1), "-0.5");
        assert_eq!(format_exact(5, 3), "0.005");
        assert_eq!(format_exact(42, 0), "42");
    }

    #[test]
    fn onebrc_rounding_is_half_up_from_the_exact_sum() {
        // 1.25 -> 1.3; -1.25 -> -1.2; -0.05 -> 0.0; 0.05 -> 0.1
        let st = |sum: i128, n: u64| NumState::from_exact(n, sum, None, 1, 0, 0);
        assert_eq!(mean_tenths(&st(50, 4)), Some(13));
        assert_eq!(mean_tenths(&st(-50, 4)), Some(-12));
        assert_eq!(mean_tenths(&st(-1, 2)), Some(0));
        assert_eq!(mean_tenths(&st(1, 2)), Some(1));
        assert_eq!(format_tenths(0), "0.0");
        assert_eq!(format_tenths(-7), "-0.7");
        assert_eq!(round_tenths_f64(-99.9), -999);
        assert_eq!(round_tenths_f64(0.05), 1);
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        let mut out = Vec::new();
        write_csv_field(&mut out, b"a,\"b\"").unwrap();
        assert_eq!(out, b"\"a,\"\"b\"\"\"");
    }
}
