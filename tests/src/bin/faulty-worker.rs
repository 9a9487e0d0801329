//! A `tally-worker` with the built-in kernels that misbehaves on purpose,
//! driven by environment variables (the coordinator passes its environment
//! on to its workers):
//!
//! | variable | meaning |
//! |---|---|
//! | `FAULT` | `crash` (abort: SIGABRT), `exit` (exit status 42), `hang` (sleep forever), `garbage` (write random bytes to stdout, then go on), `bigframe` (write a frame header of 4 GiB, then go on), `stray` (answer a task id it was never given, then go on), `error` (fail the task with an `internal` error), `silent` (never answer the handshake), `die-at-start` (exit 3 before reading anything) |
//! | `FAULT_AFTER=K` | misbehave on a task only after K tasks of this process went well (default 0) |
//! | `FAULT_CHUNK_START=N` | misbehave only on the task whose byte range starts at N |
//! | `FAULT_ONCE=PATH` | misbehave only in the first process to create PATH (once per run) |
//! | `FAULT_SEED=S` | seed of the `garbage` bytes (default 1) |
//! | `FAULT_GARBAGE_LEN=N` | how many `garbage` bytes (default 64) |
//! | `FAULT_SLOW_MS=MS` | sleep this long before each task, faulty or not |
//! | `FAULT_LINGER_MS=MS` | sleep this long when a prepared query is dropped: at exit, after the worker has let go of its pipes, like a worker unmapping a huge file |
//! | `FAULT_STARTS_DIR=DIR` | each process claims a start number by creating `DIR/<n>` |
//! | `FAULT_BROKEN_FROM=N` | with `FAULT_STARTS_DIR`: processes numbered N and up die at start (exit 3), like a binary replaced by a broken one mid-run |
//! | `FAULT_BROKEN_STARTS=A,B` | with `FAULT_STARTS_DIR`: processes numbered A, B die at start |
//!
//! A task that does not misbehave is answered by the real kernel, so a run
//! that recovers prints exactly what `tally-worker` would.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tally_worker::tally_protocol::frame::encode_frame;
use tally_worker::tally_protocol::{Counters, FromWorker, Partial, QuerySpec, Source, TaskResult};
use tally_worker::{Kernel, PreparedQuery, Registry, TaskFailure, TaskOutput};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Crash,
    Exit,
    Hang,
    Garbage,
    BigFrame,
    Stray,
    Error,
    Silent,
    DieAtStart,
}

#[derive(Debug, Clone)]
struct Plan {
    fault: Fault,
    after: u64,
    chunk_start: Option<u64>,
    once: Option<String>,
    seed: u64,
    garbage_len: usize,
    slow: Duration,
    linger: Duration,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_num(name: &str) -> Option<u64> {
    env(name).map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

impl Plan {
    fn from_env() -> Plan {
        let fault = match env("FAULT").as_deref() {
            None | Some("none") => Fault::None,
            Some("crash") => Fault::Crash,
            Some("exit") => Fault::Exit,
            Some("hang") => Fault::Hang,
            Some("garbage") => Fault::Garbage,
            Some("bigframe") => Fault::BigFrame,
            Some("stray") => Fault::Stray,
            Some("error") => Fault::Error,
            Some("silent") => Fault::Silent,
            Some("die-at-start") => Fault::DieAtStart,
            Some(other) => panic!("unknown FAULT={other}"),
        };
        Plan {
            fault,
            after: env_num("FAULT_AFTER").unwrap_or(0),
            chunk_start: env_num("FAULT_CHUNK_START"),
            once: env("FAULT_ONCE"),
            seed: env_num("FAULT_SEED").unwrap_or(1),
            garbage_len: env_num("FAULT_GARBAGE_LEN").unwrap_or(64) as usize,
            slow: Duration::from_millis(env_num("FAULT_SLOW_MS").unwrap_or(0)),
            linger: Duration::from_millis(env_num("FAULT_LINGER_MS").unwrap_or(0)),
        }
    }

    /// Whether this task (the `done`-th of the process) misbehaves.
    fn strikes(&self, done: u64, source: &Source) -> bool {
        if self.fault == Fault::None || done < self.after {
            return false;
        }
        if let Some(want) = self.chunk_start {
            match source {
                Source::FileRange { start, .. } if *start == want => {}
                _ => return false,
            }
        }
        match &self.once {
            // The first process to create the file misbehaves; no other.
            Some(path) => std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .is_ok(),
            None => true,
        }
    }
}

static TASKS_DONE: AtomicU64 = AtomicU64::new(0);

struct FaultyKernel {
    inner: Box<dyn Kernel>,
    plan: Plan,
}

impl Kernel for FaultyKernel {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn prepare(&self, query: &QuerySpec) -> Result<Box<dyn PreparedQuery>, TaskFailure> {
        Ok(Box::new(FaultyQuery {
            inner: self.inner.prepare(query)?,
            plan: self.plan.clone(),
        }))
    }
}

struct FaultyQuery {
    inner: Box<dyn PreparedQuery>,
    plan: Plan,
}

impl Drop for FaultyQuery {
    fn drop(&mut self) {
        std::thread::sleep(self.plan.linger);
    }
}

impl PreparedQuery for FaultyQuery {
    fn run(&mut self, source: &Source) -> Result<TaskOutput, TaskFailure> {
        if !self.plan.slow.is_zero() {
            std::thread::sleep(self.plan.slow);
        }
        let done = TASKS_DONE.fetch_add(1, Ordering::SeqCst);
        if self.plan.strikes(done, source) {
            let what = describe(source);
            let pid = std::process::id();
            match self.plan.fault {
                Fault::Crash => {
                    eprintln!("faulty-worker {pid}: crashing on purpose at {what}");
                    std::process::abort();
                }
                Fault::Exit => {
                    eprintln!("faulty-worker {pid}: exiting on purpose at {what}");
                    std::process::exit(42);
                }
                Fault::Hang => {
                    eprintln!("faulty-worker {pid}: hanging on purpose at {what}");
                    loop {
                        std::thread::sleep(Duration::from_secs(3600));
                    }
                }
                Fault::Garbage => {
                    eprintln!("faulty-worker {pid}: writing garbage at {what}");
                    write_stdout(&garbage(self.plan.seed, self.plan.garbage_len));
                }
                Fault::BigFrame => {
                    eprintln!("faulty-worker {pid}: writing a 4 GiB frame header at {what}");
                    write_stdout(&u32::MAX.to_le_bytes());
                }
                Fault::Stray => {
                    eprintln!("faulty-worker {pid}: answering a task it does not hold at {what}");
                    let mut frame = Vec::new();
                    let stray = FromWorker::Result(TaskResult {
                        task_id: u64::MAX / 2,
                        partial: Partial::default(),
                        counters: Counters::default(),
                        bad_samples: Vec::new(),
                    });
                    encode_frame(&mut frame, &stray).unwrap();
                    write_stdout(&frame);
                }
                Fault::Error => {
                    return Err(TaskFailure::new(
                        tally_worker::tally_protocol::ErrorKind::Internal,
                        format!("injected failure at {what}"),
                    ));
                }
                Fault::None | Fault::Silent | Fault::DieAtStart => {}
            }
        }
        self.inner.run(source)
    }
}

fn describe(source: &Source) -> String {
    match source {
        Source::FileRange { start, end, .. } => format!("bytes {start}..{end}"),
        Source::Inline { name, .. } => name.clone(),
    }
}

/// Writes past the serve loop's buffered writer (empty between replies:
/// it flushes after each), straight into the frame stream.
fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// `len` bytes of xorshift64* noise.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// This process's start number, claimed in `dir`.
fn start_number(dir: &str) -> u64 {
    (0..)
        .find(|n| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(format!("{dir}/{n}"))
                .is_ok()
        })
        .unwrap()
}

fn main() -> ExitCode {
    let plan = Plan::from_env();
    let pid = std::process::id();
    if let Some(dir) = env("FAULT_STARTS_DIR") {
        let n = start_number(&dir);
        let listed = env("FAULT_BROKEN_STARTS")
            .is_some_and(|list| list.split(',').any(|x| x.trim() == n.to_string()));
        if listed || env_num("FAULT_BROKEN_FROM").is_some_and(|from| n >= from) {
            eprintln!("faulty-worker {pid}: cannot start: broken on purpose (start {n})");
            return ExitCode::from(3);
        }
    }
    match plan.fault {
        Fault::DieAtStart => {
            eprintln!("faulty-worker {pid}: cannot start: broken on purpose");
            return ExitCode::from(3);
        }
        Fault::Silent => {
            // Read and ignore everything; exit when stdin closes.
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let mut registry = Registry::new();
    let builtins = Registry::with_builtins();
    for name in builtins.names() {
        // Each built-in kernel, wrapped.
        let inner = take_builtin(&name);
        registry.register(Box::new(FaultyKernel {
            inner,
            plan: plan.clone(),
        }));
    }
    tally_worker::run_main(registry)
}

/// A fresh instance of the built-in kernel `name`.
fn take_builtin(name: &str) -> Box<dyn Kernel> {
    match name {
        "delimited" => Box::new(tally_worker::delimited::DelimitedKernel),
        other => panic!("faulty-worker does not know how to wrap the built-in kernel `{other}`"),
    }
}
