//! The error of the serve loop: what ends a worker process.

use std::io;

/// Why [`crate::serve`] stopped. A task that fails is not an error of the
/// loop: it is answered with a task error and the loop goes on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A frame could not be read, decoded or written: the coordinator sent
    /// garbage, or the pipe broke. The coordinator's fault or the operating
    /// system's; the worker cannot go on.
    #[error("protocol failure: {0}")]
    Protocol(#[from] tally_protocol::Error),
    /// Reading or writing the pipe failed outside a frame (the final flush).
    #[error("pipe I/O failed: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// Whether the error is only the coordinator having gone away (a broken
    /// pipe on our output): a clean end for a worker.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            Error::Protocol(tally_protocol::Error::Io(e)) | Error::Io(e) => e,
            Error::Protocol(_) => return false,
        };
        io.kind() == io::ErrorKind::BrokenPipe
    }
}
