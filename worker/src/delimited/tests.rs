//! Kernel-level tests: chunk ownership, quoting, headers, nulls, bad values.

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use serde_bytes::ByteBuf;
use tally_protocol::{
    AggFunc, Aggregate, ErrorKind, GroupState, GroupTable, InputFormat, Location, OnError, Partial,
    QuerySpec, Source,
};

use super::*;

fn query(
    quote: Option<u8>,
    header: bool,
    by: &[&str],
    aggs: &[(AggFunc, Option<&str>)],
) -> QuerySpec {
    QuerySpec {
        kernel: "delimited".into(),
        input: InputFormat {
            delimiter: b',',
            quote,
            header,
            columns: if header {
                vec![]
            } else {
                vec!["k".into(), "v".into(), "w".into()]
            },
            format: Default::default(),
        },
        group_by: by.iter().map(|s| s.to_string()).collect(),
        aggregates: aggs
            .iter()
            .map(|(func, column)| Aggregate {
                func: *func,
                column: column.map(str::to_string),
            })
            .collect(),
        on_error: OnError::Fail,
        panes: None,
    }
}

fn stats_query(quote: Option<u8>, header: bool) -> QuerySpec {
    query(
        quote,
        header,
        &["k"],
        &[
            (AggFunc::Count, None),
            (AggFunc::Stddev, Some("v")),
            (AggFunc::Max, Some("v")),
        ],
    )
}

/// Runs `data` as a file chunk `start..end`.
fn run_chunk(
    q: &QuerySpec,
    data: &[u8],
    start: usize,
    end: usize,
    siq: bool,
) -> Result<TaskOutput, TaskFailure> {
    run_chunk_with(q, data, start, end, siq, &mut KeptTables::default())
}

/// [`run_chunk`] with the tables `kept` left by earlier chunks, as a
/// worker keeps them from task to task.
fn run_chunk_with(
    q: &QuerySpec,
    data: &[u8],
    start: usize,
    end: usize,
    siq: bool,
    kept: &mut KeptTables,
) -> Result<TaskOutput, TaskFailure> {
    let prepared = Delimited::new(q)?;
    let columns = if q.input.header {
        header_columns(q, data, "mem.csv")?
    } else {
        prepared.listed.clone()?
    };
    let task = Task {
        data,
        name: "mem.csv",
        first_line: 1,
        first_byte: 0,
        start,
        end,
        start_in_quotes: siq,
        skip_header: q.input.header,
        count_quotes: true,
    };
    aggregate(q, &prepared.squares, &columns, &task, kept)
}

fn run_inline(q: &QuerySpec, data: &[u8], first_line: u64) -> Result<TaskOutput, TaskFailure> {
    let mut prepared = Delimited::new(q)?;
    prepared.run(&Source::Inline {
        name: "<stdin>".into(),
        first_line,
        first_byte: 0,
        bytes: ByteBuf::from(data.to_vec()),
    })
}

fn sorted(outputs: impl IntoIterator<Item = TaskOutput>) -> Vec<GroupState> {
    let mut t = GroupTable::new();
    for o in outputs {
        t.merge_packed(&o.partial);
    }
    t.into_sorted()
}

/// Groups equal, `m2` within rounding.
fn assert_same(a: &[GroupState], b: &[GroupState], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?}\nvs\n{b:?}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.key, y.key, "{what}");
        assert_eq!(x.rows, y.rows, "{what}: {:?}", x.key);
        for (s, t) in x.values.iter().zip(&y.values) {
            let mut s2 = s.clone();
            let mut t2 = t.clone();
            assert!(
                (s.m2 - t.m2).abs() <= 1e-9 * s.m2.abs().max(1.0),
                "{what}: {s:?} vs {t:?}"
            );
            s2.m2 = 0.0;
            t2.m2 = 0.0;
            assert_eq!(s2, t2, "{what}: {:?}", x.key);
        }
    }
}

fn key(s: &str) -> Vec<Option<ByteBuf>> {
    vec![Some(ByteBuf::from(s.as_bytes().to_vec()))]
}

/// Runs `data` cut at `cuts`, each chunk with the right quote parity.
fn run_cut(q: &QuerySpec, data: &[u8], cuts: &[usize]) -> (Vec<GroupState>, Counters) {
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied().filter(|&c| c > 0 && c < data.len()));
    bounds.push(data.len());
    bounds.sort_unstable();
    let mut outputs = Vec::new();
    let mut total = Counters::default();
    let mut kept = KeptTables::default();
    for w in bounds.windows(2) {
        let siq = match q.input.quote {
            Some(qb) => data[..w[0]].iter().filter(|&&b| b == qb).count() % 2 == 1,
            None => false,
        };
        let o = run_chunk_with(q, data, w[0], w[1], siq, &mut kept).unwrap();
        assert_eq!(o.counters.start_in_quotes, siq);
        total.records += o.counters.records;
        total.bytes += o.counters.bytes;
        total.quotes += o.counters.quotes;
        outputs.push(o);
    }
    (sorted(outputs), total)
}

/// A deterministic generator of small CSV files with every hard case:
/// quoted delimiters and newlines, doubled quotes, CRLF, blank lines,
/// empty fields, no final newline.
fn random_csv(seed: u64, header: bool) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let keys = ["a", "b", "a,b", "x\"y", "li\nne", "", "\"q\""];
    let values = ["1", "-2.5", "", "0.25", "1e2", "3", " 7 "];
    let mut out = Vec::new();
    if header {
        out.extend_from_slice(b"k,v\n");
    }
    let records = 3 + next(8);
    for _ in 0..records {
        let k = keys[next(keys.len() as u64) as usize];
        if k.contains([',', '"', '\n']) || next(4) == 0 {
            out.push(b'"');
            out.extend_from_slice(k.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(k.as_bytes());
        }
        out.push(b',');
        out.extend_from_slice(values[next(values.len() as u64) as usize].as_bytes());
        match next(6) {
            0 => out.extend_from_slice(b"\r\n"),
            1 => out.extend_from_slice(b"\n\n"),
            _ => out.push(b'\n'),
        }
    }
    if next(3) == 0 {
        while out.last() == Some(&b'\n') || out.last() == Some(&b'\r') {
            out.pop();
        }
    }
    out
}

#[test]
fn every_cut_pair_gives_the_same_groups() {
    for seed in 0..6u64 {
        for header in [false, true] {
            let data = random_csv(seed, header);
            let q = stats_query(Some(b'"'), header);
            let (whole, whole_counters) = run_cut(&q, &data, &[]);
            assert!(!whole.is_empty());
            for a in 0..=data.len() {
                for b in a..=data.len() {
                    let (groups, counters) = run_cut(&q, &data, &[a, b]);
                    let what = format!("seed {seed} header {header} cuts {a},{b}");
                    assert_same(&groups, &whole, &what);
                    assert_eq!(counters.records, whole_counters.records, "{what}");
                    assert_eq!(counters.bytes, whole_counters.bytes, "{what}");
                    assert_eq!(counters.quotes, whole_counters.quotes, "{what}");
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn random_cut_sets_give_the_same_groups(seed in 0u64..1000, cuts in proptest::collection::vec(0usize..200, 0..8)) {
        let data = random_csv(seed, true);
        let q = stats_query(Some(b'"'), true);
        let (whole, _) = run_cut(&q, &data, &[]);
        let (groups, _) = run_cut(&q, &data, &cuts);
        assert_same(&groups, &whole, &format!("{cuts:?}"));
    }
}

#[test]
fn whole_file_values() {
    let data = b"k,v\nx,1.5\ny,2\n\"x\",-0.5\nx,\n,4\r\n\n\"a,\"\"b\"\"\",1e1";
    let q = stats_query(Some(b'"'), true);
    let o = run_chunk(&q, data, 0, data.len(), false).unwrap();
    assert_eq!(o.counters.records, 6);
    assert_eq!(o.counters.quotes, 8);
    assert_eq!(o.counters.bytes, (data.len() - 4) as u64);
    let groups = sorted([o]);
    assert_eq!(groups.len(), 4);
    assert_eq!(groups[0].key, vec![None]);
    assert_eq!(groups[0].values[0].exact_sum(), Some((4, 0)));
    assert_eq!(groups[1].key, key("a,\"b\""));
    assert_eq!(groups[1].values[0].sum(), 10.0);
    let x = &groups[2];
    assert_eq!(x.key, key("x"));
    // The empty value is a null: counted in rows, not in values.
    assert_eq!(x.rows, 3);
    assert_eq!(x.values[0].count, 2);
    assert_eq!(x.values[0].exact_sum(), Some((10, 1)));
    assert_eq!(x.values[0].min(), Some(-0.5));
    assert_eq!(x.values[0].var(), Some(2.0));
}

#[test]
fn no_header_uses_given_columns_and_multi_keys() {
    let data = b"a,1,p\na,2,q\na,3,p\n,4,\n";
    let q = query(None, false, &["k", "w"], &[(AggFunc::Sum, Some("v"))]);
    let groups = sorted([run_chunk(&q, data, 0, data.len(), false).unwrap()]);
    let keys: Vec<_> = groups
        .iter()
        .map(|g| (g.key.clone(), g.values[0].sum()))
        .collect();
    let kv = |k: Option<&str>, w: Option<&str>| {
        vec![
            k.map(|s| ByteBuf::from(s.as_bytes().to_vec())),
            w.map(|s| ByteBuf::from(s.as_bytes().to_vec())),
        ]
    };
    assert_eq!(
        keys,
        vec![
            (kv(None, None), 4.0),
            (kv(Some("a"), Some("p")), 4.0),
            (kv(Some("a"), Some("q")), 2.0)
        ]
    );
}

#[test]
fn global_group_and_count_only() {
    let data = b"a,1\nb,2\n\nc,3";
    let q = query(None, false, &[], &[(AggFunc::Count, None)]);
    let o = run_chunk(&q, data, 0, data.len(), false).unwrap();
    assert_eq!(o.counters.records, 3);
    assert_eq!(Partial::from(&o.partial).groups.len(), 1);
    assert_eq!(Partial::from(&o.partial).groups[0].rows, 3);
    assert!(Partial::from(&o.partial).groups[0].key.is_empty());
}

#[test]
fn bad_value_fails_with_its_line() {
    // The quoted newline makes the bad record's physical line 4.
    let data = b"k,v\n\"a\nb\",1\nc,abc\n";
    let q = stats_query(Some(b'"'), true);
    let e = run_chunk(&q, data, 0, data.len(), false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Input);
    assert_eq!(e.message, "column `v`: `abc` is not a number");
    assert_eq!(
        e.location,
        Some(Location {
            path: "mem.csv".into(),
            line: Some(4),
            byte_offset: 12,
        })
    );
    // The same from a later chunk: lines count from the file's start.
    let e = run_chunk(&q, data, 10, data.len(), false).unwrap_err();
    assert_eq!(e.location.and_then(|l| l.line), Some(4));

    let e = run_chunk(&q, b"k,v\nshort\n", 0, 10, false).unwrap_err();
    assert_eq!(
        e.message,
        "line has 1 field, column `v` is field 2; is the delimiter right?"
    );
    assert_eq!(e.location.and_then(|l| l.line), Some(2));

    let e = run_inline(&stats_query(None, false), b"a,1\nb,2\nc,x\n", 100).unwrap_err();
    assert_eq!(
        e.location.map(|l| (l.path, l.line)),
        Some(("<stdin>".into(), Some(102)))
    );
}

#[test]
fn skip_mode_counts_and_samples() {
    let mut q = stats_query(None, false);
    q.on_error = OnError::Skip;
    let mut data = Vec::new();
    for i in 0..25 {
        data.extend_from_slice(format!("a,{i}\nb,x{i}\nshort\n").as_bytes());
    }
    let o = run_inline(&q, &data, 1).unwrap();
    assert_eq!(o.counters.records, 25);
    assert_eq!(o.counters.bad_records, 50);
    assert_eq!(o.bad_samples.len(), 10);
    assert_eq!(o.bad_samples[0].line, Some(2));
    assert_eq!(o.bad_samples[1].line, Some(3));
    assert_eq!(o.bad_samples[2].line, Some(5));
    // Bad records make no group.
    assert_eq!(Partial::from(&o.partial).groups.len(), 1);
    assert_eq!(Partial::from(&o.partial).groups[0].rows, 25);
}

#[test]
fn plain_and_quoted_paths_agree() {
    for seed in 0..40u64 {
        // Quote-free data, read plain; the same with every key quoted goes
        // through csv-core.
        let mut plain = Vec::new();
        let mut quoted = Vec::new();
        let mut state = seed + 1;
        for _ in 0..20 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (state >> 33) as usize;
            let k = ["a", "b", "cc", "", " d "][r % 5];
            let v = ["1", "-2.5", "", "0.25", "1e2", " 7 "][(r / 5) % 6];
            let end = ["\n", "\r\n", "\n\n"][(r / 30) % 3];
            plain.extend_from_slice(format!("{k},{v}{end}").as_bytes());
            quoted.extend_from_slice(format!("\"{k}\",{v}{end}").as_bytes());
        }
        let q = stats_query(Some(b'"'), false);
        let a = run_chunk(&q, &plain, 0, plain.len(), false).unwrap();
        let b = run_chunk(&q, &quoted, 0, quoted.len(), false).unwrap();
        let c = run_chunk(&stats_query(None, false), &plain, 0, plain.len(), false).unwrap();
        assert_eq!(a.counters.records, b.counters.records);
        assert_same(&sorted([a.clone()]), &sorted([b]), "plain vs quoted");
        assert_same(&sorted([a]), &sorted([c]), "quote vs no quote");
    }
}

#[test]
fn chunk_ranges_past_the_end_or_empty() {
    let data = b"a,1\nb,2";
    let q = stats_query(None, false);
    let o = run_chunk(&q, data, 3, 1000, false).unwrap();
    assert_eq!(o.counters.records, 1);
    let o = run_chunk(&q, data, 50, 1000, false).unwrap();
    assert_eq!(o.counters.records, 0);
    let o = run_chunk(&q, data, 5, 2, false).unwrap();
    assert_eq!(o.counters.records, 0);
    let o = run_chunk(&q, b"", 0, 0, false).unwrap();
    assert_eq!(o.counters.records, 0);
}

#[test]
fn prepare_rejects_bad_queries() {
    let q = query(None, false, &["nope"], &[]);
    let e = DelimitedKernel.prepare(&q).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Query);
    assert!(
        e.message.contains("`nope`") && e.message.contains("`k`, `v`, `w`"),
        "{}",
        e.message
    );
    let mut q = stats_query(Some(b','), false);
    assert!(DelimitedKernel.prepare(&q).is_err());
    q.input.quote = None;
    q.input.delimiter = b'\n';
    assert!(DelimitedKernel.prepare(&q).is_err());
}

/// A file in the temp directory, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(contents: &[u8]) -> TempFile {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "tally-worker-test-{}-{}.csv",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn file_task(path: &str, start: u64, end: u64, siq: bool) -> Source {
    Source::FileRange {
        path: path.into(),
        start,
        end,
        start_in_quotes: siq,
    }
}

#[test]
fn file_sources_through_the_kernel() {
    let data = b"\xEF\xBB\xBFk, v\nx,1\ny,2\n\"x\",3\n";
    let f = TempFile::new(data);
    let q = stats_query(Some(b'"'), true);
    let mut p = DelimitedKernel.prepare(&q).unwrap();
    let whole = p
        .run(&file_task(&f.path(), 0, data.len() as u64, false))
        .unwrap();
    let a = p.run(&file_task(&f.path(), 0, 14, false)).unwrap();
    let b = p
        .run(&file_task(&f.path(), 14, data.len() as u64, false))
        .unwrap();
    assert_eq!(whole.counters.records, 3);
    assert_eq!(a.counters.records + b.counters.records, 3);
    assert_same(&sorted([a, b]), &sorted([whole]), "file chunks");

    // The file changes between tasks: remapped, header read again.
    std::fs::write(&f.0, b"v,k\n5,z\n").unwrap();
    let o = p.run(&file_task(&f.path(), 0, 8, false)).unwrap();
    assert_eq!(Partial::from(&o.partial).groups[0].key, key("z"));

    let q = query(None, true, &["kk"], &[]);
    let mut p = DelimitedKernel.prepare(&q).unwrap();
    let e = p.run(&file_task(&f.path(), 0, 8, false)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Query);
    assert!(
        e.message.contains(&f.path()) && e.message.contains("`v`, `k`"),
        "{}",
        e.message
    );

    let e = p
        .run(&file_task("/nonexistent/x.csv", 0, 8, false))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(e.message.contains("/nonexistent/x.csv"));

    // An empty file has no header to name the columns: a clear error;
    // without a header expected, it is an empty result.
    let empty = TempFile::new(b"");
    let e = p.run(&file_task(&empty.path(), 0, 100, true)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Input);
    assert!(e.message.contains("empty") && e.message.contains(&empty.path()));
    let mut no_header = DelimitedKernel
        .prepare(&query(None, false, &["k"], &[]))
        .unwrap();
    let o = no_header
        .run(&file_task(&empty.path(), 0, 100, true))
        .unwrap();
    assert_eq!(o.counters.records, 0);
    assert!(o.counters.start_in_quotes);
}

#[test]
fn inline_with_header_takes_given_columns() {
    let mut q = stats_query(Some(b'"'), true);
    q.input.columns = vec!["k".into(), "v".into()];
    let o = run_inline(&q, b"a,1\n\"a\",2\n", 1).unwrap();
    assert_eq!(o.counters.records, 2);
    assert_eq!(o.counters.quotes, 0);
    q.input.columns.clear();
    let e = run_inline(&q, b"a,1\n", 1).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Query);
}

#[test]
fn garbage_never_panics() {
    let q = stats_query(Some(b'"'), true);
    let mut q2 = q.clone();
    q2.on_error = OnError::Skip;
    for seed in 0..200u64 {
        let mut state = seed + 1;
        let data: Vec<u8> = (0..64)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                b"k,v\"\n\r1.-e \xEF\xff"[(state >> 59) as usize % 13]
            })
            .collect();
        for (start, end) in [(0, 64), (3, 40), (17, 64)] {
            for siq in [false, true] {
                let _ = run_chunk(&q, &data, start, end, siq);
                let _ = run_chunk(&q2, &data, start, end, siq);
            }
        }
    }
}

/// `tenths / 10` with one decimal, as the fast path reads it (`-12.3`).
fn tenths_text(tenths: i64) -> String {
    format!(
        "{}{}.{}",
        if tenths < 0 { "-" } else { "" },
        tenths.abs() / 10,
        tenths.abs() % 10
    )
}

#[test]
fn fast_path_agrees_with_the_general_path_on_mixed_records() {
    // Mostly the fast shape (`key,d.d`), mixed with records that must take
    // the general path: other number forms, empty fields, CRLF, extra
    // fields, a missing value. The same data with quoted keys goes through
    // csv-core, which never uses the fast path. Enough records (over
    // 64 KiB) that the fast loop reads two halves interleaved; keys around
    // the table's 16- and 32-byte word boundaries, keys that share their
    // first 32 bytes, keys with NUL bytes (zero padding must not make
    // `a\0` equal `a`).
    let long = "L".repeat(32);
    let keys = [
        "Hamburg".to_string(),
        "Zürich".to_string(),
        "x".to_string(),
        "a-much-longer-station-name-over-16".to_string(),
        String::new(),
        "k9".to_string(),
        "sixteen-bytes-xx".to_string(),
        "seventeen-bytes-x".to_string(),
        "thirty-one-bytes-of-station-nam".to_string(),
        "thirty-two-bytes-of-station-nam!".to_string(),
        format!("{long}a"),
        format!("{long}b"),
        format!("{long}{long}tail"),
        format!("{long}{long}tailx"),
        "x\0".to_string(),
        "x\0\0".to_string(),
    ];
    for seed in 0..10u64 {
        let mut plain = Vec::new();
        let mut quoted = Vec::new();
        let mut state = seed + 7;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (state >> 33) as usize;
            let k = &keys[r % keys.len()];
            let fast = tenths_text((r / 7 % 1999) as i64 - 999);
            let v = match (r / 13) % 10 {
                0 => "0.25".to_string(),
                1 => "12".to_string(),
                2 => String::new(),
                3 => "1e2".to_string(),
                4 => "-123.4".to_string(),
                _ => fast,
            };
            let end = ["\n", "\n", "\n", "\r\n", ",extra\n"][(r / 101) % 5];
            plain.extend_from_slice(format!("{k},{v}{end}").as_bytes());
            quoted.extend_from_slice(format!("\"{k}\",{v}{end}").as_bytes());
        }
        let q = stats_query(Some(b'"'), false);
        let a = run_chunk(&q, &plain, 0, plain.len(), false).unwrap();
        let b = run_chunk(&q, &quoted, 0, quoted.len(), false).unwrap();
        assert_eq!(a.counters.records, 20_000);
        assert_eq!(a.counters.records, b.counters.records);
        assert_same(&sorted([a]), &sorted([b]), "fast vs csv-core");
        // And cut into chunks at arbitrary points.
        let cuts: Vec<usize> = (1..9)
            .map(|i| i * plain.len() / 9 + seed as usize)
            .collect();
        let (whole, _) = run_cut(&q, &plain, &[]);
        let (parts, _) = run_cut(&q, &plain, &cuts);
        assert_same(&whole, &parts, "fast path in chunks");
    }
}

#[test]
fn more_keys_than_the_fast_table_takes() {
    // 100,000 keys over 250,000 records: the first chunk fills the fast
    // table, the later ones skip it, and every chunk reuses the general
    // table the one before emptied. The same groups as csv-core (quoted
    // keys, never the fast path) and as the file read whole.
    let (mut plain, mut quoted) = (Vec::new(), Vec::new());
    let mut state = 11u64;
    for _ in 0..250_000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (state >> 33) as usize;
        let v = tenths_text((r / 100_000 % 1999) as i64 - 999);
        plain.extend_from_slice(format!("user{},{v}\n", r % 100_000).as_bytes());
        quoted.extend_from_slice(format!("\"user{}\",{v}\n", r % 100_000).as_bytes());
    }
    let q = stats_query(Some(b'"'), false);
    let whole = run_chunk(&q, &quoted, 0, quoted.len(), false).unwrap();
    assert_eq!(whole.counters.records, 250_000);
    let whole = sorted([whole]);
    assert!(whole.len() > 65_536, "{} keys", whole.len());

    let mut kept = KeptTables::default();
    let half = plain.len() / 2;
    let first = run_chunk_with(&q, &plain, 0, half, false, &mut kept).unwrap();
    assert!(kept.fast_overflowed);
    assert!(kept.fast.is_none() && kept.general.is_some());
    let second = run_chunk_with(&q, &plain, half, plain.len(), false, &mut kept).unwrap();
    assert_eq!(first.counters.records + second.counters.records, 250_000);
    assert_same(&whole, &sorted([first, second]), "overflowed fast table");

    let cuts: Vec<usize> = (1..7).map(|i| i * plain.len() / 7).collect();
    let (parts, counters) = run_cut(&q, &plain, &cuts);
    assert_eq!(counters.records, 250_000);
    assert_same(&whole, &parts, "many keys in chunks");
}

#[test]
fn masked_path_agrees_with_csv_core_on_mixed_records() {
    // An events-log shape (key and values after other fields, records of
    // several lengths) read from the window masks, against the same
    // records with the key quoted, which csv-core splits. Mixed in:
    // records the masked path must hand to the general one (an empty key,
    // empty and blank values, other number forms, CRLF, blank lines, too
    // few fields, records longer than the 64-byte window) and values at
    // several scales.
    let keys = ["US", "IN", "a-longer-country-name", "", "x\0", "x"];
    let values = [
        "20.271",
        "7",
        "-0.5",
        "",
        " 3 ",
        "1e2",
        "12.25",
        "0",
        "999999.999",
    ];
    let mut plain = b"ts,k,v,w,path\n".to_vec();
    let mut quoted = plain.clone();
    let long_path = "p".repeat(70);
    let mut state = 11u64;
    for i in 0..5_000u64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (state >> 33) as usize;
        let k = keys[r % keys.len()];
        let v = values[(r / 7) % values.len()];
        let w = values[(r / 61) % values.len()];
        let path = ["/", "/api/v1/items/123", &long_path][(r / 11) % 3];
        let end = ["\n", "\n", "\n", "\r\n", "\n\n"][(r / 101) % 5];
        let rest = if (r / 13) % 17 == 0 {
            // Too few fields: an error under --on-error fail, so skipped.
            String::new()
        } else {
            format!(",{w},{path}")
        };
        plain.extend_from_slice(format!("{i},{k},{v}{rest}{end}").as_bytes());
        quoted.extend_from_slice(format!("{i},\"{k}\",{v}{rest}{end}").as_bytes());
    }
    let mut q = query(
        Some(b'"'),
        true,
        &["k"],
        &[
            (AggFunc::Count, None),
            (AggFunc::Sum, Some("w")),
            (AggFunc::Stddev, Some("w")),
            (AggFunc::Mean, Some("v")),
            (AggFunc::Stddev, Some("v")),
            (AggFunc::Min, Some("w")),
        ],
    );
    q.on_error = OnError::Skip;
    let a = run_chunk(&q, &plain, 0, plain.len(), false).unwrap();
    let b = run_chunk(&q, &quoted, 0, quoted.len(), false).unwrap();
    assert!(a.counters.records > 4_000, "{:?}", a.counters);
    assert_eq!(a.counters.records, b.counters.records);
    assert_eq!(a.counters.bad_records, b.counters.bad_records);
    assert!(a.counters.bad_records > 0);
    assert_same(&sorted([a]), &sorted([b]), "masked vs csv-core");
    let cuts: Vec<usize> = (1..7).map(|i| i * plain.len() / 7 + 3).collect();
    let (whole, _) = run_cut(&q, &plain, &[]);
    let (parts, _) = run_cut(&q, &plain, &cuts);
    assert_same(&whole, &parts, "masked path in chunks");
}

/// A partial handed back after a task (`PreparedQuery::recycle`) holds the
/// next task's groups only: on the fast path (1BRC shape), on the general
/// path (CSV of several columns) and when the next task has fewer groups.
#[test]
fn a_recycled_partial_holds_only_the_next_tasks_groups() {
    let mut fast = query(None, false, &["k"], &[(AggFunc::Max, Some("v"))]);
    fast.input.columns = vec!["k".into(), "v".into()];
    let fast_tasks: [&[u8]; 3] = [b"a,1.5\nb,2.5\nc,3.5\nd,4.5\n", b"b,-1.5\nb,7.0\n", b""];
    let general_tasks: [&[u8]; 3] = [
        b"a,1.5,0\nb,2.5,0\nc,3.5,0\nd,4.5,0\n",
        b"b,-1.5,1\nb,7.0,2\n",
        b"",
    ];
    for (q, tasks) in [
        (fast, fast_tasks),
        (stats_query(None, false), general_tasks),
    ] {
        let inline = |bytes: &[u8]| Source::Inline {
            name: "<stdin>".into(),
            first_line: 1,
            first_byte: 0,
            bytes: ByteBuf::from(bytes.to_vec()),
        };
        let mut reused = Delimited::new(&q).expect("query");
        for bytes in tasks {
            let got = reused.run(&inline(bytes)).expect("task");
            let want = run_inline(&q, bytes, 1).expect("task");
            assert_eq!(Partial::from(&got.partial), Partial::from(&want.partial));
            assert_eq!(got.counters, want.counters);
            reused.recycle(got.partial);
        }
    }
}
