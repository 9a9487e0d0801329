//! One split record at a time into the group table: parse the values, find
//! the group, accumulate. A record with a bad value changes nothing.

use tally_protocol::packed::KEY_PART_HEADER;
use tally_protocol::PackedPartial;

use super::accumulate::ValueAcc;
use super::columns::Columns;
use super::fast::FastTable;
use super::number::{parse_exact_at, parse_number_at, trim_spaces, Number};
use super::scan::Span;
use super::table::{encode_key, GroupTable, KeyShape};

/// Why a record was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadRecord {
    /// The record has `have` fields; the query needs more.
    TooFewFields {
        /// Fields the record has.
        have: usize,
    },
    /// Value column `value` (index into the value columns) holds `span`,
    /// which is not a number.
    NotANumber {
        /// Index into `QuerySpec::value_columns`.
        value: usize,
        /// The field.
        span: Span,
    },
}

/// Longest field quoted in an error message.
const QUOTED: usize = 60;

impl BadRecord {
    /// The message for a person. `base` is the buffer the record was split
    /// into; `key_names`/`value_names` and `columns` name the fields.
    pub(crate) fn message(
        &self,
        base: &[u8],
        columns: &Columns,
        key_names: &[String],
        value_names: &[&str],
    ) -> String {
        match *self {
            BadRecord::TooFewFields { have } => {
                let missing = columns
                    .key_fields
                    .iter()
                    .zip(key_names.iter().map(String::as_str))
                    .chain(columns.value_fields.iter().zip(value_names.iter().copied()))
                    .filter(|(&f, _)| f >= have)
                    .min_by_key(|(&f, _)| f);
                let plural = if have == 1 { "" } else { "s" };
                match missing {
                    Some((f, name)) => format!(
                        "line has {have} field{plural}, column `{name}` is field {}; is the delimiter right?",
                        f + 1
                    ),
                    None => format!("line has {have} field{plural}"),
                }
            }
            BadRecord::NotANumber { value, span } => {
                let field = base.get(span.0..span.1).unwrap_or_default();
                let shown = String::from_utf8_lossy(field.get(..QUOTED).unwrap_or(field));
                let more = if field.len() > QUOTED { "…" } else { "" };
                let name = value_names.get(value).copied().unwrap_or("?");
                format!("column `{name}`: `{shown}{more}` is not a number")
            }
        }
    }
}

/// Most value columns [`Aggregator::add_masked`] takes.
const MASKED_VALUES: usize = 4;

/// What [`Aggregator::add_masked`] needs of a query: one key column and at
/// most [`MASKED_VALUES`] value columns, all among a record's first 64
/// fields (the events-log shape: `ts,user,country,status,latency,bytes`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaskedPlan {
    /// Field numbers, each below 64.
    key: u8,
    values: [u8; MASKED_VALUES],
    squares: [bool; MASKED_VALUES],
    /// Value columns in use.
    n: usize,
    /// The last field wanted (below 64): a record needs this many
    /// delimiters.
    last: usize,
}

impl MaskedPlan {
    /// The plan for `columns` (`squares[v]`: value column `v` keeps
    /// squares), when they have the shape.
    pub(crate) fn new(columns: &Columns, squares: &[bool]) -> Option<MaskedPlan> {
        let [key] = columns.key_fields[..] else {
            return None;
        };
        let n = columns.value_fields.len();
        if n > MASKED_VALUES || squares.len() != n || !(1..=64).contains(&columns.wanted) {
            return None;
        }
        let mut plan = MaskedPlan {
            key: u8::try_from(key).ok()?,
            values: [0; MASKED_VALUES],
            squares: [false; MASKED_VALUES],
            n,
            last: columns.wanted - 1,
        };
        for (to, &from) in plan.values.iter_mut().zip(&columns.value_fields) {
            *to = u8::try_from(from).ok()?;
        }
        plan.squares.get_mut(..n)?.copy_from_slice(squares);
        Some(plan)
    }
}

/// Aggregates records into groups.
pub(crate) struct Aggregator<'c> {
    columns: &'c Columns,
    squares: &'c [bool],
    table: GroupTable,
    parsed: Vec<Option<Number>>,
    key: Vec<u8>,
    /// Records aggregated.
    pub(crate) records: u64,
}

impl<'c> Aggregator<'c> {
    /// An empty aggregate; `squares[v]`: keep squares for value column `v`.
    pub(crate) fn new(columns: &'c Columns, squares: &'c [bool]) -> Self {
        Self::with_table(columns, squares, None)
    }

    /// An empty aggregate in `table`, an empty table of an earlier task of
    /// the same query (see [`Aggregator::into_parts`]), or a new one.
    pub(crate) fn with_table(
        columns: &'c Columns,
        squares: &'c [bool],
        table: Option<GroupTable>,
    ) -> Self {
        let shape = match columns.key_fields.len() {
            0 => KeyShape::Global,
            1 => KeyShape::Single,
            _ => KeyShape::Multi,
        };
        Aggregator {
            columns,
            squares,
            table: table.unwrap_or_else(|| GroupTable::new(shape, columns.value_fields.len())),
            parsed: vec![None; columns.value_fields.len()],
            key: Vec::new(),
            records: 0,
        }
    }

    /// Adds one record whose fields are `base[spans[i]]`.
    #[inline(always)]
    pub(crate) fn add(&mut self, base: &[u8], spans: &[Span]) -> Result<(), BadRecord> {
        let columns = self.columns;
        if spans.len() < columns.wanted {
            return Err(BadRecord::TooFewFields { have: spans.len() });
        }
        let field = |i: usize| {
            spans
                .get(i)
                .and_then(|&(a, b)| base.get(a..b))
                .unwrap_or_default()
        };
        for (value, (&f, slot)) in columns
            .value_fields
            .iter()
            .zip(self.parsed.iter_mut())
            .enumerate()
        {
            let (a, b) = spans.get(f).copied().unwrap_or_default();
            *slot = match parse_number_at(base, a, b) {
                Some(n) => Some(n),
                // An empty or blank field is a null.
                None if trim_spaces(field(f)).is_empty() => None,
                None => {
                    return Err(BadRecord::NotANumber {
                        value,
                        span: (a, b),
                    })
                }
            };
        }
        let group = match columns.key_fields.as_slice() {
            [] => self.table.group(&[]),
            [k] => match spans.get(*k) {
                Some(&(a, b)) if b > a => self.table.group_at(base, a, b),
                _ => self.table.null_group(),
            },
            keys => {
                self.key.clear();
                for &k in keys {
                    encode_key(&mut self.key, field(k));
                }
                self.table.group(&self.key)
            }
        };
        let accs = self.table.row(group);
        for ((acc, value), &squares) in accs.iter_mut().zip(&self.parsed).zip(self.squares) {
            match *value {
                None => {}
                Some(Number::Exact { mantissa, scale }) => acc.push_exact(mantissa, scale, squares),
                Some(Number::Float(x)) => acc.push_f64(x),
            }
        }
        self.records += 1;
        Ok(())
    }

    /// Adds the record `data[pos..pos + line]` straight from its delimiter
    /// mask (see [`super::scan::RecordSink::masked`]) when every field the
    /// query wants is there, the key is not empty and every value is a
    /// short decimal: true, with the same effect as [`Aggregator::add`] on
    /// its spans. Otherwise false, with nothing changed, and the record
    /// goes the general way (nulls, other number forms, errors).
    ///
    /// The fields are found by taking the mask's bits in turn, with no
    /// span list, and the values go from the parser to the group's
    /// accumulators without an intermediate `Option` per value.
    #[inline(always)]
    pub(crate) fn add_masked(
        &mut self,
        plan: &MaskedPlan,
        data: &[u8],
        pos: usize,
        line: usize,
        delims: u64,
    ) -> bool {
        let last = plan.last & 63;
        // Field `f` is `bounds[f] + 1 .. bounds[f + 1]` from `pos` (offsets
        // below 64, so a byte each): `bounds[0]` is -1 (wrapping), the
        // others the delimiters' offsets, then the end of the last field
        // wanted, at the next delimiter or the line's end.
        let mut bounds = [u8::MAX; 65];
        let mut bits = delims;
        for b in bounds.iter_mut().skip(1).take(last) {
            *b = bits.trailing_zeros() as u8;
            bits &= bits.wrapping_sub(1);
        }
        let tail = if bits != 0 {
            bits.trailing_zeros() as usize
        } else {
            line
        };
        // Fewer fields than wanted is the general path's error to report:
        // with fewer delimiters, the last one taken is past the mask (64).
        // (The last field wanted would then also read as an empty range,
        // which every use refuses; this says so at the source.)
        if bounds[last] >= 64 && last > 0 {
            return false;
        }
        bounds[last + 1] = tail as u8;
        let field = |f: u8| {
            let f = usize::from(f & 63);
            (
                pos + usize::from(bounds[f].wrapping_add(1)),
                pos + usize::from(bounds[f + 1]),
            )
        };
        let n = plan.n.min(MASKED_VALUES);
        let mut parsed = [(0i64, 0u8); MASKED_VALUES];
        for (slot, &f) in parsed.iter_mut().zip(&plan.values).take(n) {
            let (a, b) = field(f);
            match parse_exact_at(data, a, b) {
                Some(exact) => *slot = exact,
                None => return false,
            }
        }
        let (a, b) = field(plan.key);
        if b <= a {
            return false;
        }
        let group = self.table.group_at(data, a, b);
        let accs = self.table.row(group);
        for ((acc, &(mantissa, scale)), &squares) in
            accs.iter_mut().zip(&parsed).zip(&plan.squares).take(n)
        {
            acc.push_exact(mantissa, scale, squares);
        }
        self.records += 1;
        true
    }

    /// Folds in the groups of the fast path (one value column, in tenths).
    pub(crate) fn merge_fast(&mut self, fast: &FastTable) {
        for g in fast.groups() {
            let group = self.table.group(g.key);
            self.table.add_rows(group, g.count);
            if let Some(acc) = self.table.accs(group).first_mut() {
                g.merge_into(acc);
            }
        }
        self.records += fast.records();
    }

    /// The groups of the fast path as a partial, built in the memory of
    /// `partial`, with their record count, when no record took the general
    /// path (else `Err` with `partial` unused): the same groups as
    /// [`Aggregator::merge_fast`] then [`Aggregator::into_partial`] give,
    /// without building the general table.
    pub(crate) fn fast_partial(
        &self,
        fast: &FastTable,
        mut partial: PackedPartial,
    ) -> Result<(PackedPartial, u64), PackedPartial> {
        if self.records != 0 || self.columns.value_fields.len() != 1 {
            return Err(partial);
        }
        let squares = self.squares.first().copied().unwrap_or(true);
        let mut records = 0;
        let (groups, key_bytes) = fast.size();
        partial.clear_with_capacity(groups, key_bytes + KEY_PART_HEADER * groups, groups);
        for g in fast.groups() {
            records += g.count;
            let mut acc = ValueAcc::default();
            g.merge_into(&mut acc);
            partial.push_group([Some(g.key)], g.count, [acc.finish(squares)]);
        }
        Ok((partial, records))
    }

    /// The groups as a partial.
    pub(crate) fn into_partial(self) -> PackedPartial {
        self.into_parts(PackedPartial::default()).0
    }

    /// The groups as a partial built in the memory of `into`, and the table
    /// emptied, to keep for the next task.
    pub(crate) fn into_parts(mut self, into: PackedPartial) -> (PackedPartial, GroupTable) {
        let partial = self.table.take_partial(self.squares, into);
        (partial, self.table)
    }

    /// The table emptied, to keep for the next task, when its groups are
    /// not wanted (they went another way, or the task starts again).
    pub(crate) fn into_table(mut self) -> GroupTable {
        self.table.clear();
        self.table
    }
}
