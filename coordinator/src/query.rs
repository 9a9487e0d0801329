//! Parses the query language of the command line into a [`QuerySpec`]:
//! `--agg 'count,mean(latency_ms),max(latency_ms)'`, `--by a,b`, sizes and
//! durations.

use std::time::Duration;

use tally_protocol::{AggFunc, Aggregate};

use crate::error::{Error, Result};

/// `count,sum(x),mean(y)` -> aggregates. A bare `count` counts rows; every
/// other function needs a column.
pub fn parse_aggregates(text: &str) -> Result<Vec<Aggregate>> {
    let mut out = Vec::new();
    for item in split_top_level(text) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (name, column) = match item.find('(') {
            Some(open) => {
                let Some(inner) = item[open + 1..].strip_suffix(')') else {
                    return Err(Error::Usage(format!(
                        "--agg: `{item}` has no closing parenthesis"
                    )));
                };
                let inner = inner.trim();
                let column = match inner {
                    "" | "*" => None,
                    c => Some(c.to_string()),
                };
                (item[..open].trim(), column)
            }
            None => (item, None),
        };
        let func = AggFunc::parse(name).ok_or_else(|| {
            Error::Usage(format!(
                "--agg: unknown function `{name}`; known: count, sum, min, max, mean (avg), var, stddev"
            ))
        })?;
        if column.is_none() && func != AggFunc::Count {
            return Err(Error::Usage(format!(
                "--agg: `{name}` needs a column, as in `{name}(latency_ms)`"
            )));
        }
        out.push(Aggregate { func, column });
    }
    if out.is_empty() {
        return Err(Error::Usage("--agg: no aggregate given".into()));
    }
    Ok(out)
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `a,b` -> `["a", "b"]`, no empty names.
pub fn parse_columns(text: &str, flag: &str) -> Result<Vec<String>> {
    let cols: Vec<String> = text.split(',').map(|c| c.trim().to_string()).collect();
    if cols.iter().any(String::is_empty) {
        return Err(Error::Usage(format!(
            "{flag}: empty column name in `{text}`"
        )));
    }
    Ok(cols)
}

/// A single-byte delimiter: `;`, `,`, `\t`, `tab`, `comma`, `pipe`, `space`.
pub fn parse_byte(text: &str, flag: &str) -> Result<u8> {
    let b = match text {
        "\\t" | "tab" | "\t" => b'\t',
        "comma" => b',',
        "semicolon" => b';',
        "pipe" => b'|',
        "space" => b' ',
        s if s.len() == 1 => s.as_bytes()[0],
        _ => {
            return Err(Error::Usage(format!(
                "{flag}: `{text}` is not a single byte (try `;`, `,`, `\\t`, `|`)"
            )))
        }
    };
    if b == b'\n' || b == b'\r' {
        return Err(Error::Usage(format!(
            "{flag}: a line end cannot be a delimiter"
        )));
    }
    Ok(b)
}

/// `8M`, `8MiB`, `512k`, `1G`, `4096` -> bytes (binary units).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| Error::Usage(format!("`{text}` is not a size (try 8M, 512K, 1G)")))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(Error::Usage(format!(
                "`{text}`: unknown size unit `{unit}`"
            )))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| Error::Usage(format!("`{text}` is too large")))
}

/// `10s`, `250ms`, `2m`, `1.5s`, `1h` -> a duration.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| Error::Usage(format!("`{text}` is not a duration (try 10s, 250ms)")))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(Error::Usage(format!(
                "`{text}`: unknown time unit `{unit}`"
            )))
        }
    };
    Duration::try_from_secs_f64(secs)
        .map_err(|_| Error::Usage(format!("`{text}` is not a valid duration")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_parse() {
        let a = parse_aggregates("count, mean(latency_ms),STDDEV(x) ,count(y)").unwrap();
        let titles: Vec<String> = a.iter().map(|a| a.title()).collect();
        assert_eq!(
            titles,
            ["count", "mean(latency_ms)", "stddev(x)", "count(y)"]
        );
        assert!(parse_aggregates("median(x)").is_err());
        assert!(parse_aggregates("sum").is_err());
        assert!(parse_aggregates("sum(x").is_err());
        assert!(parse_aggregates("").is_err());
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("8M").unwrap(), 8 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("8X").is_err());
        assert!(parse_size("99999999999G").is_err());
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("abc").is_err());
        assert_eq!(parse_byte("\\t", "-d").unwrap(), b'\t');
        assert!(parse_byte(";;", "-d").is_err());
    }
}
