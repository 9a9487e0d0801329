//! Real-time analytics over an endless stream: `tally stream`, and the same
//! machinery as a library.
//!
//! Data flow: bytes ([`StreamHandle::push`], or stdin in the CLI) -> the
//! batcher thread ([`reader`]: batches of whole records, by size or linger
//! time) -> the engine thread ([`engine`]: batches to the least-loaded
//! worker, at most `max_in_flight` held, results merged in batch order) ->
//! panes and windows ([`window`]: watermark, late records) ->
//! [`WindowResult`]s on a channel ([`StreamHandle::results`]) -> NDJSON
//! lines ([`output`]).
//!
//! The application's thread never waits on computation: `try_push` never
//! blocks (it hands the bytes back when the stream is saturated), and the
//! results arrive on a crossbeam channel it can poll or `select!` on.
//!
//! ```no_run
//! use std::time::Duration;
//! use tally_coordinator::stream::{StreamConfig, StreamHandle, TimeMode, WindowMode, WindowSpec};
//! use tally_coordinator::{query, PoolConfig, WorkerCommand};
//! use tally_protocol::{InputFormat, OnError, QuerySpec};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let query = QuerySpec {
//!     kernel: "delimited".into(),
//!     input: InputFormat::ndjson(),
//!     group_by: vec!["country".into()],
//!     aggregates: query::parse_aggregates("count,mean(latency_ms)")?,
//!     on_error: OnError::Fail,
//!     panes: None,
//! };
//! let pool = PoolConfig::new(2, WorkerCommand::locate(None)?);
//! let mut config = StreamConfig::new(query, pool);
//! config.window = WindowMode::Windowed(WindowSpec::tumbling(1000));
//! config.time = TimeMode::Event { field: "ts".into(), lateness_ms: 500 };
//! let stream = StreamHandle::start(config)?;
//! stream.push(b"{\"ts\":1700000000.1,\"country\":\"NO\",\"latency_ms\":12}\n".to_vec())?;
//! let results = stream.results().clone();
//! let summary = stream.finish()?; // end of input: the last windows come out
//! for window in results.try_iter() {
//!     println!("{} {}: {} groups", window.start_ms, window.end_ms, window.groups.len());
//! }
//! println!("{} records, {} late", summary.records, summary.late.total);
//! # Ok(()) }
//! ```

mod engine;
pub mod output;
pub mod reader;
pub mod window;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use tally_protocol::{Location, PaneSpec, QuerySpec, RecordFormat};

use crate::config::{ErrorPolicy, PoolConfig};
use crate::error::{Error, Result};
use crate::pool::WorkerPool;
use reader::{BatchRules, RecordCutter};
pub use window::{LateCounts, WindowResult, WindowSpec};

/// Which clock puts records into windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeMode {
    /// The time tally cut the record's batch (at most `linger` after it
    /// arrived).
    Processing,
    /// A field of the record: epoch seconds or milliseconds, or RFC 3339.
    Event {
        /// Column name (delimited) or dotted path (NDJSON).
        field: String,
        /// The watermark trails the largest event time seen by this much.
        lateness_ms: u64,
    },
}

/// Windows, or one running result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowMode {
    /// Tumbling or sliding windows, each emitted once when closed.
    Windowed(WindowSpec),
    /// One result over everything so far, emitted every `every` and at
    /// the end.
    Running {
        /// Emission period.
        every: Duration,
    },
}

/// A validated stream configuration.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The query; its `input` must name the columns (no header) for
    /// delimited records. `panes` is filled in by [`StreamHandle::start`].
    pub query: QuerySpec,
    /// Windows or a running result.
    pub window: WindowMode,
    /// Processing or event time.
    pub time: TimeMode,
    /// Event time: after this long without input, every open window is
    /// emitted (records for them that come later count as late).
    pub idle_timeout: Option<Duration>,
    /// Cut a batch when this many bytes of whole records wait.
    pub batch_bytes: usize,
    /// Cut a batch when its oldest record has waited this long.
    pub linger: Duration,
    /// Batches held at once (sent, running, or waiting to be merged).
    pub max_in_flight: usize,
    /// Batches in flight per worker.
    pub in_flight_per_worker: usize,
    /// Raw input chunks queued in front of the batcher.
    pub input_queue: usize,
    /// Longest record accepted.
    pub max_record: usize,
    /// The pool.
    pub pool: PoolConfig,
    /// Attempts per batch before it is poison.
    pub max_attempts: u32,
    /// A batch running longer than this has its worker killed.
    pub task_timeout: Duration,
    /// What to do with a poison batch.
    pub on_error: ErrorPolicy,
    /// The stream's name in error messages (`<stdin>`).
    pub name: String,
    /// Line number of the first record pushed (2 after a header line).
    pub first_line: u64,
    /// Byte offset of the first record pushed (past a header line).
    pub first_byte: u64,
}

/// Default batch size: 1 MiB (fewer messages; at 20 M records/s a batch
/// fills in about 3 ms, under the default linger of 5 ms).
pub const DEFAULT_BATCH_BYTES: usize = 1 << 20;
/// Default linger: 5 ms.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);

impl StreamConfig {
    /// A running result every second, processing time, default batching.
    pub fn new(query: QuerySpec, pool: PoolConfig) -> Self {
        let workers = pool.workers.max(1);
        StreamConfig {
            query,
            window: WindowMode::Running {
                every: Duration::from_secs(1),
            },
            time: TimeMode::Processing,
            idle_timeout: None,
            batch_bytes: DEFAULT_BATCH_BYTES,
            linger: DEFAULT_LINGER,
            max_in_flight: workers * 3,
            in_flight_per_worker: 2,
            input_queue: 4,
            max_record: 64 << 20,
            pool,
            max_attempts: 3,
            task_timeout: Duration::from_secs(60),
            on_error: ErrorPolicy::Fail,
            name: "<stream>".into(),
            first_line: 1,
            first_byte: 0,
        }
    }

    /// Checks the settings and returns the query the workers get.
    fn worker_query(&self) -> Result<QuerySpec> {
        let mut query = self.query.clone();
        if query.input.format == RecordFormat::Delimited && query.input.header {
            return Err(Error::Usage(
                "a stream has no header per batch: read the header first and pass the names \
                 as columns (header: false)"
                    .into(),
            ));
        }
        query.panes = None;
        if let WindowMode::Windowed(spec) = self.window {
            if spec.size_ms == 0 || spec.slide_ms == 0 {
                return Err(Error::Usage("--window and --slide must be positive".into()));
            }
            if spec.slide_ms > spec.size_ms || spec.size_ms % spec.slide_ms != 0 {
                return Err(Error::Usage(format!(
                    "--slide ({} ms) must divide --window ({} ms)",
                    spec.slide_ms, spec.size_ms
                )));
            }
            if let TimeMode::Event { field, lateness_ms } = &self.time {
                query.panes = Some(PaneSpec {
                    time_field: field.clone(),
                    pane_ms: spec.slide_ms,
                    windows_per_pane: u32::try_from(spec.panes_per_window()).map_err(|_| {
                        Error::Usage("--window / --slide: too many panes per window".into())
                    })?,
                    lateness_ms: *lateness_ms,
                });
            }
        }
        if let WindowMode::Running { every } = self.window {
            if every.is_zero() {
                return Err(Error::Usage("--every must be positive".into()));
            }
        }
        Ok(query)
    }
}

/// What a stream did, besides its windows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// Records aggregated (late ones included).
    pub records: u64,
    /// Bytes of input.
    pub bytes: u64,
    /// Records left out as bad (`--on-error skip`).
    pub bad_records: u64,
    /// The first few of them.
    pub bad_samples: Vec<Location>,
    /// Records behind the watermark: counted here, in no window.
    pub late: LateCounts,
    /// Windows (or running results) emitted.
    pub windows: u64,
    /// Workers lost and replaced.
    pub workers_lost: usize,
    /// First lines of batches given up after every attempt failed
    /// (`--on-error skip`).
    pub skipped_batches: Vec<u64>,
}

/// `push` after the stream ended (an error stopped it, or `finish`).
#[derive(Debug, thiserror::Error)]
#[error("the stream has stopped; `finish` says why")]
pub struct StreamClosed(pub Vec<u8>);

/// Why [`StreamHandle::try_push`] handed the bytes back.
#[derive(Debug, thiserror::Error)]
pub enum TryPushError {
    /// The stream is saturated (backpressure): try again later.
    #[error("the stream is busy (backpressure)")]
    Full(Vec<u8>),
    /// The stream has stopped.
    #[error("the stream has stopped")]
    Closed(Vec<u8>),
}

/// A clone of the input side of a stream, for another thread.
#[derive(Debug, Clone)]
pub struct Pusher(Sender<Vec<u8>>);

impl Pusher {
    /// Queues bytes (any cut: records may span pushes); blocks while the
    /// stream is saturated.
    pub fn push(&self, bytes: Vec<u8>) -> Result<(), StreamClosed> {
        self.0.send(bytes).map_err(|e| StreamClosed(e.0))
    }

    /// Queues bytes if there is room now, never blocking.
    pub fn try_push(&self, bytes: Vec<u8>) -> Result<(), TryPushError> {
        self.0.try_send(bytes).map_err(|e| match e {
            TrySendError::Full(b) => TryPushError::Full(b),
            TrySendError::Disconnected(b) => TryPushError::Closed(b),
        })
    }
}

/// A running stream: workers started, threads running.
pub struct StreamHandle {
    pusher: Option<Pusher>,
    results: Receiver<WindowResult>,
    engine: Option<JoinHandle<Result<StreamSummary>>>,
    batcher: Option<JoinHandle<std::result::Result<(), String>>>,
    stop: Arc<AtomicBool>,
}

/// Wall-clock milliseconds, monotonic within a stream.
#[derive(Debug, Clone)]
pub struct Clock(Arc<(i64, Instant)>);

impl Clock {
    /// Now.
    pub fn new() -> Self {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Clock(Arc::new((epoch_ms, Instant::now())))
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let (base, at) = *self.0;
        base + i64::try_from(at.elapsed().as_millis()).unwrap_or(0)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl StreamHandle {
    /// Starts the workers (waiting for their handshakes) and the threads.
    pub fn start(config: StreamConfig) -> Result<StreamHandle> {
        let query = config.worker_query()?;
        let mut pool = WorkerPool::start(&config.pool)?;
        pool.set_max_replacements(4 * config.pool.workers + 16);
        if let Some(w) = pool.ready().find(|w| !w.kernels.contains(&query.kernel)) {
            return Err(Error::Workers(format!(
                "worker pid {} has no kernel `{}` (it has: {})",
                w.pid,
                query.kernel,
                w.kernels.join(", ")
            )));
        }
        let clock = Clock::new();
        let (raw_tx, raw_rx) = bounded::<Vec<u8>>(config.input_queue.max(1));
        let (batch_tx, batch_rx) = bounded(2);
        let (results_tx, results_rx) = unbounded();
        let quote = match query.input.format {
            RecordFormat::Delimited => query.input.quote,
            RecordFormat::Ndjson => None,
        };
        let rules = BatchRules {
            batch_bytes: config.batch_bytes.max(1),
            linger: config.linger,
            heartbeat: (config.time == TimeMode::Processing
                && matches!(config.window, WindowMode::Windowed(_)))
            .then_some(config.linger.max(Duration::from_millis(1))),
            max_record: config.max_record,
        };
        let cutter = RecordCutter::new(quote, config.first_line, config.first_byte);
        let batch_clock = clock.clone();
        let batcher = std::thread::Builder::new()
            .name("tally-batcher".into())
            .spawn(move || reader::run_batcher(raw_rx, batch_tx, cutter, rules, batch_clock))
            .map_err(|e| Error::Workers(format!("cannot start the batcher thread: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine::Engine::new(config, query, pool, results_tx, clock, stop.clone());
        let engine = std::thread::Builder::new()
            .name("tally-stream".into())
            .spawn(move || engine.run(batch_rx))
            .map_err(|e| Error::Workers(format!("cannot start the stream thread: {e}")))?;
        Ok(StreamHandle {
            pusher: Some(Pusher(raw_tx)),
            results: results_rx,
            engine: Some(engine),
            batcher: Some(batcher),
            stop,
        })
    }

    /// Queues bytes (any cut: a record may span pushes); blocks while the
    /// stream is saturated (backpressure).
    pub fn push(&self, bytes: Vec<u8>) -> Result<(), StreamClosed> {
        match &self.pusher {
            Some(p) => p.push(bytes),
            None => Err(StreamClosed(bytes)),
        }
    }

    /// Queues bytes if there is room now; never blocks.
    pub fn try_push(&self, bytes: Vec<u8>) -> Result<(), TryPushError> {
        match &self.pusher {
            Some(p) => p.try_push(bytes),
            None => Err(TryPushError::Closed(bytes)),
        }
    }

    /// A pusher for another thread. The input ends when the handle's own
    /// input side is closed ([`StreamHandle::close_input`] or
    /// [`StreamHandle::finish`]) and every pusher is dropped.
    pub fn pusher(&self) -> Option<Pusher> {
        self.pusher.clone()
    }

    /// Closes the handle's own input side; the stream ends once every
    /// [`Pusher`] is dropped too.
    pub fn close_input(&mut self) {
        self.pusher = None;
    }

    /// The closed windows, as they close. The channel is unbounded (a
    /// window result is small next to the input it summarises); it
    /// disconnects when the stream ends.
    pub fn results(&self) -> &Receiver<WindowResult> {
        &self.results
    }

    /// Ends the input, waits for the last windows to be emitted (they are
    /// on [`StreamHandle::results`]) and returns the summary, or the error
    /// that stopped the stream.
    pub fn finish(mut self) -> Result<StreamSummary> {
        self.pusher = None;
        self.wait()
    }

    fn wait(&mut self) -> Result<StreamSummary> {
        let engine = self.engine.take();
        let batcher = self.batcher.take();
        let outcome = match engine.map(JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err(Error::Workers("the stream thread panicked".into())),
            None => Err(Error::Workers("the stream was already finished".into())),
        };
        // After a normal end the batcher has finished (closing its channel
        // is how the engine learnt that the input ended); after an error
        // or a signal it may wait on a pusher: leave it.
        let batched = match (&outcome, batcher) {
            (Ok(_), Some(b)) if !self.stop.load(Ordering::Relaxed) => b.join().unwrap_or(Ok(())),
            _ => Ok(()),
        };
        match (outcome, batched) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(m)) if !m.is_empty() => Err(Error::Input {
                path: "<stream>".into(),
                reason: m,
            }),
            (Ok(s), _) => Ok(s),
        }
    }
}

impl Drop for StreamHandle {
    /// Stops the stream without waiting for the input to end: the workers
    /// are shut down, windows still open are not emitted.
    fn drop(&mut self) {
        if self.engine.is_some() {
            self.pusher = None;
            self.stop.store(true, Ordering::Relaxed);
            let _ = self.wait();
        }
    }
}
