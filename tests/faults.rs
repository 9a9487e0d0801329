//! Helpers of the fault-tolerance tests: run `tally` in the background with
//! a deadline, find its workers, inject faults, build test files.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::{assert_no_workers_left, fake_worker, Tally};

/// The query of the fault tests: every aggregate kind, grouped, as CSV, so
/// a lost or double-counted chunk changes the output.
pub fn stats_args(file: &Path) -> Vec<String> {
    let mut args = crate::util::onebrc_query(
        file,
        "count,sum(temp),min(temp),mean(temp),max(temp),stddev(temp)",
        "csv",
    );
    args.push("--no-progress".into());
    args
}

/// `args` plus more.
pub fn with<S: AsRef<str>>(mut args: Vec<String>, more: &[S]) -> Vec<String> {
    args.extend(more.iter().map(|s| s.as_ref().to_string()));
    args
}

/// `--worker <faulty-worker>`.
pub fn faulty() -> [String; 2] {
    [
        "--worker".to_string(),
        fake_worker("faulty-worker").display().to_string(),
    ]
}

/// A `tally` run in the background, its output collected by threads.
pub struct Running {
    child: Child,
    tag: String,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    started: Instant,
}

/// How a background run ended.
pub struct Finished {
    /// Exit status of `tally`.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// From start to exit.
    pub elapsed: Duration,
}

impl Finished {
    /// Asserts exit status 0 and returns stdout.
    #[track_caller]
    pub fn success(&self) -> &str {
        assert!(
            self.status.success(),
            "tally failed with {}:\n{}",
            self.status,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts exit code `code` (not a death by signal, not a panic).
    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit code {code}; stderr:\n{}",
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "tally panicked:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    pub fn says(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// What a [`drain`] thread read, once it has finished (nothing if none ran).
fn collected(reader: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    reader.map(|h| h.join().unwrap()).unwrap_or_default()
}

impl Running {
    /// Starts `tally`.
    pub fn start(mut tally: Tally) -> Running {
        let tag = tally.tag().to_string();
        let mut child = tally
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tally");
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Running {
            child,
            tag,
            stdout,
            stderr,
            started: Instant::now(),
        }
    }

    /// The tag of this run's processes (see [`crate::util::tagged_processes`]).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The pid of `tally`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Live (not zombie) child processes of `tally`: its workers.
    pub fn workers(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// Waits until `tally` has `n` live workers, at most `limit`.
    #[track_caller]
    pub fn wait_for_workers(&self, n: usize, limit: Duration) -> Vec<u32> {
        let deadline = Instant::now() + limit;
        loop {
            let w = self.workers();
            if w.len() >= n {
                return w;
            }
            assert!(
                Instant::now() < deadline,
                "tally did not start {n} workers in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether `tally` is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for `tally` to exit, at most `limit`: a run that takes longer
    /// is killed and fails the test (a hang). Either way, no process of the
    /// run may be left.
    #[track_caller]
    pub fn wait(mut self, limit: Duration) -> Finished {
        let deadline = self.started + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for tally") {
                break Some(s);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        let Some(status) = status else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let stderr = collected(self.stderr.take());
            assert_no_workers_left(&self.tag);
            panic!(
                "tally still running after {limit:?} (a hang); stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        };
        let stdout = collected(self.stdout.take());
        let stderr = collected(self.stderr.take());
        assert_no_workers_left(&self.tag);
        Finished {
            status,
            stdout: String::from_utf8(stdout).expect("utf-8 output"),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed half-way: leave nothing behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `tally` to the end with a deadline (see [`Running::wait`]).
#[track_caller]
pub fn run(tally: Tally, limit: Duration) -> Finished {
    Running::start(tally).wait(limit)
}

/// Live child processes of `pid`, from `/proc/*/stat`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for child in crate::util::proc_pids() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) && state != "Z" && state != "X" {
            out.push(child);
        }
    }
    out
}

/// A small xorshift generator: tests pick "random" victims reproducibly.
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
}

/// A `station;temp` file of `lines` lines of exactly 10 bytes
/// (`sNNN;DD.D\n`), so that a chunk size that is a multiple of 10 cuts it
/// between lines: chunk `k` of size `10 * n` holds lines `k*n+1 ..= (k+1)*n`.
pub fn fixed_width_file(dir: &Path, name: &str, lines: usize) -> PathBuf {
    let mut text = String::with_capacity(lines * 10);
    for i in 0..lines {
        let station = (i * 7) % 37;
        let tenths = 100 + (i * 7919) % 900;
        text.push_str(&format!("s{station:03};{}.{}\n", tenths / 10, tenths % 10));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}
