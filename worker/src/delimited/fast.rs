//! A specialised path for the commonest shape of all: quote-free records of
//! exactly `key<delim>value\n`, one key column, one value column, the value
//! a short decimal with one fractional digit (`-12.3`, `4.0`). This is the
//! One Billion Row Challenge shape, and the shape of most sensor logs.
//!
//! Why hand-written: no crate offers a fused "find delimiter, parse a
//! fixed-point decimal, group" loop, and generic building blocks (memchr per
//! field, a general hash map, a general number parser) cost several times
//! more per record on short records. The techniques are the ones the fastest
//! 1BRC entries use: a SWAR (8 bytes at a time) delimiter search, a
//! branch-free parse of the value from one 8-byte word (after Quan Anh Mai),
//! and an open-addressing table keyed by the borrowed key bytes with integer
//! accumulators.
//!
//! Every record that does not fit exactly (an empty key or value, another
//! number form, CRLF, extra fields, a missing delimiter, the last bytes of
//! the mapping) goes to the general path, record by record, so results are
//! identical; the two tables are merged at the end of the task.

use super::table::hash_bytes;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Reads 8 bytes at `at`; the caller guarantees `at + 8 <= data.len()`.
#[inline(always)]
fn word_at(data: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(b) = data.get(at..at + 8) {
        w.copy_from_slice(b);
    }
    u64::from_le_bytes(w)
}

/// Bytes of `w` equal to the byte repeated in `pattern`, as high bits; the
/// lowest set bit is exact.
#[inline(always)]
fn matches(w: u64, pattern: u64) -> u64 {
    let x = w ^ pattern;
    x.wrapping_sub(LO) & !x & HI
}

/// Parses `-?d?d.d\n` from the first bytes of `word` (little-endian).
/// Returns the value in tenths and the bytes it took, newline included.
#[inline(always)]
pub(crate) fn parse_tenths(word: u64) -> Option<(i64, usize)> {
    // Digits (0x30..0x39) have bit 4 set; '.' (0x2E) does not. The first
    // byte among 1..=3 without it is the decimal point.
    let dot_bit = (!word & 0x1010_1000).trailing_zeros();
    if dot_bit > 28 {
        return None;
    }
    let d = (dot_bit >> 3) as usize; // byte index of '.': 1, 2 or 3
    let neg = (word & 0xFF) == u64::from(b'-');
    let int_digits = d - usize::from(neg);
    if !(1..=2).contains(&int_digits) {
        return None;
    }
    let sh = 8 * d as u32;
    let sign_mask = if neg { 0xFF } else { 0 };
    // The fixed bytes: '.', the newline two bytes later, the sign.
    let mask = (0xFFu64 << sh) | (0xFFu64 << (sh + 16)) | sign_mask;
    let expect =
        (u64::from(b'.') << sh) | (u64::from(b'\n') << (sh + 16)) | (u64::from(b'-') & sign_mask);
    if word & mask != expect {
        return None;
    }
    // The digit bytes: high nibble 3, low nibble at most 9.
    let digits_mask = (((1u64 << sh) - 1) & !sign_mask) | (0xFFu64 << (sh + 8));
    if word & digits_mask & 0xF0F0_F0F0_F0F0_F0F0 != 0x3030_3030_3030_3030 & digits_mask {
        return None;
    }
    let low = word & digits_mask & 0x0F0F_0F0F_0F0F_0F0F;
    if (low + (0x0606_0606_0606_0606 & digits_mask)) & 0xF0F0_F0F0_F0F0_F0F0 != 0 {
        return None;
    }
    // Align the digits to bytes 1, 2 and 4, and combine them with one
    // multiplication: 100*a + 10*b + c lands in bits 32..42.
    let aligned = ((word & !sign_mask) << (28 - dot_bit)) & 0x0F_000F_0F00;
    let abs = (aligned.wrapping_mul(0x640A_0001) >> 32) & 0x3FF;
    let signed = -i64::from(neg);
    Some(((abs as i64 ^ signed) - signed, d + 3))
}

/// One group of the fast table: key bytes in the arena, integer sums of
/// the values in tenths.
struct Entry {
    hash: u64,
    key_start: usize,
    key_len: usize,
    count: u64,
    sum: i64,
    sum_sq: i64,
    min: i64,
    max: i64,
}

/// An open-addressing table (linear probing, power-of-two size, at most
/// half full) of [`Entry`]s.
pub(crate) struct FastTable {
    slots: Vec<u32>,
    entries: Vec<Entry>,
    arena: Vec<u8>,
    /// Records added.
    pub(crate) records: u64,
}

/// A merged group: key bytes, count, sum, sum of squares, min, max (tenths).
pub(crate) struct FastGroup<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) count: u64,
    pub(crate) sum: i64,
    pub(crate) sum_sq: i64,
    pub(crate) min: i64,
    pub(crate) max: i64,
}

impl FastTable {
    pub(crate) fn new() -> Self {
        FastTable {
            slots: vec![0; 1024],
            entries: Vec::new(),
            arena: Vec::new(),
            records: 0,
        }
    }

    #[inline(always)]
    fn add(&mut self, key: &[u8], value: i64) {
        let hash = hash_bytes(key);
        let mask = self.slots.len() - 1;
        let mut i = (hash as usize) & mask;
        loop {
            let slot = self.slots.get(i).copied().unwrap_or(0);
            if slot == 0 {
                self.insert(i, hash, key, value);
                return;
            }
            let idx = slot as usize - 1;
            if let Some(e) = self.entries.get_mut(idx) {
                if e.hash == hash
                    && self.arena.get(e.key_start..e.key_start + e.key_len) == Some(key)
                {
                    e.count += 1;
                    e.sum += value;
                    e.sum_sq += value * value;
                    e.min = e.min.min(value);
                    e.max = e.max.max(value);
                    self.records += 1;
                    return;
                }
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    fn insert(&mut self, slot: usize, hash: u64, key: &[u8], value: i64) {
        let idx = self.entries.len();
        self.entries.push(Entry {
            hash,
            key_start: self.arena.len(),
            key_len: key.len(),
            count: 1,
            sum: value,
            sum_sq: value * value,
            min: value,
            max: value,
        });
        self.arena.extend_from_slice(key);
        self.records += 1;
        match u32::try_from(idx + 1) {
            Ok(v) => {
                if let Some(s) = self.slots.get_mut(slot) {
                    *s = v;
                }
            }
            Err(_) => unreachable_groups(),
        }
        if self.entries.len() * 2 > self.slots.len() {
            self.grow();
        }
    }

    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        let mask = size - 1;
        let mut slots = vec![0u32; size];
        for (idx, e) in self.entries.iter().enumerate() {
            let mut i = (e.hash as usize) & mask;
            while slots.get(i).is_some_and(|&s| s != 0) {
                i = (i + 1) & mask;
            }
            if let Some(s) = slots.get_mut(i) {
                *s = idx as u32 + 1;
            }
        }
        self.slots = slots;
    }

    /// The groups, in insertion order.
    pub(crate) fn groups(&self) -> impl Iterator<Item = FastGroup<'_>> {
        self.entries.iter().map(|e| FastGroup {
            key: self
                .arena
                .get(e.key_start..e.key_start + e.key_len)
                .unwrap_or_default(),
            count: e.count,
            sum: e.sum,
            sum_sq: e.sum_sq,
            min: e.min,
            max: e.max,
        })
    }
}

/// More than 4 billion groups in one task cannot be stored; the table's
/// growth (it doubles while at most half full) keeps this unreachable for
/// any chunk that fits in memory.
#[cold]
fn unreachable_groups() {
    log::error!("fast table: more than u32::MAX groups in one task");
}

/// Aggregates the records starting in `[first, end)` of `data`: those of the
/// fast shape into `table`, each other one through `general(pos)`, which
/// handles the single record (or blank line) at `pos` and returns where the
/// next one starts. Returns where the last record ended.
#[inline(never)]
pub(crate) fn scan<E>(
    data: &[u8],
    first: usize,
    end: usize,
    delimiter: u8,
    table: &mut FastTable,
    mut general: impl FnMut(usize) -> Result<usize, E>,
) -> Result<usize, E> {
    let delim = LO * u64::from(delimiter);
    let newline = LO * u64::from(b'\n');
    // 8-byte reads must stay inside the data: the last records of the
    // mapping take the general path.
    let safe_end = data.len().saturating_sub(24);
    let mut pos = first;
    while pos < end {
        if pos < safe_end {
            // The delimiter, unless a newline comes first.
            let mut at = pos;
            let found = loop {
                if at + 8 > safe_end {
                    break None;
                }
                let w = word_at(data, at);
                let hits = matches(w, delim) | matches(w, newline);
                if hits != 0 {
                    break Some(at + (hits.trailing_zeros() / 8) as usize);
                }
                at += 8;
            };
            if let Some(p) = found {
                if p > pos && data.get(p) == Some(&delimiter) {
                    if let Some((value, used)) = parse_tenths(word_at(data, p + 1)) {
                        let key = data.get(pos..p).unwrap_or_default();
                        table.add(key, value);
                        pos = p + 1 + used;
                        continue;
                    }
                }
            }
        }
        pos = general(pos)?;
    }
    Ok(pos.min(data.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(s: &[u8]) -> u64 {
        let mut w = [b'x'; 8];
        w[..s.len()].copy_from_slice(s);
        u64::from_le_bytes(w)
    }

    #[test]
    fn parses_every_one_decimal_value() {
        for v in -999i64..=999 {
            let text = format!(
                "{}{}.{}\n",
                if v < 0 { "-" } else { "" },
                v.abs() / 10,
                v.abs() % 10
            );
            let got = parse_tenths(word(text.as_bytes()));
            assert_eq!(got, Some((v, text.len())), "{text:?}");
        }
    }

    #[test]
    fn refuses_other_shapes() {
        for s in [
            &b"12\n"[..],
            b"1.23\n",
            b"123.4\n",
            b"-.5\n",
            b".5\n",
            b"1.5\r\n",
            b"1.5;x\n",
            b"a.5\n",
            b"1.b\n",
            b"--1.5\n",
            b"+1.5\n",
            b"1:5\n",
            b"\n",
            b"1.5",
        ] {
            assert_eq!(
                parse_tenths(word(s)),
                None,
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
    }
}
