//! Results checked against an independent reference: `reference/group_by.py`
//! reads the same CSV with Python's standard `csv` module and computes
//! count, sum, min, max, mean and sample standard deviation per group, with
//! empty fields as nulls. tally runs at -j1 and -j3, with the default chunk
//! size and with chunks small enough that quoted newlines and doubled quotes
//! straddle chunk boundaries. Counts and exact sums must match exactly, min
//! and max to the bit, mean and stddev to a relative 1e-9.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{generated, parse_csv, Tally, TempDir};

/// The generated events: quoted paths with commas, doubled quotes and
/// newlines, ~2% empty `latency_ms`.
fn events() -> PathBuf {
    generated(
        "events-200k-seed7.csv",
        &["events", "--rows", "200000", "--seed", "7"],
    )
}

/// Hand-written nasty cases, each commented. CRLF and LF line ends mixed;
/// no final newline.
const NASTY: &[u8] = b"\"name\",city,v,w\r\n\
alpha,Berlin,1.5,10\r\n\
\"alpha\",\"Berlin\",2.25,-3\r\n\
\"a,b\",Paris,3,\r\n\
\"say \"\"hi\"\"\",Paris,,7\r\n\
\"multi\nline\",Oslo,4.125,1\n\
\"crlf\r\ninside\",Oslo,-0.5,2\r\n\
,Oslo,5,2\n\
alpha,,6,3\n\
\"\",Rome,7.5,4\r\n\
\r\n\
\n\
\" padded \",Rome,\" 9.5\",0.25\n\
caf\xc3\xa9,Z\xc3\xbcrich,1e2,0.001\n\
\"a,b\",\"Paris\",\"\",\"\"\n\
\"alpha\",\"Berlin\",\"8\",5";

fn nasty(dir: &TempDir) -> PathBuf {
    dir.write("nasty.csv", NASTY)
}

/// `count` and, per value column, `count(v),sum(v),min(v),max(v),mean(v),stddev(v)`.
fn agg_list(values: &[&str]) -> String {
    let mut aggs = vec!["count".to_string()];
    for v in values {
        for f in ["count", "sum", "min", "max", "mean", "stddev"] {
            aggs.push(format!("{f}({v})"));
        }
    }
    aggs.join(",")
}

/// The reference result of `reference/group_by.py`.
fn reference(file: &Path, by: &[&str], values: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/group_by.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(file)
        .args(["--by", &by.join(","), "--values", &values.join(",")])
        .output()
        .expect("python3 must be installed to compute the reference results");
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Value = serde_json::from_slice(&out.stdout).expect("reference JSON");
    let groups = expected["groups"].as_array().expect("groups");
    assert!(!groups.is_empty(), "reference found no groups");
    expected
}

/// Runs tally on `file` with `extra` flags and the query; returns stdout.
fn tally(file: &Path, by: &[&str], values: &[&str], format: &str, extra: &[&str]) -> String {
    let mut args: Vec<String> = vec!["run".into(), file.display().to_string()];
    if !by.is_empty() {
        args.extend(["--by".into(), by.join(",")]);
    }
    args.extend([
        "--agg".into(),
        agg_list(values),
        "--format".into(),
        format.into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    Tally::new(&args).stdout()
}

/// Decimal text without trailing zeros after the point; `-0` as `0`.
fn normalize_decimal(s: &str) -> String {
    let mut t = s.trim().to_string();
    if t.contains('.') {
        t = t.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if t == "-0" || t.is_empty() {
        t = "0".into();
    }
    t
}

fn float(label: &str, text: &str) -> f64 {
    text.parse()
        .unwrap_or_else(|e| panic!("{label}: `{text}` is not a number: {e}"))
}

#[track_caller]
fn assert_close(label: &str, expected: f64, actual: f64) {
    let tolerance = 1e-9 * expected.abs() + 1e-12;
    assert!(
        (expected - actual).abs() <= tolerance,
        "{label}: expected {expected}, got {actual}"
    );
}

/// A printed value against the reference: `text` is tally's cell (None for
/// a null), `exact` whether it must match to the bit.
fn check_value(label: &str, expected: &Value, actual: Option<&str>, exact: bool) {
    match (expected.as_str(), actual) {
        (None, None) => {}
        (None, Some(a)) => panic!("{label}: expected null, got `{a}`"),
        (Some(e), None) => panic!("{label}: expected {e}, got null"),
        (Some(e), Some(a)) if exact => {
            assert_eq!(float(label, e), float(label, a), "{label}: `{e}` vs `{a}`")
        }
        (Some(e), Some(a)) => assert_close(label, float(label, e), float(label, a)),
    }
}

/// Checks tally's `--format csv` output against the reference, group by
/// group in order (nulls first, then by bytes).
fn check_csv(label: &str, expected: &Value, by: &[&str], values: &[&str], output: &str) {
    let records = parse_csv(output);
    let (header, rows) = records.split_first().expect("a header line");
    let mut titles: Vec<String> = by.iter().map(|s| s.to_string()).collect();
    titles.extend(agg_list(values).split(',').map(String::from));
    assert_eq!(header, &titles, "{label}: header");
    let groups = expected["groups"].as_array().expect("groups");
    let keys = |rows: &[Vec<String>]| -> Vec<Vec<String>> {
        rows.iter().map(|r| r[..by.len()].to_vec()).collect()
    };
    let expected_keys: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            g["key"]
                .as_array()
                .expect("key")
                .iter()
                .map(|k| k.as_str().unwrap_or("").to_string())
                .collect()
        })
        .collect();
    assert_eq!(keys(rows), expected_keys, "{label}: groups and their order");
    for (row, g) in rows.iter().zip(groups) {
        let label = format!("{label}, group {:?}", &row[..by.len()]);
        assert_eq!(row.len(), titles.len(), "{label}: fields");
        let cell = |i: usize| Some(row[i].as_str()).filter(|s| !s.is_empty());
        let mut i = by.len();
        assert_eq!(
            cell(i),
            Some(g["rows"].to_string().as_str()),
            "{label}: count"
        );
        i += 1;
        for v in values {
            let e = &g["values"][*v];
            let label = format!("{label}, column {v}");
            assert_eq!(
                cell(i),
                Some(e["count"].to_string().as_str()),
                "{label}: count({v})"
            );
            match (e["sum"].as_str(), cell(i + 1)) {
                (Some(es), Some(a)) if e["sum_exact"] == true => {
                    assert_eq!(normalize_decimal(a), es, "{label}: exact sum({v})")
                }
                (es, a) => check_value(&format!("{label}: sum"), &Value::from(es), a, false),
            }
            check_value(&format!("{label}: min"), &e["min"], cell(i + 2), true);
            check_value(&format!("{label}: max"), &e["max"], cell(i + 3), true);
            check_value(&format!("{label}: mean"), &e["mean"], cell(i + 4), false);
            check_value(
                &format!("{label}: stddev"),
                &e["stddev"],
                cell(i + 5),
                false,
            );
            i += 6;
        }
    }
}

/// Checks tally's `--format json` output: keys as strings or null, numbers
/// as JSON numbers (compared as floats), nulls as null.
fn check_json(label: &str, expected: &Value, by: &[&str], values: &[&str], output: &str) {
    let actual: Value = serde_json::from_str(output)
        .unwrap_or_else(|e| panic!("{label}: output is not JSON ({e}):\n{output}"));
    let actual = actual.as_array().expect("a JSON array");
    let groups = expected["groups"].as_array().expect("groups");
    assert_eq!(actual.len(), groups.len(), "{label}: number of groups");
    for (a, g) in actual.iter().zip(groups) {
        let key: Vec<Value> = by.iter().map(|b| a[*b].clone()).collect();
        assert_eq!(&Value::from(key.clone()), &g["key"], "{label}: key");
        let label = format!("{label}, group {key:?}");
        assert_eq!(a["count"], g["rows"], "{label}: count");
        for v in values {
            let e = &g["values"][*v];
            assert_eq!(a[format!("count({v})")], e["count"], "{label}: count({v})");
            for f in ["sum", "min", "max", "mean", "stddev"] {
                let got = &a[format!("{f}({v})")];
                assert!(
                    got.is_null() || got.is_number(),
                    "{label}: {f}({v}) = {got}"
                );
                let text = got.as_f64().map(|x| x.to_string());
                check_value(&format!("{label}: {f}({v})"), &e[f], text.as_deref(), false);
            }
        }
    }
}

const EVENT_VALUES: [&str; 2] = ["latency_ms", "bytes"];

#[test]
fn events_by_country_j1_and_j3_small_chunks() {
    let file = events();
    let by = ["country"];
    let expected = reference(&file, &by, &EVENT_VALUES);
    for (label, extra) in [
        ("-j1", &["-j", "1"][..]),
        ("-j3 64K", &["-j", "3", "--chunk-size", "64K"][..]),
    ] {
        let out = tally(&file, &by, &EVENT_VALUES, "csv", extra);
        check_csv(
            &format!("events by country {label}"),
            &expected,
            &by,
            &EVENT_VALUES,
            &out,
        );
    }
}

#[test]
fn events_by_country_and_status() {
    let file = events();
    let by = ["country", "status"];
    let expected = reference(&file, &by, &EVENT_VALUES);
    for (label, extra) in [
        ("-j1", &["-j", "1"][..]),
        ("-j3 64K", &["-j", "3", "--chunk-size", "64K"][..]),
    ] {
        let out = tally(&file, &by, &EVENT_VALUES, "csv", extra);
        let label = format!("events by country,status {label}");
        check_csv(&label, &expected, &by, &EVENT_VALUES, &out);
    }
    let out = tally(
        &file,
        &by,
        &EVENT_VALUES,
        "json",
        &["-j", "2", "--chunk-size", "100K"],
    );
    check_json(
        "events by country,status, JSON -j2 100K",
        &expected,
        &by,
        &EVENT_VALUES,
        &out,
    );
}

#[test]
fn events_global_row() {
    let file = events();
    let expected = reference(&file, &[], &EVENT_VALUES);
    let out = tally(
        &file,
        &[],
        &EVENT_VALUES,
        "csv",
        &["-j", "3", "--chunk-size", "64K"],
    );
    check_csv(
        "events, no --by, -j3 64K",
        &expected,
        &[],
        &EVENT_VALUES,
        &out,
    );
}

#[test]
fn events_by_quoted_path() {
    // The key itself holds the quoted commas, doubled quotes and newlines,
    // and there are tens of thousands of groups.
    let file = events();
    let by = ["path"];
    let values = ["bytes"];
    let expected = reference(&file, &by, &values);
    let out = tally(
        &file,
        &by,
        &values,
        "csv",
        &["-j", "3", "--chunk-size", "64K"],
    );
    check_csv("events by path -j3 64K", &expected, &by, &values, &out);
}

#[test]
fn nasty_csv_by_name() {
    let dir = TempDir::new("csv-reference");
    let file = nasty(&dir);
    let values = ["v", "w"];
    let by = ["name"];
    let expected = reference(&file, &by, &values);
    for (label, extra) in [
        ("-j1", &["-j", "1"][..]),
        ("-j3 16B", &["-j", "3", "--chunk-size", "16"][..]),
        ("-j2 7B", &["-j", "2", "--chunk-size", "7"][..]),
        ("-j3 1B", &["-j", "3", "--chunk-size", "1"][..]),
    ] {
        let out = tally(&file, &by, &values, "csv", extra);
        check_csv(
            &format!("nasty.csv by name {label}"),
            &expected,
            &by,
            &values,
            &out,
        );
    }
    let out = tally(
        &file,
        &by,
        &values,
        "json",
        &["-j", "2", "--chunk-size", "5"],
    );
    check_json("nasty.csv by name, JSON", &expected, &by, &values, &out);
}

#[test]
fn nasty_csv_by_name_and_city() {
    let dir = TempDir::new("csv-reference");
    let file = nasty(&dir);
    let values = ["v", "w"];
    let by = ["name", "city"];
    let expected = reference(&file, &by, &values);
    for (label, extra) in [
        ("-j1", &["-j", "1"][..]),
        ("-j3 16B", &["-j", "3", "--chunk-size", "16"][..]),
    ] {
        let out = tally(&file, &by, &values, "csv", extra);
        let label = format!("nasty.csv by name,city {label}");
        check_csv(&label, &expected, &by, &values, &out);
    }
    let out = tally(
        &file,
        &by,
        &values,
        "json",
        &["-j", "3", "--chunk-size", "3"],
    );
    check_json(
        "nasty.csv by name,city, JSON",
        &expected,
        &by,
        &values,
        &out,
    );
}

#[test]
fn reference_itself_sees_the_nasty_cases() {
    // Guards the guard: if the reference script read the nasty file wrongly
    // (say, split the quoted newline), the tests above would compare two
    // wrong answers. These facts are read off NASTY by hand.
    let dir = TempDir::new("csv-reference");
    let expected = reference(&nasty(&dir), &["name"], &["v"]);
    let groups = expected["groups"].as_array().unwrap();
    let key = |g: &Value| g["key"][0].as_str().map(String::from);
    let keys: Vec<Option<String>> = groups.iter().map(key).collect();
    assert_eq!(
        keys,
        [
            None,
            Some(" padded ".into()),
            Some("a,b".into()),
            Some("alpha".into()),
            Some("caf\u{e9}".into()),
            Some("crlf\r\ninside".into()),
            Some("multi\nline".into()),
            Some("say \"hi\"".into()),
        ]
        .to_vec()
    );
    let alpha = &groups[3];
    assert_eq!(alpha["rows"], 4);
    assert_eq!(alpha["values"]["v"]["sum"], "17.75");
    let null = &groups[0];
    assert_eq!(null["rows"], 2);
    assert_eq!(null["values"]["v"]["sum"], "12.5");
}
