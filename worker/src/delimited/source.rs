//! Where a task's bytes come from: memory-mapped files (a few kept open
//! across tasks), chunk boundaries, and line numbers for error messages.

use std::fs::File;
use std::sync::Arc;
use std::time::SystemTime;

use memmap2::Mmap;
use tally_protocol::{ErrorKind, Location};

use super::columns::Columns;
use super::scan::next_record_end;
use crate::TaskFailure;

/// Files kept mapped across tasks.
const CACHED_FILES: usize = 4;

/// A mapped file, and what was learnt from its header.
pub(crate) struct MappedFile {
    path: String,
    len: u64,
    modified: Option<SystemTime>,
    /// `None` for an empty file (which cannot be mapped).
    map: Option<Mmap>,
    /// The columns resolved from the header, once asked.
    pub(crate) columns: Option<Result<Arc<Columns>, TaskFailure>>,
}

impl MappedFile {
    /// The file's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }
}

/// The last few files mapped, most recently used last.
#[derive(Default)]
pub(crate) struct FileCache {
    files: Vec<MappedFile>,
}

impl FileCache {
    /// The mapping of `path`; a cached one when the file's length and
    /// modification time have not changed.
    pub(crate) fn open(&mut self, path: &str) -> Result<&mut MappedFile, TaskFailure> {
        let io_err = |what: &str, e: std::io::Error| {
            TaskFailure::new(
                ErrorKind::Io,
                format!("cannot {what} `{path}`: {e}; check the path and permissions on the worker's host"),
            )
        };
        let meta = std::fs::metadata(path).map_err(|e| io_err("read", e))?;
        if !meta.is_file() {
            return Err(TaskFailure::new(
                ErrorKind::Io,
                format!(
                    "`{path}` is not a regular file; pipe it to the coordinator's stdin instead"
                ),
            ));
        }
        let modified = meta.modified().ok();
        if let Some(i) = self.files.iter().position(|f| f.path == path) {
            let f = self.files.remove(i);
            if f.len == meta.len() && f.modified == modified {
                self.files.push(f);
                return self.last();
            }
        }
        let file = File::open(path).map_err(|e| io_err("open", e))?;
        let map = if meta.len() == 0 {
            None
        } else {
            // SAFETY: the mapping is read-only and private to this process.
            // If another process truncates the file while it is mapped,
            // reading the lost pages faults (SIGBUS) and the worker dies; the
            // coordinator then replaces it, as after any crash. Changes in
            // length or time between tasks are noticed and remapped.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| io_err("map", e))?;
            huge_pages(&map, path);
            Some(map)
        };
        if self.files.len() >= CACHED_FILES {
            self.files.remove(0);
        }
        self.files.push(MappedFile {
            path: path.to_string(),
            len: meta.len(),
            modified,
            map,
            columns: None,
        });
        self.last()
    }

    fn last(&mut self) -> Result<&mut MappedFile, TaskFailure> {
        self.files
            .last_mut()
            .ok_or_else(|| TaskFailure::new(ErrorKind::Internal, "file cache is empty"))
    }
}

/// Asks for the mapping of a file to use 2 MiB pages where it can
/// (`MADV_HUGEPAGE`): the file's pages then come into the page cache, on a
/// miss, as 2 MiB folios, and a folio of that size is mapped by one page
/// table entry. Mapping a 1 GB file 4 KiB at a time cost a fifth of a
/// 1BRC query's CPU time in page faults (12,000 faults, 0.06 s of system
/// time); over 2 MiB folios, 1,700 faults and 0.01 s. Pages already cached
/// in small folios stay as they are. Best effort: kernels without
/// transparent huge pages for files refuse it, and nothing changes.
fn huge_pages(map: &Mmap, path: &str) {
    #[cfg(target_os = "linux")]
    if let Err(e) = map.advise(memmap2::Advice::HugePage) {
        log::debug!("{path}: MADV_HUGEPAGE: {e}");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (map, path);
}

/// Longest header read from a file.
pub(crate) const MAX_HEADER: usize = 1 << 20;

/// The header record of a file (no line end), and where the first data
/// record starts.
pub(crate) fn header<'a>(
    data: &'a [u8],
    quote: Option<u8>,
    path: &str,
) -> Result<(&'a [u8], usize), TaskFailure> {
    let window = data.get(..MAX_HEADER + 1).unwrap_or(data);
    let (mut record, next) = match next_record_end(window, 0, quote, false) {
        Some(nl) => (window.get(..nl).unwrap_or_default(), nl + 1),
        None if data.len() <= MAX_HEADER => (data, data.len()),
        None => {
            return Err(TaskFailure::new(
                ErrorKind::Input,
                format!(
                    "the header of `{path}` is longer than {MAX_HEADER} bytes (or has an unclosed quote); is the delimiter or the header flag right?"
                ),
            )
            .at(Location {
                path: path.to_string(),
                line: Some(1),
                byte_offset: 0,
            }))
        }
    };
    if let [rest @ .., b'\r'] = record {
        record = rest;
    }
    Ok((record, next))
}

/// Where the first record owned by a chunk starting at `start` begins, at
/// or after `start` and before `end`, or `None` when the chunk owns none.
pub(crate) fn first_record(
    data: &[u8],
    start: usize,
    end: usize,
    quote: Option<u8>,
    start_in_quotes: bool,
) -> Option<usize> {
    if start == 0 {
        return Some(0);
    }
    let in_quotes = start_in_quotes && quote.is_some();
    if data.get(start - 1) == Some(&b'\n') && !in_quotes {
        return Some(start);
    }
    let window = data.get(..end)?;
    next_record_end(window, start, quote, in_quotes).map(|nl| nl + 1)
}

/// Number of `byte`s in `data`.
pub(crate) fn count_byte(byte: u8, data: &[u8]) -> u64 {
    memchr::memchr_iter(byte, data).count() as u64
}

/// Turns byte offsets into [`Location`]s. Lines are counted only when asked
/// (on the error path), each time from the last place asked.
pub(crate) struct Locator<'a> {
    name: &'a str,
    data: &'a [u8],
    first_line: u64,
    /// Byte offset of `data[0]` in the whole input (a stream's batch
    /// starts far into it).
    first_byte: u64,
    /// `(offset, line at offset)` of the last lookup.
    last: (usize, u64),
}

impl<'a> Locator<'a> {
    /// Offsets into `data`, whose first byte is on line `first_line` and
    /// at byte `first_byte` of the input.
    pub(crate) fn new(name: &'a str, data: &'a [u8], first_line: u64, first_byte: u64) -> Self {
        Locator {
            name,
            data,
            first_line,
            first_byte,
            last: (0, first_line),
        }
    }

    /// The location of the record starting at `offset`.
    pub(crate) fn at(&mut self, offset: usize) -> Location {
        let (from, line) = if offset >= self.last.0 {
            self.last
        } else {
            (0, self.first_line)
        };
        let between = self.data.get(from..offset).unwrap_or_default();
        let line = line + count_byte(b'\n', between);
        self.last = (offset, line);
        Location {
            path: self.name.to_string(),
            line: Some(line),
            byte_offset: self.first_byte + offset as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_record_rules() {
        let data = b"ab\ncd\"x\ny\"\nef\n";
        let q = Some(b'"');
        assert_eq!(first_record(data, 0, 5, q, false), Some(0));
        assert_eq!(first_record(data, 3, 5, q, false), Some(3));
        assert_eq!(first_record(data, 1, 5, q, false), Some(3));
        // Chunk owns no record start.
        assert_eq!(first_record(data, 4, 8, q, false), None);
        // Inside the quoted field: the newline at 7 is data.
        assert_eq!(first_record(data, 7, 14, q, true), Some(11));
        assert_eq!(first_record(data, 8, 14, q, true), Some(11));
        // Without quoting the quote is data.
        assert_eq!(first_record(data, 7, 14, None, true), Some(8));
    }

    #[test]
    fn header_bounds() {
        assert_eq!(
            header(b"a,b\r\n1,2\n", None, "f").unwrap(),
            (&b"a,b"[..], 5)
        );
        assert_eq!(header(b"a,b", None, "f").unwrap(), (&b"a,b"[..], 3));
        assert_eq!(header(b"\"a\nb\",c\n1", Some(b'"'), "f").unwrap().1, 8);
        let long = vec![b'x'; MAX_HEADER + 10];
        let err = header(&long, None, "f").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Input);
    }

    #[test]
    fn locator_counts_lines() {
        let data = b"a\nb\nc\nd\n";
        let mut l = Locator::new("x", data, 1, 0);
        assert_eq!(l.at(4).line, Some(3));
        assert_eq!(l.at(6).line, Some(4));
        assert_eq!(l.at(0).line, Some(1));
        let mut l = Locator::new("x", data, 10, 0);
        assert_eq!(l.at(2).line, Some(11));
        // A stream's batch that starts at byte 1000 of the input.
        let mut l = Locator::new("x", data, 10, 1000);
        let at = l.at(2);
        assert_eq!((at.line, at.byte_offset), (Some(11), 1002));
    }

    #[test]
    fn missing_file_is_io_error() {
        let mut c = FileCache::default();
        let err = c.open("/nonexistent/tally/file.csv").err().unwrap();
        assert_eq!(err.kind, ErrorKind::Io);
        assert!(err.message.contains("/nonexistent/tally/file.csv"));
    }
}
