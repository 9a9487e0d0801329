//! Errors of the coordinator library, split by whose fault they are.

use std::path::PathBuf;

use tally_protocol::{ErrorKind, Location};

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's query or flags do not make sense.
    #[error("{0}")]
    Usage(String),
    /// An input file cannot be used (missing, a directory, unreadable).
    #[error("{path}: {reason}")]
    Input {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A worker reported bad data or a query that does not fit the data.
    #[error("{}{message}", location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
    Data {
        /// The worker's class of failure.
        kind: ErrorKind,
        /// The worker's message.
        message: String,
        /// Where in the input, when known.
        location: Option<Location>,
    },
    /// The worker binary cannot be found or started.
    #[error("cannot start worker `{command}`: {reason}")]
    WorkerStart {
        /// The command line tried.
        command: String,
        /// Why it failed.
        reason: String,
    },
    /// A worker speaks another protocol version.
    #[error("worker `{command}` (pid {pid}) speaks protocol version {worker}, this coordinator speaks {coordinator}: use a tally-worker of the same release")]
    VersionMismatch {
        /// The command line of the worker.
        command: String,
        /// Its pid.
        pid: u32,
        /// Its version.
        worker: u32,
        /// Ours.
        coordinator: u32,
    },
    /// Workers failed and the run cannot finish.
    #[error("{0}")]
    Workers(String),
    /// A chunk failed on every attempt.
    #[error("chunk {path}:{start}..{end} (from line {line}) failed {attempts} times: {errors}")]
    Poison {
        /// File of the chunk.
        path: String,
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
        /// First line of the chunk, or `?` when unknown.
        line: String,
        /// Attempts made.
        attempts: u32,
        /// What the workers said, one per attempt.
        errors: String,
    },
    /// The run was stopped by a signal (Ctrl-C, SIGTERM); the workers were
    /// stopped.
    #[error("interrupted by signal {0}; workers stopped")]
    Interrupted(i32),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// Result with the coordinator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
