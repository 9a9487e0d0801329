//! One Billion Row Challenge measurements: `<station>;<temperature>\n`.

use std::io::{self, Write};

use super::blocks::{default_threads, write_blocks};
use super::math::{stream, Normal};
use super::names::station_names;

/// Random-stream purpose tags.
const MEANS: u64 = 0x6d65_616e;
const ROWS: u64 = 0x3162_7263;

/// Rows per independently seeded block (about 1 MiB of output).
const BLOCK_ROWS: u64 = 1 << 16;

/// Standard deviation of a reading around its station's mean, in °C.
const SD: f64 = 10.0;

/// What [`write_1brc`] generates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneBrcSpec {
    /// Number of lines.
    pub rows: u64,
    /// Number of distinct station names, 1..=100 000 (the challenge uses
    /// 413; 10 000 is its high-cardinality variant).
    pub stations: usize,
    /// Seed: the same spec gives the same bytes on every machine.
    pub seed: u64,
}

impl Default for OneBrcSpec {
    /// 1 000 000 rows, 413 stations, seed 0.
    fn default() -> Self {
        OneBrcSpec {
            rows: 1_000_000,
            stations: 413,
            seed: 0,
        }
    }
}

/// Writes 1BRC measurements for `spec` to `out`, using all cores.
///
/// Each line is `<station>;<temperature>\n`. Every station has a mean drawn
/// uniformly from -10..30 °C; a reading is normal around it with standard
/// deviation 10, rounded to one decimal, clamped to ±99.9 and printed with
/// exactly one decimal (`-3.4`, `0.0`, `12.0`; never `-0.0`). The station of
/// each line is uniform. Output depends only on `spec`, not on the thread
/// count or the platform. `out` is not buffered further: it receives writes
/// of about 1 MiB.
///
/// # Errors
///
/// `InvalidInput` for a station count outside 1..=100 000, otherwise any
/// error from `out`.
pub fn write_1brc<W: Write>(out: W, spec: &OneBrcSpec) -> io::Result<()> {
    write_1brc_with_threads(out, spec, default_threads())
}

/// [`write_1brc`] with an explicit number of generating threads (1 = all
/// work on the calling thread). The bytes are the same for any count.
///
/// # Errors
///
/// As [`write_1brc`].
pub fn write_1brc_with_threads<W: Write>(
    out: W,
    spec: &OneBrcSpec,
    threads: usize,
) -> io::Result<()> {
    let names = station_names(spec.stations, spec.seed)?;
    // "name;" prefixes packed in one arena for cache locality.
    let mut arena = Vec::new();
    let mut spans = Vec::with_capacity(names.len());
    for name in &names {
        let start = arena.len();
        arena.extend_from_slice(name.as_bytes());
        arena.push(b';');
        spans.push((start, arena.len()));
    }
    let mut mean_rng = stream(spec.seed, MEANS, 0);
    let means: Vec<f64> = (0..names.len())
        .map(|_| -10.0 + 40.0 * mean_rng.unit())
        .collect();
    let n = names.len() as u64;
    let seed = spec.seed;
    let make = |block: u64, _first: u64, rows: u64, buf: &mut Vec<u8>| {
        let mut rng = stream(seed, ROWS, block);
        let mut normal = Normal::new();
        buf.reserve(rows as usize * 16);
        for _ in 0..rows {
            let s = rng.below(n) as usize;
            let (a, b) = spans[s];
            buf.extend_from_slice(&arena[a..b]);
            let t = means[s] + SD * normal.sample(&mut rng);
            let tenths = ((t * 10.0).round() as i64).clamp(-999, 999);
            push_tenths(buf, tenths);
            buf.push(b'\n');
        }
    };
    write_blocks(out, spec.rows, BLOCK_ROWS, threads, &make)
}

/// Appends `tenths / 10` with exactly one decimal; `|tenths| <= 999`.
#[inline]
fn push_tenths(buf: &mut Vec<u8>, tenths: i64) {
    let mut v = tenths;
    if v < 0 {
        buf.push(b'-');
        v = -v;
    }
    let int = v / 10;
    if int >= 10 {
        buf.push(b'0' + (int / 10) as u8);
    }
    buf.extend_from_slice(&[b'0' + (int % 10) as u8, b'.', b'0' + (v % 10) as u8]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::MAX_STATIONS;
    use std::collections::{HashMap, HashSet};

    fn gen(spec: &OneBrcSpec) -> Vec<u8> {
        let mut out = Vec::new();
        write_1brc(&mut out, spec).unwrap();
        out
    }

    fn spec(rows: u64, stations: usize, seed: u64) -> OneBrcSpec {
        OneBrcSpec {
            rows,
            stations,
            seed,
        }
    }

    #[test]
    fn tenths_format() {
        let cases = [
            (0, "0.0"),
            (-3, "-0.3"),
            (120, "12.0"),
            (-999, "-99.9"),
            (999, "99.9"),
            (5, "0.5"),
            (-100, "-10.0"),
        ];
        for (v, s) in cases {
            let mut b = Vec::new();
            push_tenths(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), s);
        }
    }

    #[test]
    fn same_seed_same_bytes_any_thread_count() {
        let s = spec(200_003, 413, 5);
        let a = gen(&s);
        for threads in [1, 2, 3] {
            let mut b = Vec::new();
            write_1brc_with_threads(&mut b, &s, threads).unwrap();
            assert!(a == b, "threads={threads}");
        }
        assert_ne!(a, gen(&spec(200_003, 413, 6)));
    }

    #[test]
    fn lines_parse_back() {
        let rows = 300_000;
        for stations in [1, 413, 10_000] {
            let data = gen(&spec(rows, stations, 11));
            let text = std::str::from_utf8(&data).unwrap();
            assert!(text.ends_with('\n'));
            let mut per: HashMap<&str, (u64, f64)> = HashMap::new();
            let mut lines = 0;
            for line in text.lines() {
                lines += 1;
                let (name, value) = line.split_once(';').unwrap();
                assert!(!name.is_empty() && name.len() <= 60);
                let (int, dec) = value.split_once('.').unwrap();
                assert_eq!(dec.len(), 1, "{line}");
                assert!(dec.bytes().all(|c| c.is_ascii_digit()));
                assert!(int.trim_start_matches('-').len() <= 2, "{line}");
                assert_ne!(value, "-0.0");
                let v: f64 = value.parse().unwrap();
                assert!((-99.9..=99.9).contains(&v), "{line}");
                let e = per.entry(name).or_default();
                e.0 += 1;
                e.1 += v;
            }
            assert_eq!(lines, rows);
            if stations <= 413 {
                assert_eq!(per.len(), stations);
            } else {
                // 300k uniform draws over 10k stations miss almost none.
                assert!(per.len() > stations * 99 / 100, "{}", per.len());
            }
            let names: HashSet<&str> = per.keys().copied().collect();
            assert_eq!(names.len(), per.len());
            // Station means lie in -10..30 (loose: sampling noise).
            for (name, (count, sum)) in &per {
                if *count >= 500 {
                    let m = sum / *count as f64;
                    assert!((-12.0..32.0).contains(&m), "{name}: {m}");
                }
            }
        }
    }

    #[test]
    fn zero_rows_is_empty_and_bad_stations_fail() {
        assert!(gen(&spec(0, 413, 1)).is_empty());
        assert!(write_1brc(Vec::new(), &spec(10, 0, 1)).is_err());
        assert!(write_1brc(Vec::new(), &spec(10, MAX_STATIONS + 1, 1)).is_err());
        let all = gen(&spec(10, 100_000, 1));
        assert_eq!(all.iter().filter(|&&c| c == b'\n').count(), 10);
    }

    #[test]
    fn stable_bytes_for_a_fixed_seed() {
        // Guards the cross-machine promise: this must never change silently.
        let data = gen(&spec(1000, 413, 2024));
        let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        println!("{}", String::from_utf8_lossy(&data[..200]));
        assert_eq!(h, GOLDEN_1BRC, "fnv1a = {h:#x}");
    }

    const GOLDEN_1BRC: u64 = 0x96901f0446f22cf1;
}
