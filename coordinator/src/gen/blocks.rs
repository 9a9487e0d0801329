//! Ordered, parallel block output shared by the generators.
//!
//! Rows are cut into fixed blocks of `block_rows`; block `i` is generated from
//! its own random stream, so any thread can make it. Thread `t` makes blocks
//! `t, t + T, t + 2T, …` and hands each to the writer through a one-slot
//! channel; the writer takes them round-robin, hence in order, and sends the
//! emptied buffer back for reuse. Memory stays at about `2 × T` blocks and the
//! bytes never depend on `T`.

use std::io::{self, Write};
use std::sync::mpsc;

/// Builds the bytes of one block: `(block index, first row, row count, buf)`.
/// `buf` arrives empty and must only be appended to.
pub(crate) trait BlockFn: Fn(u64, u64, u64, &mut Vec<u8>) + Sync {}
impl<F: Fn(u64, u64, u64, &mut Vec<u8>) + Sync> BlockFn for F {}

/// The thread count used when the caller does not choose one.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16)
}

/// Writes `rows` rows, made block by block by `make`, to `out` in order.
///
/// `threads` generating threads run beside the calling thread, which only
/// writes; `threads <= 1` or a single block generates inline.
pub(crate) fn write_blocks<W: Write>(
    mut out: W,
    rows: u64,
    block_rows: u64,
    threads: usize,
    make: &impl BlockFn,
) -> io::Result<()> {
    let block_rows = block_rows.max(1);
    let blocks = rows.div_ceil(block_rows);
    let rows_of = |b: u64| block_rows.min(rows - b * block_rows);
    let threads = threads
        .clamp(1, 64)
        .min(usize::try_from(blocks).unwrap_or(usize::MAX));
    if threads <= 1 {
        let mut buf = Vec::new();
        for b in 0..blocks {
            buf.clear();
            make(b, b * block_rows, rows_of(b), &mut buf);
            out.write_all(&buf)?;
        }
        return out.flush();
    }
    let t = threads as u64;
    std::thread::scope(|scope| {
        let mut full_rx = Vec::with_capacity(threads);
        let mut empty_tx = Vec::with_capacity(threads);
        for id in 0..t {
            let (full_send, full_recv) = mpsc::sync_channel::<Vec<u8>>(1);
            let (empty_send, empty_recv) = mpsc::channel::<Vec<u8>>();
            full_rx.push(full_recv);
            empty_tx.push(empty_send);
            let rows_of = &rows_of;
            scope.spawn(move || {
                let mut b = id;
                while b < blocks {
                    let mut buf = empty_recv.try_recv().unwrap_or_default();
                    buf.clear();
                    make(b, b * block_rows, rows_of(b), &mut buf);
                    if full_send.send(buf).is_err() {
                        return; // the writer stopped (write error)
                    }
                    b += t;
                }
            });
        }
        for b in 0..blocks {
            let slot = (b % t) as usize;
            let buf = full_rx[slot]
                .recv()
                .map_err(|_| io::Error::other("a generator thread stopped early"))?;
            out.write_all(&buf)?;
            // A closed return channel only means the thread is done.
            let _ = empty_tx[slot].send(buf);
        }
        out.flush()
        // On an early error return, dropping the receivers stops the threads.
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(b: u64, first: u64, n: u64, buf: &mut Vec<u8>) {
        for r in first..first + n {
            buf.extend_from_slice(format!("{b}:{r}\n").as_bytes());
        }
    }

    #[test]
    fn output_is_independent_of_thread_count() {
        let mut one = Vec::new();
        write_blocks(&mut one, 1003, 10, 1, &numbers).unwrap();
        for threads in [2, 3, 7, 200] {
            let mut many = Vec::new();
            write_blocks(&mut many, 1003, 10, threads, &numbers).unwrap();
            assert_eq!(one, many, "threads={threads}");
        }
        assert_eq!(one.iter().filter(|&&c| c == b'\n').count(), 1003);
    }

    #[test]
    fn zero_rows_write_nothing() {
        let mut out = Vec::new();
        write_blocks(&mut out, 0, 10, 4, &numbers).unwrap();
        assert!(out.is_empty());
    }

    struct Failing(usize);
    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"));
            }
            self.0 -= 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_error_stops_cleanly() {
        let err = write_blocks(Failing(3), 100_000, 10, 4, &numbers).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
