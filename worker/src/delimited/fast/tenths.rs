//! The value of a fast record: a decimal with one fractional digit, read
//! as an integer number of tenths from one 8-byte word.

/// Parses `-?d?d.d\n` from the first bytes of `word` (little-endian).
/// Returns the value in tenths and the bytes it took, newline included;
/// `None` for anything else. For a value whose end is not known yet (the
/// record-by-record path): the first newline of the word ends it, and
/// [`parse_tenths_ending`] reads it.
#[inline(always)]
pub(crate) fn parse_tenths(word: u64) -> Option<(i64, usize)> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The lowest byte equal to '\n' (the zero-byte test is exact for the
    // lowest one).
    let x = word ^ (LO * u64::from(b'\n'));
    let newlines = x.wrapping_sub(LO) & !x & HIGH;
    let len = (newlines.trailing_zeros() / 8) as usize;
    if len == 0 || len >= 8 {
        return None;
    }
    // The value and its newline moved to the top of the word.
    let value = parse_tenths_ending(word << (8 * (7 - len)), len, word as u8)?;
    Some((value, len + 1))
}

/// What a value of one length and sign must look like in the word that
/// ends with its newline, as three words that check all its bytes and the
/// newline at once, and the digits' low nibbles (tens, units, fraction in
/// bytes 3, 4, 6: a digit that is not there is 0) and their signed
/// weights.
///
/// The newline is checked because the loop that knows where records end
/// finds their ends as newline *or quote* bytes, and only inside its
/// window (see [`super::lanes::Lanes::classify`]): a record that holds a
/// quote ends, to it, at the quote, and fails here or on its key; a
/// second record with no end in the window is read as ending at the first
/// byte past it, and fails here unless that byte is its newline.
///
/// The check: `y = (word ^ expect) & mask` makes each digit byte its
/// digit's value (0 to 9 for a digit, more for anything else) and each
/// fixed byte (point, sign, newline) 0 if it is the one expected; adding `add`
/// (0x76 to a digit byte, 0x7F to a fixed byte) sets a byte's high bit
/// exactly when it is wrong, and `y`'s own high bit catches what would
/// carry out of the byte. Bytes outside the value are masked to 0 and
/// add 0: no carry reaches them from a right byte.
///
/// Measured and dropped: 64-byte shapes that also hold the constants of
/// an earlier check, and the sign as a factor. Fewer instructions (112.3
/// against 114.4 a record on Q1's kernel) but 12% slower: the extra loads
/// and the multiplication lengthen each value's dependency chain.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Shape {
    expect: u64,
    mask: u64,
    add: u64,
    /// The weight of each digit byte of the word shifted up a byte (the
    /// newline out, the digits where `maddubs` sums them into one 32-bit
    /// lane), signed: tens (byte 4) 100, units (5) 10, fraction (7) 1,
    /// negated for a negative value, 0 for every other byte (see
    /// [`tenths_pair_avx2`]).
    weights: u64,
    nibbles: u64,
}

/// Lengths [`SHAPES`] covers: any length a 64-byte window holds.
pub(crate) const LENGTHS: usize = 64;

/// Per `2 * len + neg` for lengths below [`LENGTHS`]: the four shapes a
/// value can have (`d.d`, `dd.d`, `-d.d`, `-dd.d`); every other entry
/// fails every word (its `add` sets a high bit on its own). Every length a
/// window holds has an entry, so that the index needs no clamp (8 KiB, of
/// which the lines of the four shapes are the ones read).
static SHAPES: [Shape; 2 * LENGTHS] = {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let never = Shape {
        expect: 0,
        mask: 0,
        add: 0x80,
        weights: 0,
        nibbles: 0,
    };
    let mut t = [never; 2 * LENGTHS];
    let mut i = 0;
    while i < 2 * LENGTHS {
        let (len, neg) = (i / 2, i % 2 == 1);
        let int_digits = len as i64 - 2 - neg as i64;
        if int_digits == 1 || int_digits == 2 {
            // Byte 7 the newline, 6 the fraction, 5 the point, 4 (and 3)
            // the integer digits, then the sign.
            let first = 7 - len;
            let mut digits = 0xFFu64 << 48;
            let mut b = first + neg as usize;
            while b < 5 {
                digits |= 0xFF << (8 * b);
                b += 1;
            }
            let mut fixed = (0xFFu64 << 40) | (0xFF << 56);
            let mut expect = ((b'.' as u64) << 40) | ((b'\n' as u64) << 56);
            if neg {
                fixed |= 0xFF << (8 * first);
                expect |= (b'-' as u64) << (8 * first);
            }
            t[i] = Shape {
                expect: expect | (ZEROS & digits),
                mask: digits | fixed,
                add: (0x7676_7676_7676_7676 & digits) | (0x7F7F_7F7F_7F7F_7F7F & fixed),
                weights: weights(digits << 8, neg),
                nibbles: digits & 0x0F0F_0F0F_0F0F_0F0F,
            };
        }
        i += 1;
    }
    t
};

/// The per-byte weights of a shape whose digit bytes are `digits` (0xFF
/// each), as signed bytes: 100 for tens, 10 for units, 1 for the fraction,
/// each negated when `neg`.
const fn weights(digits: u64, neg: bool) -> u64 {
    const PLACES: [i8; 8] = [0, 0, 0, 0, 100, 10, 0, 1];
    let mut w = 0u64;
    let mut b = 0;
    while b < 8 {
        if (digits >> (8 * b)) & 0xFF != 0 {
            let place = if neg { -PLACES[b] } else { PLACES[b] };
            w |= ((place as u8) as u64) << (8 * b);
        }
        b += 1;
    }
    w
}

/// [`parse_tenths`] for a value whose length is known: `len` bytes that
/// end just before a newline, `word` the 8 bytes that end with that
/// newline (the value before it, what precedes the value ignored),
/// `first` the value's first byte (where a sign would be). The loop that
/// knows where each record ends (from its window's masks) reads the value
/// this way: the length and sign pick the value's shape from a small
/// table, and the digits always sit in the same bytes (tens 3, units 4,
/// fraction 6), so there is no search for the point and no shift that
/// depends on it. A word whose last byte is not a newline is no value.
#[inline(always)]
pub(crate) fn parse_tenths_ending(word: u64, len: usize, first: u8) -> Option<i64> {
    // SAFETY: the length is clamped below LENGTHS.
    let (value, ok) = unsafe { tenths_ending(word, len.min(LENGTHS - 1), first) };
    ok.then_some(value)
}

/// [`parse_tenths_ending`] without the branch: the value (meaningless when
/// the bytes are not a value of the shape) and whether they are one, so
/// that a caller can check several values at once.
///
/// # Safety
/// `len < LENGTHS` (a value inside a 64-byte window is that short).
#[inline(always)]
pub(crate) unsafe fn tenths_ending(word: u64, len: usize, first: u8) -> (i64, bool) {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let neg = first == b'-';
    debug_assert!(len < LENGTHS);
    // SAFETY: the caller's bound, len < LENGTHS, keeps the index below
    // 2 * LENGTHS.
    let shape = unsafe { SHAPES.get_unchecked(2 * len + usize::from(neg)) };
    let y = (word ^ shape.expect) & shape.mask;
    let bad = (y | y.wrapping_add(shape.add)) & HIGH;
    let aligned = (word & shape.nibbles) >> 16;
    let abs = (aligned.wrapping_mul(0x640A_0001) >> 32) & 0x3FF;
    let sign = -i64::from(neg);
    ((abs as i64 ^ sign) - sign, bad == 0)
}

/// The four shapes a value can have, as [`SHAPES`] indexes them
/// (`2 * len + neg`): `d.d`, `dd.d`, `-d.d`, `-dd.d`. A pair of values
/// looks its shapes up in [`PAIRS`] by these positions, [`NONE`] standing
/// for anything else.
const KINDS: [usize; 4] = [6, 8, 9, 11];

/// The kind of no value: its row in [`PAIRS`] fails every word.
const NONE: u8 = KINDS.len() as u8;

/// [`PAIRS`]' rows per first kind: `row = KIND_STRIDE * kind1 + kind2`
/// (a power of two above every kind, [`NONE`] included).
const KIND_STRIDE: usize = 8;

/// `KIND_OF[256 * (len % 256) + first]`: the kind of a value of `len`
/// bytes whose first byte is `first` ([`NONE`] for every length and first
/// byte no shape has: a digit first for the signed shapes, `-` for the
/// others, so the sign needs no comparison of its own). Every length of
/// a byte has a row (64 KiB, of which three lines are read), so that a
/// length that wrapped because a record's delimiter was not before its
/// newline (from 191 on, taken modulo 256) is no value: the loop need
/// not compare their places.
static KIND_OF: [u8; 256 * 256] = {
    let mut t = [NONE; 256 * 256];
    let mut k = 0;
    while k < KINDS.len() {
        let (len, neg) = (KINDS[k] / 2, KINDS[k] % 2 == 1);
        let mut first = 0;
        while first < 256 {
            if (first == b'-' as usize) == neg {
                t[256 * len + first] = k as u8;
            }
            first += 1;
        }
        k += 1;
    }
    t
};

/// What [`tenths_pair_avx2`] checks and sums a pair of values by, for one
/// pair of kinds: each field holds the first value's word in its low half
/// and the second's in its high half, ready for 128-bit instructions
/// without rearranging (see [`Shape`]).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct PairShape {
    expect: [u64; 2],
    mask: [u64; 2],
    add: [u64; 2],
    weights: [u64; 2],
}

/// Per `KIND_STRIDE * kind1 + kind2`: the shapes of a pair of values (4 KiB,
/// of which the 16 rows of real pairs are read).
static PAIRS: [PairShape; KIND_STRIDE * KIND_STRIDE] = {
    let never = SHAPES[0];
    let mut t = [PairShape {
        expect: [0; 2],
        mask: [0; 2],
        add: [0; 2],
        weights: [0; 2],
    }; KIND_STRIDE * KIND_STRIDE];
    let mut i = 0;
    while i < KIND_STRIDE * KIND_STRIDE {
        let (k1, k2) = (i / KIND_STRIDE, i % KIND_STRIDE);
        let s1 = if k1 < KINDS.len() {
            SHAPES[KINDS[k1]]
        } else {
            never
        };
        let s2 = if k2 < KINDS.len() {
            SHAPES[KINDS[k2]]
        } else {
            never
        };
        t[i] = PairShape {
            expect: [s1.expect, s2.expect],
            mask: [s1.mask, s2.mask],
            add: [s1.add, s2.add],
            weights: [s1.weights, s2.weights],
        };
        i += 1;
    }
    t
};

/// [`tenths_ending`] of two values at once, in 128-bit vectors: the
/// checks, and the digits summed by their shapes' signed weights
/// (`maddubs`: tens by ±100, units by ±10, the fraction by ±1, then the
/// pairs added), for both in one instruction each. The weights carry the
/// sign, so no select follows. The pair's shapes come as one row
/// ([`PAIRS`]), picked by the two values' kinds ([`KIND_OF`]: a lookup by
/// length and first byte), so that no instruction rearranges them. The
/// values (meaningless where the bytes are not values of the shape) and
/// whether both are.
///
/// Lengths as [`super::lanes::Lanes::tenths_pair`] takes them: below
/// [`LENGTHS`], or wrapped (`usize::MAX - 64` or more, 191 to 255 modulo
/// 256: no value's).
///
/// # Safety
/// The processor supports AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn tenths_pair_avx2(
    words: [u64; 2],
    lens: [usize; 2],
    firsts: [u8; 2],
) -> ([i64; 2], bool) {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi64, _mm_and_si128, _mm_extract_epi32, _mm_load_si128, _mm_madd_epi16,
        _mm_maddubs_epi16, _mm_or_si128, _mm_set1_epi16, _mm_set1_epi8, _mm_set_epi64x,
        _mm_slli_epi64, _mm_testz_si128, _mm_xor_si128,
    };
    // SAFETY: each length is taken modulo 256, so each index is below
    // 256 * 256; kinds are at most NONE < KIND_STRIDE, so the row is in
    // PAIRS; a row is 64-byte aligned, so each of its fields is 16.
    let [expect, mask, add, weights] = unsafe {
        let kind = |i: usize| {
            usize::from(*KIND_OF.get_unchecked(256 * (lens[i] & 0xFF) + usize::from(firsts[i])))
        };
        let row = PAIRS.get_unchecked(KIND_STRIDE * kind(0) + kind(1));
        let p = (row as *const PairShape).cast::<__m128i>();
        [
            _mm_load_si128(p),
            _mm_load_si128(p.add(1)),
            _mm_load_si128(p.add(2)),
            _mm_load_si128(p.add(3)),
        ]
    };
    let word = _mm_set_epi64x(words[1] as i64, words[0] as i64);
    let y = _mm_and_si128(_mm_xor_si128(word, expect), mask);
    let bad = _mm_or_si128(y, _mm_add_epi64(y, add));
    let ok = _mm_testz_si128(bad, _mm_set1_epi8(0x80u8 as i8)) == 1;
    // The digits' values (the low nibbles) times their signed weights,
    // summed: the values with their signs, no branch or select for the
    // sign.
    // Shifted up a byte, each word's digits are in its upper 32 bits.
    let digits = _mm_and_si128(_mm_slli_epi64::<8>(word), _mm_set1_epi8(0x0F));
    let by_place = _mm_maddubs_epi16(digits, weights);
    let sums = _mm_madd_epi16(by_place, _mm_set1_epi16(1));
    let values = [_mm_extract_epi32::<1>(sums), _mm_extract_epi32::<3>(sums)];
    (values.map(i64::from), ok)
}

#[cfg(test)]
mod tests {
    use super::super::xorshift;
    use super::*;

    fn word(s: &[u8]) -> u64 {
        let mut w = [b'x'; 8];
        w[..s.len()].copy_from_slice(s);
        u64::from_le_bytes(w)
    }

    /// The shape, spelled out byte by byte.
    fn reference(bytes: &[u8; 8]) -> Option<(i64, usize)> {
        let neg = bytes[0] == b'-';
        let rest = &bytes[usize::from(neg)..];
        let ints = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=2).contains(&ints)
            || rest.get(ints) != Some(&b'.')
            || !rest.get(ints + 1).is_some_and(u8::is_ascii_digit)
            || rest.get(ints + 2) != Some(&b'\n')
        {
            return None;
        }
        let digits = rest[..ints]
            .iter()
            .chain(&rest[ints + 1..ints + 2])
            .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
        Some((
            if neg { -digits } else { digits },
            ints + 3 + usize::from(neg),
        ))
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
            b"-\n",
            b"-1.\n",
        ] {
            assert_eq!(
                parse_tenths(word(s)),
                None,
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
    }

    /// Eight bytes from the random bits `r`: digits, but one byte in
    /// `one_in` (on average) from `alphabet`.
    fn bytes_from(r: u64, alphabet: &[u8], one_in: usize) -> [u8; 8] {
        let mut bytes = [0u8; 8];
        for (i, b) in bytes.iter_mut().enumerate() {
            let pick = (r >> (8 * i)) as usize;
            *b = if pick % one_in == 0 {
                alphabet[(pick >> 2) % alphabet.len()]
            } else {
                b'0' + ((pick >> 2) % 10) as u8
            };
        }
        bytes
    }

    /// The two-value vector path agrees with the scalar one on every
    /// length a window holds, on words of the bytes that matter.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn pairs_agree_with_single_values() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        let mut word = || {
            let r = next();
            let mut bytes = bytes_from(r, b"0123456789.-;\n\"\x00\xff", 3);
            // Often a point where a value has one, and a newline after it.
            if r & 0x30000 != 0 {
                bytes[5] = b'.';
            }
            if r & 0xC0000 != 0 {
                bytes[7] = b'\n';
            }
            u64::from_le_bytes(bytes)
        };
        // Every length a shape has, and others around and far from them,
        // in every pairing.
        const LENS: [usize; 13] = [
            0,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            8,
            31,
            63,
            usize::MAX - 64,
            usize::MAX,
        ];
        for _ in 0..20_000 {
            let words = [word(), word()];
            for lens in LENS.iter().flat_map(|&a| LENS.map(|b| [a, b])) {
                // A value's first byte, as the loop reads it (a byte
                // before the word for a value too long to be one).
                let first = |w: u64, len: usize| match len {
                    1..=7 => (w >> (8 * (7 - len))) as u8,
                    _ => b'-',
                };
                let firsts = [first(words[0], lens[0]), first(words[1], lens[1])];
                // SAFETY: lengths clamped below LENGTHS for the single
                // values (a wrapped one to the last, no shape's), as the
                // portable way does; AVX2 checked above.
                let ((v1, ok1), (v2, ok2), (pair, ok)) = unsafe {
                    (
                        tenths_ending(words[0], lens[0].min(LENGTHS - 1), firsts[0]),
                        tenths_ending(words[1], lens[1].min(LENGTHS - 1), firsts[1]),
                        tenths_pair_avx2(words, lens, firsts),
                    )
                };
                assert_eq!(ok, ok1 && ok2, "{words:x?} {lens:?}");
                if ok {
                    assert_eq!(pair, [v1, v2], "{words:x?} {lens:?}");
                }
            }
        }
    }

    /// Millions of words of the bytes that matter (and a few others),
    /// against the byte-by-byte reference.
    #[test]
    fn agrees_with_the_reference_on_random_words() {
        const ALPHABET: &[u8] = b"0123456789.-\n;\r/:~\x00\xff";
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2_000_000 {
            let r = next();
            // Mostly digits, so that whole values come up often.
            let mut bytes = bytes_from(r, ALPHABET, 4);
            // Put a point and a newline where a value would have them.
            if r & 0x300 == 0 {
                bytes[(r as usize >> 12) % 3 + 1] = b'.';
                bytes[(r as usize >> 16) % 3 + 3] = b'\n';
            }
            assert_eq!(
                parse_tenths(u64::from_le_bytes(bytes)),
                reference(&bytes),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
            // The same bytes, as the value before a newline: the `len`
            // bytes before the word's last, which is the newline, or, when
            // `r` says, a quote (no value then).
            let mut ending = bytes;
            ending[7] = if (r >> 61) & 3 == 0 { b'"' } else { b'\n' };
            for len in 0..=7 {
                let mut text = ending[7 - len..].to_vec();
                text.resize(8, b'x');
                let want = if text[..len].contains(&b'\n') || ending[7] != b'\n' {
                    None
                } else {
                    reference(text[..8].try_into().unwrap_or(&[0; 8])).map(|(v, _)| v)
                };
                let first = if len == 0 { ending[7] } else { ending[7 - len] };
                assert_eq!(
                    parse_tenths_ending(u64::from_le_bytes(ending), len, first),
                    want,
                    "{:?} {len}",
                    String::from_utf8_lossy(&ending)
                );
            }
        }
    }
}
