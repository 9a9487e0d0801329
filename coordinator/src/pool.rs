//! The worker pool: spawns `tally-worker` processes, shakes hands, and turns
//! each worker's pipes into events on one channel.
//!
//! Each worker has three threads: a writer that drains a bounded queue of
//! messages into the worker's stdin, a reader that always drains its stdout
//! (so the worker never blocks on a full pipe), and one that forwards its
//! stderr to ours and keeps the last lines for error messages.
//!
//! **Invariant:** a worker never talks to another worker; every message
//! goes through this pool.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use log::{debug, warn};
use tally_protocol::frame::{encode_frame, FrameReader};
use tally_protocol::{FromWorker, ToWorker, PROTOCOL_VERSION};

use crate::config::PoolConfig;
use crate::error::{Error, Result};

/// A worker's identity within a run; replacements get new ids.
pub type WorkerId = u64;

/// Lines of a worker's stderr kept for error messages.
const STDERR_TAIL: usize = 20;
/// Messages queued for a worker's writer thread.
const QUEUE_DEPTH: usize = 16;

/// What the pool reports to its user.
#[derive(Debug)]
pub enum PoolEvent {
    /// A worker answered the handshake and can take tasks.
    Ready(WorkerId),
    /// A message from a ready worker.
    Message(WorkerId, FromWorker),
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
    Message(WorkerId, FromWorker),
    Broken(WorkerId, String),
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
    tx: Sender<ToWorker>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
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
}

impl WorkerPool {
    /// Starts `config.workers` workers and waits for every handshake.
    /// Fails with the worker's stderr if one cannot start or answer.
    pub fn start(config: &PoolConfig) -> Result<WorkerPool> {
        let (events_tx, events_rx) = unbounded();
        let mut pool = WorkerPool {
            config: config.clone(),
            workers: BTreeMap::new(),
            events_tx,
            events_rx,
            next_id: 0,
        };
        for _ in 0..config.workers {
            pool.spawn()?;
        }
        let deadline = Instant::now() + config.handshake_timeout;
        while pool.ready_count() < config.workers {
            if let Some(sig) = crate::signals::pending() {
                return Err(Error::Interrupted(sig));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match pool.next_event(left)? {
                Some(PoolEvent::Ready(_)) => {}
                Some(PoolEvent::Lost { worker, reason }) => {
                    return Err(Error::WorkerStart {
                        command: config.command.display(),
                        reason: format!("worker {worker} failed at start: {reason}"),
                    })
                }
                Some(PoolEvent::Message(id, _)) => {
                    return Err(Error::Workers(format!(
                        "worker {id} sent a message before the handshake"
                    )))
                }
                None => {}
            }
        }
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
        let pid = child.id();
        let (tx, rx) = bounded(QUEUE_DEPTH);
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let spawned = spawn_writer(id, stdin, rx, self.events_tx.clone())
            .and_then(|_| {
                spawn_reader(id, stdout, self.config.max_frame, self.events_tx.clone())
            })
            .and_then(|_| spawn_stderr(pid, stderr, stderr_tail.clone()));
        if let Err(e) = spawned {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::WorkerStart {
                command: cmd.display(),
                reason: format!("cannot start a pipe thread: {e}"),
            });
        }
        // The queue is empty: this cannot fail but for a dead writer, which
        // the reader reports as lost.
        let _ = tx.try_send(ToWorker::Hello {
            protocol_version: PROTOCOL_VERSION,
        });
        debug!("spawned worker {id} (pid {pid})");
        self.workers.insert(
            id,
            Worker {
                child,
                tx,
                stderr_tail,
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

    /// Queues a message for a worker. A full queue means the worker stopped
    /// reading: it is killed and `Err` carries the reason.
    pub fn send(&mut self, id: WorkerId, msg: ToWorker) -> std::result::Result<(), String> {
        let Some(w) = self.workers.get(&id) else {
            return Err(format!("worker {id} is gone"));
        };
        match w.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                Err(self.kill(id, "stopped reading its stdin (queue full)"))
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(self.kill(id, "its stdin writer has stopped"))
            }
        }
    }

    /// The next event, waiting at most `timeout`; `Ok(None)` on time-out.
    /// Handshakes, version checks and reaping happen here.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<PoolEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.check_handshake_deadlines() {
                return Ok(Some(ev));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let raw = match self.events_rx.recv_timeout(left.min(Duration::from_millis(250))) {
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
    /// [`WorkerPool::handle`].
    pub fn receiver(&self) -> Receiver<RawEvent> {
        self.events_rx.clone()
    }

    fn check_handshake_deadlines(&mut self) -> Option<PoolEvent> {
        let now = Instant::now();
        let late = self
            .workers
            .iter()
            .find(|(_, w)| w.info.is_none() && w.handshake_deadline <= now)
            .map(|(&id, _)| id)?;
        let secs = self.config.handshake_timeout.as_secs_f64();
        let reason = self.kill(late, &format!("did not answer the handshake within {secs:.1}s"));
        Some(PoolEvent::Lost {
            worker: late,
            reason,
        })
    }

    /// Handles a raw event from [`WorkerPool::receiver`].
    pub fn handle(&mut self, raw: RawEvent) -> Result<Option<PoolEvent>> {
        match raw.0 {
            PipeEvent::Broken(id, why) => {
                if !self.workers.contains_key(&id) {
                    return Ok(None); // already given up
                }
                let reason = self.kill(id, &why);
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
                            self.kill(id, "protocol version mismatch");
                            return Err(Error::VersionMismatch {
                                command: self.config.command.display(),
                                pid: if pid != 0 { pid } else { local_pid },
                                worker: protocol_version,
                                coordinator: PROTOCOL_VERSION,
                            });
                        }
                        debug!("worker {id}: pid {pid}, version {worker_version}, kernels {kernels:?}");
                        w.info = Some(WorkerInfo {
                            id,
                            pid,
                            protocol_version,
                            version: worker_version,
                            kernels,
                        });
                        Ok(Some(PoolEvent::Ready(id)))
                    }
                    _ => {
                        let reason = self.kill(id, "sent a message before answering the handshake");
                        Ok(Some(PoolEvent::Lost { worker: id, reason }))
                    }
                }
            }
        }
    }

    /// Kills and reaps a worker; returns a description of why and how it
    /// ended, with the tail of its stderr.
    pub fn kill(&mut self, id: WorkerId, why: &str) -> String {
        let Some(mut w) = self.workers.remove(&id) else {
            return why.to_string();
        };
        let pid = w.child.id();
        // It may have exited already (pipe closed): prefer its own status.
        let status = match w.child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                // Give a worker whose stdout closed a moment to finish exiting,
                // so the message names its real exit status, not our kill.
                let mut status = None;
                for _ in 0..20 {
                    if let Ok(Some(s)) = w.child.try_wait() {
                        status = Some(s);
                        break;
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                status
            }
        };
        let status = match status {
            Some(s) => describe_status(s),
            None => {
                let _ = w.child.kill();
                match w.child.wait() {
                    Ok(_) => "killed by tally".to_string(),
                    Err(e) => format!("could not be reaped: {e}"),
                }
            }
        };
        let tail = tail_text(&w.stderr_tail);
        warn!("worker {id} (pid {pid}) lost: {why}; {status}");
        let mut reason = format!("worker pid {pid} {why}; {status}");
        if !tail.is_empty() {
            reason.push_str("; its stderr ended with: ");
            reason.push_str(&tail);
        }
        reason
    }

    /// Asks every worker to finish, waits up to `grace` for them to exit,
    /// then kills what is left. Nothing remains running afterwards.
    pub fn shutdown(mut self, grace: Duration) {
        for w in self.workers.values() {
            let _ = w.tx.try_send(ToWorker::Shutdown);
        }
        let deadline = Instant::now() + grace;
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for id in ids {
            if let Some(mut w) = self.workers.remove(&id) {
                drop(w.tx);
                loop {
                    match w.child.try_wait() {
                        Ok(Some(_)) | Err(_) => break,
                        Ok(None) if Instant::now() >= deadline => {
                            let _ = w.child.kill();
                            let _ = w.child.wait();
                            break;
                        }
                        Ok(None) => thread::sleep(Duration::from_millis(1)),
                    }
                }
            }
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
fn die_with_parent(command: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

fn spawn_writer(
    id: WorkerId,
    stdin: ChildStdin,
    rx: Receiver<ToWorker>,
    events: Sender<RawEvent>,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name(format!("worker-{id}-writer"))
        .spawn(move || {
            let mut out = BufWriter::with_capacity(1 << 16, stdin);
            let mut buf = Vec::new();
            while let Ok(msg) = rx.recv() {
                buf.clear();
                let result = encode_frame(&mut buf, &msg)
                    .map_err(|e| e.to_string())
                    .and_then(|_| out.write_all(&buf).map_err(|e| e.to_string()))
                    .and_then(|_| {
                        if rx.is_empty() {
                            out.flush().map_err(|e| e.to_string())
                        } else {
                            Ok(())
                        }
                    });
                if let Err(e) = result {
                    let _ = events.send(RawEvent(PipeEvent::Broken(
                        id,
                        format!("stdin write failed: {e}"),
                    )));
                    return;
                }
            }
        })
        .map(|_| ())
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
                let event = match frames.read_message::<FromWorker>() {
                    Ok(Some(msg)) => PipeEvent::Message(id, msg),
                    Ok(None) => PipeEvent::Broken(id, "closed its stdout".into()),
                    Err(e) => PipeEvent::Broken(id, format!("sent a bad frame ({e})")),
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
) -> std::io::Result<()> {
    thread::Builder::new()
        .name(format!("worker-{pid}-stderr"))
        .spawn(move || {
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
    // Let the stderr thread catch the last lines of a worker that just died.
    thread::sleep(Duration::from_millis(5));
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
