//! Cuts input files into byte-range chunks.
//!
//! **Invariant:** chunk boundaries depend on the files and the chunk size
//! only, never on the worker count; with partials merged in chunk order,
//! output bytes do not depend on how many workers ran.
//!
//! The end of each file is cut finer: its last [`TAPER_CHUNKS`] chunk
//! lengths go in pieces of 1/[`TAPER_PIECES`] of a chunk, so that the
//! workers run out of work at nearly the same moment instead of all but
//! one waiting for the last full chunk.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One byte range of one file; a worker aggregates the records that start
/// inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the plan (merge order).
    pub index: usize,
    /// The file, as workers open it (absolute).
    pub path: String,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Whether this is the file's first chunk (its quote state is known:
    /// outside quotes).
    pub first_of_file: bool,
}

/// Chunk lengths at the end of each file that are cut finer.
pub const TAPER_CHUNKS: u64 = 2;

/// Pieces each of those chunk lengths is cut into.
pub const TAPER_PIECES: u64 = 4;

/// The chunks of all inputs, in order: files in the given order, each cut
/// every `chunk_size` bytes but for its end, cut finer (see the module
/// documentation). Every file gets at least one chunk, so an empty file
/// still reaches a worker (which reports a missing header).
pub fn plan(inputs: &[PathBuf], chunk_size: u64) -> Result<Vec<Chunk>> {
    if chunk_size == 0 {
        return Err(Error::Usage("--chunk-size must be at least 1 byte".into()));
    }
    let mut chunks = Vec::new();
    for input in inputs {
        let (path, len) = check_input(input)?;
        let mut start: u64 = 0;
        let taper_from = len.saturating_sub(chunk_size.saturating_mul(TAPER_CHUNKS));
        loop {
            let end = if start >= taper_from {
                start.saturating_add((chunk_size / TAPER_PIECES).max(1))
            } else {
                start.saturating_add(chunk_size).min(taper_from)
            }
            .min(len);
            chunks.push(Chunk {
                index: chunks.len(),
                path: path.clone(),
                start,
                end,
                first_of_file: start == 0,
            });
            if end >= len {
                break;
            }
            start = end;
        }
    }
    Ok(chunks)
}

/// An input must be an existing regular file (or something that reads like
/// one, such as a FIFO is not); returns its absolute path and length.
fn check_input(input: &Path) -> Result<(String, u64)> {
    let fail = |reason: String| Error::Input {
        path: input.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(input).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => fail("no such file".into()),
        _ => fail(e.to_string()),
    })?;
    if meta.is_dir() {
        return Err(fail("is a directory, not a file".into()));
    }
    if !meta.is_file() {
        return Err(fail(
            "is not a regular file (pipes and devices cannot be split into chunks)".into(),
        ));
    }
    std::fs::File::open(input).map_err(|e| fail(e.to_string()))?;
    let abs = std::fs::canonicalize(input).map_err(|e| fail(e.to_string()))?;
    let path = abs
        .to_str()
        .ok_or_else(|| fail("path is not valid UTF-8".into()))?
        .to_string();
    Ok((path, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_file_without_overlap() {
        let dir = std::env::temp_dir().join(format!("tally-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.txt");
        std::fs::write(&a, vec![b'x'; 25]).unwrap();
        let e = dir.join("empty.txt");
        std::fs::write(&e, b"").unwrap();
        let chunks = plan(&[a, e], 10).unwrap();
        let ranges: Vec<(u64, u64, bool)> = chunks
            .iter()
            .map(|c| (c.start, c.end, c.first_of_file))
            .collect();
        // Full chunks up to the last 2 chunk lengths (bytes 5..25), which
        // go in quarters (2 bytes).
        let mut want = vec![(0, 5, true)];
        want.extend((5..25).step_by(2).map(|s| (s, (s + 2).min(25), false)));
        want.push((0, 0, true));
        assert_eq!(ranges, want);
        let big = dir.join("big.txt");
        std::fs::write(&big, vec![b'x'; 100]).unwrap();
        let sizes: Vec<u64> = plan(&[big], 10)
            .unwrap()
            .iter()
            .map(|c| c.end - c.start)
            .collect();
        let mut want = vec![10; 8];
        want.extend([2, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!(sizes, want);
        assert!(chunks.iter().enumerate().all(|(i, c)| c.index == i));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_and_directory_inputs_are_errors() {
        let err = plan(&[PathBuf::from("/no/such/file")], 10).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
        let err = plan(&[std::env::temp_dir()], 10).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
    }
}
