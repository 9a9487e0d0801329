//! A specialised path for the commonest shape of all: quote-free records of
//! exactly `key<delim>value\n`, one key column, one value column, the value
//! a short decimal with one fractional digit (`-12.3`, `4.0`). This is the
//! One Billion Row Challenge shape, and the shape of most sensor logs.
//!
//! Why hand-written: no crate offers a fused "find delimiter, parse a
//! fixed-point decimal, group" loop, and generic building blocks (memchr per
//! field, a general hash map, a general number parser) cost several times
//! more per record on short records. The techniques are the ones the fastest
//! 1BRC entries use: the key's end found in a 32-byte window with SSE2
//! compares (a word-at-a-time SWAR fallback elsewhere), a branch-free parse
//! of the value from one 8-byte word (after Quan Anh Mai), an
//! open-addressing table whose entries hold the first 32 key bytes as four
//! masked words (one cache line: most keys compare without touching the
//! arena) and integer accumulators, and two halves of the chunk read in one
//! loop so the processor overlaps their dependent loads.
//!
//! Every record that does not fit exactly (an empty key or value, another
//! number form, CRLF, extra fields, a missing delimiter, the last bytes of
//! the mapping) goes to the general path, record by record, so results are
//! identical; the two tables are merged at the end of the task.

use memchr::{memchr, memchr3};

use super::accumulate::ValueAcc;

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

/// Bytes of a key held in a table entry; longer keys also live in the
/// arena and compare their rest there.
const HEAD: usize = 32;

/// `KEEP[len][i]`: the mask of the bytes of word `i` that belong to a key of
/// `len` bytes (`len` ≤ [`HEAD`]).
const KEEP: [[u64; 4]; HEAD + 1] = {
    let mut t = [[0u64; 4]; HEAD + 1];
    let mut len = 0;
    while len <= HEAD {
        let mut i = 0;
        while i < 4 {
            let left = len.saturating_sub(8 * i);
            let bytes = if left > 8 { 8 } else { left };
            t[len][i] = if bytes == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * bytes)) - 1
            };
            i += 1;
        }
        len += 1;
    }
    t
};

/// A multiply-fold hash of a key's first 32 bytes (zero-padded) and its
/// length.
#[inline(always)]
fn hash_head(head: &[u64; 4], len: usize) -> u64 {
    const K0: u64 = 0x243F_6A88_85A3_08D3;
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xD6E8_FEB8_6659_FD93;
    let a = head[0] ^ head[2].rotate_left(23) ^ K0;
    let b = head[1] ^ head[3].rotate_left(41) ^ K1 ^ (len as u64).wrapping_mul(K2);
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// One group of the fast table. One cache line, so a lookup touches one
/// line: the key's first 32 bytes (zero-padded, most keys entire), its
/// length, and integer sums of the values in tenths.
#[repr(C, align(64))]
struct Entry {
    head: [u64; 4],
    key_len: u32,
    min: i16,
    max: i16,
    count: u64,
    sum: i64,
    sum_sq: i64,
}

/// Slots up to which the fast table stays at most an eighth full: a
/// lookup then almost always hits on its first probe, and the probe loop's
/// branch stays predictable (a table half full sent a quarter of Q1's
/// records round the loop again, at the cost of a mispredicted branch:
/// Q1 on one core 0.81 s at half full, 0.50 s at an eighth). Past this
/// size (4 MiB of slots, 131,072 groups) the table may fill to half, so
/// that ever new keys cost at most 8 bytes of slots each.
const SPARSE_SLOTS: usize = 1 << 20;

/// An open-addressing table (linear probing, power-of-two size, an eighth
/// to half full, see [`SPARSE_SLOTS`]) of indices into [`Entry`]s: the
/// slots stay small enough for the nearer caches with thousands of groups.
pub(crate) struct FastTable {
    slots: Vec<u32>,
    entries: Vec<Entry>,
    /// Per entry: its hash (for growing) and where its key starts in the
    /// arena.
    places: Vec<(u64, usize)>,
    arena: Vec<u8>,
    /// Whether the query needs sums of squares (variance).
    squares: bool,
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

impl FastGroup<'_> {
    /// Adds this group's values (tenths: scale 1) to `acc`.
    pub(crate) fn merge_into(&self, acc: &mut ValueAcc) {
        acc.merge_exact(
            self.count,
            i128::from(self.sum),
            i128::from(self.sum_sq),
            1,
            self.min,
            self.max,
        );
    }
}

/// Whether `a` and `b`, of the same length above [`HEAD`] bytes, agree
/// after their first [`HEAD`] bytes, compared a word at a time.
fn tail_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.get(HEAD..) == b.get(HEAD..)
}

impl FastTable {
    /// An empty table; `squares`: keep sums of squares.
    pub(crate) fn new(squares: bool) -> Self {
        FastTable {
            slots: vec![0; 8192],
            entries: Vec::new(),
            places: Vec::new(),
            arena: Vec::new(),
            squares,
        }
    }

    /// Empties every group, keeping the keys: a task on a chunk of the
    /// same file mostly meets the same keys, and finds them in place.
    pub(crate) fn reset(&mut self) {
        for e in &mut self.entries {
            e.count = 0;
            e.sum = 0;
            e.sum_sq = 0;
            e.min = i16::MAX;
            e.max = i16::MIN;
        }
    }

    /// Whether the table is small enough to keep for the next task: a file
    /// with ever new keys would otherwise grow it without bound.
    pub(crate) fn worth_keeping(&self) -> bool {
        const MAX_KEPT_GROUPS: usize = 1 << 16;
        const MAX_KEPT_KEY_BYTES: usize = 4 << 20;
        self.entries.len() <= MAX_KEPT_GROUPS && self.arena.len() <= MAX_KEPT_KEY_BYTES
    }

    /// Records added.
    pub(crate) fn records(&self) -> u64 {
        self.entries.iter().map(|e| e.count).sum()
    }

    /// Adds `value` (tenths, within ±999) to the group of `key`, whose
    /// first [`HEAD`] bytes, zero-padded, are `head`. `SQUARES` is
    /// `self.squares`, as a constant.
    #[inline(always)]
    fn add<const SQUARES: bool>(&mut self, key: &[u8], head: [u64; 4], value: i64) {
        let mut hash = hash_head(&head, key.len());
        if key.len() > HEAD {
            // Long keys that share their head still spread over the table.
            hash ^= word_at(key, key.len() - 8).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        let mask = self.slots.len() - 1;
        let mut i = (hash as usize) & mask;
        let len = key.len() as u64;
        loop {
            // SAFETY: `slots.len()` is a power of two, so `i & mask` is in
            // bounds; a non-zero slot holds an entry's index plus one (set
            // by `insert` and `grow` only).
            let slot = unsafe { *self.slots.get_unchecked(i) } as usize;
            if slot == 0 {
                self.insert(i, hash, key, head, value);
                return;
            }
            // SAFETY: see above; entries are never removed.
            let e = unsafe { self.entries.get_unchecked_mut(slot - 1) };
            let differ = (e.head[0] ^ head[0])
                | (e.head[1] ^ head[1])
                | (e.head[2] ^ head[2])
                | (e.head[3] ^ head[3])
                | (u64::from(e.key_len) ^ len);
            if differ == 0
                && (key.len() <= HEAD
                    || self
                        .places
                        .get(slot - 1)
                        .and_then(|&(_, at)| self.arena.get(at..at + key.len()))
                        .is_some_and(|stored| tail_eq(key, stored)))
            {
                // Values in tenths are within ±999: the narrowing is exact.
                let v = value as i16;
                e.count += 1;
                e.sum += value;
                if SQUARES {
                    e.sum_sq += value * value;
                }
                e.min = e.min.min(v);
                e.max = e.max.max(v);
                return;
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    fn insert(&mut self, slot: usize, hash: u64, key: &[u8], head: [u64; 4], value: i64) {
        let idx = self.entries.len();
        // A key longer than u32::MAX bytes cannot be in a chunk that fits
        // in memory; saturating keeps such a key apart from shorter ones.
        let key_len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        let v = value as i16;
        self.entries.push(Entry {
            head,
            key_len,
            min: v,
            max: v,
            count: 1,
            sum: value,
            sum_sq: if self.squares { value * value } else { 0 },
        });
        self.places.push((hash, self.arena.len()));
        self.arena.extend_from_slice(key);
        match u32::try_from(idx + 1) {
            Ok(v) => {
                if let Some(s) = self.slots.get_mut(slot) {
                    *s = v;
                }
            }
            Err(_) => unreachable_groups(),
        }
        let load = if self.slots.len() < SPARSE_SLOTS {
            8
        } else {
            2
        };
        if self.entries.len() * load > self.slots.len() {
            self.grow();
        }
    }

    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        let mask = size - 1;
        let mut slots = vec![0u32; size];
        for (idx, &(hash, _)) in self.places.iter().enumerate() {
            let mut i = (hash as usize) & mask;
            while slots.get(i).is_some_and(|&s| s != 0) {
                i = (i + 1) & mask;
            }
            if let Some(s) = slots.get_mut(i) {
                *s = idx as u32 + 1;
            }
        }
        self.slots = slots;
    }

    /// The groups with records, in insertion order.
    pub(crate) fn groups(&self) -> impl Iterator<Item = FastGroup<'_>> {
        self.entries
            .iter()
            .zip(&self.places)
            .filter(|(e, _)| e.count > 0)
            .map(|(e, &(_, at))| FastGroup {
                key: self
                    .arena
                    .get(at..at + e.key_len as usize)
                    .unwrap_or_default(),
                count: e.count,
                sum: e.sum,
                sum_sq: e.sum_sq,
                min: i64::from(e.min),
                max: i64::from(e.max),
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

/// Bytes a fast record may read past its start without a bounds check:
/// a [`HEAD`]-byte window of key, the value word after a delimiter in it.
const FAST_READ: usize = HEAD + 16;

/// The bytes that end a fast key: the delimiter, a newline, a quote.
struct Patterns {
    delimiter: u8,
    /// The quote byte, or the newline again when there is none.
    quote: u8,
    /// The three bytes, each repeated across a vector.
    #[cfg(target_arch = "x86_64")]
    vectors: [std::arch::x86_64::__m128i; 3],
}

impl Patterns {
    fn new(delimiter: u8, quote: Option<u8>) -> Self {
        let quote = quote.unwrap_or(b'\n');
        Patterns {
            delimiter,
            quote,
            #[cfg(target_arch = "x86_64")]
            // SAFETY: SSE2 is part of the x86-64 baseline.
            vectors: unsafe {
                use std::arch::x86_64::_mm_set1_epi8;
                [
                    _mm_set1_epi8(delimiter as i8),
                    _mm_set1_epi8(b'\n' as i8),
                    _mm_set1_epi8(quote as i8),
                ]
            },
        }
    }

    /// A bit per byte of `data[at..at + 32]`, set where the byte ends a
    /// fast key. SSE2 (part of every x86-64) compares 16 bytes at once.
    ///
    /// # Safety
    /// `at + 32 <= data.len()`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn stops(&self, data: &[u8], at: usize) -> u32 {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        };
        let [d, n, q] = self.vectors;
        // SAFETY: SSE2 is part of the x86-64 baseline, so its intrinsics
        // run on every processor this code is built for; the caller
        // guarantees 32 readable bytes at `at`, and `loadu` has no
        // alignment requirement.
        unsafe {
            let p = data.as_ptr().add(at).cast::<__m128i>();
            let (lo, hi) = (_mm_loadu_si128(p), _mm_loadu_si128(p.add(1)));
            let hits = |v: __m128i| {
                _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, d), _mm_cmpeq_epi8(v, n)),
                    _mm_cmpeq_epi8(v, q),
                )
            };
            let lo_bits = _mm_movemask_epi8(hits(lo)) as u32 & 0xFFFF;
            let hi_bits = _mm_movemask_epi8(hits(hi)) as u32 & 0xFFFF;
            lo_bits | (hi_bits << 16)
        }
    }

    /// [`Patterns::stops`] a word at a time, for other processors.
    ///
    /// # Safety
    /// `at + 32 <= data.len()`.
    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    unsafe fn stops(&self, data: &[u8], at: usize) -> u32 {
        let (d, n, q) = (
            LO * u64::from(self.delimiter),
            LO * u64::from(b'\n'),
            LO * u64::from(self.quote),
        );
        let mut bits = 0u32;
        for i in 0..4 {
            // SAFETY: at + 8 * i + 8 <= at + 32 <= data.len().
            let w = unsafe { load(data, at + 8 * i) };
            let hits = matches(w, d) | matches(w, n) | matches(w, q);
            // The high bit of each byte, gathered into the top byte. Only
            // the lowest hit is exact (see `matches`), the one we use.
            let byte_bits = ((hits >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32;
            bits |= byte_bits << (8 * i);
        }
        bits
    }
}

/// Reads 8 bytes at `at`, little-endian, without a bounds check.
///
/// # Safety
/// `at + 8 <= data.len()`.
#[inline(always)]
unsafe fn load(data: &[u8], at: usize) -> u64 {
    // SAFETY: the caller guarantees the 8 bytes are inside `data`; the read
    // is unaligned.
    let bytes = unsafe { data.as_ptr().add(at).cast::<[u8; 8]>().read_unaligned() };
    u64::from_le_bytes(bytes)
}

/// The first [`HEAD`] bytes at `pos` as four words, masked to a key of
/// `len` bytes.
///
/// # Safety
/// `pos + HEAD <= data.len()` and `len <= HEAD`.
#[inline(always)]
unsafe fn head_at(data: &[u8], pos: usize, len: usize) -> [u64; 4] {
    // SAFETY: the caller guarantees `len <= HEAD`, and the four words end
    // at pos + HEAD <= data.len().
    unsafe {
        let keep = KEEP.get_unchecked(len);
        [
            load(data, pos) & keep[0],
            load(data, pos + 8) & keep[1],
            load(data, pos + 16) & keep[2],
            load(data, pos + 24) & keep[3],
        ]
    }
}

/// Adds the record at `pos` to `table` when it has the fast shape and
/// returns where the next record starts; `None` (with `table` untouched)
/// for any other record.
#[inline(always)]
fn fast_record<const SQUARES: bool>(
    data: &[u8],
    pos: usize,
    pat: &Patterns,
    table: &mut FastTable,
) -> Option<usize> {
    if pos + FAST_READ > data.len() {
        return None;
    }
    // SAFETY: pos + 32 <= pos + FAST_READ <= data.len().
    let stops = unsafe { pat.stops(data, pos) };
    if stops == 0 {
        return long_record::<SQUARES>(data, pos, pat, table);
    }
    let len = stops.trailing_zeros() as usize;
    let p = pos + len;
    // SAFETY (this block and the next): len < 32, so p < pos + 32 and
    // p + 9 <= pos + FAST_READ <= data.len().
    if len == 0 || unsafe { *data.get_unchecked(p) } != pat.delimiter {
        return None;
    }
    let (value, used) = parse_tenths(unsafe { load(data, p + 1) })?;
    let (head, key) = unsafe { (head_at(data, pos, len), data.get_unchecked(pos..p)) };
    table.add::<SQUARES>(key, head, value);
    Some(p + 1 + used)
}

/// [`fast_record`] for a key of more than 32 bytes.
#[inline(never)]
fn long_record<const SQUARES: bool>(
    data: &[u8],
    pos: usize,
    pat: &Patterns,
    table: &mut FastTable,
) -> Option<usize> {
    let rest = data.get(pos + HEAD..).unwrap_or_default();
    let p = pos + HEAD + memchr3(pat.delimiter, b'\n', pat.quote, rest)?;
    if data.get(p) != Some(&pat.delimiter) || p + 9 > data.len() {
        return None;
    }
    let (value, used) = parse_tenths(word_at(data, p + 1))?;
    // SAFETY: pos + HEAD <= p < data.len().
    let head = unsafe { head_at(data, pos, HEAD) };
    table.add::<SQUARES>(data.get(pos..p).unwrap_or_default(), head, value);
    Some(p + 1 + used)
}

/// Where a range `[first, end)` of records splits in two for the
/// interleaved loop: the start of the first record after its middle, or
/// `end` when the range is too short to be worth it.
fn split_point(data: &[u8], first: usize, end: usize) -> usize {
    const MIN_SPLIT: usize = 1 << 16;
    if end - first < MIN_SPLIT {
        return end;
    }
    let middle = first + (end - first) / 2;
    memchr(b'\n', data.get(middle..end).unwrap_or_default()).map_or(end, |i| middle + i + 1)
}

/// Aggregates the records starting in `[first, end)` of `data`: those of the
/// fast shape into `table`, each other one through `general(pos)`, which
/// handles the single record (or blank line) at `pos` and returns where the
/// next one starts. With `quote`, stops at the first record that holds a
/// quote byte (the fast shape cannot: its key is searched word by word for
/// it, its value is digits).
///
/// The range is read as two halves in one loop, a record of each in turn:
/// the two chains of dependent loads (find the delimiter, parse the value,
/// find the next record) overlap in the processor instead of waiting on
/// each other. At the first record of either half that is not of the fast
/// shape, the loop hands over to a record-by-record pass of the first half
/// and then of the second, so records of the general path are still added
/// in file order (fast records sum exactly, in any order).
pub(crate) fn scan<E>(
    data: &[u8],
    first: usize,
    end: usize,
    delimiter: u8,
    quote: Option<u8>,
    table: &mut FastTable,
    general: impl FnMut(usize) -> Result<usize, E>,
) -> Result<Scan, E> {
    let pat = Patterns::new(delimiter, quote);
    if table.squares {
        scan_as::<true, E>(data, first, end, &pat, quote, table, general)
    } else {
        scan_as::<false, E>(data, first, end, &pat, quote, table, general)
    }
}

/// [`scan`], with or without sums of squares.
#[inline(never)]
fn scan_as<const SQUARES: bool, E>(
    data: &[u8],
    first: usize,
    end: usize,
    pat: &Patterns,
    quote: Option<u8>,
    table: &mut FastTable,
    mut general: impl FnMut(usize) -> Result<usize, E>,
) -> Result<Scan, E> {
    let mid = split_point(data, first, end);
    let (mut a, mut b) = (first, mid);
    if mid < end {
        while a < mid && b < end {
            let Some(next) = fast_record::<SQUARES>(data, a, pat, table) else {
                break;
            };
            a = next;
            let Some(next) = fast_record::<SQUARES>(data, b, pat, table) else {
                break;
            };
            b = next;
        }
    }
    let a_end = match one_by_one::<SQUARES, E>(data, a, mid, pat, quote, table, &mut general)? {
        Scan::Done(stop) => stop,
        Scan::Quoted => return Ok(Scan::Quoted),
    };
    if mid < end {
        one_by_one::<SQUARES, E>(data, b, end, pat, quote, table, &mut general)
    } else {
        Ok(Scan::Done(a_end))
    }
}

/// The record-by-record loop of [`scan`] over `[pos, end)`.
#[inline(always)]
fn one_by_one<const SQUARES: bool, E>(
    data: &[u8],
    mut pos: usize,
    end: usize,
    pat: &Patterns,
    quote: Option<u8>,
    table: &mut FastTable,
    general: &mut impl FnMut(usize) -> Result<usize, E>,
) -> Result<Scan, E> {
    while pos < end {
        if let Some(next) = fast_record::<SQUARES>(data, pos, pat, table) {
            pos = next;
            continue;
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

    /// Thousands of keys that differ only in a trailing NUL, or only after
    /// their first 32 bytes: with 6,000 keys some probe chains still run
    /// through one another (about one lookup in sixteen at an eighth full),
    /// so every part of the key comparison is needed.
    #[test]
    fn confusable_keys_stay_apart() {
        let long = "L".repeat(40);
        let mut keys = Vec::new();
        for i in 0..1500 {
            keys.push(format!("s{i}"));
            keys.push(format!("s{i}\0"));
            keys.push(format!("{long}{i:05}a"));
            keys.push(format!("{long}{i:05}b"));
        }
        let mut data = Vec::new();
        for (n, k) in keys.iter().enumerate() {
            // Key n appears n % 3 + 1 times, with value n % 10 tenths.
            for _ in 0..n % 3 + 1 {
                data.extend_from_slice(format!("{k};0.{}\n", n % 10).as_bytes());
            }
        }
        let end = data.len();
        data.extend_from_slice(&[b'\n'; 64]);
        let mut table = FastTable::new(true);
        let scanned = scan(&data, 0, end, b';', Some(b'"'), &mut table, |pos| {
            Err::<usize, _>(pos)
        });
        assert!(matches!(scanned, Ok(Scan::Done(e)) if e == end));
        let groups: std::collections::HashMap<&[u8], (u64, i64)> =
            table.groups().map(|g| (g.key, (g.count, g.sum))).collect();
        assert_eq!(groups.len(), keys.len());
        for (n, k) in keys.iter().enumerate() {
            let times = (n % 3 + 1) as u64;
            let want = (times, times as i64 * (n % 10) as i64);
            assert_eq!(groups.get(k.as_bytes()), Some(&want), "{k:?}");
        }
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
