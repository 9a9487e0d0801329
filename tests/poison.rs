//! Poison chunks: a chunk on which every attempt fails stops the run, named
//! by file, byte range and first line, with what the workers said; under
//! `--on-error skip` the run finishes without it, says so, and exits 3.
//!
//! The file has lines of exactly 10 bytes and the chunks are 1000 bytes, so
//! chunk 7 is bytes 7000..8000 = lines 701..=800, and the file without
//! those bytes is the file without that chunk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::faults::{faulty, fixed_width_file, run, stats_args, with};
use crate::util::{assert_same, Tally, TempDir};

const CHUNK: &str = "1000";
const POISON_START: u64 = 7000;
const POISON_END: u64 = 8000;

fn poison_file(dir: &TempDir) -> PathBuf {
    fixed_width_file(&dir.path(""), "poison.txt", 2000)
}

fn faulty_run(file: &Path, fault: &str, more: &[&str]) -> Tally {
    let args = with(
        with(stats_args(file), &["-j", "2", "--chunk-size", CHUNK]),
        more,
    );
    Tally::new(with(args, &faulty()))
        .env("FAULT", fault)
        .env("FAULT_CHUNK_START", POISON_START.to_string())
}

fn range_named(file: &Path) -> String {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    format!("{name}:{POISON_START}..{POISON_END} (from line 701)")
}

#[test]
fn crashing_chunk_fails_the_run_naming_it() {
    let dir = TempDir::new("poison");
    let file = poison_file(&dir);
    let done = run(faulty_run(&file, "crash", &[]), Duration::from_secs(30));
    done.code(1)
        .says(&format!("{} failed 3 times", range_named(&file)))
        .says("killed by signal 6 (SIGABRT)")
        .says("crashing on purpose at bytes 7000..8000");
    assert!(
        done.stdout.is_empty(),
        "no result may be printed: {}",
        done.stdout
    );
}

#[test]
fn failing_chunk_with_max_attempts_2() {
    let dir = TempDir::new("poison");
    let file = poison_file(&dir);
    let done = run(
        faulty_run(&file, "error", &["--max-attempts", "2"]),
        Duration::from_secs(30),
    );
    done.code(1)
        .says(&format!("{} failed 2 times", range_named(&file)))
        .says("injected failure at bytes 7000..8000");
}

/// Under `--on-error skip`: exit 3, the summary names the range, and the
/// counts are exactly those of the file without the chunk.
#[test]
fn skipped_chunk_is_reported_and_excluded_exactly() {
    let dir = TempDir::new("poison");
    let file = poison_file(&dir);
    let bytes = std::fs::read(&file).unwrap();
    let mut without = bytes[..POISON_START as usize].to_vec();
    without.extend_from_slice(&bytes[POISON_END as usize..]);
    let without = dir.write("without.txt", without);
    let expected = run(
        Tally::new(with(
            stats_args(&without),
            &["-j", "2", "--chunk-size", CHUNK],
        )),
        Duration::from_secs(30),
    )
    .success()
    .to_string();
    let full = run(
        Tally::new(with(stats_args(&file), &["-j", "2", "--chunk-size", CHUNK])),
        Duration::from_secs(30),
    )
    .success()
    .to_string();
    assert_ne!(expected, full, "the chunk must matter");

    for fault in ["crash", "error"] {
        let done = run(
            faulty_run(&file, fault, &["--on-error", "skip"]),
            Duration::from_secs(30),
        );
        done.code(3)
            .says("PARTIAL RESULT: 1 chunk(s) failed on every attempt and are not counted")
            .says(&format!(
                "{} bytes {POISON_START}..{POISON_END}",
                file.display()
            ));
        assert_same(&format!("skip after {fault}"), &expected, &done.stdout);
    }
}
