//! Bad input: each error exits non-zero with a message that names the file
//! (and `:LINE` where there is one), never a panic; odd but valid input
//! gives the right answer. `Tally` checks after every run that no worker is
//! left.

use std::path::Path;

use crate::util::{tally_bytes, Tally, TempDir};

/// `run FILE --by k --agg 'count,sum(v)' --format csv` plus `extra`.
fn args(file: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "run".to_string(),
        file.display().to_string(),
        "--by".into(),
        "k".into(),
        "--agg".into(),
        "count,sum(v)".into(),
        "--format".into(),
        "csv".into(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Runs, expects an error; checks the message names `file` and returns
/// (exit code, stderr).
#[track_caller]
fn error_naming(file: &Path, args: &[String]) -> (i32, String) {
    let (code, stderr) = Tally::new(args).failure();
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(
        stderr.contains(&*name),
        "the error does not name {name}:\n{stderr}"
    );
    assert!(stderr.starts_with("tally: "), "{stderr}");
    (code, stderr)
}

/// The same output bytes at -j1 and -j3, and with chunks of 1, 2, 3, 5 and
/// 16 bytes (so every record is cut somewhere).
#[track_caller]
fn expect_everywhere(file: &Path, extra: &[&str], expected: &[u8]) {
    let mut runs: Vec<Vec<&str>> = vec![vec!["-j", "1"], vec!["-j", "3"]];
    for chunk in ["1", "2", "3", "5", "16"] {
        runs.push(vec!["-j", "3", "--chunk-size", chunk]);
    }
    for run in runs {
        let mut flags = extra.to_vec();
        flags.extend(&run);
        let got = tally_bytes(&args(file, &flags));
        assert!(
            got == expected,
            "{} {flags:?}:\nexpected {:?}\n     got {:?}",
            file.display(),
            String::from_utf8_lossy(expected),
            String::from_utf8_lossy(&got)
        );
    }
}

#[test]
fn missing_file() {
    let dir = TempDir::new("bad-input");
    let file = dir.path("no-such-file.csv");
    let (code, stderr) = error_naming(&file, &args(&file, &[]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no such file"), "{stderr}");
}

#[test]
fn missing_second_file_stops_before_any_work() {
    let dir = TempDir::new("bad-input");
    let good = dir.write("good.csv", "k,v\na,1\n");
    let missing = dir.path("missing.csv");
    let mut a = args(&good, &[]);
    a.insert(2, missing.display().to_string());
    let (_, stderr) = error_naming(&missing, &a);
    assert!(!stderr.contains("good.csv"), "{stderr}");
}

#[test]
fn directory() {
    let dir = TempDir::new("bad-input");
    let sub = dir.path("a-directory");
    std::fs::create_dir(&sub).unwrap();
    let (code, stderr) = error_naming(&sub, &args(&sub, &[]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("directory"), "{stderr}");
}

#[test]
fn empty_file_with_header_expected_is_an_error() {
    let dir = TempDir::new("bad-input");
    let file = dir.write("empty.csv", "");
    let (code, stderr) = error_naming(&file, &args(&file, &[]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("header"), "{stderr}");
}

#[test]
fn empty_file_without_header_is_an_empty_result() {
    let dir = TempDir::new("bad-input");
    let file = dir.write("empty.csv", "");
    let flags = ["--no-header", "--columns", "k,v"];
    expect_everywhere(&file, &flags, b"k,count,sum(v)\n");
}

#[test]
fn header_only_is_an_empty_result() {
    let dir = TempDir::new("bad-input");
    for (name, text) in [
        ("header.csv", "k,v\n"),
        ("header-crlf.csv", "k,v\r\n"),
        ("header-no-newline.csv", "k,v"),
        ("header-blank-lines.csv", "k,v\n\n\r\n\n"),
    ] {
        let file = dir.write(name, text);
        expect_everywhere(&file, &[], b"k,count,sum(v)\n");
    }
}

#[test]
fn unknown_column() {
    let dir = TempDir::new("bad-input");
    let file = dir.write("columns.csv", "k,v,other\na,1,2\n");
    for (by, agg) in [
        ("nope", "count"),
        ("k", "count,sum(nope)"),
        ("k,nope", "count"),
    ] {
        let a: Vec<String> = [
            "run",
            &file.display().to_string(),
            "--by",
            by,
            "--agg",
            agg,
            "-j",
            "2",
        ]
        .map(String::from)
        .to_vec();
        let (code, stderr) = error_naming(&file, &a);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("`nope`"), "{stderr}");
        for available in ["`k`", "`v`", "`other`"] {
            assert!(
                stderr.contains(available),
                "{available} not listed:\n{stderr}"
            );
        }
        // One message, not one per worker or chunk.
        assert_eq!(stderr.matches("`nope`").count(), 1, "{stderr}");
    }
}

#[test]
fn non_numeric_value_names_file_and_line() {
    let dir = TempDir::new("bad-input");
    let file = dir.write("values.csv", "k,v\na,1\nb,2\na,x1\nb,3\n");
    for extra in [&["-j", "1"][..], &["-j", "3", "--chunk-size", "5"][..]] {
        let (code, stderr) = error_naming(&file, &args(&file, extra));
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("values.csv:4"), "no file:line:\n{stderr}");
        assert!(stderr.contains("`x1`"), "{stderr}");
        assert!(stderr.contains("`v`"), "{stderr}");
    }
}

#[test]
fn non_numeric_value_line_counts_quoted_newlines() {
    // Line numbers are lines of the file, not records: the quoted newline
    // in record 2 puts the bad value of record 3 on line 5.
    let dir = TempDir::new("bad-input");
    let file = dir.write("quoted.csv", "k,v\na,1\n\"b\nb\",2\na,oops\n");
    for extra in [&["-j", "1"][..], &["-j", "2", "--chunk-size", "3"][..]] {
        let (_, stderr) = error_naming(&file, &args(&file, extra));
        assert!(stderr.contains("quoted.csv:5"), "{stderr}");
    }
}

#[test]
fn non_numeric_value_skipped() {
    let dir = TempDir::new("bad-input");
    let file = dir.write("values.csv", "k,v\na,1\nb,2\na,x1\nb,3\nc,NaN\n");
    for extra in [&["-j", "1"][..], &["-j", "3", "--chunk-size", "5"][..]] {
        let mut flags = vec!["--on-error", "skip"];
        flags.extend(extra);
        let out = Tally::new(args(&file, &flags)).output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        // The bad records are left out entirely: `a` and `c` lose a row.
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "k,count,sum(v)\na,1,1\nb,2,5\n",
            "{stderr}"
        );
        assert!(stderr.contains("2 bad record"), "{stderr}");
        assert!(stderr.contains("values.csv:4"), "{stderr}");
        assert!(stderr.contains("values.csv:6"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn too_few_fields_suggests_the_delimiter() {
    let dir = TempDir::new("bad-input");
    let file = dir.write("semicolons.csv", "k,v\na;1\n");
    let (code, stderr) = error_naming(&file, &args(&file, &[]));
    assert_eq!(code, 1);
    assert!(stderr.contains("semicolons.csv:2"), "{stderr}");
    assert!(stderr.contains("delimiter"), "{stderr}");
}

#[test]
fn invalid_utf8_key_passes_through() {
    let dir = TempDir::new("bad-input");
    let file = dir.write(
        "latin1.csv",
        b"k,v\n\xff\xfe,1\nok,3\n\xff\xfe,2\nM\xfcnchen,4\n",
    );
    // Sorted by bytes: `M\xfc...` < `ok` < `\xff\xfe`.
    expect_everywhere(
        &file,
        &[],
        b"k,count,sum(v)\nM\xfcnchen,1,4\nok,1,3\n\xff\xfe,2,3\n",
    );
}

#[test]
fn line_longer_than_the_chunk() {
    let dir = TempDir::new("bad-input");
    let long = "x".repeat(300);
    let quoted = format!("\"{}\n{}\"", "y,".repeat(50), "z".repeat(100));
    let text = format!("k,v\n{long},1\nb,2\n{quoted},3.5\n{long},4\n");
    let file = dir.write("long.csv", text);
    // Sorted by bytes: `b` < `x...` < `y...`.
    let expected = format!("k,count,sum(v)\nb,1,2\n{long},2,5\n{quoted},1,3.5\n");
    expect_everywhere(&file, &[], expected.as_bytes());
}

#[test]
fn no_final_newline() {
    let dir = TempDir::new("bad-input");
    for (name, text) in [
        ("plain.csv", "k,v\na,1\nb,2\na,3"),
        ("crlf.csv", "k,v\r\na,1\r\nb,2\r\na,3"),
        ("quoted.csv", "k,v\na,1\nb,2\n\"a\",\"3\""),
    ] {
        let file = dir.write(name, text);
        expect_everywhere(&file, &[], b"k,count,sum(v)\na,2,4\nb,1,2\n");
    }
}

#[test]
fn bad_flags_exit_2() {
    // README: exit code 2 for bad flags, whether clap or tally's own
    // validation finds them.
    let dir = TempDir::new("bad-input");
    let file = dir.write("ok.csv", "k,v\na,1\n");
    let f = file.display().to_string();
    for bad in [
        vec!["run", &f, "--no-such-flag"],
        vec!["run", &f, "--agg", "median(v)"],
        vec!["run", &f, "--chunk-size", "abc"],
        vec!["run", &f, "--chunk-size", "0"],
        vec!["run", &f, "-j", "0"],
        vec!["run", &f, "--no-header"],
        vec!["run", &f, "--no-header", "--columns", "a", "--by", "b"],
        vec!["run", &f, "--by", "k", "--agg", "count", "--format", "1brc"],
    ] {
        let (code, stderr) = Tally::new(&bad).failure();
        assert_eq!(code, 2, "{bad:?}:\n{stderr}");
    }
}
