//! The value parser: short decimals exactly, anything else as a float.

/// A parsed value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A short decimal `[+-]?digits[.digits]`: the value is
    /// `mantissa / 10^scale`, exactly. At most 18 significant digits and 18
    /// decimals.
    Exact {
        /// The digits as an integer, with the sign.
        mantissa: i64,
        /// Digits after the decimal point.
        scale: u8,
    },
    /// Any other finite number Rust's `f64` parser reads (`1e3`, `-2.5E-7`,
    /// or a decimal with too many digits).
    Float(f64),
}

/// Most significant digits an exact mantissa holds (`10^18 - 1 < i64::MAX`).
const MAX_DIGITS: u32 = 18;

/// Parses a field as a number, `None` when it is not one (`abc`, `NaN`,
/// `inf`, an empty field). Surrounding ASCII spaces are ignored.
///
/// ```
/// use tally_worker::delimited::{parse_number, Number};
/// assert_eq!(parse_number(b"-12.3"), Some(Number::Exact { mantissa: -123, scale: 1 }));
/// assert_eq!(parse_number(b" 1e3 "), Some(Number::Float(1000.0)));
/// assert_eq!(parse_number(b"abc"), None);
/// ```
#[inline]
pub fn parse_number(field: &[u8]) -> Option<Number> {
    parse_number_at(field, 0, field.len())
}

/// [`parse_number`] of the field `base[start..end]`. Fields of up to 8
/// bytes in the plain form take a word-at-a-time path, read straight from
/// `base` when it has 8 bytes at `start`.
#[inline(always)]
pub(crate) fn parse_number_at(base: &[u8], start: usize, end: usize) -> Option<Number> {
    let len = end.wrapping_sub(start);
    if len.wrapping_sub(1) < 8 {
        let word = match base.get(start..start + 8) {
            Some(b) => {
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                u64::from_le_bytes(w) & low_bytes(len)
            }
            None => {
                let mut w = [0u8; 8];
                for (to, from) in w.iter_mut().zip(base.get(start..end).unwrap_or_default()) {
                    *to = *from;
                }
                u64::from_le_bytes(w)
            }
        };
        if let Some(n) = parse_short(word, len) {
            return Some(n);
        }
    }
    parse_loop(base.get(start..end).unwrap_or_default())
}

/// The field `base[start..end]` as `(mantissa, scale)` when it is a
/// short decimal of 1 to 8 bytes with 8 bytes readable at `start`; `None`
/// for anything else, which [`parse_number_at`] then reads. For loops that
/// handle only the common case and hand the rest on whole.
#[inline(always)]
pub(crate) fn parse_exact_at(base: &[u8], start: usize, end: usize) -> Option<(i64, u8)> {
    let len = end.wrapping_sub(start);
    if len.wrapping_sub(1) >= 8 {
        return None;
    }
    let bytes: [u8; 8] = base.get(start..start + 8)?.try_into().ok()?;
    match parse_short(u64::from_le_bytes(bytes) & low_bytes(len), len)? {
        Number::Exact { mantissa, scale } => Some((mantissa, scale)),
        Number::Float(_) => None,
    }
}

/// The mask of the low `n` bytes of a word (`n` ≤ 8).
#[inline(always)]
pub(crate) fn low_bytes(n: usize) -> u64 {
    u64::MAX.checked_shr(64 - 8 * n as u32).unwrap_or(0)
}

/// `[+-]?digits[.digits]`, at least one digit, from the low `len` bytes
/// of `word` (little-endian, higher bytes zero, `1 <= len <= 8`), without
/// a loop: one test finds the bytes that are not digits (none, or one
/// decimal point, is the plain form), the point is squeezed out, and eight
/// digits combine with three multiplications (the well-known SWAR digit
/// parse). `None` for anything else, which then takes the byte loop
/// (spaces, exponents, errors).
///
/// Why hand-written: number-parsing crates (`lexical`, `fast-float`) give
/// floats, and this parser's contract is an exact mantissa and scale.
#[inline(always)]
fn parse_short(word: u64, len: usize) -> Option<Number> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let first = word as u8;
    let signed = first == b'-' || first == b'+';
    // The sign read as a leading zero digit: every byte of the field is
    // then a digit or the point, with no shift that depends on the sign.
    let word = if signed { (word & !0xFF) | 0x30 } else { word };
    // 1 <= len <= 8: the shift is 0 to 56.
    let field = u64::MAX >> (64 - 8 * len as u32);
    // Digits become 0..=9; a byte is one exactly when adding 0x76 leaves
    // its high bit clear (and its own is clear). A carry out of a byte can
    // only make the next byte look like a non-digit: the loop then decides.
    let x = word ^ (LO * 0x30);
    let other = (x.wrapping_add(LO * 0x76) | x) & HI & field;
    let (digits, count, scale) = if other == 0 {
        (x & field, len, 0)
    } else {
        // One non-digit, the decimal point ('.' ^ 0x30 = 0x1E).
        let at = (other.trailing_zeros() / 8) as usize;
        if other & other.wrapping_sub(1) != 0 || (x >> (8 * at)) as u8 != 0x1E {
            return None;
        }
        let below = low_bytes(at);
        let squeezed = (x & below) | ((x >> 8) & !below);
        (squeezed & low_bytes(len - 1), len - 1, len - 1 - at)
    };
    // At least one digit besides a sign.
    if count <= usize::from(signed) {
        return None;
    }
    let v = digits << (8 * (8 - count));
    let v = ((v & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561)) >> 8;
    let v = ((v & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601)) >> 16;
    let v = ((v & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001)) >> 32;
    let mantissa = v as i64;
    Some(Number::Exact {
        mantissa: if first == b'-' { -mantissa } else { mantissa },
        scale: scale as u8,
    })
}

/// The general form of [`parse_number`], a byte at a time.
#[inline(never)]
fn parse_loop(field: &[u8]) -> Option<Number> {
    let field = trim_spaces(field);
    let (negative, digits) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, field),
    };
    let mut mantissa: i64 = 0;
    let mut significant: u32 = 0;
    let mut scale: u32 = 0;
    let mut any_digit = false;
    let mut after_dot = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                any_digit = true;
                if significant > 0 || b != b'0' {
                    significant += 1;
                }
                scale += u32::from(after_dot);
                if significant > MAX_DIGITS || scale > MAX_DIGITS {
                    return parse_float(field);
                }
                mantissa = mantissa * 10 + i64::from(b - b'0');
            }
            b'.' if !after_dot => after_dot = true,
            _ => return parse_float(field),
        }
    }
    if !any_digit {
        return None;
    }
    Some(Number::Exact {
        mantissa: if negative { -mantissa } else { mantissa },
        // scale <= MAX_DIGITS, checked above.
        scale: scale as u8,
    })
}

/// The slow path: Rust's float parser, finite values only.
#[cold]
fn parse_float(field: &[u8]) -> Option<Number> {
    let text = std::str::from_utf8(field).ok()?;
    let x: f64 = text.parse().ok()?;
    x.is_finite().then_some(Number::Float(x))
}

/// `field` without leading and trailing ASCII spaces.
#[inline]
pub(crate) fn trim_spaces(mut field: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = field {
        field = rest;
    }
    while let [rest @ .., b' '] = field {
        field = rest;
    }
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(mantissa: i64, scale: u8) -> Option<Number> {
        Some(Number::Exact { mantissa, scale })
    }

    #[test]
    fn short_decimals_are_exact() {
        assert_eq!(parse_number(b"-12.3"), exact(-123, 1));
        assert_eq!(parse_number(b"0"), exact(0, 0));
        assert_eq!(parse_number(b"-0.0"), exact(0, 1));
        assert_eq!(parse_number(b".5"), exact(5, 1));
        assert_eq!(parse_number(b"5."), exact(5, 0));
        assert_eq!(parse_number(b"+1"), exact(1, 0));
        assert_eq!(parse_number(b"  42.50 "), exact(4250, 2));
        assert_eq!(parse_number(b"007"), exact(7, 0));
        assert_eq!(
            parse_number(b"999999999999999999"),
            exact(999_999_999_999_999_999, 0)
        );
        assert_eq!(parse_number(b"-0.000000000000000001"), exact(-1, 18));
        // Leading zeros are not significant.
        assert_eq!(parse_number(b"0000000000000000000001.5"), exact(15, 1));
    }

    #[test]
    fn long_or_exponent_forms_are_floats() {
        assert_eq!(
            parse_number(b"1234567890123456789"),
            Some(Number::Float(1234567890123456789.0))
        );
        assert_eq!(parse_number(b"1e3"), Some(Number::Float(1000.0)));
        assert_eq!(parse_number(b"-2.5E-1"), Some(Number::Float(-0.25)));
        assert_eq!(
            parse_number(b"0.0000000000000000001"),
            Some(Number::Float(1e-19))
        );
    }

    #[test]
    fn non_numbers_are_none() {
        for bad in [
            &b"abc"[..],
            b"",
            b"   ",
            b"-",
            b"+",
            b".",
            b"-.",
            b"1.2.3",
            b"1,5",
            b"NaN",
            b"nan",
            b"inf",
            b"-infinity",
            b"1e999",
            b"12a",
            b"\xff\xfe",
            b"--1",
        ] {
            assert_eq!(
                parse_number(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest::proptest! {
        /// The word-at-a-time path agrees with the byte loop on every
        /// short field over the characters that matter.
        #[test]
        fn short_path_agrees_with_the_loop(
            field in proptest::collection::vec(
                proptest::sample::select(b"0123456789.-+ e/x".to_vec()), 1..=10),
            pad in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..10),
        ) {
            let mut base = field.clone();
            base.extend_from_slice(&pad);
            proptest::prop_assert_eq!(
                parse_number_at(&base, 0, field.len()),
                parse_loop(&field),
                "{:?}", String::from_utf8_lossy(&field)
            );
            // What the masked path takes is what the loop reads.
            if let Some((mantissa, scale)) = parse_exact_at(&base, 0, field.len()) {
                proptest::prop_assert_eq!(
                    parse_loop(&field),
                    Some(Number::Exact { mantissa, scale }),
                    "{:?}", String::from_utf8_lossy(&field)
                );
            }
        }
    }

    #[test]
    fn trim() {
        assert_eq!(trim_spaces(b"  a b "), b"a b");
        assert_eq!(trim_spaces(b"    "), b"");
        assert_eq!(trim_spaces(b""), b"");
    }
}
