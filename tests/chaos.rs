//! Workers die, hang and lie; the output must not change. Each test runs
//! the same query without faults first (real `tally-worker`) and then with
//! faults, and compares the bytes: a chunk lost or merged twice changes the
//! counts and sums of its stations.

use std::time::{Duration, Instant};

use crate::faults::{faulty, run, stats_args, with, Rng, Running};
use crate::util::{assert_same, generated, send_signal, Tally, TempDir};

/// `kill -9` of random workers, every ~150 ms, at least 10 times over a run
/// of 20 million rows; the workers sleep 10 ms per task so the run lasts
/// long enough to be hit that often.
#[test]
fn kill_9_random_workers_output_unchanged() {
    let file = generated("1brc-20m.txt", &["1brc", "--rows", "20000000"]);
    let args = with(stats_args(&file), &["-j", "3", "--chunk-size", "256K"]);
    let expected = run(Tally::new(&args), Duration::from_secs(60))
        .success()
        .to_string();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    eprintln!("kill_9: victim seed {seed}");
    let mut rng = Rng::new(seed);
    let mut chaos = Running::start(Tally::new(with(args, &faulty())).env("FAULT_SLOW_MS", "10"));
    chaos.wait_for_workers(3, Duration::from_secs(10));
    let mut killed = Vec::new();
    while chaos.is_running() && killed.len() < 20 {
        std::thread::sleep(Duration::from_millis(150));
        let workers = chaos.workers();
        if workers.is_empty() {
            continue;
        }
        let victim = workers[rng.below(workers.len())];
        // SAFETY: kill(2) on a child of the tally this test started.
        if unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) } == 0 {
            killed.push(victim);
        }
    }
    let done = chaos.wait(Duration::from_secs(60));
    eprintln!(
        "kill_9: {} workers killed; run took {:.2} s",
        killed.len(),
        done.elapsed.as_secs_f64()
    );
    assert!(
        killed.len() >= 10,
        "only {} kills before the run ended in {:?}",
        killed.len(),
        done.elapsed
    );
    assert_same("after kill -9 of workers", &expected, done.success());
    done.says("killed by signal 9 (SIGKILL)")
        .says("lost and replaced");
    assert!(
        killed
            .iter()
            .any(|p| done.stderr.contains(&format!("worker pid {p} "))),
        "no killed pid named in stderr:\n{}",
        done.stderr
    );
}

/// A SIGSTOPped worker neither exits nor answers: only the task time-out
/// can catch it. The run must finish within the time-out plus slack, with
/// the same output. Real `tally-worker`.
#[test]
fn sigstopped_worker_is_caught_by_the_task_timeout() {
    let file = generated("1brc-10m.txt", &["1brc", "--rows", "10000000"]);
    let args = with(
        stats_args(&file),
        &["-j", "2", "--chunk-size", "64K", "--task-timeout", "1s"],
    );
    let clean = run(Tally::new(&args), Duration::from_secs(60));
    let expected = clean.success().to_string();

    let chaos = Running::start(Tally::new(&args));
    let workers = chaos.wait_for_workers(2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(100));
    let victim = workers[0];
    send_signal(victim, libc::SIGSTOP);
    let stopped_at = Instant::now();
    let done = chaos.wait(clean.elapsed + Duration::from_secs(30));
    assert_same("after SIGSTOP of a worker", &expected, done.success());
    done.says(&format!(
        "worker pid {victim} ran one task past --task-timeout (1s)"
    ));
    // The time-out plus the run's own time plus slack for a loaded machine.
    let limit = clean.elapsed + Duration::from_secs(1) + Duration::from_secs(5);
    assert!(
        done.elapsed < limit,
        "took {:?} (clean run {:?}, stopped after {:?})",
        done.elapsed,
        clean.elapsed,
        stopped_at.duration_since(Instant::now() - done.elapsed)
    );
}

/// A run over 200,000 rows in ~53 chunks at -j2 where one worker (the first
/// to reach its 4th task) misbehaves once with `fault`; the output must be
/// that of the fault-free run and stderr must say each of `says`.
fn recovers_from(fault: &str, env: &[(&str, &str)], says: &[&str]) {
    let dir = TempDir::new("fault");
    let file = generated("1brc-200k.txt", &["1brc", "--rows", "200000"]);
    let args = with(
        stats_args(&file),
        &["-j", "2", "--chunk-size", "64K", "--task-timeout", "2s"],
    );
    let expected = run(Tally::new(&args), Duration::from_secs(30))
        .success()
        .to_string();
    let once = dir.path("once");
    let mut tally = Tally::new(with(args, &faulty()))
        .env("FAULT", fault)
        .env("FAULT_AFTER", "3")
        .env("FAULT_ONCE", &once);
    for (k, v) in env {
        tally = tally.env(k, v);
    }
    let done = run(tally, Duration::from_secs(30));
    assert_same(fault, &expected, done.success());
    assert!(once.exists(), "the fault `{fault}` was never injected");
    for s in says {
        done.says(s);
    }
}

#[test]
fn worker_crash_abort() {
    recovers_from(
        "crash",
        &[],
        &[
            "killed by signal 6 (SIGABRT)",
            "crashing on purpose at bytes",
        ],
    );
}

#[test]
fn worker_exits_mid_task() {
    recovers_from(
        "exit",
        &[],
        &["exited with status 42", "exiting on purpose"],
    );
}

#[test]
fn worker_hangs_past_the_task_timeout() {
    recovers_from("hang", &[], &["ran one task past --task-timeout (2s)"]);
}

#[test]
fn worker_sends_an_oversized_frame_header() {
    recovers_from(
        "bigframe",
        &[],
        &["sent a bad frame (frame of 4294967295 bytes exceeds the maximum"],
    );
}

#[test]
fn worker_answers_a_task_it_does_not_hold() {
    recovers_from("stray", &[], &["which it does not hold"]);
}

/// Random bytes on stdout, for several seeds and lengths: depending on the
/// bytes the coordinator sees a frame that does not decode, one over the
/// limit, or a frame that never ends (caught by the task time-out). Each
/// time the run must recover, never panic or hang.
#[test]
fn worker_writes_random_bytes_to_stdout() {
    for seed in 1..=4u64 {
        for len in ["1", "64", "100000"] {
            let seed = seed.to_string();
            recovers_from(
                "garbage",
                &[("FAULT_SEED", &seed), ("FAULT_GARBAGE_LEN", len)],
                &["writing garbage"],
            );
        }
    }
}
