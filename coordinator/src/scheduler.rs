//! Sends chunks to workers, keeps a few in flight on each, retries what a
//! lost worker held, and feeds results to the [`ChunkMerger`].
//!
//! **Invariant:** a chunk's partial is merged exactly once: a result counts
//! only if it answers the attempt in flight now, from the worker that holds
//! it; anything else (a late answer from a worker given up, a duplicate) is
//! dropped.
//!
//! Failures: a worker that is lost (see [`crate::pool`]) or runs one task
//! past the task time-out is killed; the task it was running counts as a
//! failed attempt at that chunk, the tasks queued behind it go back to the
//! queue as they were, and the pool starts a replacement. A chunk that
//! fails `max_attempts` times is poison: the run stops naming it, or under
//! [`ErrorPolicy::Skip`] it is left out and listed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use log::{debug, warn};
use tally_protocol::{
    ErrorKind, FromWorker, GroupTable, PackedPartial, QuerySpec, Source, ToWorker,
};

use crate::config::ErrorPolicy;
use crate::error::{Error, Result};
use crate::merger::{ChunkMerger, Rerun, Totals};
use crate::planner::Plan;
use crate::pool::{PoolEvent, WorkerId, WorkerPool};
use crate::progress::Progress;

/// How the scheduler behaves under failure.
#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    /// Attempts per chunk before it is poison.
    pub max_attempts: u32,
    /// A task running longer than this gets its worker killed.
    pub task_timeout: Duration,
    /// Tasks in flight per worker.
    pub in_flight_per_worker: usize,
    /// Fail on a poison chunk, or skip it and report it.
    pub on_error: ErrorPolicy,
    /// Worker replacements allowed over the run (see
    /// [`WorkerPool::replenish`]).
    pub max_respawns: usize,
}

/// A chunk left out under `--on-error skip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedChunk {
    /// File.
    pub path: String,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// The 1-based line number of the chunk's first byte, when the file
    /// could be read to count it.
    pub line: Option<u64>,
    /// What the workers said, one entry per attempt.
    pub errors: Vec<String>,
}

/// The outcome of a batch.
pub struct BatchOutcome {
    /// Merged groups.
    pub table: GroupTable,
    /// Records, bytes, bad records.
    pub totals: Totals,
    /// Chunks left out.
    pub skipped: Vec<SkippedChunk>,
    /// Workers lost (and replaced) during the run.
    pub workers_lost: usize,
}

struct InFlight {
    chunk: usize,
    worker: WorkerId,
    start_in_quotes: bool,
}

#[derive(Default)]
struct WorkerQueue {
    tasks: VecDeque<u64>,
    head_since: Option<Instant>,
    prepared: bool,
}

const QUERY_ID: u64 = 1;
/// The longest the loop waits for an event before it looks at time-outs
/// and signals again.
const TICK: Duration = Duration::from_millis(100);

/// Runs every chunk of `chunks` through the pool and merges the results.
pub fn run_batch(
    pool: &mut WorkerPool,
    query: &QuerySpec,
    chunks: &Plan,
    opts: &ScheduleOptions,
    progress: &mut Progress,
) -> Result<BatchOutcome> {
    let mut s = Scheduler {
        query,
        chunks,
        opts,
        merger: ChunkMerger::new(chunks.len(), chunks.file_starts()),
        queue: VecDeque::new(),
        fresh: 0,
        attempts: HashMap::new(),
        errors: HashMap::new(),
        failed_on: HashMap::new(),
        in_flight: HashMap::new(),
        workers: BTreeMap::new(),
        next_task: 0,
        skipped: Vec::new(),
        skipped_chunks: Vec::new(),
        workers_lost: 0,
    };
    pool.set_max_replacements(opts.max_respawns);
    for info in pool.ready() {
        s.workers.insert(info.id, WorkerQueue::default());
    }
    // Lookahead past the first unmerged chunk, so held-back results (and
    // memory) stay bounded whatever a slow chunk does.
    let window = (pool.ready_count() * opts.in_flight_per_worker * 4).max(16);
    loop {
        s.dispatch(pool, window)?;
        if s.merger.is_complete() {
            break;
        }
        if let Some(sig) = crate::signals::pending() {
            return Err(Error::Interrupted(sig));
        }
        // Lost workers are replaced here, rate-limited; an error when none
        // is left and none can be started.
        pool.replenish()?;
        let wait = pool
            .replacement_due_in()
            .map_or(TICK, |d| d.clamp(Duration::from_millis(1), TICK));
        match pool.next_event(wait)? {
            None => {}
            Some(PoolEvent::Ready(id)) => {
                s.workers.insert(id, WorkerQueue::default());
            }
            Some(PoolEvent::Message(id, msg)) => s.on_message(pool, id, msg, progress)?,
            Some(PoolEvent::Lost { worker, reason }) => s.on_lost(worker, &reason)?,
        }
        s.check_timeouts(pool)?;
    }
    let (table, totals) = s.merger.finish();
    Ok(BatchOutcome {
        table,
        totals,
        skipped: s.skipped,
        workers_lost: s.workers_lost,
    })
}

struct Scheduler<'a> {
    query: &'a QuerySpec,
    chunks: &'a Plan,
    opts: &'a ScheduleOptions,
    merger: ChunkMerger,
    /// Chunks to send again, before any new one, with a known quote state
    /// for reruns.
    queue: VecDeque<(usize, Option<bool>)>,
    /// The first chunk never sent; those after it follow in order. (No
    /// list of all chunks: memory does not grow with the input.)
    fresh: usize,
    /// Per chunk that failed: its failed attempts, their errors, and the
    /// workers it failed on (a live worker that answered with an error
    /// gets the retry last). Only failed chunks have entries.
    attempts: HashMap<usize, u32>,
    errors: HashMap<usize, Vec<String>>,
    failed_on: HashMap<usize, Vec<WorkerId>>,
    in_flight: HashMap<u64, InFlight>,
    workers: BTreeMap<WorkerId, WorkerQueue>,
    next_task: u64,
    skipped: Vec<SkippedChunk>,
    /// Indexes of the skipped chunks, sorted.
    skipped_chunks: Vec<usize>,
    workers_lost: usize,
}

impl Scheduler<'_> {
    fn dispatch(&mut self, pool: &mut WorkerPool, window: usize) -> Result<()> {
        loop {
            let Some((chunk, hint)) = self.next_chunk() else {
                return Ok(());
            };
            if chunk >= self.merger.next_needed() + window {
                return Ok(());
            }
            // The least-loaded worker with room; for a retry, one that has
            // not failed this chunk yet if there is one, so that poison
            // means "failed on several workers".
            let failed_on = self.failed_on.get(&chunk).map_or(&[][..], Vec::as_slice);
            let Some((&id, _)) = self
                .workers
                .iter()
                .filter(|(_, q)| q.tasks.len() < self.opts.in_flight_per_worker)
                .min_by_key(|(id, q)| (failed_on.contains(id), q.tasks.len()))
            else {
                return Ok(());
            };
            self.take_next_chunk();
            // `next_chunk` gives indexes below the plan's length only.
            let Some(c) = self.chunks.chunk(chunk) else {
                return Err(Error::Workers(format!("chunk {chunk} is not in the plan")));
            };
            let start_in_quotes = hint
                .or_else(|| self.merger.known_quote_state(chunk))
                .unwrap_or(false);
            let task_id = self.next_task;
            self.next_task += 1;
            let queue = self.workers.entry(id).or_default();
            let mut sent = Ok(());
            if !queue.prepared {
                sent = pool.send(
                    id,
                    ToWorker::Prepare {
                        query_id: QUERY_ID,
                        query: self.query.clone(),
                    },
                );
                queue.prepared = true;
            }
            if sent.is_ok() {
                sent = pool.send(
                    id,
                    ToWorker::Task {
                        task_id,
                        query_id: QUERY_ID,
                        source: Source::FileRange {
                            path: c.path,
                            start: c.start,
                            end: c.end,
                            start_in_quotes,
                        },
                    },
                );
            }
            match sent {
                Ok(()) => {
                    let queue = self.workers.entry(id).or_default();
                    if queue.tasks.is_empty() {
                        queue.head_since = Some(Instant::now());
                    }
                    queue.tasks.push_back(task_id);
                    self.in_flight.insert(
                        task_id,
                        InFlight {
                            chunk,
                            worker: id,
                            start_in_quotes,
                        },
                    );
                }
                Err(reason) => {
                    // The pool killed it; put the chunk back and give up the
                    // worker's other tasks.
                    self.queue.push_front((chunk, hint));
                    self.on_lost(id, &reason)?;
                }
            }
        }
    }

    fn on_message(
        &mut self,
        pool: &mut WorkerPool,
        id: WorkerId,
        msg: FromWorker<PackedPartial>,
        progress: &mut Progress,
    ) -> Result<()> {
        let task_id = match &msg {
            FromWorker::Result(r) => r.task_id,
            FromWorker::TaskError(e) => e.task_id,
            FromWorker::Hello { .. } => {
                let reason = pool.kill(id, "sent a second handshake");
                return self.on_lost(id, &reason);
            }
        };
        match self.in_flight.get(&task_id) {
            Some(f) if f.worker == id => {}
            _ => {
                let reason = pool.kill(
                    id,
                    &format!("answered task {task_id}, which it does not hold"),
                );
                return self.on_lost(id, &reason);
            }
        }
        let Some(flight) = self.in_flight.remove(&task_id) else {
            return Ok(());
        };
        if let Some(q) = self.workers.get_mut(&id) {
            q.tasks.retain(|&t| t != task_id);
            q.head_since = (!q.tasks.is_empty()).then(Instant::now);
        }
        let chunk = flight.chunk;
        match msg {
            FromWorker::Result(r) => {
                if r.counters.start_in_quotes != flight.start_in_quotes {
                    let reason = pool.kill(id, "echoed the wrong quote state");
                    self.queue.push_front((chunk, Some(flight.start_in_quotes)));
                    return self.on_lost(id, &reason);
                }
                let bytes = self.chunks.chunk(chunk).map_or(0, |c| c.end - c.start);
                let rerun = self
                    .merger
                    .accept(chunk, r.partial, r.counters, r.bad_samples);
                self.rerun(rerun);
                progress.advance(bytes);
                // A data error held back until its quote state was known.
                if let Some(e) = self.merger.take_failure() {
                    return Err(Error::Data {
                        kind: e.kind,
                        message: e.message,
                        location: e.location,
                    });
                }
            }
            FromWorker::TaskError(e) => {
                match e.kind {
                    // The data is at fault, unless the task read it from
                    // the wrong side of a quote: the merger decides once
                    // the quote state at the chunk's start is known.
                    ErrorKind::Input | ErrorKind::Query => {
                        let rerun = self.merger.accept_failure(chunk, flight.start_in_quotes, e);
                        self.rerun(rerun);
                        if let Some(e) = self.merger.take_failure() {
                            return Err(Error::Data {
                                kind: e.kind,
                                message: e.message,
                                location: e.location,
                            });
                        }
                    }
                    // The file cannot be read: every worker would say so.
                    ErrorKind::Io => {
                        return Err(Error::Data {
                            kind: e.kind,
                            message: e.message,
                            location: e.location,
                        });
                    }
                    ErrorKind::Internal => {
                        let pid = pool.info(id).map(|i| i.pid).unwrap_or(0);
                        warn!(
                            "worker pid {pid} failed on {}: {}",
                            self.describe(chunk),
                            e.message
                        );
                        self.failed_on.entry(chunk).or_default().push(id);
                        self.failed_attempt(chunk, format!("worker pid {pid}: {}", e.message))?;
                    }
                }
            }
            FromWorker::Hello { .. } => {}
        }
        Ok(())
    }

    /// The chunk to send next: one to send again, else the first never
    /// sent; `None` when all are out.
    fn next_chunk(&self) -> Option<(usize, Option<bool>)> {
        match self.queue.front() {
            Some(&next) => Some(next),
            None => (self.fresh < self.chunks.len()).then_some((self.fresh, None)),
        }
    }

    /// Takes the chunk [`Scheduler::next_chunk`] gave.
    fn take_next_chunk(&mut self) {
        if self.queue.pop_front().is_none() {
            self.fresh += 1;
        }
    }

    /// `path:start..end` of a chunk, for messages.
    fn describe(&self, chunk: usize) -> String {
        self.chunks.chunk(chunk).map_or_else(
            || format!("chunk {chunk}"),
            |c| format!("{}:{}..{}", c.path, c.start, c.end),
        )
    }

    /// Counts a failed attempt at `chunk`; requeues it or gives it up.
    fn failed_attempt(&mut self, chunk: usize, error: String) -> Result<()> {
        let attempts = self.attempts.entry(chunk).or_default();
        *attempts += 1;
        let attempts = *attempts;
        let errors = self.errors.entry(chunk).or_default();
        errors.push(error);
        if attempts < self.opts.max_attempts {
            self.queue.push_front((chunk, None));
            return Ok(());
        }
        let errors = errors.clone();
        let Some(c) = self.chunks.chunk(chunk) else {
            return Ok(());
        };
        match self.opts.on_error {
            ErrorPolicy::Fail => Err(Error::Poison {
                path: c.path.clone(),
                start: c.start,
                end: c.end,
                line: first_line_of(&c.path, c.start)
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "?".into()),
                attempts,
                errors: errors.join("; "),
            }),
            ErrorPolicy::Skip => {
                warn!(
                    "skipping {}:{}..{} after {} failed attempts",
                    c.path, c.start, c.end, attempts
                );
                self.skipped.push(SkippedChunk {
                    path: c.path.clone(),
                    start: c.start,
                    end: c.end,
                    line: first_line_of(&c.path, c.start),
                    errors,
                });
                if let Err(i) = self.skipped_chunks.binary_search(&chunk) {
                    self.skipped_chunks.insert(i, chunk);
                }
                let rerun = self.merger.skip(chunk);
                self.rerun(rerun);
                Ok(())
            }
        }
    }

    /// Queues what the merger asks to run again (a wrong quote-state
    /// guess). A skipped chunk is never run again: it is skipped once more
    /// with the state now known, and so on down the file.
    fn rerun(&mut self, mut rerun: Option<Rerun>) {
        while let Some(r) = rerun {
            if self.skipped_chunks.binary_search(&r.chunk).is_ok() {
                rerun = self.merger.skip(r.chunk);
                continue;
            }
            debug!("chunk {} starts inside quotes: running it again", r.chunk);
            self.queue.push_front((r.chunk, Some(r.start_in_quotes)));
            return;
        }
    }

    /// A worker is gone: the task it was running counts as a failed attempt;
    /// the ones queued behind it go back without penalty.
    fn on_lost(&mut self, id: WorkerId, reason: &str) -> Result<()> {
        self.workers_lost += 1;
        let Some(q) = self.workers.remove(&id) else {
            return Ok(());
        };
        let mut tasks = q.tasks.into_iter();
        let head = tasks.next();
        for t in tasks.rev() {
            if let Some(f) = self.in_flight.remove(&t) {
                self.queue.push_front((f.chunk, Some(f.start_in_quotes)));
            }
        }
        if let Some(t) = head {
            if let Some(f) = self.in_flight.remove(&t) {
                self.failed_attempt(f.chunk, reason.to_string())?;
            }
        }
        Ok(())
    }

    fn check_timeouts(&mut self, pool: &mut WorkerPool) -> Result<()> {
        let now = Instant::now();
        let late: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, q)| {
                q.head_since
                    .is_some_and(|t| now.duration_since(t) > self.opts.task_timeout)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            let secs = self.opts.task_timeout.as_secs_f64();
            let reason = pool.kill(id, &format!("ran one task past --task-timeout ({secs}s)"));
            self.on_lost(id, &reason)?;
        }
        Ok(())
    }
}

/// 1-based line number of byte `offset` of a file (error messages only).
pub fn first_line_of(path: &str, offset: u64) -> Option<u64> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?.take(offset);
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 1u64;
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            return Some(lines);
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}
