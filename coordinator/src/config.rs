//! Validated configurations the library takes (the CLI builds them from
//! flags; a Rust application builds them directly).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tally_protocol::frame::DEFAULT_MAX_FRAME;
use tally_protocol::QuerySpec;

use crate::error::{Error, Result};

/// How to start one worker process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

impl WorkerCommand {
    /// A worker started as `program` with no arguments.
    pub fn program(program: impl Into<PathBuf>) -> Self {
        WorkerCommand {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// A whole command line run by `sh -c` (`ssh node7 tally-worker`).
    pub fn shell(command_line: &str) -> Self {
        WorkerCommand {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), format!("exec {command_line}")],
        }
    }

    /// Finds `tally-worker`: `explicit` if given (a `--worker` flag), else
    /// `$TALLY_WORKER`, else next to the running executable, else on PATH.
    pub fn locate(explicit: Option<&Path>) -> Result<Self> {
        if let Some(p) = explicit {
            return Ok(Self::program(p));
        }
        if let Some(p) = std::env::var_os("TALLY_WORKER").filter(|p| !p.is_empty()) {
            return Ok(Self::program(p));
        }
        let name = format!("tally-worker{}", std::env::consts::EXE_SUFFIX);
        if let Ok(exe) = std::env::current_exe() {
            if let Some(dir) = exe.parent() {
                for candidate in [dir.join(&name), dir.join("..").join(&name)] {
                    if candidate.is_file() {
                        return Ok(Self::program(candidate));
                    }
                }
            }
        }
        if let Some(paths) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&paths) {
                let candidate = dir.join(&name);
                if candidate.is_file() {
                    return Ok(Self::program(candidate));
                }
            }
        }
        Err(Error::WorkerStart {
            command: name,
            reason: "not found next to the tally executable nor on PATH; \
                     build it (`cargo build --release`) or pass --worker PATH"
                .into(),
        })
    }

    /// The command as a person would type it.
    pub fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// The worker pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Worker processes.
    pub workers: usize,
    /// How to start each.
    pub command: WorkerCommand,
    /// How long a worker has to answer the handshake.
    pub handshake_timeout: Duration,
    /// Largest frame accepted from a worker.
    pub max_frame: u32,
    /// Tasks kept in flight per worker (2 hides the round trip).
    pub in_flight_per_worker: usize,
}

impl PoolConfig {
    /// `workers` workers started with `command`, other settings default.
    pub fn new(workers: usize, command: WorkerCommand) -> Self {
        PoolConfig {
            workers: workers.max(1),
            command,
            handshake_timeout: Duration::from_secs(10),
            max_frame: DEFAULT_MAX_FRAME,
            in_flight_per_worker: 2,
        }
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned columns for a terminal.
    Table,
    /// RFC 4180 CSV with a header.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// The One Billion Row Challenge line `{name=min/mean/max, ...}`.
    OneBrc,
}

/// What to do when a chunk fails on every attempt, or a value is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Stop the run and say where.
    Fail,
    /// Leave it out, count it, and report it in the summary.
    Skip,
}

/// A batch run over files.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Input files, in order.
    pub inputs: Vec<PathBuf>,
    /// The query prepared on every worker.
    pub query: QuerySpec,
    /// Chunk size in bytes; chunk boundaries depend on it and on nothing
    /// else, so output does not depend on the worker count.
    pub chunk_size: u64,
    /// Output format.
    pub format: OutputFormat,
    /// The pool.
    pub pool: PoolConfig,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Attempts per chunk before it is poison.
    pub max_attempts: u32,
    /// A task running longer than this gets its worker killed.
    pub task_timeout: Duration,
    /// What to do with bad records and poison chunks.
    pub on_error: ErrorPolicy,
}

/// Default chunk size: 64 MiB. Each chunk costs a message and a partial
/// merged by the coordinator (one entry per group), so with many groups
/// smaller chunks cost more than they balance: Q2 (10,000 groups) at -j2,
/// 0.344 s in 16 MiB chunks, 0.312 s in 32 MiB (Q1, 413 groups: 0.235 and
/// 0.228 s); later, with the end of each file cut down to 64ths (see the
/// planner), 0.315 s in 32 MiB and 0.286 s in 64 MiB, Q1 0.179 and
/// 0.177 s, Q3 0.188 and 0.186 s (11 alternating runs each), and Q1 at
/// -j1 0.328 and 0.322 s (15 runs). The end of each file goes in eighths
/// of a chunk and then smaller pieces, so the workers finish together.
pub const DEFAULT_CHUNK_SIZE: u64 = 64 << 20;
