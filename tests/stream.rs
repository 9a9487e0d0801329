//! `tally stream`: windows against a reference computed here, record by
//! record; processing-time invariants; the running mean of the product
//! brief; backpressure; a worker killed mid-stream.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::{send_signal, tagged_processes, Tally};

/// (window_start, key) -> (count, sum, min, max), values in tenths.
type Windows = BTreeMap<(i64, String), (u64, i64, i64, i64)>;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One generated event.
struct Event {
    t_ms: i64,
    key: String,
    tenths: i64,
}

const T0: i64 = 1_700_000_000_000;

/// Events in arrival order: time goes forward ~10 ms per record; most
/// events are up to 1.5 s behind (out of order, on time for a 2 s
/// lateness), 3 % are 3..15 s behind (some of them late).
fn events(n: usize, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed);
    let mut now = T0;
    (0..n)
        .map(|_| {
            now += rng.below(20) as i64;
            let behind = if rng.below(100) < 3 {
                3000 + rng.below(12_000) as i64
            } else {
                rng.below(1500) as i64
            };
            Event {
                t_ms: now - behind,
                key: ["a", "b", "c", "d"][rng.below(4) as usize].to_string(),
                tenths: rng.below(2001) as i64 - 1000,
            }
        })
        .collect()
}

fn decimal(tenths: i64) -> String {
    let sign = if tenths < 0 { "-" } else { "" };
    format!("{sign}{}.{}", tenths.abs() / 10, tenths.abs() % 10)
}

/// The windows and the late count, computed record by record: a record
/// counts in each window it belongs to that the watermark before it (the
/// largest earlier time minus the lateness) has not closed; late if none.
fn reference(events: &[Event], size: i64, slide: i64, lateness: i64) -> (Windows, u64) {
    let n = size / slide;
    let mut out = Windows::new();
    let mut max: Option<i64> = None;
    let mut late = 0;
    for e in events {
        let p = e.t_ms.div_euclid(slide);
        let closed = max.map_or(0, |m| ((m - lateness).div_euclid(slide) - p).clamp(0, n));
        if closed >= n {
            late += 1;
        }
        for j in closed..n {
            let q = p - n + 1 + j;
            let w = out
                .entry((q * slide, e.key.clone()))
                .or_insert((0, 0, i64::MAX, i64::MIN));
            w.0 += 1;
            w.1 += e.tenths;
            w.2 = w.2.min(e.tenths);
            w.3 = w.3.max(e.tenths);
        }
        max = Some(max.map_or(e.t_ms, |m| m.max(e.t_ms)));
    }
    (out, late)
}

fn tenths(v: &serde_json::Value) -> i64 {
    (v.as_f64().expect("a number") * 10.0).round() as i64
}

/// tally's NDJSON windows as [`Windows`]; checks the window length.
fn parse_windows(stdout: &str, size: i64) -> Windows {
    let mut out = Windows::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("an NDJSON line");
        let start = v["window_start"].as_i64().expect("window_start in ms");
        assert_eq!(v["window_end"].as_i64(), Some(start + size), "{line}");
        let key = v["k"].as_str().expect("key").to_string();
        let row = (
            v["count"].as_u64().expect("count"),
            tenths(&v["sum(v)"]),
            tenths(&v["min(v)"]),
            tenths(&v["max(v)"]),
        );
        assert!(
            out.insert((start, key), row).is_none(),
            "window emitted twice: {line}"
        );
    }
    out
}

/// Runs `tally stream ARGS` with `input` on stdin, succeeding or not; no
/// worker outlives it.
fn stream_output(args: &[&str], input: Vec<u8>) -> std::process::Output {
    let mut t = Tally::new(["stream"].iter().chain(args));
    let tag = t.tag().to_string();
    let mut child = t.spawn_piped();
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("tally output");
    writer.join().expect("writer");
    crate::util::assert_no_workers_left(&tag);
    out
}

/// Runs `tally stream ARGS` with `input` on stdin; it must succeed.
fn stream(args: &[&str], input: Vec<u8>) -> (String, String) {
    let out = stream_output(args, input);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tally stream failed: {stderr}");
    (String::from_utf8(out.stdout).expect("utf-8"), stderr)
}

fn late_count(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("tally: ")?
                .split(" late record")
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn as_ndjson(events: &[Event]) -> Vec<u8> {
    let mut out = String::new();
    for (i, e) in events.iter().enumerate() {
        // Three spellings of a time: ms, fractional seconds, RFC 3339.
        let ts = match i % 3 {
            0 => e.t_ms.to_string(),
            1 => format!("{}.{:03}", e.t_ms.div_euclid(1000), e.t_ms.rem_euclid(1000)),
            _ => format!("\"{}\"", rfc3339(e.t_ms)),
        };
        out.push_str(&format!(
            "{{\"ts\":{ts},\"k\":\"{}\",\"m\":{{\"v\":{}}}}}\n",
            e.key,
            decimal(e.tenths)
        ));
    }
    out.into_bytes()
}

fn rfc3339(ms: i64) -> String {
    // 2023-11-14T22:13:20Z is T0; the generated times stay within a day.
    let secs = (ms - T0).div_euclid(1000) + 22 * 3600 + 13 * 60 + 20;
    format!(
        "2023-11-14T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms.rem_euclid(1000)
    )
}

fn as_csv(events: &[Event]) -> Vec<u8> {
    let mut out = String::from("ts,k,v\n");
    for e in events {
        out.push_str(&format!("{},{},{}\n", e.t_ms, e.key, decimal(e.tenths)));
    }
    out.into_bytes()
}

fn check_event_time(size: i64, slide: i64, ndjson: bool, batch: &str, workers: &str) {
    let evs = events(20_000, 7 + size as u64 + slide as u64);
    let (expected, expected_late) = reference(&evs, size, slide, 2000);
    assert!(expected_late > 50, "the generator makes late records");
    let (window, slide_s) = (format!("{size}ms"), format!("{slide}ms"));
    let mut args = vec![
        "--by",
        "k",
        "--window",
        &window,
        "--slide",
        &slide_s,
        "--time-field",
        "ts",
        "--lateness",
        "2s",
        "--time-format",
        "ms",
        "--batch-size",
        batch,
        "-j",
        workers,
    ];
    let input = if ndjson {
        args.extend(["--ndjson", "--agg", "count,sum(m.v),min(m.v),max(m.v)"]);
        as_ndjson(&evs)
    } else {
        args.extend(["--header", "--agg", "count,sum(v),min(v),max(v)"]);
        as_csv(&evs)
    };
    let (stdout, stderr) = stream(&args, input);
    let stdout = stdout.replace("(m.v)", "(v)");
    let got = parse_windows(&stdout, size);
    assert_eq!(
        late_count(&stderr),
        expected_late,
        "late records; stderr: {stderr}"
    );
    if got != expected {
        let diff: Vec<_> = expected
            .iter()
            .filter(|(k, v)| got.get(k) != Some(v))
            .take(5)
            .map(|(k, v)| format!("{k:?}: expected {v:?}, got {:?}", got.get(k)))
            .collect();
        panic!(
            "windows differ ({} expected, {} got): {diff:?}",
            expected.len(),
            got.len()
        );
    }
}

#[test]
fn event_time_tumbling_windows_equal_the_reference() {
    check_event_time(1000, 1000, false, "16K", "2");
}

#[test]
fn event_time_sliding_windows_equal_the_reference() {
    check_event_time(2000, 500, true, "8K", "3");
}

#[test]
fn lateness_is_judged_per_record_whatever_the_batching() {
    // One batch per few records, and one batch for everything.
    check_event_time(1000, 250, true, "64", "2");
    check_event_time(1000, 1000, false, "64M", "1");
}

/// Processing time: windows are aligned, never overlap (tumbling), and
/// every record is in exactly `size / slide` windows.
fn check_processing_time(size: u64, slide: u64) {
    let mut t = Tally::new([
        "stream",
        "--columns",
        "k,v",
        "--by",
        "k",
        "--agg",
        "count,sum(v)",
        "--window",
        &format!("{size}ms"),
        "--slide",
        &format!("{slide}ms"),
        "--time-format",
        "ms",
        "-j",
        "2",
    ]);
    let mut child = t.spawn_piped();
    let mut stdin = child.stdin.take().expect("stdin");
    let (rounds, per_round) = (25, 40);
    for r in 0..rounds {
        let mut chunk = String::new();
        for i in 0..per_round {
            chunk.push_str(&format!("k{},{}\n", i % 3, r * per_round + i));
        }
        stdin.write_all(chunk.as_bytes()).expect("write");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = (rounds * per_round) as u64;
    let mut total = 0;
    let mut starts = BTreeMap::new();
    for line in String::from_utf8(out.stdout).expect("utf-8").lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let (s, e) = (
            v["window_start"].as_i64().unwrap(),
            v["window_end"].as_i64().unwrap(),
        );
        assert_eq!(e - s, size as i64, "{line}");
        assert_eq!(s.rem_euclid(slide as i64), 0, "aligned: {line}");
        let key = v["k"].as_str().unwrap().to_string();
        assert!(
            starts.insert((s, key), ()).is_none(),
            "window twice: {line}"
        );
        total += v["count"].as_u64().unwrap();
    }
    assert_eq!(
        total,
        n * (size / slide),
        "every record in size/slide windows"
    );
    let windows: Vec<i64> = starts.keys().map(|(s, _)| *s).collect();
    assert!(windows.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        starts
            .keys()
            .map(|(s, _)| s)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 3,
        "the stream lasted several windows"
    );
}

#[test]
fn processing_time_tumbling_windows_partition_the_stream() {
    check_processing_time(100, 100);
}

#[test]
fn processing_time_sliding_windows_count_each_record_per_window() {
    check_processing_time(200, 50);
}

#[test]
fn running_mean_of_plain_numbers() {
    // The product brief's example: `tally stream --agg mean --every 1s`.
    let input: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    let (stdout, _) = stream(
        &["--agg", "mean", "--every", "1s", "-j", "2"],
        input.into_bytes(),
    );
    let last = stdout.lines().last().expect("a line");
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["mean"].as_f64(), Some(500.5), "{stdout}");
    assert!(v["window_start"].is_string());
}

/// NDJSON records counted in 1 s event-time windows of `ts` (seconds),
/// window bounds printed in ms, one worker.
const COUNT_PER_SECOND: &[&str] = &[
    "--ndjson",
    "--agg",
    "count",
    "--window",
    "1s",
    "--time-field",
    "ts",
    "--time-format",
    "ms",
    "-j",
    "1",
];

#[test]
fn windows_are_printed_as_they_close() {
    // A window must come out while the input is still open.
    let mut t = Tally::new(["stream"].iter().chain(COUNT_PER_SECOND));
    t.command().stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child: Child = t.command().spawn().expect("start");
    let mut stdin = child.stdin.take().unwrap();
    // Seconds: 1 s, 1.5 s, then 2.1 s closes [1 s, 2 s).
    stdin
        .write_all(b"{\"ts\":1}\n{\"ts\":1.5}\n{\"ts\":2.1}\n")
        .unwrap();
    stdin.flush().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let started = Instant::now();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        line,
        "{\"window_start\":1000,\"window_end\":2000,\"count\":2}\n"
    );
    drop(stdin);
    line.clear();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(
        line,
        "{\"window_start\":2000,\"window_end\":3000,\"count\":1}\n"
    );
    assert!(child.wait().unwrap().success());
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[test]
fn a_fast_producer_is_slowed_down_memory_stays_bounded_nothing_is_lost() {
    // ~160 MB pushed as fast as the pipe takes it, into one worker.
    let line = b"Station name;-12.3\n";
    let block: Vec<u8> = line.repeat(1 << 16);
    let blocks = 130;
    let mut t = Tally::new([
        "stream",
        "-d",
        ";",
        "--columns",
        "s,t",
        "--agg",
        "count,sum(t)",
        "--every",
        "10s",
        "-j",
        "1",
    ]);
    t.command().stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = t.command().spawn().expect("start");
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut peak = 0;
    for _ in 0..blocks {
        stdin.write_all(&block).unwrap();
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
    }
    peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let n = (blocks << 16) as u64;
    assert_eq!(v["count"].as_u64(), Some(n), "nothing lost");
    assert_eq!(tenths(&v["sum(t)"]), -123 * n as i64);
    let input_mib = (blocks * block.len()) >> 20;
    assert!(
        peak < 64 * 1024,
        "tally's peak RSS {peak} KiB for {input_mib} MiB of input: not bounded"
    );
}

#[test]
fn killing_workers_mid_stream_loses_and_doubles_nothing() {
    let evs = events(30_000, 99);
    let (expected, expected_late) = reference(&evs, 1000, 1000, 2000);
    let input = as_csv(&evs);
    let mut t = Tally::new([
        "stream",
        "--header",
        "--by",
        "k",
        "--agg",
        "count,sum(v),min(v),max(v)",
        "--window",
        "1s",
        "--time-field",
        "ts",
        "--lateness",
        "2s",
        "--time-format",
        "ms",
        "--batch-size",
        "4K",
        "-j",
        "2",
    ]);
    let tag = t.tag().to_string();
    let mut child = t.spawn_piped();
    let tally_pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut killed = 0;
    for (i, chunk) in input.chunks(input.len() / 40 + 1).enumerate() {
        stdin.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(15));
        if i % 10 == 5 {
            if let Some(&pid) = tagged_processes(&tag).iter().find(|&&p| p != tally_pid) {
                send_signal(pid, libc::SIGKILL);
                killed += 1;
            }
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(killed >= 3, "killed {killed} workers");
    assert!(stderr.contains("worker(s) lost and replaced"), "{stderr}");
    let got = parse_windows(&String::from_utf8(out.stdout).unwrap(), 1000);
    assert_eq!(late_count(&stderr), expected_late);
    assert!(got == expected, "windows differ after workers were killed");
    crate::util::assert_no_workers_left(&tag);
}

#[test]
fn the_live_app_example_keeps_answering() {
    // Built by `cargo test --workspace` (examples of every package).
    let exe = crate::util::bin_dir().join("examples").join("live_app");
    if !exe.is_file() {
        eprintln!(
            "skipped: {} not built (run `cargo test --workspace`)",
            exe.display()
        );
        return;
    }
    let out = std::process::Command::new(&exe)
        .arg("1")
        .env_remove("TALLY_WORKER")
        .output()
        .expect("run live_app");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains("requests answered"), "{stdout}");
    // Every event produced reached a window.
    let num = |before: &str| -> u64 {
        last.split(before)
            .next()
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(num(" events;"), num(" records into"), "{last}");
}

#[test]
fn follow_reads_a_growing_file_and_sigint_flushes_the_open_window() {
    // `--follow`: records appended to the file after tally started are
    // read; Ctrl-C (SIGINT) emits the window still open, then exits 130.
    let dir = crate::util::TempDir::new("follow");
    let path = dir.write("events.ndjson", "{\"ts\":1}\n{\"ts\":1.5}\n");
    let follow = ["stream", "--follow", path.to_str().unwrap()];
    let mut t = Tally::new(follow.iter().chain(COUNT_PER_SECOND));
    t.command().stdout(Stdio::piped());
    let mut child: Child = t.command().spawn().expect("start");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let append = |text: &str| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    std::thread::sleep(Duration::from_millis(200));
    append("{\"ts\":2.1}\n");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(
        line,
        "{\"window_start\":1000,\"window_end\":2000,\"count\":2}\n"
    );
    append("{\"ts\":2.5}\n");
    std::thread::sleep(Duration::from_millis(300));
    send_signal(child.id(), libc::SIGINT);
    line.clear();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(
        line,
        "{\"window_start\":2000,\"window_end\":3000,\"count\":2}\n"
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    crate::util::assert_no_workers_left(t.tag());
}

#[test]
fn a_bad_record_deep_in_a_stream_is_named_by_its_line_and_byte() {
    // 1.3 MB read in pieces of 256 KiB: the bad record is in a batch far
    // from the first, and the header line is not a record but counts in
    // both the line and the byte.
    let mut input = b"station;temp\n".to_vec();
    for i in 0..150_000 {
        input.extend_from_slice(format!("s{};{}.5\n", i % 7, i % 40).as_bytes());
    }
    let (line, byte) = (150_002, input.len());
    input.extend_from_slice(b"no delimiter here\ns1;2.0\n");
    let args = [
        "--header",
        "-d",
        ";",
        "--by",
        "station",
        "--agg",
        "mean(temp)",
        "--every",
        "1s",
        "--batch-size",
        "4K",
        "-j",
        "2",
    ];
    let out = stream_output(&args, input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad record passed: {stderr}");
    let want = format!("<stdin>:{line} (byte {byte})");
    assert!(stderr.contains(&want), "wanted `{want}` in: {stderr}");
}
