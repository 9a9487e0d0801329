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

    #[test]
    fn trim() {
        assert_eq!(trim_spaces(b"  a b "), b"a b");
        assert_eq!(trim_spaces(b"    "), b"");
        assert_eq!(trim_spaces(b""), b"");
    }
}
