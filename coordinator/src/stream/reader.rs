//! Cutting an endless byte stream into batches of whole records.
//!
//! [`RecordCutter`] finds record ends: a `\n` (outside quotes, for CSV with
//! a quote byte; the quote parity is carried across reads, so a quoted
//! newline never ends a batch). The batcher thread ([`run_batcher`]) feeds
//! it the chunks that [`StreamHandle::push`](super::StreamHandle::push)
//! delivers and ships a [`Batch`] when it has `batch_bytes` of whole
//! records, or when its oldest whole record has waited `linger`. It sends
//! on a bounded channel: when the engine stops taking batches (all
//! in-flight slots busy), the batcher blocks, its own input channel fills,
//! and `push` blocks — the backpressure that reaches the reader of stdin.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use memchr::{memchr, memchr2, memrchr};

use super::Clock;

/// Whole records on their way to a worker.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The records, each ending in `\n` (the last one at end of input may
    /// not).
    pub bytes: Vec<u8>,
    /// Line number of the first record, for error messages.
    pub first_line: u64,
    /// Byte offset of the first record in the input, for error messages.
    pub first_byte: u64,
    /// Processing time at which the batch was cut, ms since the epoch.
    pub stamp_ms: i64,
}

/// What the batcher sends the engine.
#[derive(Debug)]
pub enum Item {
    /// Records.
    Batch(Batch),
    /// No records, but processing time has reached this (ms since the
    /// epoch): every later batch is stamped at or after it.
    Heartbeat(i64),
}

/// Finds the end of the last whole record in a growing buffer.
#[derive(Debug, Clone)]
pub struct RecordCutter {
    quote: Option<u8>,
    /// Pending bytes.
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned, and the quote state after them.
    scanned: usize,
    in_quotes: bool,
    /// One past the last record end in `buf` (0: none).
    complete: usize,
    /// Line number of `buf[0]`.
    line: u64,
    /// Byte offset of `buf[0]` in the input.
    byte: u64,
}

impl RecordCutter {
    /// A cutter; `quote` is the CSV quote byte (`None` for NDJSON and
    /// quote-less text).
    /// `first_line` and `first_byte` are where the first byte fed sits in
    /// the input (line 2 and past the header after a header line).
    pub fn new(quote: Option<u8>, first_line: u64, first_byte: u64) -> Self {
        RecordCutter {
            quote,
            buf: Vec::new(),
            scanned: 0,
            in_quotes: false,
            complete: 0,
            line: first_line,
            byte: first_byte,
        }
    }

    /// Appends bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.buf.is_empty() {
            self.buf.reserve(bytes.len().max(1 << 16));
        }
        self.buf.extend_from_slice(bytes);
        self.scan();
    }

    /// Appends a chunk, taking it over without a copy when nothing is
    /// pending.
    pub fn feed_owned(&mut self, chunk: Vec<u8>) {
        if self.buf.is_empty() {
            self.buf = chunk;
            self.scanned = 0;
            self.complete = 0;
            self.scan();
        } else {
            self.feed(&chunk);
        }
    }

    fn scan(&mut self) {
        let new = &self.buf[self.scanned..];
        match self.quote {
            Some(q) if self.in_quotes || memchr(q, new).is_some() => {
                let mut pos = self.scanned;
                loop {
                    let rest = &self.buf[pos..];
                    let hit = if self.in_quotes {
                        memchr(q, rest)
                    } else {
                        memchr2(q, b'\n', rest)
                    };
                    let Some(i) = hit else { break };
                    let at = pos + i;
                    if self.buf[at] == b'\n' {
                        self.complete = at + 1;
                    } else {
                        self.in_quotes = !self.in_quotes;
                    }
                    pos = at + 1;
                }
            }
            _ => {
                if let Some(i) = memrchr(b'\n', new) {
                    self.complete = self.scanned + i + 1;
                }
            }
        }
        self.scanned = self.buf.len();
    }

    /// Bytes of whole records waiting.
    pub fn complete_len(&self) -> usize {
        self.complete
    }

    /// Bytes pending in all (whole records and a partial one).
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }

    /// Takes the whole records (all bytes when `all`, at end of input), with
    /// the line number and byte offset of the first; `None` when there are
    /// none.
    pub fn cut(&mut self, all: bool) -> Option<(Vec<u8>, u64, u64)> {
        let at = if all { self.buf.len() } else { self.complete };
        if at == 0 {
            return None;
        }
        let rest = self.buf.split_off(at);
        let batch = std::mem::replace(&mut self.buf, rest);
        let (first_line, first_byte) = (self.line, self.byte);
        // A plain loop: vectorised, much faster than a memchr per line.
        self.line += batch.iter().filter(|&&b| b == b'\n').count() as u64;
        self.byte += batch.len() as u64;
        self.scanned -= at;
        self.complete = 0;
        if all {
            self.in_quotes = false;
        }
        Some((batch, first_line, first_byte))
    }
}

/// Settings of the batcher thread.
#[derive(Debug, Clone)]
pub struct BatchRules {
    /// Cut when this many bytes of whole records wait.
    pub batch_bytes: usize,
    /// Cut when the oldest whole record has waited this long.
    pub linger: Duration,
    /// Send heartbeats this often when idle (processing-time windows).
    pub heartbeat: Option<Duration>,
    /// A record longer than this is an error (memory stays bounded).
    pub max_record: usize,
}

/// The batcher thread's body: raw chunks in, batches out, until the input
/// closes (then the rest goes out as a last batch) or the engine is gone.
/// Returns an error message when a record is longer than `max_record`.
pub fn run_batcher(
    input: Receiver<Vec<u8>>,
    output: Sender<Item>,
    mut cutter: RecordCutter,
    rules: BatchRules,
    clock: Clock,
) -> Result<(), String> {
    let mut oldest: Option<Instant> = None;
    let mut last_sent = Instant::now();
    loop {
        let now = Instant::now();
        let deadline = match (oldest, rules.heartbeat) {
            (Some(t), _) => t + rules.linger,
            (None, Some(h)) => last_sent + h,
            (None, None) => now + Duration::from_secs(3600),
        };
        match input.recv_timeout(deadline.saturating_duration_since(now)) {
            Ok(chunk) => {
                let before = cutter.complete_len();
                cutter.feed_owned(chunk);
                if before == 0 && cutter.complete_len() > 0 {
                    oldest = Some(Instant::now());
                }
                if cutter.complete_len() >= rules.batch_bytes {
                    send(&output, &mut cutter, false, &clock)?;
                    oldest = None;
                    last_sent = Instant::now();
                } else if cutter.pending_len() > rules.max_record && cutter.complete_len() == 0 {
                    return Err(format!(
                        "a record is longer than {} bytes (no line end found); is the input \
                         line-oriented?",
                        rules.max_record
                    ));
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if oldest.is_some() {
                    send(&output, &mut cutter, false, &clock)?;
                    oldest = None;
                } else if rules.heartbeat.is_some() {
                    // Best effort: a full channel already carries news.
                    let _ = output.try_send(Item::Heartbeat(clock.now_ms()));
                }
                last_sent = Instant::now();
            }
            Err(RecvTimeoutError::Disconnected) => {
                send(&output, &mut cutter, true, &clock)?;
                return Ok(());
            }
        }
    }
}

/// Sends what the cutter has; `Err` only when the engine is gone (then the
/// batcher just stops).
fn send(
    output: &Sender<Item>,
    cutter: &mut RecordCutter,
    all: bool,
    clock: &Clock,
) -> Result<(), String> {
    if let Some((bytes, first_line, first_byte)) = cutter.cut(all) {
        let batch = Batch {
            bytes,
            first_line,
            first_byte,
            stamp_ms: clock.now_ms(),
        };
        output.send(Item::Batch(batch)).map_err(|_| String::new())?;
    }
    Ok(())
}

/// The column names of a header line (delimited input): fields split at the
/// delimiter outside quotes, quotes removed, spaces trimmed.
pub fn header_names(line: &[u8], delimiter: u8, quote: Option<u8>) -> Vec<String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let mut names = Vec::new();
    let mut field = Vec::new();
    let mut in_quotes = false;
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if Some(b) == quote {
            if in_quotes && line.get(i + 1) == Some(&b) {
                field.push(b);
                i += 1;
            } else {
                in_quotes = !in_quotes;
            }
        } else if b == delimiter && !in_quotes {
            names.push(String::from_utf8_lossy(&field).trim().to_string());
            field.clear();
        } else {
            field.push(b);
        }
        i += 1;
    }
    names.push(String::from_utf8_lossy(&field).trim().to_string());
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_record_ends_outside_quotes() {
        let mut c = RecordCutter::new(Some(b'"'), 1, 0);
        c.feed(b"a,1\nb,\"x");
        assert_eq!(c.complete_len(), 4);
        c.feed(b"\ny\",2\nc,");
        // The quoted newline is not a record end.
        assert_eq!(c.complete_len(), 14);
        let (batch, line, byte) = c.cut(false).unwrap();
        assert_eq!(batch, b"a,1\nb,\"x\ny\",2\n");
        assert_eq!((line, byte), (1, 0));
        assert_eq!(c.cut(false), None);
        c.feed(b"3\n");
        let (batch, line, byte) = c.cut(false).unwrap();
        assert_eq!((batch.as_slice(), line, byte), (&b"c,3\n"[..], 4, 14));
        c.feed(b"tail");
        assert_eq!(c.cut(false), None);
        assert_eq!(c.cut(true).unwrap().0, b"tail");
    }

    #[test]
    fn without_quotes_the_last_newline_ends() {
        let mut c = RecordCutter::new(None, 1, 0);
        c.feed(b"1\n2\n3");
        assert_eq!(c.cut(false).unwrap().0, b"1\n2\n");
        c.feed(b"\"4\n");
        assert_eq!(c.cut(false).unwrap().0, b"3\"4\n");
    }

    #[test]
    fn header_fields() {
        assert_eq!(
            header_names(b"ts,\"a,b\", c \r\n", b',', Some(b'"')),
            ["ts", "a,b", "c"]
        );
        assert_eq!(header_names(b"x;y", b';', None), ["x", "y"]);
    }

    #[test]
    fn batcher_cuts_by_size_and_linger_and_flushes_at_end() {
        let (in_tx, in_rx) = crossbeam_channel::bounded(4);
        let (out_tx, out_rx) = crossbeam_channel::bounded(16);
        let rules = BatchRules {
            batch_bytes: 8,
            linger: Duration::from_millis(20),
            heartbeat: None,
            max_record: 1 << 20,
        };
        let t = std::thread::spawn(move || {
            run_batcher(
                in_rx,
                out_tx,
                RecordCutter::new(None, 1, 0),
                rules,
                Clock::new(),
            )
        });
        in_tx.send(b"1234\n5678\n9".to_vec()).unwrap();
        let first = out_rx.recv().unwrap();
        in_tx.send(b"\n".to_vec()).unwrap();
        let second = out_rx.recv().unwrap(); // by linger
        in_tx.send(b"x".to_vec()).unwrap();
        drop(in_tx);
        let third = out_rx.recv().unwrap();
        t.join().unwrap().unwrap();
        let bytes = |i: Item| match i {
            Item::Batch(b) => (b.bytes, b.first_line, b.first_byte),
            Item::Heartbeat(_) => panic!("heartbeat"),
        };
        assert_eq!(bytes(first), (b"1234\n5678\n".to_vec(), 1, 0));
        assert_eq!(bytes(second), (b"9\n".to_vec(), 3, 10));
        assert_eq!(bytes(third), (b"x".to_vec(), 4, 12));
    }
}
