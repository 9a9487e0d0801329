//! The worker pool: spawns `tally-worker` processes, shakes hands, and turns
//! each worker's pipes into events on one channel.
//!
//! Messages to a worker are written to its stdin by the caller while the
//! pipe has room, and otherwise queued for a writer thread of its own (see
//! [`crate::stdin_writer`]); a bounded queue, never a blocked caller. Each
//! worker also has a reader thread that always drains its stdout (so the
//! worker never blocks on a full pipe), and one that forwards its stderr to
//! ours and keeps the last lines for error messages.
//!
//! Failures: a worker that exits, closes a pipe, sends a frame that does not
//! decode (or is over the size limit), or does not answer the handshake in
//! time is killed, reaped, and reported once as [`PoolEvent::Lost`] with its
//! exit status (`killed by signal 9 (SIGKILL)`) and the tail of its stderr.
//! [`WorkerPool::replenish`] starts replacements, rate-limited, within a
//! budget, and gives up fast when replacements die before their handshake
//! (a broken or wrong worker binary) instead of looping.
//!
//! **Invariant:** a worker never talks to another worker; every message
//! goes through this pool.
//!
//! **Invariant:** once a worker is lost, nothing it sent later reaches the
//! pool's user: its late messages are dropped here.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use log::{debug, info, warn};
use tally_protocol::frame::{encode_frame, FrameReader};
use tally_protocol::{FromWorker, PackedPartial, ToWorker, PROTOCOL_VERSION};

use crate::config::PoolConfig;
use crate::error::{Error, Result};
use crate::stdin_writer::{SendError, StdinWriter};

/// A worker's identity within a run; replacements get new ids.
pub type WorkerId = u64;

/// Lines of a worker's stderr kept for error messages.
const STDERR_TAIL: usize = 20;
/// Messages that may wait for room in a worker's stdin pipe.
const QUEUE_DEPTH: usize = 16;
/// Replacements that die before their handshake, in a row, before the pool
/// stops replacing (the worker binary is broken or speaks another protocol).
pub const MAX_FAILED_STARTS: u32 = 3;
/// Shortest gap between two replacements; doubled after each replacement
/// that dies before its handshake.
const REPLACEMENT_GAP: Duration = Duration::from_millis(50);
/// How long a worker whose pipe closed gets to finish exiting, so that the
/// message names its own exit status rather than our kill.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// How long to wait for the last lines of a dead worker's stderr.
const STDERR_GRACE: Duration = Duration::from_millis(200);

/// What the pool reports to its user.
#[derive(Debug)]
pub enum PoolEvent {
    /// A worker answered the handshake and can take tasks.
    Ready(WorkerId),
    /// A message from a ready worker (partials packed: see
    /// [`PackedPartial`]).
    Message(WorkerId, FromWorker<PackedPartial>),
    /// A worker is gone or unusable; the pool has killed and reaped it.
    Lost {
        /// Which.
        worker: WorkerId,
        /// Why, for a person (exit status, signal, bad frame).
        reason: String,
    },
}

/// Raw events from the pipe threads; opaque outside the pool.
enum PipeEvent {
    Message(WorkerId, FromWorker<PackedPartial>),
    /// A pipe is done for; `bool`: the worker is probably exiting (end of
    /// stream, write error) rather than alive and talking nonsense.
    Broken(WorkerId, String, bool),
}

/// What a worker said in the handshake.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// Identity within the pool.
    pub id: WorkerId,
    /// Process id (of the local process; for `--worker-cmd` the shell
    /// `exec`s the command, so it is the command's pid or the ssh client's).
    pub pid: u32,
    /// The worker's protocol version.
    pub protocol_version: u32,
    /// The worker build's version.
    pub version: String,
    /// Kernels it can run.
    pub kernels: Vec<String>,
}

struct Worker {
    child: Child,
    stdin: StdinWriter,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// Disconnected when the stderr thread has read the last line.
    stderr_done: Receiver<()>,
    info: Option<WorkerInfo>,
    handshake_deadline: Instant,
}

/// The running workers.
pub struct WorkerPool {
    config: PoolConfig,
    workers: BTreeMap<WorkerId, Worker>,
    events_tx: Sender<RawEvent>,
    events_rx: Receiver<RawEvent>,
    next_id: WorkerId,
    /// Replacements started so far, and the most allowed.
    replacements: usize,
    max_replacements: usize,
    /// Workers lost before their handshake since the last one that made it.
    failed_starts: u32,
    /// No replacement before this.
    next_replacement_at: Instant,
    /// Why the last worker was lost, for the final error.
    last_loss: Option<String>,
}

impl WorkerPool {
    /// Starts `config.workers` workers and waits for their handshakes.
    ///
    /// Fails when none of them answers, with the reason the first one gave
    /// (its exit status and the tail of its stderr), or at once when one
    /// speaks another protocol version. When only some fail, the pool
    /// goes on with the others and [`WorkerPool::replenish`] replaces the
    /// missing ones.
    pub fn start(config: &PoolConfig) -> Result<WorkerPool> {
        let (events_tx, events_rx) = unbounded();
        let mut pool = WorkerPool {
            config: config.clone(),
            workers: BTreeMap::new(),
            events_tx,
            events_rx,
            next_id: 0,
            replacements: 0,
            max_replacements: 4 * config.workers + 16,
            failed_starts: 0,
            next_replacement_at: Instant::now(),
            last_loss: None,
        };
        for _ in 0..config.workers {
            pool.spawn()?;
        }
        let mut first_failure: Option<String> = None;
        while pool.ready_count() < pool.len() {
            if let Some(sig) = crate::signals::pending() {
                return Err(Error::Interrupted(sig));
            }
            // Handshake deadlines are checked inside next_event.
            match pool.next_event(Duration::from_millis(100))? {
                Some(PoolEvent::Lost { worker, reason }) => {
                    first_failure
                        .get_or_insert(format!("worker {worker} failed at start: {reason}"));
                }
                Some(PoolEvent::Ready(_)) | Some(PoolEvent::Message(..)) | None => {}
            }
        }
        if pool.is_empty() {
            return Err(Error::WorkerStart {
                command: config.command.display(),
                reason: first_failure.unwrap_or_else(|| "no worker started".into()),
            });
        }
        if let Some(f) = first_failure {
            warn!(
                "{} of {} workers started; going on without the others ({f})",
                pool.len(),
                config.workers
            );
        }
        // Workers that failed at start count as failed starts, but the ones
        // that answered prove the binary works.
        pool.failed_starts = 0;
        Ok(pool)
    }

    /// Spawns one worker and sends it the handshake; it becomes ready when
    /// its answer arrives ([`PoolEvent::Ready`]).
    pub fn spawn(&mut self) -> Result<WorkerId> {
        let id = self.next_id;
        self.next_id += 1;
        let cmd = &self.config.command;
        let mut command = Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|e| Error::WorkerStart {
            command: cmd.display(),
            reason: e.to_string(),
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::WorkerStart {
                command: cmd.display(),
                reason: "pipes were not created".into(),
            });
        };
        enlarge_pipe(&stdout);
        let pid = child.id();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let (stderr_done_tx, stderr_done) = bounded(0);
        let events = self.events_tx.clone();
        let spawned = StdinWriter::start(
            format!("worker-{id}-writer"),
            stdin,
            QUEUE_DEPTH,
            move |why| {
                let _ = events.send(RawEvent(PipeEvent::Broken(id, why, true)));
            },
        )
        .and_then(|stdin| {
            spawn_reader(id, stdout, self.config.max_frame, self.events_tx.clone())?;
            spawn_stderr(pid, stderr, stderr_tail.clone(), stderr_done_tx)?;
            Ok(stdin)
        });
        let stdin = match spawned {
            Ok(stdin) => stdin,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::WorkerStart {
                    command: cmd.display(),
                    reason: format!("cannot start a pipe thread: {e}"),
                });
            }
        };
        // The queue is empty: this cannot fail but for a dead pipe, which
        // the reader reports as lost.
        let _ = send_message(
            &stdin,
            &ToWorker::Hello {
                protocol_version: PROTOCOL_VERSION,
                partial_columns: true,
            },
        );
        debug!("spawned worker {id} (pid {pid})");
        self.workers.insert(
            id,
            Worker {
                child,
                stdin,
                stderr_tail,
                stderr_done,
                info: None,
                handshake_deadline: Instant::now() + self.config.handshake_timeout,
            },
        );
        Ok(id)
    }

    /// Workers that have answered the handshake.
    pub fn ready(&self) -> impl Iterator<Item = &WorkerInfo> {
        self.workers.values().filter_map(|w| w.info.as_ref())
    }

    /// How many workers are ready.
    pub fn ready_count(&self) -> usize {
        self.ready().count()
    }

    /// Workers alive, ready or not.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether no worker is alive.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// The handshake of a ready worker.
    pub fn info(&self, id: WorkerId) -> Option<&WorkerInfo> {
        self.workers.get(&id).and_then(|w| w.info.as_ref())
    }

    /// Sends a message to a worker: written to its stdin now, or queued
    /// when the pipe is full; never blocks. A full queue means the worker
    /// stopped reading: it is killed and `Err` carries the reason.
    pub fn send(&mut self, id: WorkerId, msg: ToWorker) -> std::result::Result<(), String> {
        let Some(w) = self.workers.get(&id) else {
            return Err(format!("worker {id} is gone"));
        };
        match send_message(&w.stdin, &msg) {
            Ok(()) => Ok(()),
            Err(SendError::Full) => Err(self.kill(id, "stopped reading its stdin (queue full)")),
            Err(SendError::Closed) => Err(self.kill(id, "its stdin writer has stopped")),
        }
    }

    /// The next event, waiting at most `timeout`; `Ok(None)` on time-out.
    /// Handshakes, version checks and reaping happen here.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<PoolEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.check_handshakes() {
                return Ok(Some(ev));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let raw = match self
                .events_rx
                .recv_timeout(left.min(Duration::from_millis(250)))
            {
                Ok(raw) => raw,
                Err(_) if Instant::now() < deadline => continue,
                Err(_) => return Ok(None),
            };
            if let Some(ev) = self.handle(raw)? {
                return Ok(Some(ev));
            }
        }
    }

    /// The receiver of raw events, for `select!` in a caller that also
    /// waits on other channels; pass what it yields to
    /// [`WorkerPool::handle`]. Such a caller must also call
    /// [`WorkerPool::check_handshakes`] now and then (every 100 ms or so).
    pub fn receiver(&self) -> Receiver<RawEvent> {
        self.events_rx.clone()
    }

    /// Kills a worker that has not answered the handshake in time, if any.
    /// [`WorkerPool::next_event`] does this itself.
    pub fn check_handshakes(&mut self) -> Option<PoolEvent> {
        let now = Instant::now();
        let late = self
            .workers
            .iter()
            .find(|(_, w)| w.info.is_none() && w.handshake_deadline <= now)
            .map(|(&id, _)| id)?;
        let secs = self.config.handshake_timeout.as_secs_f64();
        let reason = self.lose(
            late,
            &format!("did not answer the handshake within {secs:.1}s"),
            Duration::ZERO,
        );
        Some(PoolEvent::Lost {
            worker: late,
            reason,
        })
    }

    /// Handles a raw event from [`WorkerPool::receiver`].
    pub fn handle(&mut self, raw: RawEvent) -> Result<Option<PoolEvent>> {
        match raw.0 {
            PipeEvent::Broken(id, why, exiting) => {
                if !self.workers.contains_key(&id) {
                    return Ok(None); // already given up
                }
                // A closed pipe usually means the worker is exiting: let it,
                // so the reason names its own status.
                let grace = if exiting { EXIT_GRACE } else { Duration::ZERO };
                let reason = self.lose(id, &why, grace);
                Ok(Some(PoolEvent::Lost { worker: id, reason }))
            }
            PipeEvent::Message(id, msg) => {
                let Some(w) = self.workers.get_mut(&id) else {
                    return Ok(None); // a late message from a worker given up
                };
                if w.info.is_some() {
                    return Ok(Some(PoolEvent::Message(id, msg)));
                }
                match msg {
                    FromWorker::Hello {
                        protocol_version,
                        worker_version,
                        pid,
                        kernels,
                    } => {
                        if protocol_version != PROTOCOL_VERSION {
                            let local_pid = w.child.id();
                            let reason = self.lose(
                                id,
                                &format!(
                                    "speaks protocol version {protocol_version}, not {PROTOCOL_VERSION}"
                                ),
                                Duration::ZERO,
                            );
                            debug!("{reason}");
                            return Err(Error::VersionMismatch {
                                command: self.config.command.display(),
                                pid: if pid != 0 { pid } else { local_pid },
                                worker: protocol_version,
                                coordinator: PROTOCOL_VERSION,
                            });
                        }
                        debug!(
                            "worker {id}: pid {pid}, version {worker_version}, kernels {kernels:?}"
                        );
                        w.info = Some(WorkerInfo {
                            id,
                            pid,
                            protocol_version,
                            version: worker_version,
                            kernels,
                        });
                        self.failed_starts = 0;
                        Ok(Some(PoolEvent::Ready(id)))
                    }
                    _ => {
                        let reason = self.lose(
                            id,
                            "sent a message before answering the handshake",
                            Duration::ZERO,
                        );
                        Ok(Some(PoolEvent::Lost { worker: id, reason }))
                    }
                }
            }
        }
    }

    /// Kills and reaps a worker; returns a description of why and how it
    /// ended, with the tail of its stderr. Whatever it sends afterwards is
    /// dropped.
    pub fn kill(&mut self, id: WorkerId, why: &str) -> String {
        self.lose(id, why, Duration::ZERO)
    }

    /// Sets how many replacements [`WorkerPool::replenish`] may start over
    /// the pool's life (default: 4 per worker + 16).
    pub fn set_max_replacements(&mut self, n: usize) {
        self.max_replacements = n;
    }

    /// Replacements started so far.
    pub fn replacements(&self) -> usize {
        self.replacements
    }

    /// Starts a replacement if fewer workers are alive than configured, at
    /// most one per call and one every 50 ms (doubling after each one that
    /// dies before its handshake); never blocks. `Ok(true)` when one was
    /// started.
    ///
    /// Stops replacing when the budget is spent or after
    /// [`MAX_FAILED_STARTS`] replacements in a row died before their
    /// handshake (a broken binary: failing fast beats a retry loop). It is
    /// an error only when no worker is left: the error names why the last
    /// one was lost.
    pub fn replenish(&mut self) -> Result<bool> {
        if self.workers.len() >= self.config.workers {
            return Ok(false);
        }
        let broken = self.failed_starts >= MAX_FAILED_STARTS;
        let spent = self.replacements >= self.max_replacements;
        if broken || spent {
            if !self.workers.is_empty() {
                return Ok(false);
            }
            let last = self.last_loss.clone().unwrap_or_default();
            return Err(if broken {
                Error::WorkerStart {
                    command: self.config.command.display(),
                    reason: format!(
                        "{} replacement workers in a row died before answering the handshake; the last: {last}",
                        self.failed_starts
                    ),
                }
            } else {
                Error::Workers(format!(
                    "every worker died and the {} replacements allowed were started; the last loss: {last}",
                    self.replacements
                ))
            });
        }
        let now = Instant::now();
        if now < self.next_replacement_at {
            return Ok(false);
        }
        self.replacements += 1;
        let gap = REPLACEMENT_GAP * (1u32 << self.failed_starts.min(5));
        self.next_replacement_at = now + gap;
        match self.spawn() {
            Ok(id) => {
                info!("started replacement worker {id}");
                Ok(true)
            }
            Err(e) => {
                self.failed_starts += 1;
                let why = e.to_string();
                warn!("cannot start a replacement worker: {why}");
                self.last_loss = Some(why);
                if self.workers.is_empty() && self.failed_starts >= MAX_FAILED_STARTS {
                    return Err(e);
                }
                Ok(false)
            }
        }
    }

    /// Time until [`WorkerPool::replenish`] may start the next
    /// replacement, when one is due; for a caller choosing how long to wait.
    pub fn replacement_due_in(&self) -> Option<Duration> {
        (self.workers.len() < self.config.workers).then(|| {
            self.next_replacement_at
                .saturating_duration_since(Instant::now())
        })
    }

    /// Removes, kills (unless it exits within `grace`) and reaps a worker.
    fn lose(&mut self, id: WorkerId, why: &str, grace: Duration) -> String {
        let Some(mut w) = self.workers.remove(&id) else {
            return why.to_string();
        };
        if w.info.is_none() {
            self.failed_starts += 1;
        }
        let pid = w.child.id();
        // It may have exited already (pipe closed): prefer its own status.
        let status = exit_status_by(&mut w.child, Instant::now() + grace);
        let status = match status {
            Some(s) => describe_status(s),
            None => {
                let _ = w.child.kill();
                match w.child.wait() {
                    Ok(_) => "killed by tally (SIGKILL)".to_string(),
                    Err(e) => format!("could not be reaped: {e}"),
                }
            }
        };
        // The process is gone: its stderr ends soon (unless a child of its
        // own holds it open).
        let _ = w.stderr_done.recv_timeout(STDERR_GRACE);
        let tail = tail_text(&w.stderr_tail);
        let mut reason = format!("worker pid {pid} {why}; {status}");
        warn!("{reason} (worker {id})");
        if !tail.is_empty() {
            reason.push_str("; its stderr ended with: ");
            reason.push_str(&tail);
        }
        self.last_loss = Some(reason.clone());
        reason
    }

    /// Asks every worker to finish and waits, up to `grace` in all, until
    /// each has said all it will: its stderr has ended. A tally-worker lets
    /// go of its pipes before it tears down what it holds (unmapping a 1 GB
    /// file takes 2.7 ms); another worker's pipes end when it exits. One
    /// that has not ended them by the deadline is killed. Those that ended
    /// them but are still exiting are reaped by a thread of their own, which
    /// kills any still running at the deadline (on Linux they also die with
    /// this process): a run's result does not wait for its workers' exits.
    pub fn shutdown(mut self, grace: Duration) {
        for w in self.workers.values() {
            let _ = send_message(&w.stdin, &ToWorker::Shutdown);
        }
        let deadline = Instant::now() + grace;
        let mut exiting = Vec::new();
        for (_, w) in std::mem::take(&mut self.workers) {
            let Worker {
                mut child,
                stdin,
                stderr_done,
                ..
            } = w;
            // The writer thread sends what is queued, then closes stdin.
            stdin.close();
            match stderr_done.recv_deadline(deadline) {
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                // Disconnected: the stderr thread has read the last line.
                _ => {
                    if let Ok(None) = child.try_wait() {
                        exiting.push(child);
                    }
                }
            }
        }
        if !exiting.is_empty() {
            reap_later(exiting, deadline);
        }
    }
}

/// Waits for each of `children` to exit, on a thread of its own; kills any
/// still running at `deadline`. Where no thread can be started, waits here.
fn reap_later(children: Vec<Child>, deadline: Instant) {
    let children = Arc::new(Mutex::new(children));
    let theirs = Arc::clone(&children);
    let spawned = thread::Builder::new()
        .name("worker-reaper".into())
        .spawn(move || reap(&theirs, deadline));
    if let Err(e) = spawned {
        debug!("cannot start a thread to reap workers ({e}); waiting for them");
        reap(&children, deadline);
    }
}

/// Waits for each child in `children` to exit; kills any still running at
/// `deadline`.
fn reap(children: &Mutex<Vec<Child>>, deadline: Instant) {
    let Ok(mut children) = children.lock() else {
        return;
    };
    for child in children.iter_mut() {
        if exit_status_by(child, deadline).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The exit status of `child` once it exits, checked every millisecond
/// until `deadline`; `None` if it is still running then (or cannot be
/// asked).
fn exit_status_by(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(1)),
            _ => return None,
        }
    }
}

/// A raw pipe event, opaque to callers; hand it back to
/// [`WorkerPool::handle`].
pub struct RawEvent(PipeEvent);

impl Drop for WorkerPool {
    fn drop(&mut self) {
        for (_, mut w) in std::mem::take(&mut self.workers) {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

/// A worker runs in its own process group (a Ctrl-C at the terminal reaches
/// the coordinator, which stops the workers). On Linux it gets SIGKILL when
/// the coordinator dies, even by SIGKILL; everywhere it exits on stdin EOF.
///
/// Linux sends the parent-death signal when the *thread* that spawned the
/// worker ends, so spawn (and replenish) from a thread that lives as long as
/// the pool.
fn die_with_parent(command: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: prctl and getppid are async-signal-safe and touch no
        // memory of ours.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The coordinator died between fork and prctl: the signal
                // will never come, so do not start at all.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("the coordinator is gone"));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// Bytes asked for as the capacity of a worker's stdout pipe: Linux's
/// default limit for an unprivileged process (`/proc/sys/fs/pipe-max-size`).
const PIPE_BYTES: libc::c_int = 1 << 20;

/// Asks the kernel to let the worker's stdout pipe hold [`PIPE_BYTES`]
/// instead of its default 64 KiB. A partial of 10,000 groups is about
/// 500 KiB: through a 64 KiB pipe the worker blocks and the reader thread
/// wakes eight times a task, and each switch costs both processes time
/// (Q2, one worker: 6% of all samples in the kernel's wake-up path). Only
/// a request: where it is refused (a lower limit, too many pipes of the
/// user's already enlarged, another OS) the pipe works as it is.
fn enlarge_pipe(stdout: &ChildStdout) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETPIPE_SZ on a pipe we own changes only its capacity;
        // fcntl touches no memory of ours.
        let got = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) };
        if got < 0 {
            debug!(
                "worker stdout pipe keeps its size: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stdout;
}

/// Encodes `msg` as a frame and sends it (see [`StdinWriter::send`]). A
/// message that does not encode is a bug of ours; the worker is given up
/// as if its pipe had closed.
fn send_message(stdin: &StdinWriter, msg: &ToWorker) -> std::result::Result<(), SendError> {
    let mut frame = Vec::new();
    if let Err(e) = encode_frame(&mut frame, msg) {
        warn!("cannot encode a message to a worker: {e}");
        stdin.close();
        return Err(SendError::Closed);
    }
    stdin.send(frame)
}

fn spawn_reader(
    id: WorkerId,
    stdout: ChildStdout,
    max_frame: u32,
    events: Sender<RawEvent>,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name(format!("worker-{id}-reader"))
        .spawn(move || {
            let mut frames = FrameReader::new(BufReader::with_capacity(1 << 16, stdout), max_frame);
            loop {
                let event = match frames.read_message::<FromWorker<PackedPartial>>() {
                    Ok(Some(msg)) => PipeEvent::Message(id, msg),
                    Ok(None) => PipeEvent::Broken(id, "closed its stdout".into(), true),
                    Err(e) => {
                        let ended = matches!(
                            e,
                            tally_protocol::Error::Truncated { .. } | tally_protocol::Error::Io(_)
                        );
                        PipeEvent::Broken(id, format!("sent a bad frame ({e})"), ended)
                    }
                };
                let last = matches!(event, PipeEvent::Broken(..));
                if events.send(RawEvent(event)).is_err() || last {
                    return;
                }
            }
        })
        .map(|_| ())
}

fn spawn_stderr(
    pid: u32,
    stderr: ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
    done: Sender<()>,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name(format!("worker-{pid}-stderr"))
        .spawn(move || {
            // Dropped when this thread ends: tells `lose` the tail is complete.
            let _done = done;
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                // Bounded: a line longer than 64 KiB is cut into pieces.
                match std::io::Read::take(&mut reader, 64 << 10).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                eprintln!("[worker {pid}] {text}");
                if let Ok(mut t) = tail.lock() {
                    if t.len() == STDERR_TAIL {
                        t.pop_front();
                    }
                    t.push_back(text.to_string());
                }
            }
        })
        .map(|_| ())
}

fn tail_text(tail: &Arc<Mutex<VecDeque<String>>>) -> String {
    match tail.lock() {
        Ok(t) => t.iter().cloned().collect::<Vec<_>>().join(" | "),
        Err(_) => String::new(),
    }
}

/// "exited with status 3", "killed by signal 9 (SIGKILL)".
pub fn describe_status(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig} ({})", signal_name(sig));
        }
    }
    match status.code() {
        Some(c) => format!("exited with status {c}"),
        None => "exited".to_string(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
    }
}
