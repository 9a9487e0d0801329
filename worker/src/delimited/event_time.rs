//! Event times of stream records: epoch seconds or milliseconds, or
//! RFC 3339 text, to milliseconds since the Unix epoch.

use super::number::{parse_number, trim_spaces, Number};

/// Numbers with a magnitude below this are seconds, others milliseconds:
/// `10^11` seconds is the year 5138, `10^11` milliseconds is 1973.
const SECONDS_BELOW: f64 = 1e11;

/// Parses an event time to milliseconds since the epoch; `None` when the
/// field is neither a number nor RFC 3339 text.
///
/// * `1700000000`, `1700000000.25` are seconds; `1700000000250` is
///   milliseconds (see [`SECONDS_BELOW`]).
/// * `2023-11-14T22:13:20Z`, `2023-11-14 22:13:20.250+01:00`; without an
///   offset the time is UTC.
pub(crate) fn parse_event_ms(field: &[u8]) -> Option<i64> {
    let field = trim_spaces(field);
    match parse_number(field) {
        Some(Number::Exact { mantissa, scale }) => {
            let unit = 10i128.pow(u32::from(scale));
            let m = i128::from(mantissa);
            if (m.abs() as f64) < SECONDS_BELOW * unit as f64 {
                // seconds: mantissa * 1000 / 10^scale, rounded toward -inf
                i64::try_from((m * 1000).div_euclid(unit)).ok()
            } else {
                i64::try_from(m.div_euclid(unit)).ok()
            }
        }
        Some(Number::Float(x)) if x.is_finite() => {
            let ms = if x.abs() < SECONDS_BELOW {
                x * 1000.0
            } else {
                x
            };
            let ms = ms.floor();
            (ms.abs() < 9.0e18).then_some(ms as i64)
        }
        Some(Number::Float(_)) => None,
        None => parse_rfc3339(field),
    }
}

/// `YYYY-MM-DD[T or space]HH:MM:SS[.fraction][Z or ±HH:MM]`.
fn parse_rfc3339(s: &[u8]) -> Option<i64> {
    let digits = |from: usize, n: usize| -> Option<i64> {
        let part = s.get(from..from + n)?;
        let mut v = 0i64;
        for &b in part {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(b - b'0');
        }
        Some(v)
    };
    let year = digits(0, 4)?;
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(5, 2)?;
    let day = digits(8, 2)?;
    if !matches!(s.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = digits(11, 2)?;
    let minute = digits(14, 2)?;
    let second = digits(17, 2)?;
    if s.get(13) != Some(&b':') || s.get(16) != Some(&b':') {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut pos = 19;
    let mut millis = 0i64;
    if s.get(pos) == Some(&b'.') {
        pos += 1;
        let mut scale = 0;
        while let Some(&b) = s.get(pos) {
            if !b.is_ascii_digit() {
                break;
            }
            if scale < 3 {
                millis = millis * 10 + i64::from(b - b'0');
                scale += 1;
            }
            pos += 1;
        }
        if scale == 0 {
            return None;
        }
        while scale < 3 {
            millis *= 10;
            scale += 1;
        }
    }
    let offset_min = match s.get(pos) {
        None => 0,
        Some(b'Z' | b'z') if pos + 1 == s.len() => 0,
        Some(&sign @ (b'+' | b'-')) if pos + 6 == s.len() && s.get(pos + 3) == Some(&b':') => {
            let m = digits(pos + 1, 2)? * 60 + digits(pos + 4, 2)?;
            if sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_seconds_or_millis() {
        assert_eq!(parse_event_ms(b"1700000000"), Some(1_700_000_000_000));
        assert_eq!(parse_event_ms(b"1700000000.25"), Some(1_700_000_000_250));
        assert_eq!(parse_event_ms(b"1700000000250"), Some(1_700_000_000_250));
        assert_eq!(parse_event_ms(b" 12 "), Some(12_000));
        assert_eq!(parse_event_ms(b"-1.5"), Some(-1500));
        assert_eq!(parse_event_ms(b"1.7e9"), Some(1_700_000_000_000));
        assert_eq!(parse_event_ms(b"abc"), None);
        assert_eq!(parse_event_ms(b""), None);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_event_ms(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_event_ms(b"2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_event_ms(b"2023-11-14 23:13:20.25+01:00"),
            Some(1_700_000_000_250)
        );
        assert_eq!(
            parse_event_ms(b"2023-11-14T22:13:20.123456"),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_event_ms(b"2024-02-29T00:00:00-00:30"),
            Some(1_709_166_600_000)
        );
        assert_eq!(parse_event_ms(b"2023-13-01T00:00:00Z"), None);
        assert_eq!(parse_event_ms(b"2023-11-14T22:13"), None);
        assert_eq!(parse_event_ms(b"2023-11-14T22:13:20Zjunk"), None);
    }
}
