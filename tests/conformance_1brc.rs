//! The One Billion Row Challenge reference samples (tests/data/1brc, from
//! the challenge's repository, Apache-2.0) must print exactly their `.out`,
//! with one worker and with four, with the default chunk size and with
//! chunks so small that every file is cut into several.

use crate::util::{assert_same, data_dir, onebrc_args, Tally};

fn samples() -> Vec<(std::path::PathBuf, String)> {
    let dir = data_dir().join("1brc");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let is_sample = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("measurements"));
        if is_sample && p.extension().is_some_and(|e| e == "txt") {
            let expected = std::fs::read_to_string(p.with_extension("out")).unwrap();
            out.push((p, expected));
        }
    }
    out.sort();
    assert!(out.len() >= 12, "samples missing in {}", dir.display());
    out
}

fn check(workers: &str, chunk: Option<&str>) {
    for (input, expected) in samples() {
        let mut args = onebrc_args(&input);
        args.extend(["-j".to_string(), workers.to_string()]);
        if let Some(c) = chunk {
            args.extend(["--chunk-size".to_string(), c.to_string()]);
        }
        let got = Tally::new(&args).stdout();
        assert_same(
            &format!("{} -j{workers} chunk {chunk:?}", input.display()),
            &expected,
            &got,
        );
    }
}

#[test]
fn samples_j1() {
    check("1", None);
}

#[test]
fn samples_j4() {
    check("4", None);
}

#[test]
fn samples_small_chunks_j1() {
    check("1", Some("7"));
}

#[test]
fn samples_small_chunks_j4() {
    check("4", Some("7"));
}

#[test]
fn big_sample_in_many_chunks_j3() {
    // The 10,000-key sample cut into ~100 chunks.
    let input = data_dir().join("1brc/measurements-10000-unique-keys.txt");
    let expected =
        std::fs::read_to_string(data_dir().join("1brc/measurements-10000-unique-keys.out"))
            .unwrap();
    let mut args = onebrc_args(&input);
    args.extend(["-j", "3", "--chunk-size", "4K"].map(String::from));
    assert_same(
        "10000 keys, 4K chunks, -j3",
        &expected,
        &Tally::new(&args).stdout(),
    );
}
