//! How the fast loop holds what it reads: the delimiter, newline and quote
//! bytes of a 64-byte window as bit masks, and a key's first [`HEAD`]
//! bytes. [`Portable`] works on any processor (SSE2 on x86-64, words
//! elsewhere); [`Avx2`] holds a key in one 256-bit register, so that
//! masking, hashing and comparing it take a few instructions instead of a
//! few per word. The scan picks one at run time.

use super::super::scan::window_masks;
use super::tenths::{tenths_ending, LENGTHS};

/// Bytes of a table entry that hold a key: its head (see [`Lanes::key`]).
pub(crate) const HEAD: usize = 32;

/// The longest key a head holds whole: its bytes, then its length in the
/// head's last byte, so that comparing heads compares keys. A longer key's
/// head holds its first `SHORT_KEY` bytes and a zero last byte (no short
/// key's length is 0); its rest lives in the table's arena and is compared
/// there.
pub(crate) const SHORT_KEY: usize = HEAD - 1;

/// What the fast loop needs of the processor's vectors. Every way gives
/// the same masks and the same head words; each hashes a head its own way
/// ([`Lanes::mix`]), so a table is filled and read through one way only.
pub(crate) trait Lanes: Copy {
    /// A key's first [`HEAD`] bytes, zero past its end.
    type Key: Copy;

    /// For the 64 bytes at `at`: bit `i` of the first mask set where
    /// `data[at + i]` is the first byte (the delimiter), of the second
    /// where it is the second or the third (a newline or a quote: where a
    /// fast record ends, or stops being one; the value check tells them
    /// apart, see [`super::tenths`]); `None` where this way has no cheap
    /// window.
    ///
    /// # Safety
    /// `at + 64 <= data.len()`, and the processor supports this way.
    unsafe fn classify(data: &[u8], at: usize, bytes: [u8; 3]) -> Option<[u64; 2]>;

    /// The head of the key of `len` bytes at `pos`, for `len` up to
    /// [`SHORT_KEY`]: its bytes, zeros, and `len` in the last byte, the
    /// first two words xored with the hash's constants ([`MIX`]). With
    /// `len` = [`HEAD`], the head of any longer key: its first
    /// [`SHORT_KEY`] bytes and a zero, xored the same way.
    ///
    /// # Safety
    /// `len <= HEAD`, `pos + HEAD <= data.len()`, and the processor
    /// supports this way.
    unsafe fn key(data: &[u8], pos: usize, len: usize) -> Self::Key;

    /// The table's hash of a head: its words folded in two, `(w0 ^ w2,
    /// w1 ^ w3)`, then multiplied together, the product's halves xored.
    /// Each way multiplies as it does best, so the hashes of two ways
    /// differ: a table is filled and read through one way only (the scan
    /// picks one per process).
    ///
    /// # Safety
    /// The processor supports this way.
    unsafe fn mix(key: Self::Key) -> u64;

    /// [`Lanes::mix`] of a head given as its four words (a stored head).
    ///
    /// # Safety
    /// The processor supports this way.
    unsafe fn mix_words(words: &[u64; 4]) -> u64;

    /// Whether `key` is `head` (four little-endian words).
    ///
    /// # Safety
    /// The processor supports this way.
    unsafe fn same(key: Self::Key, head: &[u64; 4]) -> bool;

    /// The key as four little-endian words.
    ///
    /// # Safety
    /// The processor supports this way.
    unsafe fn words(key: Self::Key) -> [u64; 4];

    /// [`tenths_ending`] of a window's two values: their values and
    /// whether both are values of the shape. A length is the distance from
    /// a delimiter to the newline after it, less one, and wraps (is
    /// `usize::MAX - 64` or more) where the delimiter is not before the
    /// newline: no value then.
    ///
    /// # Safety
    /// The processor supports this way.
    #[inline(always)]
    unsafe fn tenths_pair(words: [u64; 2], lens: [usize; 2], firsts: [u8; 2]) -> ([i64; 2], bool) {
        // SAFETY: each length is clamped below LENGTHS (the last one, and
        // every wrapped length, no shape's).
        let ((a, ok_a), (b, ok_b)) = unsafe {
            let len = |i: usize| lens[i].min(LENGTHS - 1);
            (
                tenths_ending(words[0], len(0), firsts[0]),
                tenths_ending(words[1], len(1), firsts[1]),
            )
        };
        ([a, b], ok_a & ok_b)
    }
}

/// `HEADS[len]`: per word of a head, the mask of the key bytes it keeps and
/// the bits it then flips (the length, in the last byte; the hash's
/// constants, [`MIX`], in the first two words): the head of a key of `len`
/// bytes is `(word & mask) ^ mark`, word by word (see [`Lanes::key`];
/// `len` = [`HEAD`] for a longer key). Comparing heads still compares
/// keys, and the hash needs no constant of its own.
const HEADS: [[[u64; 4]; 2]; HEAD + 1] = {
    let mut t = [[[0u64; 4]; 2]; HEAD + 1];
    let mut len = 0;
    while len <= HEAD {
        let kept = if len > SHORT_KEY { SHORT_KEY } else { len };
        let mut i = 0;
        while i < 4 {
            let left = kept.saturating_sub(8 * i);
            let bytes = if left > 8 { 8 } else { left };
            t[len][0][i] = if bytes == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * bytes)) - 1
            };
            i += 1;
        }
        t[len][1][0] = MIX[0];
        t[len][1][1] = MIX[1];
        if len <= SHORT_KEY {
            t[len][1][3] = (len as u64) << 56;
        }
        len += 1;
    }
    t
};

/// The length of the key whose head is `words` ([`Lanes::words`]), for a
/// key of at most [`SHORT_KEY`] bytes: the head's last byte (see
/// [`HEADS`]).
#[inline(always)]
pub(crate) fn short_len(words: [u64; 4]) -> usize {
    (words[3] >> 56) as usize
}

/// What every head holds xored into its first two words (digits of pi and
/// of the golden ratio; see [`HEADS`]), so that the two words
/// [`Lanes::mix`] multiplies are not zero for a key of zeros.
const MIX: [u64; 2] = [0x243F_6A88_85A3_08D3, 0x9E37_79B9_7F4A_7C15];

/// Reads 8 bytes at `at`, little-endian, without a bounds check.
///
/// # Safety
/// `at + 8 <= data.len()`.
#[inline(always)]
pub(crate) unsafe fn load(data: &[u8], at: usize) -> u64 {
    // SAFETY: the caller guarantees the 8 bytes are inside `data`; the read
    // is unaligned.
    let bytes = unsafe { data.as_ptr().add(at).cast::<[u8; 8]>().read_unaligned() };
    u64::from_le_bytes(bytes)
}

/// Words, and SSE2 windows on x86-64: every processor.
#[derive(Clone, Copy)]
pub(crate) struct Portable;

impl Lanes for Portable {
    type Key = [u64; 4];

    #[inline(always)]
    unsafe fn classify(data: &[u8], at: usize, bytes: [u8; 3]) -> Option<[u64; 2]> {
        let [first, second, third] = window_masks(data, at, bytes)?;
        Some([first, second | third])
    }

    #[inline(always)]
    unsafe fn key(data: &[u8], pos: usize, len: usize) -> [u64; 4] {
        // SAFETY: the caller guarantees `len <= HEAD`, and the four words
        // end at pos + HEAD <= data.len().
        unsafe {
            let [keep, mark] = HEADS.get_unchecked(len);
            [
                (load(data, pos) & keep[0]) ^ mark[0],
                (load(data, pos + 8) & keep[1]) ^ mark[1],
                load(data, pos + 16) & keep[2],
                (load(data, pos + 24) & keep[3]) ^ mark[3],
            ]
        }
    }

    /// One 64x64-bit multiplication (`mulx` on x86-64).
    #[inline(always)]
    unsafe fn mix(key: [u64; 4]) -> u64 {
        let p = u128::from(key[0] ^ key[2]) * u128::from(key[1] ^ key[3]);
        (p as u64) ^ ((p >> 64) as u64)
    }

    #[inline(always)]
    unsafe fn mix_words(words: &[u64; 4]) -> u64 {
        // SAFETY: `Portable` runs on every processor.
        unsafe { Self::mix(*words) }
    }

    #[inline(always)]
    unsafe fn same(key: [u64; 4], head: &[u64; 4]) -> bool {
        ((key[0] ^ head[0]) | (key[1] ^ head[1]) | (key[2] ^ head[2]) | (key[3] ^ head[3])) == 0
    }

    #[inline(always)]
    unsafe fn words(key: [u64; 4]) -> [u64; 4] {
        key
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::Avx2;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_castsi256_si128, _mm256_cmpeq_epi8,
        _mm256_extracti128_si256, _mm256_load_si256, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8, _mm256_storeu_si256, _mm256_testz_si256,
        _mm256_xor_si256, _mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_shuffle_epi32,
        _mm_xor_si128,
    };

    use super::{Lanes, HEAD};

    /// [`super::HEADS`] as bytes, one 64-byte line per length: the mask,
    /// then the mark, each loaded as one vector.
    #[repr(C, align(64))]
    struct Heads([[u8; 2 * HEAD]; HEAD + 1]);

    static HEAD_BYTES: Heads = {
        let mut t = [[0u8; 2 * HEAD]; HEAD + 1];
        let mut len = 0;
        while len <= HEAD {
            let mut b = 0;
            while b < 2 * HEAD {
                let word = super::HEADS[len][b / HEAD][(b % HEAD) / 8];
                t[len][b] = (word >> (8 * (b % 8))) as u8;
                b += 1;
            }
            len += 1;
        }
        Heads(t)
    };

    /// AVX2 (Haswell, 2013, and later; Zen): a key in one register.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    impl Lanes for Avx2 {
        type Key = __m256i;

        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn classify(
            data: &[u8],
            at: usize,
            [first, second, third]: [u8; 3],
        ) -> Option<[u64; 2]> {
            // SAFETY: the caller guarantees 64 readable bytes at `at`;
            // `loadu` has no alignment requirement.
            let (lo, hi) = unsafe {
                let p = data.as_ptr().add(at).cast::<__m256i>();
                (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
            };
            let [first, second, third] = [first, second, third].map(|b| _mm256_set1_epi8(b as i8));
            let mask = |hits: [__m256i; 2]| {
                let [low, high] = hits.map(|h| _mm256_movemask_epi8(h) as u32);
                u64::from(low) | (u64::from(high) << 32)
            };
            let either = |v: __m256i| {
                _mm256_or_si256(_mm256_cmpeq_epi8(v, second), _mm256_cmpeq_epi8(v, third))
            };
            Some([
                mask([_mm256_cmpeq_epi8(lo, first), _mm256_cmpeq_epi8(hi, first)]),
                mask([either(lo), either(hi)]),
            ])
        }

        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn key(data: &[u8], pos: usize, len: usize) -> __m256i {
            // SAFETY: the caller guarantees pos + HEAD <= data.len() and
            // len <= HEAD, so the key's read and the line are in bounds;
            // the lines are 64-byte aligned, as `load` requires.
            unsafe {
                let bytes = _mm256_loadu_si256(data.as_ptr().add(pos).cast());
                let line = HEAD_BYTES.0.get_unchecked(len).as_ptr();
                let keep = _mm256_load_si256(line.cast());
                let mark = _mm256_load_si256(line.add(HEAD).cast());
                _mm256_xor_si256(_mm256_and_si256(bytes, keep), mark)
            }
        }

        /// A carry-less multiplication (`pclmulqdq`), in the vector unit:
        /// the folded words multiply where they are, and one move takes
        /// the hash out, where a `mulx` needed both words moved out first
        /// (two moves, three instructions, on the port the window's masks
        /// also leave by). Q1's kernel alone: 2% less time (`scan_file`
        /// hot, medians of 7 alternating runs); Q1 at -j2 0.188 -> 0.178 s.
        /// The hash's constants are in the head already (see `HEADS`).
        #[inline]
        #[target_feature(enable = "avx2,pclmulqdq")]
        unsafe fn mix(key: __m256i) -> u64 {
            let folded = _mm_xor_si128(
                _mm256_castsi256_si128(key),
                _mm256_extracti128_si256::<1>(key),
            );
            // The first word times the second, then the product's halves
            // xored (swapped by the shuffle).
            let p = _mm_clmulepi64_si128::<0x10>(folded, folded);
            let halves = _mm_xor_si128(p, _mm_shuffle_epi32::<0x4E>(p));
            _mm_cvtsi128_si64(halves) as u64
        }

        #[inline]
        #[target_feature(enable = "avx2,pclmulqdq")]
        unsafe fn mix_words(words: &[u64; 4]) -> u64 {
            // SAFETY: `words` is 32 readable bytes (in memory order, as
            // the register holds a head); the caller guarantees the
            // processor.
            unsafe { Self::mix(_mm256_loadu_si256(words.as_ptr().cast())) }
        }

        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn same(key: __m256i, head: &[u64; 4]) -> bool {
            // SAFETY: `head` is 32 readable bytes.
            let stored = unsafe { _mm256_loadu_si256(head.as_ptr().cast()) };
            let differ = _mm256_xor_si256(key, stored);
            _mm256_testz_si256(differ, differ) == 1
        }

        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn tenths_pair(
            words: [u64; 2],
            lens: [usize; 2],
            firsts: [u8; 2],
        ) -> ([i64; 2], bool) {
            // SAFETY: passed on from the caller.
            unsafe { super::super::tenths::tenths_pair_avx2(words, lens, firsts) }
        }

        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn words(key: __m256i) -> [u64; 4] {
            let mut out = [0u64; 4];
            // SAFETY: `out` is 32 writable bytes; `storeu` has no alignment
            // requirement.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), key) };
            // The register holds the bytes in memory order; words are read
            // little-endian, as `load` reads them.
            out.map(u64::from_le)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Of `keys`, the share whose hashes (through `L`) pick distinct
    /// entries of a table of `2^bits` entries (bits 6 and up pick one).
    fn spread<L: Lanes>(keys: &[Vec<u8>], bits: u32) -> f64 {
        let mut homes = std::collections::HashSet::new();
        for key in keys {
            let mut data = key.clone();
            data.resize(key.len() + 64, b';');
            // SAFETY: the key is short, and HEAD bytes follow its start;
            // callers pass a way the processor supports.
            let hash = unsafe { L::mix(L::key(&data, 0, key.len())) };
            homes.insert((hash >> 6) & ((1 << bits) - 1));
        }
        homes.len() as f64 / keys.len() as f64
    }

    /// Keys as people make them (counters, padded numbers, prefixes and
    /// suffixes, two raw bytes, addresses) spread over a table about as
    /// random keys would: of 10,000 random keys over 2^20 entries (the
    /// sparse table's size for them) about 0.5% share a first entry, of
    /// 413 over 2^15 about 0.6%. Measured: at most 3.1% (the
    /// multiplication, on padded numbers), 0.3% for the carry-less one.
    #[test]
    fn made_up_keys_spread() {
        let families: Vec<Vec<Vec<u8>>> = vec![
            (0..10_000).map(|i| format!("k{i}").into_bytes()).collect(),
            (0..10_000)
                .map(|i| format!("{i:08}").into_bytes())
                .collect(),
            (0..10_000)
                .map(|i| format!("sensor-{i:06}").into_bytes())
                .collect(),
            (0..10_000)
                .map(|i| format!("/var/log/app/server-{i:04}.log").into_bytes())
                .collect(),
            (0..10_000u32)
                .map(|i| vec![i as u8, (i >> 8) as u8])
                .collect(),
            (0..10_000)
                .map(|i| format!("{i}.0.0.1").into_bytes())
                .collect(),
        ];
        for keys in &families {
            let small = &keys[..413];
            let ways = [
                (spread::<Portable>(keys, 20), spread::<Portable>(small, 15)),
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("pclmulqdq")
                {
                    (spread::<Avx2>(keys, 20), spread::<Avx2>(small, 15))
                } else {
                    (1.0, 1.0)
                },
            ];
            for (many, few) in ways {
                let name = String::from_utf8_lossy(&keys[0]);
                assert!(many > 0.95, "{name}: {many}");
                assert!(few > 0.95, "{name}: {few}");
            }
        }
    }

    /// Both ways agree on keys of every length at every offset.
    #[test]
    fn ways_agree() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        for pos in 0..(data.len() - 64) {
            for len in 0..=HEAD {
                // SAFETY: pos + 64 <= data.len(), len <= HEAD.
                let portable = unsafe { Portable::key(&data, pos, len) };
                let mut expect = [0u8; HEAD];
                let kept = len.min(SHORT_KEY);
                expect[..kept].copy_from_slice(&data[pos..pos + kept]);
                if len <= SHORT_KEY {
                    expect[HEAD - 1] = len as u8;
                }
                let mut words: Vec<u64> = expect
                    .chunks(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                    .collect();
                words[0] ^= MIX[0];
                words[1] ^= MIX[1];
                assert_eq!(&portable[..], &words[..]);
                if len <= SHORT_KEY {
                    assert_eq!(short_len(portable), len);
                }
                // SAFETY: `Portable` runs on every processor.
                unsafe {
                    assert_eq!(Portable::mix(portable), Portable::mix_words(&portable));
                }
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("pclmulqdq")
                {
                    // SAFETY: as above, and the processor has AVX2.
                    unsafe {
                        let k = Avx2::key(&data, pos, len);
                        assert_eq!(Avx2::words(k), portable);
                        assert_eq!(Avx2::mix(k), Avx2::mix_words(&portable));
                        assert!(Avx2::same(k, &portable));
                        let mut other = portable;
                        other[len.min(HEAD - 1) / 8] ^= 1 << 60;
                        assert!(!Avx2::same(k, &other));
                        let bytes = [data[pos + 3], b'\n', data[pos + 9]];
                        assert_eq!(
                            Avx2::classify(&data, pos, bytes),
                            Portable::classify(&data, pos, bytes)
                        );
                    }
                }
            }
        }
    }
}
