//! Web-request events as CSV: `ts,user,country,status,latency_ms,bytes,path`.

use std::io::{self, Write};

use super::blocks::{default_threads, write_blocks};
use super::math::{exp, stream, Normal, Rng};

/// Random-stream purpose tag for event rows.
const ROWS: u64 = 0x6576_656e;

/// Rows per independently seeded block (about 1 MiB of output).
const BLOCK_ROWS: u64 = 1 << 14;

/// The header line, without its newline.
pub const EVENTS_HEADER: &str = "ts,user,country,status,latency_ms,bytes,path";

/// Epoch milliseconds of the first event (2023-11-14T22:13:20Z).
pub const EVENTS_START_MS: u64 = 1_700_000_000_000;

/// Distinct user ids drawn from.
const USERS: u64 = 300_000;

/// ISO 3166 codes, most frequent first (weights fall as 1/rank).
const COUNTRIES: [&str; 50] = [
    "US", "IN", "CN", "BR", "DE", "GB", "JP", "FR", "ID", "RU", "MX", "IT", "ES", "CA", "KR", "TR",
    "PL", "NL", "AU", "AR", "SA", "VN", "PH", "EG", "NG", "TH", "PK", "BD", "UA", "ZA", "SE", "CH",
    "BE", "AT", "NO", "DK", "FI", "IE", "PT", "GR", "CZ", "RO", "HU", "IL", "CL", "CO", "PE", "NZ",
    "SG", "MY",
];

/// Words for search queries and other path parts.
const WORDS: &[&str] = &[
    "shoes", "red", "tv", "laptop", "rust", "coffee", "café", "bike", "book", "phone", "lamp",
    "desk", "hi", "a", "b", "gift", "sale", "blue", "garden", "kids",
];

/// What [`write_events`] generates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsSpec {
    /// Number of records (the header not counted).
    pub rows: u64,
    /// Seed: the same spec gives the same bytes on every machine.
    pub seed: u64,
}

impl Default for EventsSpec {
    /// 1 000 000 rows, seed 0.
    fn default() -> Self {
        EventsSpec {
            rows: 1_000_000,
            seed: 0,
        }
    }
}

/// Writes an events CSV for `spec` to `out`, using all cores.
///
/// The header is [`EVENTS_HEADER`]; then one record per event:
///
/// - `ts`: epoch milliseconds, strictly increasing from [`EVENTS_START_MS`]
///   by 1 to 5 ms (3 on average);
/// - `user`: `u100000` to `u399999`, lower ids more frequent;
/// - `country`: one of 50 ISO codes, frequency falling as 1/rank (`US` most);
/// - `status`: 200 (≈90%), 301, 404, 500, 503;
/// - `latency_ms`: log-normal, median about 35 ms (longer for 5xx), with 1
///   to 3 decimals (`12.345`, `8.5`, `40.0`); empty in ≈2% of records;
/// - `bytes`: a non-negative integer;
/// - `path`: a URL path; ≈1% need RFC 4180 quoting because they hold a
///   comma, a double quote (written doubled) or a newline.
///
/// Output depends only on `spec`, not on the thread count or the platform.
///
/// # Errors
///
/// Any error from `out`.
pub fn write_events<W: Write>(out: W, spec: &EventsSpec) -> io::Result<()> {
    write_events_with_threads(out, spec, default_threads())
}

/// [`write_events`] with an explicit number of generating threads (1 = all
/// work on the calling thread). The bytes are the same for any count.
///
/// # Errors
///
/// Any error from `out`.
pub fn write_events_with_threads<W: Write>(
    mut out: W,
    spec: &EventsSpec,
    threads: usize,
) -> io::Result<()> {
    out.write_all(EVENTS_HEADER.as_bytes())?;
    out.write_all(b"\n")?;
    // Cumulative integer weights 1000/rank: exact on every machine.
    let mut cumulative = [0u64; COUNTRIES.len()];
    let mut total = 0;
    for (rank, c) in cumulative.iter_mut().enumerate() {
        total += 1000 / (rank as u64 + 1);
        *c = total;
    }
    let seed = spec.seed;
    let make = |block: u64, first: u64, rows: u64, buf: &mut Vec<u8>| {
        let mut rng = stream(seed, ROWS, block);
        let mut normal = Normal::new();
        buf.reserve(rows as usize * 72);
        for i in first..first + rows {
            push_u64(buf, EVENTS_START_MS + 3 * i + rng.below(3));
            buf.extend_from_slice(b",u");
            let user = rng.below(USERS).min(rng.below(USERS));
            push_u64(buf, 100_000 + user);
            buf.push(b',');
            let pick = rng.below(total);
            let country = cumulative.partition_point(|&c| c <= pick);
            buf.extend_from_slice(COUNTRIES[country].as_bytes());
            let status = match rng.below(1000) {
                0..=904 => 200,
                905..=934 => 301,
                935..=974 => 404,
                975..=989 => 500,
                _ => 503,
            };
            buf.push(b',');
            push_u64(buf, status);
            buf.push(b',');
            // Log-normal latency: median 35 ms, 3x for server errors.
            let z = normal.sample(&mut rng);
            let mu = if status >= 500 { 4.654 } else { 3.555 };
            let latency = exp(mu + 0.9 * z).clamp(0.001, 60_000.0);
            if rng.below(50) != 0 {
                push_millis(buf, (latency * 1000.0).round() as u64);
            }
            buf.push(b',');
            let bytes = match status {
                301 => 150 + rng.below(200),
                404 => 500 + rng.below(1500),
                500 | 503 => rng.below(300),
                _ => {
                    let z = normal.sample(&mut rng);
                    exp(8.5 + 1.2 * z).round().min(50_000_000.0) as u64
                }
            };
            push_u64(buf, bytes);
            buf.push(b',');
            push_path(buf, &mut rng);
            buf.push(b'\n');
        }
    };
    write_blocks(out, spec.rows, BLOCK_ROWS, threads, &make)
}

/// Appends the decimal digits of `v`.
#[inline]
fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends `micros / 1000` with 1 to 3 decimals (trailing zeros dropped).
#[inline]
fn push_millis(buf: &mut Vec<u8>, micros: u64) {
    push_u64(buf, micros / 1000);
    buf.push(b'.');
    let frac = micros % 1000;
    let digits = [
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    let keep = if digits[2] != b'0' {
        3
    } else if digits[1] != b'0' {
        2
    } else {
        1
    };
    buf.extend_from_slice(&digits[..keep]);
}

fn word(rng: &mut Rng) -> &'static str {
    WORDS[rng.below(WORDS.len() as u64) as usize]
}

/// Appends a URL path; about 1% need quoting and are written quoted.
fn push_path(buf: &mut Vec<u8>, rng: &mut Rng) {
    let roll = rng.below(1000);
    if roll < 10 {
        let raw = match roll % 3 {
            0 => format!("/search?q={},{}", word(rng), word(rng)),
            1 => format!("/say \"{}\"", word(rng)),
            _ => format!("/notes/{}\n{}", rng.below(1000), word(rng)),
        };
        buf.push(b'"');
        for &c in raw.as_bytes() {
            if c == b'"' {
                buf.push(b'"');
            }
            buf.push(c);
        }
        buf.push(b'"');
        return;
    }
    match roll % 12 {
        0 => buf.push(b'/'),
        1 => buf.extend_from_slice(b"/index.html"),
        2 | 3 => {
            buf.extend_from_slice(b"/api/v1/users/");
            push_u64(buf, rng.below(USERS));
        }
        4 => {
            buf.extend_from_slice(b"/api/v1/orders/");
            push_u64(buf, rng.below(1_000_000));
        }
        5 => buf.extend_from_slice(b"/api/v1/orders"),
        6 => buf.extend_from_slice(b"/static/app.js"),
        7 => buf.extend_from_slice(b"/static/style.css"),
        8 => {
            buf.extend_from_slice(b"/products/");
            push_u64(buf, rng.below(50_000));
        }
        9 => {
            buf.extend_from_slice(b"/search?q=");
            buf.extend_from_slice(word(rng).as_bytes());
        }
        10 => buf.extend_from_slice(b"/cart"),
        _ => {
            buf.extend_from_slice(b"/images/");
            push_u64(buf, rng.below(10_000));
            buf.extend_from_slice(b".jpg");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn gen(rows: u64, seed: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_events(&mut out, &EventsSpec { rows, seed }).unwrap();
        out
    }

    /// A tiny RFC 4180 reader: records of fields, and whether each was quoted.
    fn parse_csv(data: &str) -> Vec<Vec<(String, bool)>> {
        let mut records = Vec::new();
        let mut record = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = data.chars().peekable();
        let mut in_quotes = false;
        while let Some(c) = chars.next() {
            if in_quotes {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        in_quotes = false;
                    }
                } else {
                    field.push(c);
                }
                continue;
            }
            match c {
                '"' => {
                    assert!(field.is_empty(), "quote inside an unquoted field");
                    in_quotes = true;
                    quoted = true;
                }
                ',' => record.push((std::mem::take(&mut field), std::mem::take(&mut quoted))),
                '\n' => {
                    record.push((std::mem::take(&mut field), std::mem::take(&mut quoted)));
                    records.push(std::mem::take(&mut record));
                }
                _ => field.push(c),
            }
        }
        assert!(
            !in_quotes && field.is_empty() && record.is_empty(),
            "unterminated"
        );
        records
    }

    #[test]
    fn same_seed_same_bytes_any_thread_count() {
        let a = gen(50_001, 3);
        for threads in [1, 2, 3] {
            let mut b = Vec::new();
            write_events_with_threads(
                &mut b,
                &EventsSpec {
                    rows: 50_001,
                    seed: 3,
                },
                threads,
            )
            .unwrap();
            assert!(a == b, "threads={threads}");
        }
        assert_ne!(a, gen(50_001, 4));
    }

    #[test]
    fn records_parse_and_look_right() {
        let rows = 100_000;
        let data = gen(rows, 9);
        let records = parse_csv(std::str::from_utf8(&data).unwrap());
        assert_eq!(records.len() as u64, rows + 1);
        let header: Vec<&str> = records[0].iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(header.join(","), EVENTS_HEADER);
        let (mut quoted, mut empty, mut newline, mut dquote, mut comma) = (0, 0, 0, 0, 0);
        let mut last_ts = 0;
        let mut countries = HashSet::new();
        let mut statuses = HashSet::new();
        let mut users = HashSet::new();
        for r in &records[1..] {
            assert_eq!(r.len(), 7, "{r:?}");
            let ts: u64 = r[0].0.parse().unwrap();
            assert!(ts > last_ts);
            last_ts = ts;
            assert!(r[1].0.starts_with('u'));
            users.insert(r[1].0.clone());
            countries.insert(r[2].0.clone());
            statuses.insert(r[3].0.parse::<u16>().unwrap());
            if r[4].0.is_empty() {
                empty += 1;
            } else {
                let (_, dec) = r[4].0.split_once('.').unwrap();
                assert!((1..=3).contains(&dec.len()), "{}", r[4].0);
                let v: f64 = r[4].0.parse().unwrap();
                assert!(v > 0.0 && v <= 60_000.0);
            }
            r[5].0.parse::<u64>().unwrap();
            let path = &r[6].0;
            assert!(path.starts_with('/'));
            let needs_quotes = path.contains([',', '"', '\n']);
            assert_eq!(r[6].1, needs_quotes, "{path:?}");
            quoted += usize::from(r[6].1);
            newline += usize::from(path.contains('\n'));
            dquote += usize::from(path.contains('"'));
            comma += usize::from(path.contains(','));
        }
        assert!((500..1500).contains(&quoted), "quoted {quoted}");
        assert!(newline > 0 && dquote > 0 && comma > 0);
        assert!((1500..2500).contains(&empty), "empty {empty}");
        assert_eq!(countries.len(), 50);
        assert_eq!(statuses, HashSet::from([200, 301, 404, 500, 503]));
        assert!(users.len() > 50_000, "users {}", users.len());
        assert!(std::str::from_utf8(&data).unwrap().contains("\"/say \"\""));
    }

    #[test]
    fn millis_format() {
        for (v, s) in [
            (12_345, "12.345"),
            (8_500, "8.5"),
            (40_000, "40.0"),
            (1, "0.001"),
        ] {
            let mut b = Vec::new();
            push_millis(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), s);
        }
    }

    #[test]
    fn zero_rows_is_just_the_header() {
        assert_eq!(gen(0, 1), format!("{EVENTS_HEADER}\n").into_bytes());
    }

    #[test]
    fn stable_bytes_for_a_fixed_seed() {
        let data = gen(1000, 2024);
        let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        println!("{}", String::from_utf8_lossy(&data[..400]));
        assert_eq!(h, GOLDEN_EVENTS, "fnv1a = {h:#x}");
    }

    const GOLDEN_EVENTS: u64 = 0x4a8fb70512c6284d;
}
