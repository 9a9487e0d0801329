//! Cuts input files into byte-range chunks.
//!
//! **Invariant:** chunk boundaries depend on the files and the chunk size
//! only, never on the worker count; with partials merged in chunk order,
//! output bytes do not depend on how many workers ran.
//!
//! The end of each file is cut finer: its last [`TAPER_CHUNKS`] chunk
//! lengths go in pieces of an eighth of a chunk (8 MiB at the default
//! chunk size), and the last of those smaller still, halving down to a
//! 64th ([`LAST_PIECES`]), so that the workers run out of work at nearly
//! the same moment instead of all but one waiting for the last full chunk
//! or the last pieces queued behind it.

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

/// Size of the pieces there, in 64ths of a chunk: an eighth, 8 MiB at the
/// default chunk size.
const TAPER_PIECE: u64 = 8;

/// Sizes of a file's last pieces, in 64ths of a chunk, in order: a worker
/// holds its running task and one queued behind it, so the work still
/// held when the others run dry is about the last two pieces. With 32 MiB
/// chunks in eighths throughout, one worker of two sent its last result
/// 1.6 ms after the other (median of 15 Q1 runs at `-j2`); in 32nds
/// throughout, 0.9 ms, for 48 more tasks; with these six, which take the
/// end down to a 64th (512 KiB) for 5 more tasks than eighths, 0.6 ms.
const LAST_PIECES: [u64; 6] = [4, 4, 2, 2, 1, 1];

/// One input file as the plan cuts it.
#[derive(Debug, Clone)]
struct PlannedFile {
    /// Absolute path, as workers open it.
    path: String,
    len: u64,
    /// Index of its first chunk in the plan.
    first: usize,
    /// Its chunks of `chunk_size` bytes, before `taper_from`.
    full: usize,
    /// Where its finer pieces start.
    taper_from: u64,
    /// Its number of chunks (at least 1).
    count: usize,
}

/// The chunks of all inputs, in order: files in the given order, each cut
/// every `chunk_size` bytes but for its end, cut finer (see the module
/// documentation). Every file gets at least one chunk, so an empty file
/// still reaches a worker (which reports a missing header).
///
/// A chunk is computed from its index when asked for ([`Plan::chunk`]):
/// the plan holds a few words per file, not per chunk, so the
/// coordinator's memory does not grow with the size of its input (a list
/// of chunks cost it about 0.6 KiB each, 40 MiB for a terabyte).
#[derive(Debug, Clone)]
pub struct Plan {
    files: Vec<PlannedFile>,
    chunk_size: u64,
    len: usize,
}

impl Plan {
    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no chunk (no input file).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of all inputs.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.len).sum()
    }

    /// Indexes of the first chunk of each file, ascending.
    pub fn file_starts(&self) -> Vec<usize> {
        self.files.iter().map(|f| f.first).collect()
    }

    /// Chunk `index`, or `None` past the last.
    pub fn chunk(&self, index: usize) -> Option<Chunk> {
        // The file whose chunks hold `index`: the last one starting at or
        // before it.
        let f = match self.files.binary_search_by(|f| f.first.cmp(&index)) {
            Ok(i) => self.files.get(i)?,
            Err(i) => self.files.get(i.checked_sub(1)?)?,
        };
        let j = index - f.first;
        if j >= f.count {
            return None;
        }
        let cs = self.chunk_size;
        let (start, end) = if j < f.full {
            let start = j as u64 * cs;
            (start, start.saturating_add(cs).min(f.taper_from))
        } else {
            let tail = Tail::new(f.len - f.taper_from, cs);
            let (at, len) = tail.piece((j - f.full) as u64);
            let start = f.taper_from + at;
            (start, start + len)
        };
        Some(Chunk {
            index,
            path: f.path.clone(),
            start,
            end: end.min(f.len),
            first_of_file: j == 0,
        })
    }

    /// The chunks in order.
    pub fn chunks(&self) -> impl Iterator<Item = Chunk> + '_ {
        (0..self.len).filter_map(|i| self.chunk(i))
    }
}

/// How the end of a file (its last [`TAPER_CHUNKS`] chunk lengths, or all
/// of a smaller file) is cut: pieces of [`TAPER_PIECE`] 64ths of a chunk,
/// the first of them short where the length asks, then [`LAST_PIECES`].
/// An end shorter than those last pieces goes in 64ths, the first short.
#[derive(Debug, Clone, Copy)]
struct Tail {
    /// A 64th of a chunk (at least a byte).
    unit: u64,
    /// Pieces before the last ones (all of them for a short end).
    lead: u64,
    /// Length of the first of those (the others are whole).
    first: u64,
    /// Length of each of the others.
    step: u64,
    /// Whether [`LAST_PIECES`] follow.
    last: bool,
}

impl Tail {
    fn new(len: u64, chunk_size: u64) -> Tail {
        let unit = (chunk_size / 64).max(1);
        let last_len: u64 = LAST_PIECES.iter().sum::<u64>() * unit;
        let (lead_len, step, last) = if len >= last_len {
            (len - last_len, TAPER_PIECE * unit, true)
        } else {
            (len, unit, false)
        };
        let lead = lead_len.div_ceil(step);
        let first = lead_len - lead.saturating_sub(1) * step;
        Tail {
            unit,
            lead,
            first,
            step,
            last,
        }
    }

    /// Pieces in all.
    fn count(&self) -> u64 {
        self.lead
            + if self.last {
                LAST_PIECES.len() as u64
            } else {
                0
            }
    }

    /// Piece `k`'s offset from the end's start, and its length.
    fn piece(&self, k: u64) -> (u64, u64) {
        if k < self.lead {
            return match k {
                0 => (0, self.first),
                _ => (self.first + (k - 1) * self.step, self.step),
            };
        }
        let lead_len = match self.lead {
            0 => 0,
            n => self.first + (n - 1) * self.step,
        };
        let i = (k - self.lead) as usize;
        let before: u64 = LAST_PIECES.iter().take(i).sum();
        let len = LAST_PIECES.get(i).copied().unwrap_or(0);
        (lead_len + before * self.unit, len * self.unit)
    }
}

/// The [`Plan`] of `inputs` in chunks of `chunk_size` bytes; an error for
/// an input that is not a readable regular file.
pub fn plan(inputs: &[PathBuf], chunk_size: u64) -> Result<Plan> {
    if chunk_size == 0 {
        return Err(Error::Usage("--chunk-size must be at least 1 byte".into()));
    }
    let mut files = Vec::with_capacity(inputs.len());
    let mut first = 0usize;
    for input in inputs {
        let (path, len) = check_input(input)?;
        let taper_from = len.saturating_sub(chunk_size.saturating_mul(TAPER_CHUNKS));
        let full = taper_from.div_ceil(chunk_size);
        let pieces = Tail::new(len - taper_from, chunk_size).count();
        // A file of more chunks than a usize counts cannot be planned (and
        // could not be read on this machine).
        let count =
            usize::try_from(full.saturating_add(pieces).max(1)).map_err(|_| Error::Input {
                path: input.to_path_buf(),
                reason: format!("too many chunks of {chunk_size} bytes"),
            })?;
        files.push(PlannedFile {
            path,
            len,
            first,
            full: full as usize,
            taper_from,
            count,
        });
        first = first
            .checked_add(count)
            .ok_or_else(|| Error::Usage(format!("too many chunks of {chunk_size} bytes in all")))?;
    }
    Ok(Plan {
        files,
        chunk_size,
        len: first,
    })
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
        std::fs::write(&a, vec![b'x'; 45]).unwrap();
        let e = dir.join("empty.txt");
        std::fs::write(&e, b"").unwrap();
        let chunks: Vec<Chunk> = plan(&[a, e], 20).unwrap().chunks().collect();
        let ranges: Vec<(u64, u64, bool)> = chunks
            .iter()
            .map(|c| (c.start, c.end, c.first_of_file))
            .collect();
        // Full chunks up to the last 2 chunk lengths (bytes 5..45), which
        // go in pieces of 8 bytes (the first short), then 4, 4, 2, 2, 1, 1
        // (a 64th of 20 bytes is less than one: one byte).
        let mut want = vec![(0, 5, true)];
        let mut at = 5;
        for len in [2, 8, 8, 8, 4, 4, 2, 2, 1, 1] {
            want.push((at, at + len, false));
            at += len;
        }
        assert_eq!(at, 45);
        want.push((0, 0, true));
        assert_eq!(ranges, want);
        let big = dir.join("big.txt");
        std::fs::write(&big, vec![b'x'; 200]).unwrap();
        let sizes: Vec<u64> = plan(&[big], 20)
            .unwrap()
            .chunks()
            .map(|c| c.end - c.start)
            .collect();
        let mut want = vec![20; 8];
        want.extend([2, 8, 8, 8, 4, 4, 2, 2, 1, 1]);
        assert_eq!(sizes, want);
        // At 32 MiB chunks: 4 MiB pieces, then down to 512 KiB.
        let mib = 1 << 20;
        let tail = Tail::new(64 * mib, 32 * mib);
        let tail_sizes: Vec<u64> = (0..tail.count())
            .map(|k| tail.piece(k).1 / (mib / 2))
            .collect();
        // 57 MiB in 4 MiB pieces, the first 1 MiB, then 7 MiB.
        let mut want = vec![2];
        want.extend([8; 14]);
        want.extend([4, 4, 2, 2, 1, 1]);
        assert_eq!(tail_sizes, want);
        assert!(chunks.iter().enumerate().all(|(i, c)| c.index == i));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The cutting rule spelled out as loops over each file: what the
    /// plan computes from a chunk's index. The end is cut from the back:
    /// the last pieces, then eighths (64ths for an end shorter than the
    /// last pieces) until the end is used up, the first piece short.
    fn cut_by_loop(lens: &[u64], chunk_size: u64) -> Vec<(u64, u64, bool)> {
        let mut out = Vec::new();
        for &len in lens {
            let taper_from = len.saturating_sub(chunk_size * TAPER_CHUNKS);
            let mut start = 0;
            while start < taper_from {
                let end = (start + chunk_size).min(taper_from);
                out.push((start, end, start == 0));
                start = end;
            }
            let unit = (chunk_size / 64).max(1);
            let mut ends = Vec::new();
            let mut end = len;
            let short = len - taper_from < 14 * unit;
            if !short {
                for size in [1, 1, 2, 2, 4, 4] {
                    ends.push((end - size * unit, end));
                    end -= size * unit;
                }
            }
            let step = if short { unit } else { 8 * unit };
            while end > taper_from {
                let begin = end.saturating_sub(step).max(taper_from);
                ends.push((begin, end));
                end = begin;
            }
            if ends.is_empty() {
                ends.push((len, len)); // an empty file: one empty chunk
            }
            out.extend(ends.into_iter().rev().map(|(s, e)| (s, e, s == 0)));
        }
        out
    }

    #[test]
    fn chunks_from_their_index_are_the_loop_s() {
        let dir = std::env::temp_dir().join(format!("tally-plan-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lens = [
            0u64, 1, 2, 3, 9, 10, 11, 19, 20, 21, 29, 30, 31, 99, 100, 101, 1000, 12345,
        ];
        let paths: Vec<PathBuf> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let p = dir.join(format!("{i}.txt"));
                std::fs::File::create(&p).unwrap().set_len(len).unwrap();
                p
            })
            .collect();
        for chunk_size in [1u64, 2, 3, 4, 5, 7, 10, 16, 1000, 1 << 20] {
            let plan = plan(&paths, chunk_size).unwrap();
            let got: Vec<(u64, u64, bool)> = plan
                .chunks()
                .map(|c| (c.start, c.end, c.first_of_file))
                .collect();
            assert_eq!(
                got,
                cut_by_loop(&lens, chunk_size),
                "chunk size {chunk_size}"
            );
            assert_eq!(plan.len(), got.len());
            assert!(plan.chunk(plan.len()).is_none());
            assert!(plan.chunks().enumerate().all(|(i, c)| c.index == i));
            let starts: Vec<usize> = plan
                .chunks()
                .filter(|c| c.first_of_file)
                .map(|c| c.index)
                .collect();
            assert_eq!(plan.file_starts(), starts);
            assert_eq!(plan.total_bytes(), lens.iter().sum::<u64>());
        }
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
