//! Length-prefixed frames: `u32` little-endian length `N`, then `N` bytes.
//!
//! The reader checks `N` against its maximum before it allocates, and reuses
//! one buffer across frames.

use std::io::{self, Read, Write};

use serde::{de::DeserializeOwned, Serialize};

use crate::Error;

/// Default maximum frame size: 256 MiB. Inline chunks and partials of many
/// groups fit; a corrupt length does not make anyone allocate gigabytes.
pub const DEFAULT_MAX_FRAME: u32 = 256 << 20;

/// Bytes a reader adds to its buffer at a time while a frame arrives.
const READ_STEP: usize = 1 << 20;

/// Encodes `msg` as MessagePack into a frame appended to `out`: structs as
/// maps with field names, but for those that serialize themselves as arrays
/// (a partial's groups and states).
pub fn encode_frame<T: Serialize>(out: &mut Vec<u8>, msg: &T) -> Result<(), Error> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    rmp_serde::encode::write_named(out, msg).map_err(|e| Error::Encode(e.to_string()))?;
    let len = out.len() - start - 4;
    let len = u32::try_from(len).map_err(|_| Error::Encode(format!("frame of {len} bytes")))?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Writes one message as a frame and flushes.
pub fn write_message<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), Error> {
    let mut buf = Vec::new();
    encode_frame(&mut buf, msg)?;
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Decodes one frame body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    rmp_serde::from_slice(body).map_err(|e| Error::Decode {
        what: std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("message"),
        detail: e.to_string(),
    })
}

/// Reads frames from a byte stream, one buffer reused for all of them.
pub struct FrameReader<R> {
    inner: R,
    max: u32,
    buf: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    /// A reader that refuses frames longer than `max` bytes.
    pub fn new(inner: R, max: u32) -> Self {
        FrameReader {
            inner,
            max,
            buf: Vec::new(),
        }
    }

    /// The next frame's body, `None` at a clean end of stream (between
    /// frames). A stream that ends inside a frame is [`Error::Truncated`].
    pub fn read_frame(&mut self) -> Result<Option<&[u8]>, Error> {
        let mut header = [0u8; 4];
        let got = read_full(&mut self.inner, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < 4 {
            return Err(Error::Truncated {
                expected: 4,
                got: got as u64,
            });
        }
        let len = u32::from_le_bytes(header);
        if len > self.max {
            return Err(Error::FrameTooLarge {
                len: len.into(),
                max: self.max.into(),
            });
        }
        // Grow the buffer as the bytes arrive, a step at a time: a peer that
        // announces a big frame and sends little costs little memory.
        let len = len as usize;
        self.buf.clear();
        while self.buf.len() < len {
            let have = self.buf.len();
            let step = (len - have).min(READ_STEP);
            self.buf.resize(have + step, 0);
            let got = read_full(&mut self.inner, &mut self.buf[have..])?;
            if got < step {
                return Err(Error::Truncated {
                    expected: 4 + len as u64,
                    got: 4 + (have + got) as u64,
                });
            }
        }
        Ok(Some(&self.buf))
    }

    /// The next frame decoded as `T`; `None` at a clean end of stream.
    pub fn read_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, Error> {
        match self.read_frame()? {
            None => Ok(None),
            Some(body) => decode(body).map(Some),
        }
    }
}

/// Fills `buf` as far as the stream allows; returns the bytes read (less than
/// `buf.len()` only at end of stream).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FromWorker, ToWorker};

    #[test]
    fn clean_eof_is_none() {
        let mut r = FrameReader::new(&[][..], 16);
        assert!(r.read_frame().unwrap().is_none());
    }

    #[test]
    fn oversized_length_refused_before_allocation() {
        let wire = u32::MAX.to_le_bytes();
        let mut r = FrameReader::new(&wire[..], 1024);
        match r.read_frame() {
            Err(Error::FrameTooLarge { len, max }) => {
                assert_eq!(len, u64::from(u32::MAX));
                assert_eq!(max, 1024);
            }
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        assert!(r.buf.capacity() < 1024);
    }

    #[test]
    fn truncated_header_and_body() {
        let mut r = FrameReader::new(&[1u8, 0][..], 16);
        assert!(matches!(r.read_frame(), Err(Error::Truncated { .. })));
        let wire = [5u8, 0, 0, 0, 1, 2];
        let mut r = FrameReader::new(&wire[..], 16);
        assert!(matches!(
            r.read_frame(),
            Err(Error::Truncated {
                expected: 9,
                got: 6
            })
        ));
    }

    #[test]
    fn wrong_type_is_decode_error() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, &ToWorker::Shutdown).unwrap();
        let mut r = FrameReader::new(&wire[..], 1024);
        match r.read_message::<FromWorker>() {
            Err(Error::Decode { what, .. }) => assert_eq!(what, "FromWorker"),
            other => panic!("expected decode error, got {other:?}"),
        }
    }

    #[test]
    fn garbage_never_panics() {
        // Every prefix of a valid frame, and a few corruptions of it.
        let mut wire = Vec::new();
        encode_frame(
            &mut wire,
            &ToWorker::Hello {
                protocol_version: 7,
                partial_columns: false,
            },
        )
        .unwrap();
        for cut in 0..wire.len() {
            let mut r = FrameReader::new(&wire[..cut], 1024);
            let _ = r.read_message::<ToWorker>();
        }
        for i in 4..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0xff;
            let mut r = FrameReader::new(&bad[..], 1024);
            let _ = r.read_message::<ToWorker>();
        }
    }
}
