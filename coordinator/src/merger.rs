//! Merges task results in chunk order, and checks the quote-state guess
//! each task was run with.
//!
//! A chunk may start inside a quoted CSV field. Whether it does is the
//! parity of the quote bytes before it, which is known only once every
//! earlier chunk of the file has been read. Tasks therefore run on a guess
//! (outside quotes, unless the state is already known) and report their
//! quote count; results wait here until all earlier chunks are merged, and a
//! result whose guess was wrong is sent back to be run again. Merging in
//! chunk order also makes the floating-point parts of the result identical
//! for any worker count.

use std::collections::BTreeMap;

use tally_protocol::{Counters, GroupTable, Location, PackedPartial, TaskError};

/// Totals over the merged chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Records aggregated.
    pub records: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Records left out as bad.
    pub bad_records: u64,
    /// The first few of them.
    pub bad_samples: Vec<Location>,
}

/// What the merger wants from the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rerun {
    /// The chunk to run again.
    pub chunk: usize,
    /// With this quote state at its start.
    pub start_in_quotes: bool,
}

/// What a chunk's task produced, waiting for its turn.
enum Outcome {
    /// A partial.
    Merged(PackedPartial, Counters, Vec<Location>),
    /// A data error, found with this quote-state guess: it stands only if
    /// the guess was right (a chunk read from inside a quoted field by
    /// mistake can look like bad data).
    Failed(bool, TaskError),
}

/// The in-order merger.
pub struct ChunkMerger {
    /// Chunks in all.
    count: usize,
    /// Indexes of the first chunk of each file, ascending.
    file_starts: Vec<usize>,
    next: usize,
    in_quotes: bool,
    waiting: BTreeMap<usize, Outcome>,
    table: GroupTable,
    totals: Totals,
    failure: Option<TaskError>,
}

/// Bad-record locations kept for the summary.
const MAX_BAD_SAMPLES: usize = 10;

impl ChunkMerger {
    /// A merger for `count` chunks, of which those in `file_starts`
    /// (ascending) begin a file.
    pub fn new(count: usize, file_starts: Vec<usize>) -> Self {
        ChunkMerger {
            count,
            file_starts,
            next: 0,
            in_quotes: false,
            waiting: BTreeMap::new(),
            table: GroupTable::new(),
            totals: Totals::default(),
            failure: None,
        }
    }

    /// The first chunk not merged yet.
    pub fn next_needed(&self) -> usize {
        self.next
    }

    /// Whether every chunk is merged.
    pub fn is_complete(&self) -> bool {
        self.next == self.count
    }

    /// The quote state at the start of `chunk` if it is known now.
    pub fn known_quote_state(&self, chunk: usize) -> Option<bool> {
        if self.file_starts.binary_search(&chunk).is_ok() {
            Some(false)
        } else if chunk == self.next {
            Some(self.in_quotes)
        } else {
            None
        }
    }

    /// Results held back, waiting for an earlier chunk.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Accepts the result of `chunk` (once: the scheduler drops duplicates)
    /// and merges what can be merged. Returns a chunk to run again when its
    /// quote-state guess turned out wrong.
    pub fn accept(
        &mut self,
        chunk: usize,
        partial: PackedPartial,
        counters: Counters,
        bad: Vec<Location>,
    ) -> Option<Rerun> {
        self.waiting
            .insert(chunk, Outcome::Merged(partial, counters, bad));
        self.drain()
    }

    /// Accepts a data error of `chunk`'s task, run with `start_in_quotes`.
    /// Once the earlier chunks are merged, the error either stands
    /// ([`ChunkMerger::take_failure`]) or, when the guess was wrong, the
    /// chunk is run again.
    pub fn accept_failure(
        &mut self,
        chunk: usize,
        start_in_quotes: bool,
        error: TaskError,
    ) -> Option<Rerun> {
        self.waiting
            .insert(chunk, Outcome::Failed(start_in_quotes, error));
        self.drain()
    }

    /// A data error confirmed by the quote state: the run must stop.
    pub fn take_failure(&mut self) -> Option<TaskError> {
        self.failure.take()
    }

    fn drain(&mut self) -> Option<Rerun> {
        while let Some(outcome) = self.waiting.remove(&self.next) {
            let expected = self.file_starts.binary_search(&self.next).is_err() && self.in_quotes;
            let (partial, counters, bad) = match outcome {
                Outcome::Failed(guess, _)
                | Outcome::Merged(
                    _,
                    Counters {
                        start_in_quotes: guess,
                        ..
                    },
                    _,
                ) if guess != expected => {
                    return Some(Rerun {
                        chunk: self.next,
                        start_in_quotes: expected,
                    });
                }
                Outcome::Failed(_, error) => {
                    self.failure = Some(error);
                    return None;
                }
                Outcome::Merged(partial, counters, bad) => (partial, counters, bad),
            };
            self.in_quotes = expected ^ (counters.quotes % 2 == 1);
            self.table.merge_packed(&partial);
            self.totals.records += counters.records;
            self.totals.bytes += counters.bytes;
            self.totals.bad_records += counters.bad_records;
            for loc in bad {
                if self.totals.bad_samples.len() < MAX_BAD_SAMPLES {
                    self.totals.bad_samples.push(loc);
                }
            }
            self.next += 1;
        }
        None
    }

    /// Marks a chunk as given up (`--on-error skip` after its attempts): it
    /// counts as merged with nothing in it. Its quote count is unknown, so
    /// the next chunk's state is assumed outside quotes.
    pub fn skip(&mut self, chunk: usize) -> Option<Rerun> {
        self.accept(
            chunk,
            PackedPartial::default(),
            Counters {
                start_in_quotes: self.known_quote_state(chunk).unwrap_or(false),
                ..Counters::default()
            },
            Vec::new(),
        )
    }

    /// The merged groups and totals.
    pub fn finish(self) -> (GroupTable, Totals) {
        (self.table, self.totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(quotes: u64, start_in_quotes: bool) -> Counters {
        Counters {
            records: 1,
            quotes,
            start_in_quotes,
            ..Counters::default()
        }
    }

    #[test]
    fn out_of_order_results_wait_and_wrong_guesses_rerun() {
        let mut m = ChunkMerger::new(3, vec![0]);
        // Chunk 2 arrives first, guessed outside quotes.
        assert_eq!(
            m.accept(2, PackedPartial::default(), counters(0, false), vec![]),
            None
        );
        assert_eq!(m.waiting(), 1);
        // Chunk 0 has an odd quote count: chunk 1 starts inside quotes.
        assert_eq!(
            m.accept(0, PackedPartial::default(), counters(3, false), vec![]),
            None
        );
        assert_eq!(m.known_quote_state(1), Some(true));
        assert_eq!(
            m.accept(1, PackedPartial::default(), counters(1, false), vec![]),
            Some(Rerun {
                chunk: 1,
                start_in_quotes: true
            })
        );
        // The rerun closes the quote; chunk 2's guess was right.
        assert_eq!(
            m.accept(1, PackedPartial::default(), counters(1, true), vec![]),
            None
        );
        assert!(m.is_complete());
        assert_eq!(m.finish().1.records, 3);
    }

    #[test]
    fn a_data_error_stands_only_under_the_right_quote_state() {
        let err = |m: &str| TaskError {
            task_id: 0,
            kind: tally_protocol::ErrorKind::Input,
            message: m.into(),
            location: None,
        };
        let mut m = ChunkMerger::new(3, vec![0]);
        // Chunk 1 read as outside quotes looks bad; chunk 0 leaves quotes open.
        assert_eq!(m.accept_failure(1, false, err("garbage")), None);
        assert!(m.take_failure().is_none());
        assert_eq!(
            m.accept(0, PackedPartial::default(), counters(1, false), vec![]),
            Some(Rerun {
                chunk: 1,
                start_in_quotes: true
            })
        );
        assert!(m.take_failure().is_none());
        // Run again from inside quotes, it is fine; chunk 2 really is bad.
        assert_eq!(
            m.accept(1, PackedPartial::default(), counters(1, true), vec![]),
            None
        );
        assert_eq!(m.accept_failure(2, false, err("real")), None);
        assert_eq!(
            m.take_failure().map(|e| e.message),
            Some("real".to_string())
        );
    }

    #[test]
    fn a_new_file_resets_the_quote_state() {
        let mut m = ChunkMerger::new(2, vec![0, 1]);
        assert_eq!(
            m.accept(0, PackedPartial::default(), counters(1, false), vec![]),
            None
        );
        assert_eq!(
            m.accept(1, PackedPartial::default(), counters(0, false), vec![]),
            None
        );
        assert!(m.is_complete());
    }
}
