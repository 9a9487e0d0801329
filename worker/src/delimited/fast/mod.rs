//! A specialised path for the commonest shape of all: quote-free records of
//! exactly `key<delim>value\n`, one key column, one value column, the value
//! a short decimal with one fractional digit (`-12.3`, `4.0`). This is the
//! One Billion Row Challenge shape, and the shape of most sensor logs.
//!
//! Why hand-written: no crate offers a fused "find delimiter, parse a
//! fixed-point decimal, group" loop, and generic building blocks (memchr per
//! field, a general hash map, a general number parser) cost several times
//! more per record on short records. The techniques are the ones the fastest
//! 1BRC entries use: the delimiter, newline and quote bytes of a 64-byte
//! window found at once as bit masks (AVX2 or SSE2 compares), two records
//! taken from each window with their bounds read off the masks, a
//! branch-free parse of each value from one 8-byte word (after Quan Anh
//! Mai; [`tenths`]), and an open-addressing table of cache-line entries that
//! hold the first 32 key bytes and integer accumulators ([`table`]), keys
//! held in one 256-bit register where the processor has AVX2 ([`lanes`]).
//!
//! Every record that does not fit exactly (an empty key or value, another
//! number form, CRLF, extra fields, a missing delimiter, the last bytes of
//! the mapping) goes to the general path, record by record, so results are
//! identical; the two tables are merged at the end of the task.

mod huge;
mod lanes;
mod table;
mod tenths;

use memchr::{memchr, memchr3};

use super::scan::WINDOW;
use lanes::{load, short_len, Lanes, Portable, HEAD, SHORT_KEY};
pub(crate) use table::FastTable;
use tenths::parse_tenths;

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
    /// Whether records are read with a quote byte (without one, the quote
    /// pattern is the newline, which no key holds).
    quoting: bool,
    /// The three bytes, each repeated across a vector.
    #[cfg(target_arch = "x86_64")]
    vectors: [std::arch::x86_64::__m128i; 3],
}

impl Patterns {
    fn new(delimiter: u8, quote: Option<u8>) -> Self {
        let quoting = quote.is_some();
        let quote = quote.unwrap_or(b'\n');
        Patterns {
            delimiter,
            quote,
            quoting,
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

/// Adds the record at `pos` to `table` when it has the fast shape and
/// returns where the next record starts; `None` (with `table` untouched)
/// for any other record.
///
/// # Safety
/// The processor supports `L`.
#[inline(always)]
unsafe fn fast_record<L: Lanes, const SQUARES: bool>(
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
        // SAFETY: passed on from the caller.
        return unsafe { long_record::<L, SQUARES>(data, pos, pat, table) };
    }
    let len = stops.trailing_zeros() as usize;
    let p = pos + len;
    // SAFETY (this block and the next): len < 32, so p < pos + 32 and
    // p + 9 <= pos + FAST_READ <= data.len(); the caller guarantees `L`.
    if len == 0 || unsafe { *data.get_unchecked(p) } != pat.delimiter {
        return None;
    }
    let (value, used) = parse_tenths(unsafe { load(data, p + 1) })?;
    unsafe {
        let key = data.get_unchecked(pos..p);
        table
            .add::<L, SQUARES, true>(key, L::key(data, pos, len), value)
            .then_some(p + 1 + used)
    }
}

/// [`fast_record`] for a key of 32 bytes or more: the next 32 bytes are
/// searched as the first were, then the rest with `memchr3`. Inlined into
/// the scan, so that its key, hash and comparison use the scan's vector
/// instructions (a call of its own could not: no AVX2 there). Q1 and Q2,
/// whose keys are 32 bytes or more in 1.7% and 1.6% of their records,
/// 8.0 -> 7.8 and 10.4 -> 9.6 ns a record (`scan_file` hot, medians).
///
/// # Safety
/// The processor supports `L`.
#[inline(always)]
unsafe fn long_record<L: Lanes, const SQUARES: bool>(
    data: &[u8],
    pos: usize,
    pat: &Patterns,
    table: &mut FastTable,
) -> Option<usize> {
    let next = pos + HEAD;
    // SAFETY: 32 bytes at `next` are in `data`, checked first.
    let stops = if next + FAST_READ <= data.len() {
        unsafe { pat.stops(data, next) }
    } else {
        0
    };
    let p = if stops != 0 {
        next + stops.trailing_zeros() as usize
    } else {
        let rest = data.get(next..).unwrap_or_default();
        next + memchr3(pat.delimiter, b'\n', pat.quote, rest)?
    };
    if data.get(p) != Some(&pat.delimiter) || p + 9 > data.len() {
        return None;
    }
    let (value, used) = parse_tenths(word_at(data, p + 1))?;
    let key = data.get(pos..p).unwrap_or_default();
    // SAFETY: pos + HEAD <= p < data.len(); the caller guarantees `L`.
    unsafe {
        table
            .add::<L, SQUARES, false>(key, L::key(data, pos, HEAD), value)
            .then_some(p + 1 + used)
    }
}

/// Aggregates the records starting in `[first, end)` of `data`: those of the
/// fast shape into `table`, each other one through `general(pos)`, which
/// handles the single record (or blank line) at `pos` and returns where the
/// next one starts. With `quote`, stops at the first record that holds a
/// quote byte (the fast shape cannot: its key is searched for it, its value
/// is digits).
///
/// Records are taken two at a time from one 64-byte window (see
/// [`pairs`]); a pair that does not fit in the window, or a record of
/// another shape, goes one record at a time, in file order. On x86-64
/// processors with AVX2 (checked once, at run time) keys are held in
/// 256-bit registers ([`lanes::Avx2`]); elsewhere in words.
pub(crate) fn scan<E>(
    data: &[u8],
    first: usize,
    end: usize,
    delimiter: u8,
    quote: Option<u8>,
    table: &mut FastTable,
    general: impl FnMut(usize) -> Result<usize, E>,
) -> Result<Scan, E> {
    let run = Run {
        data,
        first,
        end,
        pat: Patterns::new(delimiter, quote),
    };
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
    {
        // SAFETY: the processor has AVX2 and PCLMULQDQ, checked just above.
        return unsafe { scan_avx2(&run, table, general) };
    }
    // SAFETY: `Portable` runs on every processor.
    unsafe { scan_with::<Portable, E>(&run, table, general) }
}

/// What one scan reads: the records that start in `[first, end)` of
/// `data`, and the bytes that end a fast key.
struct Run<'a> {
    data: &'a [u8],
    first: usize,
    end: usize,
    pat: Patterns,
}

/// [`scan_with`] compiled for AVX2 processors (every one of which also
/// multiplies without carries, PCLMULQDQ).
///
/// # Safety
/// The processor supports AVX2 and PCLMULQDQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt,pclmulqdq")]
unsafe fn scan_avx2<E>(
    run: &Run<'_>,
    table: &mut FastTable,
    general: impl FnMut(usize) -> Result<usize, E>,
) -> Result<Scan, E> {
    // SAFETY: the caller guarantees AVX2 and PCLMULQDQ.
    unsafe { scan_with::<lanes::Avx2, E>(run, table, general) }
}

/// [`scan`] with the lanes `L`, with or without sums of squares.
///
/// # Safety
/// The processor supports `L`.
#[inline(always)]
unsafe fn scan_with<L: Lanes, E>(
    run: &Run<'_>,
    table: &mut FastTable,
    general: impl FnMut(usize) -> Result<usize, E>,
) -> Result<Scan, E> {
    // SAFETY: passed on from the caller.
    unsafe {
        if table.squares() {
            scan_as::<L, true, E>(run, table, general)
        } else {
            scan_as::<L, false, E>(run, table, general)
        }
    }
}

/// [`scan_with`], with or without sums of squares.
///
/// # Safety
/// The processor supports `L`.
#[inline(always)]
unsafe fn scan_as<L: Lanes, const SQUARES: bool, E>(
    run: &Run<'_>,
    table: &mut FastTable,
    mut general: impl FnMut(usize) -> Result<usize, E>,
) -> Result<Scan, E> {
    let Run {
        data,
        first,
        end,
        ref pat,
    } = *run;
    let mut pos = first;
    while pos < end {
        // Once the table is full, the rest of the task goes the general way:
        // with ever new keys a failed lookup before each record would cost
        // more than the fast path saves.
        if !table.is_full() {
            // SAFETY (both calls): passed on from the caller.
            pos = unsafe { pairs::<L, SQUARES>(data, pos, end, pat, table) };
            if pos >= end {
                break;
            }
            if let Some(next) = unsafe { fast_record::<L, SQUARES>(data, pos, pat, table) } {
                pos = next;
                continue;
            }
        }
        if pat.quoting {
            let rest = data.get(pos..).unwrap_or_default();
            let line = memchr(b'\n', rest).map_or(rest, |i| rest.get(..i).unwrap_or_default());
            if memchr(pat.quote, line).is_some() {
                return Ok(Scan::Quoted);
            }
        }
        pos = general(pos)?;
    }
    Ok(Scan::Done(pos.min(data.len())))
}

// `window_single` hands `tenths_ending` value lengths below the window's
// size (`window_pair`'s may wrap, and `Lanes::tenths_pair` takes them so).
const _: () = assert!(WINDOW <= tenths::LENGTHS);

/// Bytes [`pairs`] may read from a window's start: the window, then a key
/// head or a value word starting inside it.
const PAIR_READ: usize = WINDOW + HEAD;

/// How far ahead of the window being read [`prefetch_ahead`] asks for the
/// data: past the next 4 KiB page boundary or so, which the processor's
/// own prefetchers do not cross. 512 B to 4 KiB measured the same.
const DATA_AHEAD: usize = 2048;

/// Asks the processor to fetch the line [`DATA_AHEAD`] bytes past `pos`
/// (nothing past the end of `data`'s mapping is touched: a prefetch cannot
/// fault). The hardware prefetchers follow a stream only within a 4 KiB
/// page, so each new page of the file began with a wait on memory, and a
/// lookup's own prefetches of table entries compete with them. Kernel
/// alone, one core, Intel Xeon (Sapphire Rapids), `scan_file FILE file`,
/// medians of 5 alternating runs: Q1 10.0 -> 8.8 ns a record, Q2 (10,000
/// groups) 16.0 -> 10.0. The general path's record loops ([`super::scan`])
/// ask the same: Q3 at -j1 (`tally run`), 0.444 -> 0.352 s.
#[inline(always)]
pub(crate) fn prefetch_ahead(data: &[u8], pos: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = data.as_ptr().wrapping_add(pos.wrapping_add(DATA_AHEAD));
        // SAFETY: SSE is part of the x86-64 baseline; a prefetch reads
        // nothing and cannot fault, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, pos);
}

/// A fast record whose entry is being fetched: it is added to the table one
/// window later.
#[derive(Clone, Copy)]
struct Pending<K> {
    /// Where its key starts in the data (its length is in its head).
    at: usize,
    head: K,
    hash: u64,
    value: i64,
}

/// Adds records two at a time from `pos` while both records of the 64-byte
/// window at `pos` have the fast shape with keys of at most [`SHORT_KEY`]
/// bytes, and one at a time ([`window_single`]) where only the first
/// record of a window is a fast record that ends in it; returns where the
/// first record it did not take starts.
///
/// One classification (the delimiter, newline and quote bytes of the
/// window, as masks) serves both records, and where each record starts and
/// ends comes from the masks, not from parsing the one before: the records
/// of consecutive windows do not wait on each other.
///
/// The records of a window are added to the table while the next window is
/// read: their entries are prefetched as soon as their keys are hashed, so
/// that with more groups than the processor's caches hold (10,000 stations:
/// 640 KiB of entries, more than a Zen 3 core's 512 KiB second-level cache)
/// a lookup does not wait on memory. Measured on Q2's kernel alone, one
/// core: half the samples waited on the entry's load, before.
///
/// # Safety
/// The processor supports `L`.
#[inline(always)]
unsafe fn pairs<L: Lanes, const SQUARES: bool>(
    data: &[u8],
    mut pos: usize,
    end: usize,
    pat: &Patterns,
    table: &mut FastTable,
) -> usize {
    // Windows lie inside the task's range, so both records start in it.
    let last = end
        .saturating_sub(WINDOW)
        .min(data.len().saturating_sub(PAIR_READ));
    // SAFETY (every call below): passed on from the caller.
    loop {
        // The records of the window before, prefetched, not yet added. A
        // window whose two records are not both short fast records gives
        // its first record alone, added at once, when that one fits.
        let (mut before, next) = loop {
            if let Some(pair) = unsafe { window_pair::<L>(data, pos, last, pat, table) } {
                break pair;
            }
            match unsafe { window_single::<L, SQUARES>(data, pos, last, pat, table) } {
                Some(next) => pos = next,
                None => return pos,
            }
        };
        pos = next;
        // Unrolled by two: alternate windows' records live in `after` and
        // `before`, so that they stay where they were computed instead of
        // moving between registers every window (Q1's kernel: 108.1 against
        // 112.5 instructions a record, bench/instructions.sh).
        while let Some((after, next)) = unsafe { window_pair::<L>(data, pos, last, pat, table) } {
            if let Err(at) = unsafe { add_pending::<L, SQUARES>(data, table, before) } {
                return at;
            }
            pos = next;
            let Some((again, next)) = (unsafe { window_pair::<L>(data, pos, last, pat, table) })
            else {
                before = after;
                break;
            };
            if let Err(at) = unsafe { add_pending::<L, SQUARES>(data, table, after) } {
                return at;
            }
            before = again;
            pos = next;
        }
        if let Err(at) = unsafe { add_pending::<L, SQUARES>(data, table, before) } {
            return at;
        }
    }
}

/// Adds the first record of the window at `pos` alone, for a window whose
/// two records are not both short fast records: a key of any length that
/// ends in the window (the 7 longest of Q1's 413 stations have 32 to 57
/// bytes: 1.9% of its records), or a record after it that does not end in
/// the window. Returns where the next record starts; `None` (the table
/// untouched) unless the record has the fast shape, ends in the window,
/// and the table took it.
///
/// Without it each such window left the pair loop, and the record was
/// taken by [`fast_record`] before the loop started again: 2.6% of Q1's
/// records, and its kernel spent 10% of its time on them (the first
/// 17.5M records of Q1's file: 8.0 ns a record, 7.2 ns with the long keys
/// left out). With it, 3.4% less time on that piece (`scan_file` hot,
/// medians of 7 alternating runs); the long keys' tails then compared
/// without `memcmp` ([`table`]), 4.7% less again.
///
/// # Safety
/// The processor supports `L`; `last + PAIR_READ <= data.len()`.
#[inline(always)]
unsafe fn window_single<L: Lanes, const SQUARES: bool>(
    data: &[u8],
    pos: usize,
    last: usize,
    pat: &Patterns,
    table: &mut FastTable,
) -> Option<usize> {
    if pos < 8 || pos > last {
        return None;
    }
    // SAFETY: pos + WINDOW <= data.len(); the caller guarantees `L`.
    let [delims, ends] = unsafe { L::classify(data, pos, [pat.delimiter, b'\n', pat.quote]) }?;
    let d1 = delims.trailing_zeros() as usize;
    let n1 = ends.trailing_zeros() as usize;
    if (d1 == 0) | (d1 >= n1) | (n1 >= WINDOW) {
        return None;
    }
    // SAFETY: the value ends before the newline (or quote) inside the
    // window, after a key of at least one byte, and pos >= 8: its word,
    // which ends with that byte, is in `data`, its first byte in the
    // window, its length below WINDOW <= LENGTHS; the key's head ends
    // within pos + PAIR_READ <= data.len().
    unsafe {
        let (value, ok) = tenths::tenths_ending(
            load(data, pos + n1 - 7),
            n1 - d1 - 1,
            *data.get_unchecked(pos + d1 + 1),
        );
        if !ok {
            return None;
        }
        let key = data.get_unchecked(pos..pos + d1);
        table
            .add::<L, SQUARES, false>(key, L::key(data, pos, d1.min(HEAD)), value)
            .then_some(pos + n1 + 1)
    }
}

/// The two records of the 64-byte window at `pos`, their entries
/// prefetched, and where the record after them starts; `None` unless both
/// have the fast shape with keys of at most [`SHORT_KEY`] bytes and `pos`
/// is in `8..=last` (see [`pairs`]).
///
/// # Safety
/// The processor supports `L`; `last + PAIR_READ <= data.len()`.
#[inline(always)]
unsafe fn window_pair<L: Lanes>(
    data: &[u8],
    pos: usize,
    last: usize,
    pat: &Patterns,
    table: &FastTable,
) -> Option<([Pending<L::Key>; 2], usize)> {
    // A value is read as the 8 bytes that end with its newline: from the
    // eighth byte on, those are all in `data` (8 keeps the bound of the
    // word-before-the-newline reading this replaced; one byte is spare).
    if pos < 8 || pos > last {
        return None;
    }
    prefetch_ahead(data, pos);
    // SAFETY: pos + WINDOW <= data.len(); the caller guarantees `L`.
    // Records end at newlines and at quote bytes (see `Lanes::classify`),
    // or, where the window has no second end, at its first byte past the
    // window (64). A record that holds a quote, or does not end where the
    // window says, fails the value check, whose word ends with the
    // record's last byte and must end with a newline; the first record
    // of a window that holds a quote then stops the scan (see `scan_as`).
    let [delims, ends] = unsafe { L::classify(data, pos, [pat.delimiter, b'\n', pat.quote]) }?;
    let d1 = delims.trailing_zeros() as usize;
    let n1 = ends.trailing_zeros() as usize;
    let d2 = (delims & delims.wrapping_sub(1)).trailing_zeros() as usize;
    let rest = ends & ends.wrapping_sub(1);
    let n2 = rest.trailing_zeros() as usize;
    let start2 = n1 + 1;
    let len2 = d2.wrapping_sub(start2);
    // Both keys 1 to SHORT_KEY bytes long: each length less one (wrapping)
    // is below SHORT_KEY, and so is the larger. Each delimiter before its
    // newline: checked with the values (a value's length wraps where it is
    // not, and no shape has such a length).
    let keys = d1.wrapping_sub(1).max(len2.wrapping_sub(1));
    if keys >= SHORT_KEY {
        return None;
    }
    // SAFETY: each value word is the 8 bytes that end with a record's last
    // byte, at pos + WINDOW at most, and pos >= 8: they lie within
    // data[pos - 7..pos + 65]; each value's first byte, at pos + d + 1
    // with d at most WINDOW (no delimiter), too; pos + PAIR_READ <=
    // data.len().
    let ([value1, value2], ok) = unsafe {
        L::tenths_pair(
            [load(data, pos + n1 - 7), load(data, pos + n2 - 7)],
            [n1.wrapping_sub(d1 + 1), n2.wrapping_sub(d2 + 1)],
            [
                *data.get_unchecked(pos + d1 + 1),
                *data.get_unchecked(pos + d2 + 1),
            ],
        )
    };
    // One branch for both values.
    if !ok {
        return None;
    }
    // SAFETY: each key head (HEAD bytes from pos or pos + start2, both
    // inside the window) ends within pos + PAIR_READ <= data.len(); the
    // caller guarantees `L`.
    let records = unsafe {
        [
            prefetched::<L>(data, pos, d1, value1, table),
            prefetched::<L>(data, pos + start2, len2, value2, table),
        ]
    };
    Some((records, pos + n2 + 1))
}

/// The fast record at `at` with a key of `len` bytes, its entry prefetched.
/// (A function, not a closure: a closure would not inherit the AVX2 of the
/// function it is in, and `L`'s calls would not be inlined.)
///
/// # Safety
/// The processor supports `L`; `len <= SHORT_KEY` and
/// `at + HEAD <= data.len()`.
#[inline(always)]
unsafe fn prefetched<L: Lanes>(
    data: &[u8],
    at: usize,
    len: usize,
    value: i64,
    table: &FastTable,
) -> Pending<L::Key> {
    // SAFETY: the caller guarantees the processor and the bounds.
    let (head, key) = unsafe { (L::key(data, at, len), data.get_unchecked(at..at + len)) };
    // SAFETY: as above.
    let hash = unsafe { FastTable::hash::<L, true>(key, head) };
    table.prefetch(hash);
    Pending {
        at,
        head,
        hash,
        value,
    }
}

/// Adds the two records of a window [`pairs`] read before; `Err` with where
/// a record starts if the table refused it (full), the second record then
/// left out too.
///
/// # Safety
/// The processor supports `L`; the records are fast records of `data`
/// with keys of at most [`SHORT_KEY`] bytes.
#[inline(always)]
unsafe fn add_pending<L: Lanes, const SQUARES: bool>(
    data: &[u8],
    table: &mut FastTable,
    records: [Pending<L::Key>; 2],
) -> Result<(), usize> {
    for r in records {
        // SAFETY: the caller guarantees the processor and the bounds.
        let added = unsafe {
            // A short key's length is in its head; computed where the
            // table needs the key (a new group), not carried.
            let len = short_len(L::words(r.head));
            let key = data.get_unchecked(r.at..r.at + len);
            table.add_hashed::<L, SQUARES, true>(key, r.head, r.hash, r.value)
        };
        if !added {
            return Err(r.at);
        }
    }
    Ok(())
}

/// A deterministic stream of random words (xorshift64*), for tests.
#[cfg(test)]
pub(crate) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Per group: count, sum, min, max (tenths).
    type Groups = HashMap<Vec<u8>, (u64, i64, i64, i64)>;

    /// Scans `data` (records, then padding) with the lanes `L` and returns
    /// the groups and the records handed to the general path.
    fn run<L: Lanes>(data: &[u8], end: usize) -> (Groups, Vec<usize>) {
        let mut table = FastTable::new(true);
        let mut general = Vec::new();
        let run = Run {
            data,
            first: 0,
            end,
            pat: Patterns::new(b';', Some(b'"')),
        };
        // SAFETY: callers pass a `L` the processor supports.
        let scanned = unsafe {
            scan_with::<L, ()>(&run, &mut table, |pos| {
                general.push(pos);
                let rest = data.get(pos..).unwrap_or_default();
                Ok(pos + memchr(b'\n', rest).map_or(rest.len(), |i| i + 1))
            })
        };
        assert!(matches!(scanned, Ok(Scan::Done(e)) if e == end));
        let groups = table
            .groups()
            .map(|g| (g.key.to_vec(), (g.count, g.sum, g.min, g.max)))
            .collect();
        (groups, general)
    }

    /// [`run`] with every way this processor supports; all must agree.
    fn run_all_ways(data: &[u8], end: usize) -> (Groups, Vec<usize>) {
        let portable = run::<Portable>(data, end);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
        {
            assert_eq!(run::<lanes::Avx2>(data, end), portable);
        }
        portable
    }

    /// Thousands of keys that differ only in a trailing NUL, or only after
    /// their first 31 or 32 bytes, or whose 32 bytes are those of a shorter
    /// key's head (its bytes, NULs, its length): 10,500 keys fill the
    /// table past its sparse sizes, to a twelfth, so that some probe chains
    /// still run through one another and every part of the key comparison
    /// is needed.
    #[test]
    fn confusable_keys_stay_apart() {
        let long = "L".repeat(40);
        let mut keys = Vec::new();
        for i in 0..1500 {
            let short = format!("s{i}");
            let mut as_head = format!("{short:\0<31}");
            as_head.push(char::from(short.len() as u8));
            keys.push(as_head);
            keys.push(format!("s{i}\0"));
            keys.push(short);
            keys.push(format!("{long}{i:05}a"));
            keys.push(format!("{long}{i:05}b"));
            keys.push(format!("{i:L<31}"));
            keys.push(format!("{i:L<32}"));
        }
        let mut data = Vec::new();
        for (n, k) in keys.iter().enumerate() {
            // Key n appears n % 3 + 1 times, with value n % 10 tenths.
            for _ in 0..n % 3 + 1 {
                data.extend_from_slice(format!("{k};0.{}\n", n % 10).as_bytes());
            }
        }
        let end = data.len();
        data.extend_from_slice(&[b'\n'; 128]);
        let (groups, general) = run_all_ways(&data, end);
        assert!(general.is_empty());
        assert_eq!(groups.len(), keys.len());
        for (n, k) in keys.iter().enumerate() {
            let times = (n % 3 + 1) as u64;
            let v = (n % 10) as i64;
            let want = (times, times as i64 * v, v, v);
            assert_eq!(groups.get(k.as_bytes()), Some(&want), "{k:?}");
        }
    }

    /// Records of every length and many shapes, fast or not, in a
    /// deterministic jumble: each one lands in the table exactly when a
    /// byte-by-byte reading says it has the fast shape, else it goes to
    /// the general path, in file order.
    #[test]
    fn takes_exactly_the_fast_records() {
        let values = [
            "1.5", "-1.5", "12.3", "-12.3", "0.0", "-0.0", "99.9", "1.25", "12", "123.4", "-.5",
            "", "1.5;x", "1.5\r", "a.b",
        ];
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        let mut data = Vec::new();
        let mut lines = Vec::new();
        for _ in 0..20_000 {
            let r = next();
            // Key lengths 0 to 70 around the 32-byte head; a few keys hold
            // a quote-free odd byte.
            let len = (r % 71) as usize;
            let key: Vec<u8> = (0..len)
                .map(|i| b"abcdefgh \x01\xc3\xa9"[(i + (r >> 8) as usize % 7) % 11])
                .collect();
            let value = values[(r >> 20) as usize % values.len()];
            let start = data.len();
            data.extend_from_slice(&key);
            if (r >> 40) % 50 != 0 {
                data.push(b';');
            }
            data.extend_from_slice(value.as_bytes());
            data.push(b'\n');
            lines.push((start, key, value, (r >> 40) % 50 != 0));
        }
        let end = data.len();
        data.extend_from_slice(&[b'\n'; 128]);
        let (groups, general) = run_all_ways(&data, end);
        let mut want_groups = Groups::new();
        let mut want_general = Vec::new();
        for (start, key, value, delimited) in lines {
            let parsed = tenths_reference(value);
            match parsed {
                Some(v) if delimited && !key.is_empty() => {
                    let g = want_groups.entry(key).or_insert((0, 0, i64::MAX, i64::MIN));
                    g.0 += 1;
                    g.1 += v;
                    g.2 = g.2.min(v);
                    g.3 = g.3.max(v);
                }
                _ => want_general.push(start),
            }
        }
        assert_eq!(general, want_general);
        assert_eq!(groups, want_groups);
    }

    /// `-?d?d.d` as tenths, read the slow way.
    fn tenths_reference(text: &str) -> Option<i64> {
        let (neg, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = digits.split_once('.')?;
        let ok = (1..=2).contains(&int.len())
            && frac.len() == 1
            && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
        let v: i64 = format!("{int}{frac}").parse().ok().filter(|_| ok)?;
        Some(if neg { -v } else { v })
    }

    /// Past [`table::MAX_GROUPS`] keys the table takes no new key: from the
    /// first record it refuses, every record of the task goes to the
    /// general path, in file order.
    #[test]
    fn a_full_table_hands_the_rest_on() {
        let keys = table::MAX_GROUPS + 1000;
        let mut data = Vec::new();
        let mut starts = Vec::new();
        for round in 0..2 {
            for k in 0..keys {
                starts.push((round, k, data.len()));
                data.extend_from_slice(format!("key{k};{}.5\n", round + 1).as_bytes());
            }
        }
        let end = data.len();
        data.extend_from_slice(&[b'\n'; 128]);
        let (groups, general) = run_all_ways(&data, end);
        assert_eq!(groups.len(), table::MAX_GROUPS);
        for k in 0..table::MAX_GROUPS {
            let key = format!("key{k}").into_bytes();
            assert_eq!(groups.get(&key), Some(&(1, 15, 15, 15)), "key{k}");
        }
        let want: Vec<usize> = starts
            .iter()
            .filter(|&&(round, k, _)| round == 1 || k >= table::MAX_GROUPS)
            .map(|&(_, _, at)| at)
            .collect();
        assert_eq!(general, want);
    }

    /// A quote byte in a key stops the scan (the task is read again with
    /// quote rules), wherever the record falls in a window.
    #[test]
    fn a_quote_stops_the_scan() {
        for at in 0..40 {
            let mut data = Vec::new();
            for i in 0..at {
                data.extend_from_slice(format!("k{i};1.0\n").as_bytes());
            }
            data.extend_from_slice(b"a\"b;2.0\n");
            for i in 0..40 {
                data.extend_from_slice(format!("k{i};1.0\n").as_bytes());
            }
            let end = data.len();
            data.extend_from_slice(&[b'\n'; 128]);
            for (scanned, _) in scan_quoted(&data, end) {
                assert!(matches!(scanned, Ok(Scan::Quoted)), "{at}");
            }
        }
    }

    /// Scans `data` up to `end` with `"` as the quote byte, the portable
    /// way and the way this processor picks, each into a new table; a
    /// record handed to the general path fails the scan.
    fn scan_quoted(data: &[u8], end: usize) -> [(Result<Scan, ()>, FastTable); 2] {
        let run = Run {
            data,
            first: 0,
            end,
            pat: Patterns::new(b';', Some(b'"')),
        };
        let mut portable = FastTable::new(false);
        // SAFETY: `Portable` runs on every processor.
        let scanned = unsafe { scan_with::<Portable, ()>(&run, &mut portable, |_| Err(())) };
        let mut picked = FastTable::new(false);
        let picked_scan = scan(data, 0, end, b';', Some(b'"'), &mut picked, |_| Err(()));
        [(scanned, portable), (picked_scan, picked)]
    }

    /// A quote byte far into a task (the bytes of 256 KiB of records
    /// before it): the records before it are all added, then the scan
    /// stops at its record.
    #[test]
    fn a_quote_far_in_stops_the_scan_at_its_record() {
        const K: usize = 1 << 16;
        for quote_at in [K - 40, K - 3, K + 5, 2 * K + 100, 3 * K - 70] {
            let mut data = Vec::new();
            let mut before = 0u64;
            let mut i = 0;
            while data.len() < 4 * K {
                let mut record = format!("station{};{}.{}\n", i % 97, i % 40, i % 10).into_bytes();
                if data.len() <= quote_at && quote_at < data.len() + record.len() {
                    // The quote replaces the record's first byte.
                    record[0] = b'"';
                } else if data.len() < quote_at {
                    before += 1;
                }
                data.extend_from_slice(&record);
                i += 1;
            }
            let end = data.len();
            data.extend_from_slice(&[b'\n'; 128]);
            for (scanned, table) in scan_quoted(&data, end) {
                assert!(matches!(scanned, Ok(Scan::Quoted)), "{quote_at}");
                assert_eq!(table.records(), before, "{quote_at}");
            }
        }
    }
}
