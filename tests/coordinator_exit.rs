//! The coordinator stops: Ctrl-C or SIGTERM stop the workers and exit
//! 130 / 143 with nothing left running; a SIGKILLed coordinator leaves no
//! worker behind for more than a second, even one busy in a task that
//! never reads its stdin again (the parent-death signal on Linux).

use std::time::Duration;

use crate::faults::{faulty, stats_args, with, Running};
use crate::util::{generated, send_signal, tagged_processes, wait_until, Tally};

fn slow_run(tag_env: &[(&str, &str)]) -> Running {
    let file = generated("1brc-200k.txt", &["1brc", "--rows", "200000"]);
    let args = with(
        with(stats_args(&file), &["-j", "2", "--chunk-size", "16K"]),
        &faulty(),
    );
    let mut tally = Tally::new(args);
    for (k, v) in tag_env {
        tally = tally.env(k, v);
    }
    Running::start(tally)
}

fn stopped_by(signal: libc::c_int, code: i32) {
    let running = slow_run(&[("FAULT_SLOW_MS", "50")]);
    running.wait_for_workers(2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    send_signal(running.pid(), signal);
    // `wait` also checks that no worker is left.
    let done = running.wait(Duration::from_secs(10));
    done.code(code)
        .says(&format!("interrupted by signal {signal}; workers stopped"));
    assert!(done.stdout.is_empty(), "no partial result on stdout");
}

#[test]
fn ctrl_c_exits_130_and_stops_the_workers() {
    stopped_by(libc::SIGINT, 130);
}

#[test]
fn sigterm_exits_143_and_stops_the_workers() {
    stopped_by(libc::SIGTERM, 143);
}

#[test]
fn sigkilled_coordinator_leaves_no_worker_after_a_second() {
    // Every worker hangs in its first task, never reading stdin again.
    let running = slow_run(&[("FAULT", "hang")]);
    let workers = running.wait_for_workers(2, Duration::from_secs(10));
    // Let them take their tasks and hang.
    std::thread::sleep(Duration::from_millis(300));
    let tag = running.tag().to_string();
    send_signal(running.pid(), libc::SIGKILL);
    let gone = wait_until(Duration::from_secs(1), || tagged_processes(&tag).is_empty());
    assert!(
        gone,
        "workers {workers:?} outlived their coordinator by a second: {:?}",
        tagged_processes(&tag)
    );
    let done = running.wait(Duration::from_secs(5));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&done.status),
        Some(libc::SIGKILL)
    );
}
