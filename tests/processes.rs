//! Process hygiene: no worker outlives tally, whether the run ends normally,
//! with an error, by Ctrl-C or SIGTERM (exit 130/143), or by SIGKILL of the
//! coordinator (the workers notice: stdin EOF, parent-death signal).
//! Workers carry the run's `TALLY_TEST_TAG`, so a leftover is found in /proc.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::util::{
    assert_no_workers_left, data_dir, generated, onebrc_args, send_signal, tagged_processes,
    wait_until, worker_bin, Tally,
};

/// 5M 1BRC rows (86 MB): with 2K chunks a run takes seconds, so a signal
/// sent after 200 ms lands in the middle of it.
fn big() -> PathBuf {
    generated("1brc-5m-seed1.txt", &["1brc", "--rows", "5000000"])
}

/// A slow run of tally with 2 workers, started: the child, its tag.
fn start_slow_run(own_process_group: bool) -> (Child, String) {
    let mut args = onebrc_args(&big());
    args.extend(["-j", "2", "--chunk-size", "2K", "--no-progress"].map(String::from));
    let mut tally = Tally::new(&args);
    let tag = tally.tag().to_string();
    let cmd = tally.command();
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    if own_process_group {
        cmd.process_group(0);
    }
    let child = cmd.spawn().expect("spawn tally");
    // tally and its two workers.
    let up = wait_until(Duration::from_secs(10), || {
        tagged_processes(&tag).len() >= 3
    });
    assert!(up, "workers did not start: {:?}", tagged_processes(&tag));
    std::thread::sleep(Duration::from_millis(200));
    (child, tag)
}

/// Waits up to `timeout` for the child to exit.
fn wait_for(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tally did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut s).expect("read stderr");
    }
    s
}

/// Sends `signal` to a running slow run (to its process group when
/// `group`, as a terminal's Ctrl-C would); expects exit `code` within 3 s
/// and no worker left.
fn stopped_by(signal: libc::c_int, code: i32, group: bool) {
    let (mut child, tag) = start_slow_run(group);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run finished before the signal; make the input bigger"
    );
    let pid = child.id();
    if group {
        // SAFETY: kill(2) on the process group this test just created.
        let rc = unsafe { libc::kill(-(pid as libc::pid_t), signal) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    } else {
        send_signal(pid, signal);
    }
    let status = wait_for(&mut child, Duration::from_secs(3));
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(code), "{status}:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_no_workers_left(&tag);
}

/// The 1BRC query on the sample of 10,000 keys, in 16K chunks, with `jobs`
/// workers.
fn unique_keys_args(jobs: &str) -> Vec<String> {
    let input = data_dir().join("1brc/measurements-10000-unique-keys.txt");
    let mut args = onebrc_args(&input);
    args.extend(["-j", jobs, "--chunk-size", "16K"].map(String::from));
    args
}

#[test]
fn normal_run_leaves_no_worker() {
    // Tally::stdout checks that no tagged process is left.
    let out = Tally::new(unique_keys_args("3")).stdout();
    assert!(out.starts_with('{'), "{out}");
}

/// A run's result does not wait for its workers' exits: a worker that has
/// said all it will (a tally-worker lets go of its pipes first) but takes
/// long to tear down what it holds (10 s here; unmapping a big file takes
/// milliseconds) neither holds up tally nor outlives it. Before, tally
/// waited up to its 2 s grace for each worker to exit.
#[test]
fn result_does_not_wait_for_workers_to_exit() {
    let args = unique_keys_args("2");
    let expected = Tally::new(&args).stdout();
    let args = crate::faults::with(args, &crate::faults::faulty());
    let started = Instant::now();
    // Tally::stdout checks that no tagged process is left.
    let out = Tally::new(&args).env("FAULT_LINGER_MS", "10000").stdout();
    let took = started.elapsed();
    assert_eq!(out, expected);
    assert!(
        took < Duration::from_millis(1500),
        "tally took {took:?}: it waited for its workers' exits"
    );
}

#[test]
fn failed_run_leaves_no_worker() {
    let dir = crate::util::TempDir::new("processes");
    let mut text = String::from("k,v\n");
    for i in 0..20_000 {
        text.push_str(&format!("k{},{i}\n", i % 7));
    }
    text.push_str("k1,oops\n");
    let file = dir.write("late-error.csv", text);
    let (code, stderr) = Tally::new([
        "run",
        file.to_str().unwrap(),
        "--by",
        "k",
        "--agg",
        "sum(v)",
        "-j",
        "3",
        "--chunk-size",
        "4K",
    ])
    .failure();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("late-error.csv:20002"), "{stderr}");
}

#[test]
fn sigint_exits_130_and_stops_workers() {
    stopped_by(libc::SIGINT, 130, false);
}

#[test]
fn ctrl_c_to_the_process_group_exits_130() {
    stopped_by(libc::SIGINT, 130, true);
}

#[test]
fn sigterm_exits_143_and_stops_workers() {
    stopped_by(libc::SIGTERM, 143, false);
}

#[test]
fn workers_exit_when_the_coordinator_is_killed() {
    let (mut child, tag) = start_slow_run(false);
    let pid = child.id();
    let workers: Vec<u32> = tagged_processes(&tag)
        .into_iter()
        .filter(|&p| p != pid)
        .collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    send_signal(pid, libc::SIGKILL);
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let killed = Instant::now();
    let gone = wait_until(Duration::from_secs(1), || tagged_processes(&tag).is_empty());
    assert!(
        gone,
        "workers {:?} still running {:?} after their coordinator was killed",
        tagged_processes(&tag),
        killed.elapsed()
    );
}

#[test]
fn workers_command_lists_the_pool() {
    let out = Tally::new(["workers", "-j", "3"]).stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "header, 3 workers, summary:\n{out}");
    assert!(lines[0].starts_with("worker"), "{out}");
    let mut pids = Vec::new();
    for (i, line) in lines[1..4].iter().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 5, "{line}");
        assert_eq!(fields[0], i.to_string(), "{line}");
        let pid: u32 = fields[1]
            .parse()
            .unwrap_or_else(|_| panic!("pid in {line}"));
        assert!(pid > 1 && pid != std::process::id(), "{line}");
        pids.push(pid);
        assert_eq!(fields[2], "1", "protocol version: {line}");
        assert!(fields[4].split(',').any(|k| k == "delimited"), "{line}");
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3, "distinct pids:\n{out}");
    assert!(lines[4].starts_with("3 worker(s)"), "{out}");
}

#[test]
fn workers_command_with_an_explicit_worker() {
    let worker = worker_bin();
    let out = Tally::new(["workers", "-j", "1", "--worker", worker.to_str().unwrap()]).stdout();
    let summary = out.lines().last().unwrap();
    assert!(summary.starts_with("1 worker(s)"), "{out}");
    assert!(summary.contains(worker.to_str().unwrap()), "{out}");
}
