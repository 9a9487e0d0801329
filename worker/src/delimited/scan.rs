//! Finding records and fields in bytes.
//!
//! A record ends at a `\n` outside quotes (a `\r` before it is dropped);
//! quote state toggles on every quote byte, so a record boundary depends only
//! on the parity of the quotes before it. That is what lets a chunk that
//! starts anywhere find its first record. A blank line is not a record.
//!
//! Two splitters produce the same fields: a plain one for bytes without any
//! quote byte (`memchr` for newline and delimiter, spans into the input, no
//! copy), and an RFC 4180 one built on `csv-core` for the rest (quoted
//! delimiters and newlines, doubled quotes), which unquotes into a reused
//! buffer.

use memchr::{memchr, memchr2};

use super::fast::{find_byte, prefetch_ahead};

/// A field: a byte range into the buffer its record was split into.
pub(crate) type Span = (usize, usize);

/// Where a splitter's records go.
///
/// [`RecordSink::record`] takes a record's fields as spans. A record that
/// lies in one [`WINDOW`] (most records of most CSV files) is first offered
/// to [`RecordSink::masked`] as the window's delimiter mask, which may take
/// it whole without the fields being split into spans. Any
/// `FnMut(base, fields, record_start)` closure is a sink that takes every
/// record as spans.
pub(crate) trait RecordSink<E> {
    /// A record whose fields are `base[span]`, starting at `at`.
    fn record(&mut self, base: &[u8], spans: &[Span], at: usize) -> Result<(), E>;

    /// The record `data[pos..pos + line]` (line end excluded; `0 < line <
    /// 64`, no quote byte in it), with bit `i` of `delims` set where
    /// `data[pos + i]` is the delimiter (no bit at or past `line`). True
    /// when taken; false leaves it to [`RecordSink::record`].
    #[inline(always)]
    fn masked(&mut self, data: &[u8], pos: usize, line: usize, delims: u64) -> bool {
        let _ = (data, pos, line, delims);
        false
    }
}

impl<E, F: FnMut(&[u8], &[Span], usize) -> Result<(), E>> RecordSink<E> for F {
    #[inline(always)]
    fn record(&mut self, base: &[u8], spans: &[Span], at: usize) -> Result<(), E> {
        self(base, spans, at)
    }
}

/// Bytes of a record window: records up to this long (most in CSV files)
/// are split from one set of masks.
pub(crate) const WINDOW: usize = 64;

/// Where each of `bytes` (the delimiter, the newline, the quote when there
/// is one) is in the [`WINDOW`] bytes at `at`, a mask per byte value with a
/// bit per position: what the splitters need of a short record, found with
/// SSE2 compares (16 bytes each) instead of a search per field. `None` near
/// the end of `data`, and on other processors.
#[inline(always)]
pub(crate) fn window_masks<const N: usize>(
    data: &[u8],
    at: usize,
    bytes: [u8; N],
) -> Option<[u64; N]> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        let window = data.get(at..at + WINDOW)?;
        // SAFETY: SSE2 is part of the x86-64 baseline; the four unaligned
        // 16-byte loads stay inside `window`, which is WINDOW = 64 long.
        unsafe {
            let patterns = bytes.map(|b| _mm_set1_epi8(b as i8));
            let p = window.as_ptr().cast::<__m128i>();
            let blocks = [
                _mm_loadu_si128(p),
                _mm_loadu_si128(p.add(1)),
                _mm_loadu_si128(p.add(2)),
                _mm_loadu_si128(p.add(3)),
            ];
            let mut masks = [0u64; N];
            for (mask, &pattern) in masks.iter_mut().zip(&patterns) {
                for (i, &block) in blocks.iter().enumerate() {
                    let bits = _mm_movemask_epi8(_mm_cmpeq_epi8(block, pattern)) as u32 & 0xFFFF;
                    *mask |= u64::from(bits) << (16 * i);
                }
            }
            Some(masks)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (data, at, bytes);
        None
    }
}

/// A way to find a window's bytes ([`window_masks`]'s masks), chosen once
/// per scan: the splitters' loops are compiled once per way, so that on a
/// processor with AVX2 the whole loop, the sink's code inlined in it, uses
/// 32-byte compares (and BMI's bit instructions) instead of SSE2's 16.
pub(crate) trait Window<const N: usize>: Copy {
    /// [`window_masks`] of the bytes this way was made for.
    ///
    /// # Safety
    /// The processor supports this way.
    unsafe fn masks(&self, data: &[u8], at: usize) -> Option<[u64; N]>;
}

/// [`window_masks`] itself: every processor.
#[derive(Clone, Copy)]
pub(crate) struct Sse2Window<const N: usize>(pub(crate) [u8; N]);

impl<const N: usize> Window<N> for Sse2Window<N> {
    #[inline(always)]
    unsafe fn masks(&self, data: &[u8], at: usize) -> Option<[u64; N]> {
        window_masks(data, at, self.0)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::Avx2Window;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };

    use super::{Window, WINDOW};

    /// The bytes repeated across 256-bit vectors, made once per scan.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2Window<const N: usize>([__m256i; N]);

    impl<const N: usize> Avx2Window<N> {
        /// # Safety
        /// The processor supports AVX2.
        #[inline]
        #[target_feature(enable = "avx2")]
        pub(crate) unsafe fn new(bytes: [u8; N]) -> Self {
            Avx2Window(bytes.map(|b| _mm256_set1_epi8(b as i8)))
        }
    }

    impl<const N: usize> Window<N> for Avx2Window<N> {
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn masks(&self, data: &[u8], at: usize) -> Option<[u64; N]> {
            let window = data.get(at..at + WINDOW)?;
            // SAFETY: the two unaligned 32-byte loads stay inside `window`,
            // which is WINDOW = 64 long.
            let (lo, hi) = unsafe {
                let p = window.as_ptr().cast::<__m256i>();
                (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
            };
            Some(self.0.map(|pattern| {
                let low = _mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, pattern)) as u32;
                let high = _mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, pattern)) as u32;
                u64::from(low) | (u64::from(high) << 32)
            }))
        }
    }
}

/// The position of the first `\n` at or after `from` that is outside quotes,
/// starting in quotes when `in_quotes`.
pub(crate) fn next_record_end(
    data: &[u8],
    from: usize,
    quote: Option<u8>,
    mut in_quotes: bool,
) -> Option<usize> {
    let Some(q) = quote else {
        return memchr(b'\n', data.get(from..)?).map(|i| from + i);
    };
    let mut pos = from;
    loop {
        let rest = data.get(pos..)?;
        let found = if in_quotes {
            memchr(q, rest)
        } else {
            memchr2(q, b'\n', rest)
        };
        let p = pos + found?;
        if data.get(p) == Some(&b'\n') {
            return Some(p);
        }
        in_quotes = !in_quotes;
        pos = p + 1;
    }
}

/// Splits records into fields, keeping its buffers from record to record.
pub(crate) struct Splitter {
    delimiter: u8,
    quote: Option<u8>,
    /// Fields wanted per record: splitting stops after that many.
    wanted: usize,
    spans: Vec<Span>,
    /// The RFC 4180 reader for records with quotes, built the first time
    /// one is split: building it (a table of its states) cost about 20 µs
    /// in every task, where most tasks meet no quote at all.
    csv: Option<csv_core::Reader>,
    unquoted: Vec<u8>,
    /// Quote bytes in the records [`Splitter::scan_quoted`] has read, line
    /// ends included: the task's quote count comes from here instead of a
    /// separate pass over the chunk.
    pub(crate) quotes: u64,
}

impl Splitter {
    /// A splitter that finds the first `wanted` fields of each record.
    pub(crate) fn new(delimiter: u8, quote: Option<u8>, wanted: usize) -> Self {
        Splitter {
            delimiter,
            quote,
            wanted,
            spans: Vec::with_capacity(wanted.min(1024)),
            csv: None,
            unquoted: Vec::new(),
            quotes: 0,
        }
    }

    /// Calls `f(base, fields, record_start)` for every record of `data`
    /// that starts in `[first, end)`; `first` must be a record start, and no
    /// record scanned may hold a quote byte. Fields are `base[span]`.
    /// Returns where the last record ended (after its newline).
    pub(crate) fn scan_plain<E>(
        &mut self,
        data: &[u8],
        first: usize,
        end: usize,
        f: impl RecordSink<E>,
    ) -> Result<usize, E> {
        let bytes = self.plain_bytes();
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2, checked just above.
            return unsafe { self.plain_avx2(bytes, data, first, end, f) };
        }
        // SAFETY: SSE2 windows run on every processor.
        unsafe { self.plain_in(Sse2Window(bytes), data, first, end, f) }
    }

    /// The bytes [`Splitter::plain_in`]'s window finds: the delimiter and
    /// the newline.
    pub(crate) fn plain_bytes(&self) -> [u8; 2] {
        [self.delimiter, b'\n']
    }

    /// The bytes [`Splitter::quoted_in`]'s window finds: the delimiter, the
    /// newline and the quote byte. Without a quote byte the newline stands
    /// in for it: no window then has a quote bit before its first newline.
    fn quoted_bytes(&self) -> [u8; 3] {
        [self.delimiter, b'\n', self.quote.unwrap_or(b'\n')]
    }

    /// [`Splitter::plain_in`] compiled for AVX2 processors.
    ///
    /// # Safety
    /// The processor supports AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
    unsafe fn plain_avx2<E>(
        &mut self,
        bytes: [u8; 2],
        data: &[u8],
        first: usize,
        end: usize,
        f: impl RecordSink<E>,
    ) -> Result<usize, E> {
        // SAFETY: the caller guarantees AVX2.
        unsafe { self.plain_in(Avx2Window::new(bytes), data, first, end, f) }
    }

    /// [`Splitter::scan_plain`] with the window way `window`.
    ///
    /// # Safety
    /// The processor supports `W`.
    #[inline(always)]
    pub(crate) unsafe fn plain_in<E, W: Window<2>>(
        &mut self,
        window: W,
        data: &[u8],
        first: usize,
        end: usize,
        mut f: impl RecordSink<E>,
    ) -> Result<usize, E> {
        let len = data.len();
        let mut pos = first;
        while pos < end && pos < len {
            prefetch_ahead(data, pos);
            // SAFETY: the caller guarantees `W`.
            if let Some([delims, newlines]) = unsafe { window.masks(data, pos) } {
                if newlines != 0 {
                    let nl = newlines.trailing_zeros() as usize;
                    self.masked_record(data, pos, nl, delims, &mut f)?;
                    pos += nl + 1;
                    continue;
                }
            }
            let nl = find_byte(data, pos, len, b'\n').unwrap_or(len);
            self.plain_record(data, pos, nl, &mut f)?;
            pos = nl + 1;
        }
        Ok(pos.min(len))
    }

    /// [`Splitter::plain_record`] for a record whose newline is at
    /// `pos + nl` inside a window, with `delims` the window's delimiter
    /// mask: the fields come from the mask's bits, no search.
    #[inline(always)]
    fn masked_record<E>(
        &mut self,
        data: &[u8],
        pos: usize,
        nl: usize,
        delims: u64,
        f: &mut impl RecordSink<E>,
    ) -> Result<(), E> {
        let line = if nl > 0 && data.get(pos + nl - 1) == Some(&b'\r') {
            nl - 1
        } else {
            nl
        };
        if line == 0 || self.wanted == 0 {
            if line > 0 {
                self.spans.clear();
                f.record(data, &self.spans, pos)?;
            }
            return Ok(());
        }
        // Delimiters before the line end (`line` < 64).
        let mut bits = delims & ((1u64 << line) - 1);
        if f.masked(data, pos, line, bits) {
            return Ok(());
        }
        self.spans.clear();
        let mut s = pos;
        while bits != 0 && self.spans.len() + 1 < self.wanted {
            let e = pos + bits.trailing_zeros() as usize;
            self.spans.push((s, e));
            s = e + 1;
            bits &= bits - 1;
        }
        let e = if bits != 0 {
            pos + bits.trailing_zeros() as usize
        } else {
            pos + line
        };
        self.spans.push((s, e));
        f.record(data, &self.spans, pos)
    }

    /// Splits the quote-free record `data[pos..nl]` (a `\r` before the
    /// newline dropped, a blank line skipped) and hands it to `f`.
    #[inline(always)]
    fn plain_record<E>(
        &mut self,
        data: &[u8],
        pos: usize,
        nl: usize,
        f: &mut impl RecordSink<E>,
    ) -> Result<(), E> {
        let line_end = if nl > pos && data.get(nl - 1) == Some(&b'\r') {
            nl - 1
        } else {
            nl
        };
        if line_end > pos {
            split_plain(
                data,
                pos,
                line_end,
                self.delimiter,
                self.wanted,
                &mut self.spans,
            );
            f.record(data, &self.spans, pos)?;
        }
        Ok(())
    }

    /// Like [`Splitter::scan_plain`], for records that may hold quotes.
    pub(crate) fn scan_quoted<E>(
        &mut self,
        data: &[u8],
        first: usize,
        end: usize,
        f: impl RecordSink<E>,
    ) -> Result<usize, E> {
        let bytes = self.quoted_bytes();
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2, checked just above.
            return unsafe { self.quoted_avx2(bytes, data, first, end, f) };
        }
        // SAFETY: SSE2 windows run on every processor.
        unsafe { self.quoted_in(Sse2Window(bytes), data, first, end, f) }
    }

    /// [`Splitter::quoted_in`] compiled for AVX2 processors.
    ///
    /// # Safety
    /// The processor supports AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
    unsafe fn quoted_avx2<E>(
        &mut self,
        bytes: [u8; 3],
        data: &[u8],
        first: usize,
        end: usize,
        f: impl RecordSink<E>,
    ) -> Result<usize, E> {
        // SAFETY: the caller guarantees AVX2.
        unsafe { self.quoted_in(Avx2Window::new(bytes), data, first, end, f) }
    }

    /// [`Splitter::scan_quoted`] with the window way `window` (for the
    /// delimiter, the newline and the quote byte).
    ///
    /// # Safety
    /// The processor supports `W`.
    #[inline(always)]
    unsafe fn quoted_in<E, W: Window<3>>(
        &mut self,
        window: W,
        data: &[u8],
        first: usize,
        end: usize,
        mut f: impl RecordSink<E>,
    ) -> Result<usize, E> {
        let len = data.len();
        let mut pos = first;
        while pos < end && pos < len {
            prefetch_ahead(data, pos);
            // A record without a quote byte splits the plain way, without
            // copying: in most quoted CSV files most records are such.
            if let Some(q) = self.quote {
                // SAFETY: the caller guarantees `W`.
                if let Some([delims, newlines, quotes]) = unsafe { window.masks(data, pos) } {
                    if newlines != 0 {
                        let nl = newlines.trailing_zeros() as usize;
                        if quotes & ((1u64 << nl) - 1) == 0 {
                            self.masked_record(data, pos, nl, delims, &mut f)?;
                            pos += nl + 1;
                            continue;
                        }
                    }
                }
                let rest = data.get(pos..).unwrap_or_default();
                if let Some(i) = memchr2(q, b'\n', rest) {
                    if rest.get(i) == Some(&b'\n') {
                        self.plain_record(data, pos, pos + i, &mut f)?;
                        pos += i + 1;
                        continue;
                    }
                }
            }
            let nl = next_record_end(data, pos, self.quote, false).unwrap_or(len);
            let mut record = data.get(pos..nl).unwrap_or_default();
            if let Some(q) = self.quote {
                self.quotes += memchr::memchr_iter(q, record).count() as u64;
            }
            if let [rest @ .., b'\r'] = record {
                record = rest;
            }
            if !record.is_empty() {
                self.split_quoted(record);
                f.record(&self.unquoted, &self.spans, pos)?;
            }
            pos = nl + 1;
        }
        Ok(pos.min(len))
    }

    /// Every field of one record (no line end), owned: for headers.
    pub(crate) fn split_all(&mut self, record: &[u8]) -> Vec<Vec<u8>> {
        let wanted = std::mem::replace(&mut self.wanted, usize::MAX);
        let base = if self.quote.is_some() {
            self.split_quoted(record);
            &self.unquoted[..]
        } else {
            split_plain(
                record,
                0,
                record.len(),
                self.delimiter,
                self.wanted,
                &mut self.spans,
            );
            record
        };
        let fields = self
            .spans
            .iter()
            .map(|&(a, b)| base.get(a..b).unwrap_or_default().to_vec())
            .collect();
        self.wanted = wanted;
        fields
    }

    /// Splits one record with `csv-core` into `self.unquoted` and
    /// `self.spans`.
    fn split_quoted(&mut self, record: &[u8]) {
        self.spans.clear();
        let Some(quote) = self.quote else {
            return;
        };
        if self.wanted == 0 {
            return;
        }
        let delimiter = self.delimiter;
        let csv = self.csv.get_or_insert_with(|| {
            csv_core::ReaderBuilder::new()
                .delimiter(delimiter)
                .quote(quote)
                .terminator(csv_core::Terminator::Any(b'\n'))
                .build()
        });
        csv.reset();
        // Unquoting never makes a field longer.
        if self.unquoted.len() < record.len() + 1 {
            self.unquoted.resize(record.len() + 1, 0);
        }
        // csv-core drops a UTF-8 BOM at the start of its input; a record is
        // not the start of a file, so feed a leading 0xEF on its own.
        let split = if record.first() == Some(&0xEF) {
            1
        } else {
            record.len()
        };
        let (mut input, mut later) = record.split_at(split);
        let mut written = 0;
        let mut field_start = 0;
        loop {
            let out = self.unquoted.get_mut(written..).unwrap_or_default();
            let (res, nin, nout) = csv.read_field(input, out);
            input = input.get(nin..).unwrap_or_default();
            written += nout;
            match res {
                csv_core::ReadFieldResult::InputEmpty => {
                    // The rest, then an empty input: end of the record.
                    input = later;
                    later = &[];
                }
                csv_core::ReadFieldResult::OutputFull => {
                    let grown = self.unquoted.len() * 2 + 64;
                    self.unquoted.resize(grown, 0);
                }
                csv_core::ReadFieldResult::Field { record_end } => {
                    self.spans.push((field_start, written));
                    field_start = written;
                    if record_end || self.spans.len() >= self.wanted {
                        break;
                    }
                }
                csv_core::ReadFieldResult::End => break,
            }
        }
    }
}

/// Splits `data[start..end]` (one record, no line end, no quotes) at the
/// delimiter into `spans`, stopping after `wanted` fields.
#[inline]
fn split_plain(
    data: &[u8],
    start: usize,
    end: usize,
    delimiter: u8,
    wanted: usize,
    spans: &mut Vec<Span>,
) {
    spans.clear();
    if wanted == 0 {
        return;
    }
    let mut s = start;
    loop {
        let e = find_byte(data, s, end, delimiter).unwrap_or(end);
        spans.push((s, e));
        if e >= end || spans.len() >= wanted {
            break;
        }
        s = e + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record's first `wanted` fields, as strings, read the way this
    /// processor picks; the SSE2 windows every processor has must read
    /// the same.
    fn records(data: &[u8], quote: Option<u8>, wanted: usize, plain: bool) -> Vec<Vec<String>> {
        let picked = records_with(data, quote, wanted, plain, false);
        let sse2 = records_with(data, quote, wanted, plain, true);
        assert_eq!(picked, sse2);
        picked
    }

    /// [`records`], the way this processor picks, or (`sse2`) through SSE2
    /// windows.
    fn records_with(
        data: &[u8],
        quote: Option<u8>,
        wanted: usize,
        plain: bool,
        sse2: bool,
    ) -> Vec<Vec<String>> {
        let mut s = Splitter::new(b',', quote, wanted);
        let mut out = Vec::new();
        let collect = |base: &[u8], spans: &[Span], _start: usize| -> Result<(), ()> {
            out.push(
                spans
                    .iter()
                    .map(|&(a, b)| String::from_utf8_lossy(&base[a..b]).into_owned())
                    .collect(),
            );
            Ok(())
        };
        let end = data.len();
        // SAFETY (both `_in` calls): SSE2 windows run on every processor.
        let stop = match (plain, sse2) {
            (true, false) => s.scan_plain(data, 0, end, collect),
            (false, false) => s.scan_quoted(data, 0, end, collect),
            (true, true) => unsafe {
                s.plain_in(Sse2Window(s.plain_bytes()), data, 0, end, collect)
            },
            (false, true) => unsafe {
                s.quoted_in(Sse2Window(s.quoted_bytes()), data, 0, end, collect)
            },
        };
        assert_eq!(stop, Ok(data.len()));
        out
    }

    /// Records split from the window masks (under 64 bytes, away from the
    /// end) give the fields a plain `split` gives: CRLF, blank lines, empty
    /// fields, more or fewer fields than wanted, records past the window.
    #[test]
    fn window_split_matches_a_plain_split() {
        let mut state = 7u64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let mut data = Vec::new();
        for _ in 0..3000 {
            let fields = next(9);
            for i in 0..fields {
                if i > 0 {
                    data.push(b',');
                }
                let longest = if next(10) == 0 { 40 } else { 9 };
                for _ in 0..next(longest) {
                    data.push(b"ab1.-"[next(5) as usize]);
                }
            }
            if next(5) == 0 {
                data.push(b'\r');
            }
            data.push(b'\n');
        }
        for wanted in [0, 1, 2, 3, 6, 9] {
            let want: Vec<Vec<String>> = data
                .split(|&b| b == b'\n')
                .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
                .filter(|line| !line.is_empty())
                .map(|line| {
                    line.split(|&b| b == b',')
                        .take(wanted)
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect()
                })
                .collect();
            assert_eq!(
                records(&data, None, wanted, true),
                want,
                "plain, {wanted} wanted"
            );
            assert_eq!(
                records(&data, Some(b'"'), wanted, false),
                want,
                "quoted mode, {wanted} wanted"
            );
        }
    }

    fn strs(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn quoted_fields() {
        let data = b"a,\"b,c\",d\n\"x \"\"y\"\"\",,\"\"\n\"multi\nline\",2\r\nlast,\"no newline\"";
        assert_eq!(
            records(data, Some(b'"'), 10, false),
            strs(&[
                &["a", "b,c", "d"],
                &["x \"y\"", "", ""],
                &["multi\nline", "2"],
                &["last", "no newline"],
            ])
        );
    }

    #[test]
    fn plain_fields_crlf_blank_lines() {
        let data = b"a,b\r\n\r\n\nc,,d\ne,\n,f";
        let want = strs(&[&["a", "b"], &["c", "", "d"], &["e", ""], &["", "f"]]);
        assert_eq!(records(data, None, 10, true), want);
        assert_eq!(records(data, Some(b'"'), 10, false), want);
        assert_eq!(records(data, Some(b'"'), 10, true), want);
    }

    #[test]
    fn stops_after_wanted_fields() {
        let data = b"a,b,c,d\n\"a\",b,\"c\nc\",d\n";
        assert_eq!(
            records(data, Some(b'"'), 2, false),
            strs(&[&["a", "b"], &["a", "b"]])
        );
        assert_eq!(records(b"a,b,c\n", None, 2, true), strs(&[&["a", "b"]]));
        assert_eq!(
            records(b"a,b\n\nc\n", None, 0, true),
            vec![Vec::<String>::new(); 2]
        );
    }

    #[test]
    fn bom_inside_a_record_is_data() {
        let data = "\u{feff}a,\"b\"\n".as_bytes();
        assert_eq!(
            records(data, Some(b'"'), 10, false),
            strs(&[&["\u{feff}a", "b"]])
        );
    }

    #[test]
    fn record_ends_respect_quote_parity() {
        let data = b"a\"\n\"b\nc";
        assert_eq!(next_record_end(data, 0, Some(b'"'), false), Some(5));
        assert_eq!(next_record_end(data, 0, Some(b'"'), true), Some(2));
        assert_eq!(next_record_end(data, 0, None, false), Some(2));
        assert_eq!(next_record_end(data, 6, Some(b'"'), false), None);
        assert_eq!(next_record_end(data, 100, Some(b'"'), false), None);
    }

    #[test]
    fn split_all_header() {
        let mut s = Splitter::new(b';', Some(b'"'), 1);
        assert_eq!(
            s.split_all(b"name;\"a;b\";x"),
            vec![b"name".to_vec(), b"a;b".to_vec(), b"x".to_vec()]
        );
        let mut s = Splitter::new(b';', None, 1);
        assert_eq!(
            s.split_all(b"name;\"a;b\""),
            vec![b"name".to_vec(), b"\"a".to_vec(), b"b\"".to_vec()]
        );
    }
}
