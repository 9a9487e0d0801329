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

use memchr::memchr;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Reads 8 bytes at `at` (little-endian); bytes past the end read as 0.
#[inline(always)]
fn word_at(data: &[u8], at: usize) -> u64 {
    match data.get(at..at + 8) {
        Some(b) => {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            u64::from_le_bytes(w)
        }
        None => 0,
    }
}

/// The first 16 bytes of a key of `len` bytes that starts with the words
/// `w0`, `w1`, zero-padded.
#[inline(always)]
fn head_words(w0: u64, w1: u64, len: usize) -> [u64; 2] {
    let bits = 8 * len.min(16) as u32;
    let keep = u128::MAX.checked_shr(128 - bits).unwrap_or(0);
    [w0 & keep as u64, w1 & (keep >> 64) as u64]
}

/// A multiply-fold hash of the head words, the length, and for long keys
/// the last 8 bytes.
#[inline(always)]
fn hash_head(key: &[u8], head: [u64; 2]) -> u64 {
    const K0: u64 = 0x243F_6A88_85A3_08D3;
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xD6E8_FEB8_6659_FD93;
    let mut b = head[1] ^ K1;
    if key.len() > 16 {
        let mut last = [0u8; 8];
        if let Some(t) = key.get(key.len() - 8..) {
            last.copy_from_slice(t);
        }
        b ^= u64::from_le_bytes(last).rotate_left(29);
    }
    let p = u128::from(head[0] ^ K0 ^ (key.len() as u64).wrapping_mul(K2)) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Bytes of `w` equal to the byte repeated in `pattern`, as high bits; the
/// lowest set bit is exact.
#[inline(always)]
fn matches(w: u64, pattern: u64) -> u64 {
    let x = w ^ pattern;
    x.wrapping_sub(LO) & !x & HI
}

/// Per (decimal point position, sign): the mask of the fixed bytes, their
/// expected value, and the mask of the digit bytes. Shapes that cannot be
/// (three integer digits, none) get a mask that never matches.
const SHAPES: [[u64; 3]; 8] = {
    let mut t = [[0, 1, 0]; 8];
    let mut d = 1;
    while d <= 3 {
        let mut neg = 0;
        while neg <= 1 {
            let int_digits = d - neg;
            if int_digits >= 1 && int_digits <= 2 {
                let sh = 8 * d as u32;
                let sign_mask: u64 = if neg == 1 { 0xFF } else { 0 };
                let mask = (0xFFu64 << sh) | (0xFFu64 << (sh + 16)) | sign_mask;
                let expect = ((b'.' as u64) << sh)
                    | ((b'\n' as u64) << (sh + 16))
                    | ((b'-' as u64) & sign_mask);
                let digits = (((1u64 << sh) - 1) & !sign_mask) | (0xFFu64 << (sh + 8));
                t[(d << 1) | neg] = [mask, expect, digits];
            }
            neg += 1;
        }
        d += 1;
    }
    t
};

/// The first `byte` in `data[from..to]`: a word at a time for the first
/// 32 bytes (fields and records are mostly short, where `memchr`'s set-up
/// costs more than the search), then `memchr`.
#[inline(always)]
pub(crate) fn find_byte(data: &[u8], from: usize, to: usize, byte: u8) -> Option<usize> {
    let pattern = LO * u64::from(byte);
    let to = to.min(data.len());
    let mut at = from;
    while at + 8 <= to && at < from + 32 {
        let hits = matches(word_at(data, at), pattern);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr(byte, data.get(at..to).unwrap_or_default()).map(|i| at + i)
}

/// Parses `-?d?d.d\n` from the first bytes of `word` (little-endian).
/// Returns the value in tenths and the bytes it took, newline included.
#[inline(always)]
pub(crate) fn parse_tenths(word: u64) -> Option<(i64, usize)> {
    // Digits (0x30..0x39) have bit 4 set; '.' (0x2E) does not. The first
    // byte among 1..=3 without it is the decimal point.
    let dot_bit = (!word & 0x1010_1000).trailing_zeros();
    let d = (dot_bit >> 3) as usize & 7; // byte index of '.': 1, 2 or 3 (4: none)
    let neg = (word & 0xFF) == u64::from(b'-');
    let [mask, expect, digits] = SHAPES[((d & 3) << 1) | usize::from(neg)];
    // One test for: the point where it should be, the newline after the
    // fraction digit, the sign; then every digit byte is 0x30..=0x39.
    let low = word & digits & 0x0F0F_0F0F_0F0F_0F0F;
    let bad_fixed = (word & mask) ^ expect;
    let bad_high = (word & digits & 0xF0F0_F0F0_F0F0_F0F0) ^ (0x3030_3030_3030_3030 & digits);
    let bad_low = (low + (0x0606_0606_0606_0606 & digits)) & 0xF0F0_F0F0_F0F0_F0F0;
    if (bad_fixed | bad_high | bad_low) != 0 || d > 3 {
        return None;
    }
    // Align the digits to bytes 1, 2 and 4, and combine them with one
    // multiplication: 100*a + 10*b + c lands in bits 32..42.
    let sign_mask = if neg { 0xFF } else { 0 };
    let aligned = ((word & !sign_mask) << (28 - dot_bit)) & 0x0F_000F_0F00;
    let abs = (aligned.wrapping_mul(0x640A_0001) >> 32) & 0x3FF;
    let signed = -i64::from(neg);
    Some(((abs as i64 ^ signed) - signed, d + 3))
}

/// One group of the fast table: key bytes in the arena, integer sums of
/// the values in tenths.
struct Entry {
    hash: u64,
    /// The key's first 16 bytes, zero-padded: most keys compare in two
    /// word comparisons.
    head: [u64; 2],
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
    fn add(&mut self, key: &[u8], head: [u64; 2], value: i64) {
        let hash = hash_head(key, head);
        let mask = self.slots.len() - 1;
        let mut i = (hash as usize) & mask;
        loop {
            let slot = self.slots.get(i).copied().unwrap_or(0);
            if slot == 0 {
                self.insert(i, hash, key, head, value);
                return;
            }
            let idx = slot as usize - 1;
            if let Some(e) = self.entries.get_mut(idx) {
                if e.head == head
                    && e.key_len == key.len()
                    && (key.len() <= 16
                        || self.arena.get(e.key_start..e.key_start + e.key_len) == Some(key))
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
    fn insert(&mut self, slot: usize, hash: u64, key: &[u8], head: [u64; 2], value: i64) {
        let idx = self.entries.len();
        self.entries.push(Entry {
            hash,
            head,
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

/// How a fast scan ended.
pub(crate) enum Scan {
    /// Every record was handled; the last one ended here.
    Done(usize),
    /// A quote byte was seen: the task must be read with quote rules.
    Quoted,
}

/// Aggregates the records starting in `[first, end)` of `data`: those of the
/// fast shape into `table`, each other one through `general(pos)`, which
/// handles the single record (or blank line) at `pos` and returns where the
/// next one starts. With `quote`, stops at the first record that holds a
/// quote byte (the fast shape cannot: its key is searched word by word for
/// it, its value is digits).
#[inline(never)]
pub(crate) fn scan<E>(
    data: &[u8],
    first: usize,
    end: usize,
    delimiter: u8,
    quote: Option<u8>,
    table: &mut FastTable,
    mut general: impl FnMut(usize) -> Result<usize, E>,
) -> Result<Scan, E> {
    let delim = LO * u64::from(delimiter);
    let newline = LO * u64::from(b'\n');
    // A quote pattern that can match nothing when there is no quote byte:
    // the newline pattern again.
    let quotes = quote.map_or(newline, |q| LO * u64::from(q));
    // 8-byte reads must stay inside the data: the last records of the
    // mapping take the general path.
    let safe_end = data.len().saturating_sub(24);
    let mut pos = first;
    while pos < end {
        if pos < safe_end {
            // The delimiter, unless a newline or a quote comes first: most
            // keys are shorter than 16 bytes, so look at two words at once.
            let (w0, w1) = (word_at(data, pos), word_at(data, pos + 8));
            let hits = |w: u64| matches(w, delim) | matches(w, newline) | matches(w, quotes);
            let both = u128::from(hits(w0)) | (u128::from(hits(w1)) << 64);
            let found = if both != 0 {
                Some(pos + (both.trailing_zeros() / 8) as usize)
            } else {
                let mut at = pos + 16;
                loop {
                    if at + 8 > safe_end {
                        break None;
                    }
                    let h = hits(word_at(data, at));
                    if h != 0 {
                        break Some(at + (h.trailing_zeros() / 8) as usize);
                    }
                    at += 8;
                }
            };
            if let Some(p) = found {
                let byte = data.get(p).copied();
                if p > pos && byte == Some(delimiter) {
                    if let Some((value, used)) = parse_tenths(word_at(data, p + 1)) {
                        let key = data.get(pos..p).unwrap_or_default();
                        table.add(key, head_words(w0, w1, p - pos), value);
                        pos = p + 1 + used;
                        continue;
                    }
                } else if byte.is_some() && byte == quote {
                    return Ok(Scan::Quoted);
                }
            }
        }
        if let Some(q) = quote {
            let rest = data.get(pos..).unwrap_or_default();
            let line = memchr(b'\n', rest).map_or(rest, |i| rest.get(..i).unwrap_or_default());
            if memchr(q, line).is_some() {
                return Ok(Scan::Quoted);
            }
        }
        pos = general(pos)?;
    }
    Ok(Scan::Done(pos.min(data.len())))
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
