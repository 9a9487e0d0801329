use std::io;

/// Errors of framing and decoding. Each says whose fault it is: the peer's
/// (a bad frame) or the operating system's (I/O).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the pipe failed (broken pipe, closed descriptor).
    #[error("pipe I/O failed: {0}")]
    Io(#[from] io::Error),
    /// The peer announced a frame longer than this side accepts. Nothing was
    /// allocated for it.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Announced length.
        len: u64,
        /// Configured maximum.
        max: u64,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes the frame should have had (header included).
        expected: u64,
        /// Bytes that arrived.
        got: u64,
    },
    /// The frame's bytes are not the MessagePack of the expected message.
    #[error("frame does not decode as a {what}: {detail}")]
    Decode {
        /// The message type expected.
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// A message could not be encoded (a bug: every wire type encodes).
    #[error("message does not encode: {0}")]
    Encode(String),
}
