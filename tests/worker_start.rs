//! Workers that cannot start: a broken binary, one from another release,
//! one that never answers the handshake. tally must fail fast, saying why
//! (the worker's stderr, both protocol versions), not loop starting
//! replacements; a worker lost during its handshake mid-run is replaced.

use std::path::Path;
use std::time::Duration;

use crate::faults::{faulty, run, stats_args, with};
use crate::util::{assert_same, fake_worker, generated, Tally, TempDir};

/// Processes started, counted by the files `faulty-worker` creates.
fn starts(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

fn small_args() -> Vec<String> {
    let file = generated("1brc-200k.txt", &["1brc", "--rows", "200000"]);
    with(stats_args(&file), &["--chunk-size", "16K"])
}

#[test]
fn every_worker_dies_at_start() {
    let dir = TempDir::new("starts");
    let starts_dir = dir.path("starts");
    std::fs::create_dir(&starts_dir).unwrap();
    let tally = Tally::new(with(with(small_args(), &["-j", "4"]), &faulty()))
        .env("FAULT", "die-at-start")
        .env("FAULT_STARTS_DIR", &starts_dir);
    let done = run(tally, Duration::from_secs(10));
    done.code(1)
        .says("cannot start worker")
        .says("exited with status 3")
        .says("cannot start: broken on purpose");
    assert_eq!(
        starts(&starts_dir),
        4,
        "no replacements for a binary that never starts"
    );
    assert!(
        done.elapsed < Duration::from_secs(5),
        "took {:?}",
        done.elapsed
    );
}

/// The workers crash after two tasks each, and every replacement dies at
/// start (as if the binary had been replaced by a broken one): after
/// MAX_FAILED_STARTS (3) replacements in a row die, tally gives up.
#[test]
fn broken_binary_mid_run_fails_fast() {
    let dir = TempDir::new("starts");
    let starts_dir = dir.path("starts");
    std::fs::create_dir(&starts_dir).unwrap();
    let tally = Tally::new(with(with(small_args(), &["-j", "2"]), &faulty()))
        .env("FAULT", "crash")
        .env("FAULT_AFTER", "2")
        .env("FAULT_STARTS_DIR", &starts_dir)
        .env("FAULT_BROKEN_FROM", "2");
    let done = run(tally, Duration::from_secs(20));
    done.code(1)
        .says("replacement workers in a row died before answering the handshake")
        .says("cannot start: broken on purpose (start ");
    let n = starts(&starts_dir);
    assert!((3..=5).contains(&n), "{n} workers started");
}

/// One replacement dies during its handshake, mid-run; the next one works.
/// And one of the first workers dies at start: the run goes on without it
/// and replaces it.
#[test]
fn worker_lost_during_handshake_is_replaced() {
    let args = with(small_args(), &["-j", "2"]);
    let expected = run(Tally::new(&args), Duration::from_secs(30))
        .success()
        .to_string();
    for broken in ["1", "2"] {
        let dir = TempDir::new("starts");
        let starts_dir = dir.path("starts");
        std::fs::create_dir(&starts_dir).unwrap();
        let tally = Tally::new(with(args.clone(), &faulty()))
            .env("FAULT", "exit")
            .env("FAULT_AFTER", "5")
            .env("FAULT_ONCE", dir.path("once"))
            .env("FAULT_STARTS_DIR", &starts_dir)
            .env("FAULT_BROKEN_STARTS", broken);
        let done = run(tally, Duration::from_secs(30));
        assert_same(&format!("start {broken} broken"), &expected, done.success());
        done.says(&format!("cannot start: broken on purpose (start {broken})"));
    }
}

#[test]
fn protocol_version_mismatch_names_both_versions() {
    let worker = fake_worker("wrong-version-worker");
    let args = with(
        small_args(),
        &["-j", "2", "--worker", &worker.display().to_string()],
    );
    let done = run(Tally::new(args), Duration::from_secs(10));
    done.code(1).says(&format!(
        "speaks protocol version {}, this coordinator speaks {}",
        tally_protocol::PROTOCOL_VERSION + 1,
        tally_protocol::PROTOCOL_VERSION
    ));
    assert!(
        done.elapsed < Duration::from_secs(5),
        "took {:?}",
        done.elapsed
    );
}

/// A worker that reads its stdin but never answers is given up after the
/// handshake time-out (10 s).
#[test]
fn silent_worker_times_out_in_the_handshake() {
    let tally =
        Tally::new(with(with(small_args(), &["-j", "1"]), &faulty())).env("FAULT", "silent");
    let done = run(tally, Duration::from_secs(30));
    done.code(1)
        .says("did not answer the handshake within 10.0s");
}
