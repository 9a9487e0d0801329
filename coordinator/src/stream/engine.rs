//! The stream engine: one thread that never blocks on computation.
//!
//! It selects over three channels: batches from the batcher, events of the
//! worker pool, and a ticker. A batch is held (in `held`) from the moment
//! it is taken until its partial is merged; it is sent to the least-loaded
//! worker, and sent again if that worker dies or fails. Results are merged
//! strictly in batch order (a small reorder buffer), so the event-time
//! watermark after batch `i` is the largest event time of batches `0..=i`
//! minus the lateness, whatever the order in which workers answer.
//!
//! **Invariant:** at most `max_in_flight` batches are held; the engine does
//! not take the next batch before one is merged. That is the whole of the
//! backpressure: the batcher blocks, `push` blocks, the reader stops.
//!
//! **Invariant:** a batch's partial is merged exactly once: only the answer
//! to the attempt in flight, from the worker holding it, counts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{never, select, tick, Receiver, Sender};
use log::{debug, info, warn};
use tally_protocol::{
    ErrorKind, FromWorker, GroupState, GroupTable, PackedPartial, QuerySpec, Source, TaskResult,
    ToWorker,
};

use super::reader::{Batch, Item};
use super::window::{WindowResult, WindowStore};
use super::{Clock, StreamConfig, StreamSummary, TimeMode, WindowMode};
use crate::config::ErrorPolicy;
use crate::error::{Error, Result};
use crate::pool::{PoolEvent, WorkerId, WorkerPool};

const QUERY_ID: u64 = 1;
/// Bad-record locations kept for the summary.
const MAX_BAD_SAMPLES: usize = 10;

struct Held {
    batch: Batch,
    attempts: u32,
    errors: Vec<String>,
}

#[derive(Default)]
struct WorkerSlot {
    tasks: VecDeque<u64>,
    head_since: Option<Instant>,
    prepared: bool,
}

/// How results are turned into windows.
enum Windows {
    /// Panes and windows.
    Windowed(WindowStore),
    /// One running table, emitted every `every`.
    Running {
        table: GroupTable,
        every: Duration,
        next: Instant,
        start_ms: i64,
    },
}

pub(crate) struct Engine {
    config: StreamConfig,
    query: QuerySpec,
    pool: WorkerPool,
    results: Sender<WindowResult>,
    clock: Clock,
    workers: BTreeMap<WorkerId, WorkerSlot>,
    /// Batches taken and not merged, by sequence number.
    held: BTreeMap<u64, Held>,
    /// Sequence numbers waiting for a worker (retries go first).
    queue: VecDeque<u64>,
    /// task id -> (sequence number, worker).
    in_flight: HashMap<u64, (u64, WorkerId)>,
    /// Results waiting for an earlier batch.
    done: BTreeMap<u64, TaskResult<PackedPartial>>,
    next_seq: u64,
    next_merge: u64,
    next_task: u64,
    windows: Windows,
    /// Largest event time merged (event time).
    max_event: Option<i64>,
    /// Latest processing time known from the batcher.
    proc_time: Option<i64>,
    last_input: Instant,
    idle_flushed: bool,
    summary: StreamSummary,
    stop: Arc<AtomicBool>,
}

impl Engine {
    pub(crate) fn new(
        config: StreamConfig,
        query: QuerySpec,
        pool: WorkerPool,
        results: Sender<WindowResult>,
        clock: Clock,
        stop: Arc<AtomicBool>,
    ) -> Engine {
        let windows = match config.window {
            WindowMode::Windowed(spec) => Windows::Windowed(WindowStore::new(spec)),
            WindowMode::Running { every } => Windows::Running {
                table: GroupTable::new(),
                every,
                next: Instant::now() + every,
                start_ms: clock.now_ms(),
            },
        };
        let workers = pool
            .ready()
            .map(|w| (w.id, WorkerSlot::default()))
            .collect();
        Engine {
            config,
            query,
            pool,
            results,
            clock,
            workers,
            held: BTreeMap::new(),
            queue: VecDeque::new(),
            in_flight: HashMap::new(),
            done: BTreeMap::new(),
            next_seq: 0,
            next_merge: 0,
            next_task: 0,
            windows,
            max_event: None,
            proc_time: None,
            last_input: Instant::now(),
            idle_flushed: true,
            summary: StreamSummary::default(),
            stop,
        }
    }

    /// Runs until the input closes and every window is out, or a fatal
    /// error. The pool is shut down in both cases.
    pub(crate) fn run(mut self, batches: Receiver<Item>) -> Result<StreamSummary> {
        let outcome = self.event_loop(batches);
        let Engine { pool, summary, .. } = self;
        pool.shutdown(Duration::from_secs(2));
        outcome.map(|()| summary)
    }

    fn event_loop(&mut self, batches: Receiver<Item>) -> Result<()> {
        let events = self.pool.receiver();
        let ticker = tick(Duration::from_millis(5));
        let nothing = never();
        let mut input_open = true;
        let mut interrupted = None;
        loop {
            let accept = input_open && self.held.len() < self.config.max_in_flight.max(1);
            let source = if accept { &batches } else { &nothing };
            select! {
                recv(source) -> item => match item {
                    Ok(Item::Batch(b)) => self.take(b),
                    Ok(Item::Heartbeat(ms)) => {
                        self.proc_time = Some(self.proc_time.map_or(ms, |t| t.max(ms)));
                    }
                    Err(_) => input_open = false,
                },
                recv(events) -> raw => {
                    if let Ok(raw) = raw {
                        if let Some(ev) = self.pool.handle(raw)? {
                            self.on_pool_event(ev)?;
                        }
                    }
                },
                recv(ticker) -> _ => {
                    if self.stop.load(Ordering::Relaxed) {
                        debug!("stream stopped by its handle");
                        return Ok(());
                    }
                    if let Some(sig) = crate::signals::pending() {
                        if interrupted.is_none() {
                            info!("signal {sig}: finishing the batches held, then stopping");
                            interrupted = Some(sig);
                            input_open = false;
                        }
                    }
                    self.check_timeouts()?;
                    // Replacements that never answer their handshake, and
                    // replacements that were due (rate-limited).
                    if let Some(ev) = self.pool.check_handshakes() {
                        self.on_pool_event(ev)?;
                    }
                    self.replace_worker()?;
                },
            }
            self.dispatch()?;
            self.merge_ready()?;
            self.on_time(input_open);
            if !input_open && self.held.is_empty() {
                self.finish();
                return match interrupted {
                    Some(sig) => Err(Error::Interrupted(sig)),
                    None => Ok(()),
                };
            }
        }
    }

    fn take(&mut self, batch: Batch) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.proc_time = Some(
            self.proc_time
                .map_or(batch.stamp_ms, |t| t.max(batch.stamp_ms)),
        );
        self.last_input = Instant::now();
        self.idle_flushed = false;
        self.held.insert(
            seq,
            Held {
                batch,
                attempts: 0,
                errors: Vec::new(),
            },
        );
        self.queue.push_back(seq);
    }

    fn dispatch(&mut self) -> Result<()> {
        let per_worker = self.config.in_flight_per_worker.max(1);
        while let Some(&seq) = self.queue.front() {
            let Some((&id, _)) = self
                .workers
                .iter()
                .filter(|(_, w)| w.tasks.len() < per_worker)
                .min_by_key(|(_, w)| w.tasks.len())
            else {
                return Ok(());
            };
            let Some(held) = self.held.get(&seq) else {
                self.queue.pop_front();
                continue;
            };
            let task_id = self.next_task;
            self.next_task += 1;
            let task = ToWorker::Task {
                task_id,
                query_id: QUERY_ID,
                source: Source::Inline {
                    name: self.config.name.clone(),
                    first_line: held.batch.first_line,
                    first_byte: held.batch.first_byte,
                    bytes: serde_bytes::ByteBuf::from(held.batch.bytes.clone()),
                },
            };
            let slot = self.workers.entry(id).or_default();
            let mut sent = Ok(());
            if !slot.prepared {
                sent = self.pool.send(
                    id,
                    ToWorker::Prepare {
                        query_id: QUERY_ID,
                        query: self.query.clone(),
                    },
                );
                slot.prepared = true;
            }
            if sent.is_ok() {
                sent = self.pool.send(id, task);
            }
            match sent {
                Ok(()) => {
                    self.queue.pop_front();
                    let slot = self.workers.entry(id).or_default();
                    if slot.tasks.is_empty() {
                        slot.head_since = Some(Instant::now());
                    }
                    slot.tasks.push_back(task_id);
                    self.in_flight.insert(task_id, (seq, id));
                }
                Err(reason) => self.on_lost(id, &reason)?,
            }
        }
        Ok(())
    }

    fn on_pool_event(&mut self, ev: PoolEvent) -> Result<()> {
        match ev {
            PoolEvent::Ready(id) => {
                self.workers.insert(id, WorkerSlot::default());
            }
            PoolEvent::Lost { worker, reason } => self.on_lost(worker, &reason)?,
            PoolEvent::Message(id, msg) => self.on_message(id, msg)?,
        }
        Ok(())
    }

    fn on_message(&mut self, id: WorkerId, msg: FromWorker<PackedPartial>) -> Result<()> {
        let task_id = match &msg {
            FromWorker::Result(r) => r.task_id,
            FromWorker::TaskError(e) => e.task_id,
            FromWorker::Hello { .. } => {
                let reason = self.pool.kill(id, "sent a second handshake");
                return self.on_lost(id, &reason);
            }
        };
        match self.in_flight.get(&task_id) {
            Some(&(_, w)) if w == id => {}
            _ => {
                let reason = self.pool.kill(
                    id,
                    &format!("answered task {task_id}, which it does not hold"),
                );
                return self.on_lost(id, &reason);
            }
        }
        let Some((seq, _)) = self.in_flight.remove(&task_id) else {
            return Ok(());
        };
        if let Some(slot) = self.workers.get_mut(&id) {
            slot.tasks.retain(|&t| t != task_id);
            slot.head_since = (!slot.tasks.is_empty()).then(Instant::now);
        }
        match msg {
            FromWorker::Result(r) => {
                self.done.insert(seq, r);
            }
            FromWorker::TaskError(e) => match e.kind {
                ErrorKind::Input | ErrorKind::Query | ErrorKind::Io => {
                    return Err(Error::Data {
                        kind: e.kind,
                        message: e.message,
                        location: e.location,
                    });
                }
                ErrorKind::Internal => {
                    let pid = self.pool.info(id).map_or(0, |i| i.pid);
                    warn!("worker pid {pid} failed on batch {seq}: {}", e.message);
                    self.failed_attempt(seq, format!("worker pid {pid}: {}", e.message))?;
                }
            },
            FromWorker::Hello { .. } => {}
        }
        Ok(())
    }

    /// A worker is gone: its batches go back to the queue (the one it was
    /// running counts as a failed attempt), and a replacement starts.
    fn on_lost(&mut self, id: WorkerId, reason: &str) -> Result<()> {
        let Some(slot) = self.workers.remove(&id) else {
            return Ok(());
        };
        self.summary.workers_lost += 1;
        let mut tasks = slot.tasks.into_iter();
        let head = tasks.next();
        let mut back: Vec<u64> = tasks
            .filter_map(|t| self.in_flight.remove(&t).map(|(seq, _)| seq))
            .collect();
        if let Some(t) = head {
            if let Some((seq, _)) = self.in_flight.remove(&t) {
                self.count_attempt(seq, reason.to_string())?;
                back.push(seq);
            }
        }
        back.sort_unstable();
        for seq in back.into_iter().rev() {
            if self.held.contains_key(&seq) {
                self.queue.push_front(seq);
            }
        }
        self.replace_worker()
    }

    fn count_attempt(&mut self, seq: u64, error: String) -> Result<()> {
        let Some(h) = self.held.get_mut(&seq) else {
            return Ok(());
        };
        h.attempts += 1;
        h.errors.push(error);
        if h.attempts < self.config.max_attempts.max(1) {
            return Ok(());
        }
        let line = h.batch.first_line;
        let errors = h.errors.join("; ");
        match self.config.on_error {
            ErrorPolicy::Fail => Err(Error::Workers(format!(
                "batch {seq} of {} (from line {line}) failed {} times: {errors}",
                self.config.name, h.attempts
            ))),
            ErrorPolicy::Skip => {
                warn!(
                    "skipping batch {seq} (from line {line}) after {} failed attempts",
                    h.attempts
                );
                self.summary.skipped_batches.push(line);
                // It counts as merged with nothing in it.
                self.done.insert(
                    seq,
                    TaskResult {
                        task_id: u64::MAX,
                        partial: Default::default(),
                        counters: Default::default(),
                        bad_samples: Vec::new(),
                    },
                );
                self.queue.retain(|&s| s != seq);
                Ok(())
            }
        }
    }

    fn failed_attempt(&mut self, seq: u64, error: String) -> Result<()> {
        self.count_attempt(seq, error)?;
        if self.held.contains_key(&seq) && !self.done.contains_key(&seq) {
            self.queue.push_front(seq);
        }
        Ok(())
    }

    /// Starts a replacement through the pool: rate-limited, within the
    /// pool's budget, and failing fast when replacements die at start.
    fn replace_worker(&mut self) -> Result<()> {
        if self.pool.replenish()? {
            info!("started a replacement worker");
        }
        Ok(())
    }

    fn check_timeouts(&mut self) -> Result<()> {
        let now = Instant::now();
        let timeout = self.config.task_timeout;
        let late: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| {
                w.head_since
                    .is_some_and(|t| now.duration_since(t) > timeout)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            let secs = timeout.as_secs_f64();
            let reason = self
                .pool
                .kill(id, &format!("ran one batch past --task-timeout ({secs}s)"));
            self.on_lost(id, &reason)?;
        }
        Ok(())
    }

    /// Merges the results that are next in batch order.
    fn merge_ready(&mut self) -> Result<()> {
        while let Some(result) = self.done.remove(&self.next_merge) {
            let seq = self.next_merge;
            self.next_merge += 1;
            let Some(held) = self.held.remove(&seq) else {
                continue;
            };
            let c = &result.counters;
            self.summary.records += c.records;
            self.summary.bytes += c.bytes;
            self.summary.bad_records += c.bad_records;
            for loc in result.bad_samples {
                if self.summary.bad_samples.len() < MAX_BAD_SAMPLES {
                    self.summary.bad_samples.push(loc);
                }
            }
            let max_event = result.counters.max_event_ms;
            match &mut self.windows {
                Windows::Running { table, .. } => table.merge_packed(&result.partial),
                Windows::Windowed(store) => {
                    match self.config.time {
                        TimeMode::Processing => {
                            let p = store.pane_of(held.batch.stamp_ms);
                            for g in result.partial.groups() {
                                store.add(p, 0, g.to_group_state());
                            }
                        }
                        TimeMode::Event { .. } => {
                            for g in result.partial.groups() {
                                match split_pane_key(g.to_group_state()) {
                                    Some((p, k, g)) => {
                                        store.add(p, k, g);
                                    }
                                    None => return Err(Error::Workers(
                                        "a worker answered a pane query without pane keys (is it \
                                         an older tally-worker?)"
                                            .into(),
                                    )),
                                }
                            }
                        }
                    }
                }
            }
            if let Some(m) = max_event {
                self.max_event = Some(self.max_event.map_or(m, |x| x.max(m)));
            }
            if let TimeMode::Event { lateness_ms, .. } = self.config.time {
                if let (Some(m), Windows::Windowed(store)) = (self.max_event, &mut self.windows) {
                    let w = m.saturating_sub(lateness_ms as i64);
                    let results = &self.results;
                    let summary = &mut self.summary;
                    store.advance(w, &mut |r| emit(results, summary, r));
                }
            }
        }
        Ok(())
    }

    /// Time-driven work: processing-time windows, idle time-out, `--every`.
    fn on_time(&mut self, input_open: bool) {
        let results = &self.results;
        let summary = &mut self.summary;
        match &mut self.windows {
            Windows::Running {
                table,
                every,
                next,
                start_ms,
            } => {
                let now = Instant::now();
                if now >= *next {
                    *next = now + *every;
                    emit_running(results, summary, table, *start_ms, self.clock.now_ms());
                }
            }
            Windows::Windowed(store) => match self.config.time {
                TimeMode::Processing => {
                    // Every batch not yet merged is stamped at or after the
                    // oldest one's stamp; with none held, the batcher's
                    // clock (heartbeats) is the limit.
                    let limit = match self.held.values().next() {
                        Some(h) => Some(h.batch.stamp_ms),
                        None if input_open => self.proc_time,
                        None => None,
                    };
                    if let Some(w) = limit {
                        store.advance(w, &mut |r| emit(results, summary, r));
                    }
                }
                TimeMode::Event { .. } => {
                    if let Some(idle) = self.config.idle_timeout {
                        if input_open
                            && !self.idle_flushed
                            && self.held.is_empty()
                            && self.last_input.elapsed() >= idle
                        {
                            self.idle_flushed = true;
                            debug!("input idle for {idle:?}: closing every open window");
                            store.flush(&mut |r| emit(results, summary, r));
                        }
                    }
                }
            },
        }
    }

    /// End of input: the final (partial) windows.
    fn finish(&mut self) {
        let results = &self.results;
        let summary = &mut self.summary;
        match &mut self.windows {
            Windows::Running {
                table, start_ms, ..
            } => emit_running(results, summary, table, *start_ms, self.clock.now_ms()),
            Windows::Windowed(store) => {
                store.flush(&mut |r| emit(results, summary, r));
                summary.late = store.late().clone();
            }
        }
        debug!(
            "stream done: {} records, {} windows",
            self.summary.records, self.summary.windows
        );
    }
}

fn emit(results: &Sender<WindowResult>, summary: &mut StreamSummary, r: WindowResult) {
    summary.windows += 1;
    // A receiver that went away just stops listening.
    let _ = results.send(r);
}

/// Emits the running result (`--every`) so far, if it has any group.
fn emit_running(
    results: &Sender<WindowResult>,
    summary: &mut StreamSummary,
    table: &GroupTable,
    start_ms: i64,
    end_ms: i64,
) {
    if table.is_empty() {
        return;
    }
    let groups = sorted_clone(table);
    emit(
        results,
        summary,
        WindowResult {
            start_ms,
            end_ms,
            records: groups.iter().map(|g| g.rows).sum(),
            groups,
        },
    );
}

fn sorted_clone(table: &GroupTable) -> Vec<GroupState> {
    let mut groups: Vec<GroupState> = table.groups().collect();
    groups.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    groups
}

/// Splits the pane index and closure class off a pane query's group key.
fn split_pane_key(mut g: GroupState) -> Option<(i64, i64, GroupState)> {
    if g.key.len() < 2 {
        return None;
    }
    let mut it = g.key.drain(..2);
    let num = |k: Option<serde_bytes::ByteBuf>| -> Option<i64> {
        std::str::from_utf8(&k?).ok()?.parse().ok()
    };
    let p = num(it.next()?)?;
    let k = num(it.next()?)?;
    drop(it);
    Some((p, k, g))
}
