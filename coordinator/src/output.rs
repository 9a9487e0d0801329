//! Prints merged groups as a table, CSV, JSON, NDJSON or the 1BRC line.
//!
//! Numbers print the same for any worker count because the states they
//! come from are merged in chunk order. Exact sums print as exact decimals;
//! other values as the shortest decimal that reads back as the same `f64`.

use std::io::{self, Write};

use tally_protocol::{AggFunc, GroupRef, GroupState, GroupTable, NumState, QuerySpec};

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
        let mut text = Vec::new();
        self.push_text(&mut text)
            .then(|| String::from_utf8_lossy(&text).into_owned())
    }

    /// Appends the cell's text to `out`; `false`, and nothing appended, for
    /// null.
    pub fn push_text(&self, out: &mut Vec<u8>) -> bool {
        match *self {
            Cell::Null => return false,
            Cell::Count(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            Cell::Exact(m, s) => push_exact(out, m, s),
            Cell::Float(f) => push_float(out, f),
        }
        true
    }

    fn is_numeric(&self) -> bool {
        !matches!(self, Cell::Null)
    }
}

/// `12345, 2` -> `123.45`; `-5, 1` -> `-0.5`.
pub fn format_exact(mantissa: i64, scale: u8) -> String {
    let mut text = Vec::new();
    push_exact(&mut text, mantissa, scale);
    String::from_utf8_lossy(&text).into_owned()
}

/// Appends [`format_exact`]'s text to `out`.
fn push_exact(out: &mut Vec<u8>, mantissa: i64, scale: u8) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(mantissa.unsigned_abs()).as_bytes();
    let scale = scale as usize;
    if mantissa < 0 {
        out.push(b'-');
    }
    match digits.len().checked_sub(scale) {
        _ if scale == 0 => out.extend_from_slice(digits),
        Some(whole) if whole > 0 => {
            let (int, frac) = digits.split_at(whole);
            out.extend_from_slice(int);
            out.push(b'.');
            out.extend_from_slice(frac);
        }
        _ => {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
            out.extend_from_slice(digits);
        }
    }
}

/// Shortest text that reads back as `f`; `-0` prints as `0`.
pub fn format_float(f: f64) -> String {
    let mut text = Vec::new();
    push_float(&mut text, f);
    String::from_utf8_lossy(&text).into_owned()
}

/// Appends [`format_float`]'s text to `out`.
fn push_float(out: &mut Vec<u8>, f: f64) {
    if f == 0.0 {
        out.push(b'0');
    } else {
        // Writing to a `Vec` cannot fail.
        let _ = write!(out, "{f}");
    }
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

/// The groups a [`ResultSet`] prints, in order.
enum Groups<'a> {
    /// Already in order.
    States(&'a [GroupState]),
    /// The groups of a table, in the order of their indices in `order`.
    Table {
        table: &'a GroupTable,
        order: Vec<u32>,
    },
}

/// The result of a query, ready to print.
pub struct ResultSet<'a> {
    query: &'a QuerySpec,
    groups: Groups<'a>,
    /// For each aggregate, the index of its value column's state.
    value_index: Vec<Option<usize>>,
}

impl<'a> ResultSet<'a> {
    /// `groups` must be sorted as they should print.
    pub fn new(query: &'a QuerySpec, groups: &'a [GroupState]) -> Self {
        Self::of(query, Groups::States(groups))
    }

    /// The groups of `table`, sorted by key: printed from the table, with
    /// no copy of each group (a query of millions of groups would spend
    /// more time allocating and freeing the copies than printing them).
    pub fn sorted(query: &'a QuerySpec, table: &'a GroupTable) -> Self {
        let order = table.sorted_order();
        Self::of(query, Groups::Table { table, order })
    }

    fn of(query: &'a QuerySpec, groups: Groups<'a>) -> Self {
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

    /// Groups to print.
    pub fn len(&self) -> usize {
        match &self.groups {
            Groups::States(states) => states.len(),
            Groups::Table { order, .. } => order.len(),
        }
    }

    /// Whether there is no group to print.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The groups, in the order they print.
    pub fn groups(&self) -> impl Iterator<Item = GroupRef<'_>> + '_ {
        (0..self.len()).filter_map(move |n| match &self.groups {
            Groups::States(states) => states.get(n).map(GroupState::as_group_ref),
            Groups::Table { table, order } => table.group_in_order(order, n),
        })
    }

    /// Column titles: keys, then aggregates.
    pub fn titles(&self) -> Vec<String> {
        let mut t: Vec<String> = self.query.group_by.clone();
        t.extend(self.query.aggregates.iter().map(|a| a.title()));
        t
    }

    /// The aggregate cells of one group.
    pub fn cells(&self, g: GroupRef<'_>) -> Vec<Cell> {
        let mut cells = Vec::with_capacity(self.value_index.len());
        self.fill_cells(g, &mut cells);
        cells
    }

    /// Replaces `cells` with the aggregate cells of one group.
    fn fill_cells(&self, g: GroupRef<'_>, cells: &mut Vec<Cell>) {
        cells.clear();
        cells.extend(
            self.query
                .aggregates
                .iter()
                .zip(&self.value_index)
                .map(|(a, idx)| cell(a.func, g.rows, idx.and_then(|i| g.values.get(i)))),
        );
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
        let mut rows: Vec<Vec<(Vec<u8>, bool)>> = Vec::with_capacity(self.len());
        for g in self.groups() {
            let mut row: Vec<(Vec<u8>, bool)> = g
                .key_parts()
                .map(|k| (k.map(<[u8]>::to_vec).unwrap_or_default(), false))
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
        let mut line = Vec::new();
        for (i, t) in self.titles().iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            push_csv_field(&mut line, t.as_bytes());
        }
        line.push(b'\n');
        out.write_all(&line)?;
        let mut cells = Vec::new();
        for g in self.groups() {
            line.clear();
            let mut first = true;
            for k in g.key_parts() {
                if !first {
                    line.push(b',');
                }
                first = false;
                push_csv_field(&mut line, k.unwrap_or_default());
            }
            self.fill_cells(g, &mut cells);
            for c in &cells {
                if !first {
                    line.push(b',');
                }
                first = false;
                c.push_text(&mut line);
            }
            line.push(b'\n');
            out.write_all(&line)?;
        }
        Ok(())
    }

    fn write_json(&self, out: &mut dyn Write, lines: bool) -> io::Result<()> {
        // Each title once as a JSON string with its colon: `"name":`.
        let mut names = Vec::new();
        for t in self.titles() {
            let mut name = Vec::new();
            push_json_string(&mut name, &t)?;
            name.push(b':');
            names.push(name);
        }
        let name = |i: usize| names.get(i).map_or(&b"\"\":"[..], Vec::as_slice);
        if !lines {
            out.write_all(b"[")?;
        }
        let (mut line, mut cells) = (Vec::new(), Vec::new());
        for (n, g) in self.groups().enumerate() {
            line.clear();
            if !lines {
                line.extend_from_slice(if n == 0 { b"\n  " } else { b",\n  " });
            }
            line.push(b'{');
            let mut i = 0;
            for k in g.key_parts() {
                if i > 0 {
                    line.push(b',');
                }
                line.extend_from_slice(name(i));
                match k {
                    Some(b) => push_json_string(&mut line, &String::from_utf8_lossy(b))?,
                    None => line.extend_from_slice(b"null"),
                }
                i += 1;
            }
            self.fill_cells(g, &mut cells);
            for c in &cells {
                if i > 0 {
                    line.push(b',');
                }
                line.extend_from_slice(name(i));
                if !c.push_text(&mut line) {
                    line.extend_from_slice(b"null");
                }
                i += 1;
            }
            line.push(b'}');
            if lines {
                line.push(b'\n');
            }
            out.write_all(&line)?;
        }
        if !lines {
            out.write_all(if self.is_empty() { b"]\n" } else { b"\n]\n" })?;
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
        let mut line = Vec::new();
        for (n, g) in self.groups().enumerate() {
            line.clear();
            if n > 0 {
                line.extend_from_slice(b", ");
            }
            if let Some(Some(k)) = g.key_parts().next() {
                line.extend_from_slice(k);
            }
            line.push(b'=');
            let state = |i: usize| self.value_index[i].and_then(|v| g.values.get(v));
            let min = state(imin).and_then(NumState::min).map(round_tenths_f64);
            let mean = state(imean).and_then(mean_tenths);
            let max = state(imax).and_then(NumState::max).map(round_tenths_f64);
            for (i, t) in [min, mean, max].into_iter().enumerate() {
                if i > 0 {
                    line.push(b'/');
                }
                match t {
                    Some(t) => push_tenths(&mut line, t),
                    None => line.extend_from_slice(b"null"),
                }
            }
            out.write_all(&line)?;
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

/// Appends tenths as `-12.3`; zero prints as `0.0`.
fn push_tenths(out: &mut Vec<u8>, t: i128) {
    if t < 0 {
        out.push(b'-');
    }
    let a = t.unsigned_abs();
    out.extend_from_slice(itoa::Buffer::new().format(a / 10).as_bytes());
    out.push(b'.');
    // A digit: `a % 10` is below 10.
    out.push(b'0' + (a % 10) as u8);
}

/// Appends `field` to a CSV line, quoted when it holds a comma, a quote or
/// a line break.
fn push_csv_field(out: &mut Vec<u8>, field: &[u8]) {
    let needs_quotes = field
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if !needs_quotes {
        out.extend_from_slice(field);
        return;
    }
    out.push(b'"');
    for (i, part) in field.split(|&b| b == b'"').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\"\"");
        }
        out.extend_from_slice(part);
    }
    out.push(b'"');
}

/// Appends `s` as a JSON string.
fn push_json_string(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
    serde_json::to_writer(out, s).map_err(io::Error::other)
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
        let tenths = |t: i128| {
            let mut out = Vec::new();
            push_tenths(&mut out, t);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(tenths(0), "0.0");
        assert_eq!(tenths(-7), "-0.7");
        assert_eq!(tenths(-1234), "-123.4");
        assert_eq!(round_tenths_f64(-99.9), -999);
        assert_eq!(round_tenths_f64(0.05), 1);
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        let mut out = Vec::new();
        push_csv_field(&mut out, b"a,\"b\"");
        assert_eq!(out, b"\"a,\"\"b\"\"\"");
    }
}
