//! Shared helpers: find the built binaries, run them, compare output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `target/<profile>`, where cargo put `tally` and `tally-worker`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/tests-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds every binary)",
        p.display()
    );
    p
}

/// The `tally` binary.
pub fn tally_bin() -> PathBuf {
    bin("tally")
}

/// The `tally-worker` binary.
pub fn worker_bin() -> PathBuf {
    bin("tally-worker")
}

/// A fake worker built from `tests/src/bin/<name>.rs`.
pub fn fake_worker(name: &str) -> PathBuf {
    bin(name)
}

/// The directory of test data shipped in the repository.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

static TAG: AtomicU64 = AtomicU64::new(0);

/// A `tally` command whose workers carry a unique environment tag, so the
/// test can check afterwards that none of them is left running.
pub struct Tally {
    cmd: Command,
    tag: String,
}

impl Tally {
    /// `tally ARGS...`.
    pub fn new<I, S>(args: I) -> Tally
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let tag = format!(
            "{}-{}",
            std::process::id(),
            TAG.fetch_add(1, Ordering::SeqCst)
        );
        let mut cmd = Command::new(tally_bin());
        cmd.args(args)
            .env("TALLY_TEST_TAG", &tag)
            .env_remove("TALLY_WORKER")
            .stdin(Stdio::null());
        Tally { cmd, tag }
    }

    /// Sets an environment variable.
    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Tally {
        self.cmd.env(k, v);
        self
    }

    /// Runs to completion; checks that no worker outlives it.
    pub fn output(mut self) -> Output {
        let out = self.cmd.output().expect("run tally");
        assert_no_workers_left(&self.tag);
        out
    }

    /// Runs; asserts success; returns stdout.
    pub fn stdout(self) -> String {
        let out = self.output();
        assert!(
            out.status.success(),
            "tally failed with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs; asserts failure (not a crash by signal); returns (code, stderr).
    pub fn failure(self) -> (i32, String) {
        let out = self.output();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out
            .status
            .code()
            .unwrap_or_else(|| panic!("tally died by a signal: {stderr}"));
        assert_ne!(
            code,
            0,
            "expected failure, got success; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!stderr.contains("panicked"), "tally panicked:\n{stderr}");
        (code, stderr)
    }

    /// The tag given to this run's processes.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The underlying command, for spawning by hand.
    pub fn command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Starts the run with stdin, stdout and stderr all piped, for a test
    /// that feeds it and reads both outputs.
    pub fn spawn_piped(&mut self) -> std::process::Child {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tally")
    }
}

/// The pids listed in `/proc`.
pub fn proc_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .collect()
}

/// Pids of live processes whose environment holds `TALLY_TEST_TAG=tag`.
pub fn tagged_processes(tag: &str) -> Vec<u32> {
    let needle = format!("TALLY_TEST_TAG={tag}\0");
    let mut pids = Vec::new();
    for pid in proc_pids() {
        // Zombies have an empty environ; only live processes count.
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Waits up to 2 s for every process tagged `tag` to be gone.
pub fn assert_no_workers_left(tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = tagged_processes(tag);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("processes left running after tally exited: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory.
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "tally-test-{name}-{}-{}",
            std::process::id(),
            TAG.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    /// A path inside.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes a file inside and returns its path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write test file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asserts equal strings with a readable first difference.
#[track_caller]
pub fn assert_same(label: &str, expected: &str, actual: &str) {
    if expected == actual {
        return;
    }
    let line = expected
        .lines()
        .zip(actual.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    panic!(
        "{label}: outputs differ from line {}\nexpected: {:?}\n  actual: {:?}\n(lengths {} and {})",
        line + 1,
        expected.lines().nth(line),
        actual.lines().nth(line),
        expected.len(),
        actual.len()
    );
}

/// `run FILE` over a header-less `station;temp` file, grouped by station.
pub fn onebrc_query(file: &Path, agg: &str, format: &str) -> Vec<String> {
    [
        "run",
        &file.display().to_string(),
        "--delimiter",
        ";",
        "--no-header",
        "--columns",
        "station,temp",
        "--by",
        "station",
        "--agg",
        agg,
        "--format",
        format,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Arguments of the 1BRC query over a `station;temp` file.
pub fn onebrc_args(file: &Path) -> Vec<String> {
    onebrc_query(file, "min(temp),mean(temp),max(temp)", "1brc")
}

/// A test data file generated by `tally gen ARGS... -o FILE` once per build
/// directory and kept there (next to the binaries, not in /tmp), so that
/// every test of a run and later runs share it. Written to a temporary name
/// and renamed, so a file that exists is complete.
pub fn generated(name: &str, gen_args: &[&str]) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static MADE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut made = MADE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = made.get(name) {
        return p.clone();
    }
    let dir = bin_dir().join("tally-test-data");
    std::fs::create_dir_all(&dir).expect("create test data dir");
    let path = dir.join(name);
    if !path.is_file() {
        let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
        let mut args = vec!["gen"];
        args.extend_from_slice(gen_args);
        args.extend(["-o", tmp.to_str().expect("utf-8 path")]);
        Tally::new(&args).stdout();
        std::fs::rename(&tmp, &path).expect("rename generated file");
    }
    made.insert(name.to_string(), path.clone());
    path
}

/// Runs `tally ARGS...`; asserts success; returns stdout as bytes (for
/// byte-for-byte comparisons of output that need not be UTF-8).
pub fn tally_bytes<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<u8> {
    let out = Tally::new(args).output();
    assert!(
        out.status.success(),
        "tally failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Parses RFC 4180 CSV (quoted fields with delimiters, doubled quotes and
/// newlines; `\n` or `\r\n` line ends) into records of fields. A test's own
/// reader of tally's `--format csv`, independent of tally's code.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                any = false;
            }
            c => field.push(c),
        }
    }
    assert!(!in_quotes, "unterminated quoted field in CSV output");
    if any {
        record.push(field);
        records.push(record);
    }
    records
}

/// Sends `signal` to `pid`.
pub fn send_signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) with a pid this test started; no memory is involved.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// Polls until `pred()` holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
