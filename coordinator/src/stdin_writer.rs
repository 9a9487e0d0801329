//! Frames to a worker's stdin: written at once by the caller while the
//! pipe has room, handed to a thread of the worker's own when it has not.
//!
//! Why: the coordinator's loop sends a worker a task for each result it
//! gets back, and handing every frame to a writer thread cost a thread
//! wake-up a task. On a machine whose cores all run workers each wake-up
//! takes a core from a worker (Q1 at `-j2` on 2 cores: 273-295 context
//! switches a run through a writer thread, 168-179 with the write in the
//! loop). A task frame is about 120 bytes and a pipe holds 64 KiB, so the
//! pipe almost always has room; but a worker that stops reading must never
//! block the loop. So the pipe is non-blocking: the loop writes a frame
//! only when nothing is queued before it, and whatever the pipe does not
//! take (a full pipe, a big inline chunk in a stream) goes to the queue,
//! which the thread drains, waiting for room with `poll`. Frames leave in
//! the order they were sent.
//!
//! No crate offers this: a channel to a writer thread is what this
//! replaces, and an event loop (mio) would also take over the reading
//! side, which stays a blocking reader thread per worker.

use std::collections::VecDeque;
use std::io::Write;
use std::process::ChildStdin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

/// The largest frame the sender writes itself. Tasks and handshakes are a
/// few hundred bytes; a stream's batches of records (1 MiB) go to the
/// thread whole, as before: written in the caller, all but the first 64 KiB
/// would be copied into the queue.
const DIRECT_MAX: usize = 16 << 10;

/// Why a frame was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// More frames queued than allowed: the worker stopped reading.
    Full,
    /// The writer has stopped (a write failed, or it was closed).
    Closed,
}

/// The sending side; dropping it closes the pipe once the queue is written
/// (see [`StdinWriter::close`]).
pub(crate) struct StdinWriter {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when frames are queued or the writer is closed.
    wake: Condvar,
    /// Frames the queue may hold.
    max_queued: usize,
    /// Whether the sender may write to the pipe itself: it is non-blocking.
    direct: bool,
}

struct State {
    /// The pipe; `None` once the writer has stopped (it is closed when
    /// the last clone, held only while writing, goes).
    pipe: Option<Arc<ChildStdin>>,
    /// Frames the thread is to write, in order.
    queued: VecDeque<Vec<u8>>,
    /// The thread holds frames taken from the queue and is writing them:
    /// nothing may be written before them.
    writing: bool,
    /// No more frames will come.
    closed: bool,
}

impl StdinWriter {
    /// Starts the thread (named `name`) that writes what the pipe did not
    /// take at once; `on_error` is called once, from that thread, with the
    /// reason when a write fails. At most `max_queued` frames wait.
    pub(crate) fn start(
        name: String,
        stdin: ChildStdin,
        max_queued: usize,
        on_error: impl FnOnce(String) + Send + 'static,
    ) -> std::io::Result<StdinWriter> {
        // A pipe that stays blocking is written by the thread alone.
        let direct = match set_nonblocking(&stdin) {
            Ok(()) => true,
            Err(e) => {
                log::debug!(
                    "{name}: stdin stays blocking ({e}); every frame goes through the thread"
                );
                false
            }
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pipe: Some(Arc::new(stdin)),
                queued: VecDeque::new(),
                writing: false,
                closed: false,
            }),
            wake: Condvar::new(),
            max_queued,
            direct,
        });
        let theirs = Arc::clone(&shared);
        thread::Builder::new()
            .name(name)
            .spawn(move || drain(&theirs, on_error))?;
        Ok(StdinWriter { shared })
    }

    /// Sends one frame: written now if it is small, nothing is queued and
    /// the pipe has room, else queued for the thread. Never blocks on the
    /// pipe.
    pub(crate) fn send(&self, frame: Vec<u8>) -> Result<(), SendError> {
        let mut state = lock(&self.shared.state);
        if state.closed {
            return Err(SendError::Closed);
        }
        let mut written = 0;
        let direct = self.shared.direct && frame.len() <= DIRECT_MAX;
        if direct && state.queued.is_empty() && !state.writing {
            // The lock is held while writing: the thread cannot start on
            // the queue meanwhile.
            let Some(mut pipe) = state.pipe.as_deref() else {
                return Err(SendError::Closed);
            };
            while let Some(rest) = frame.get(written..).filter(|r| !r.is_empty()) {
                match pipe.write(rest) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // Full (or failing: the thread then reports why).
                    Err(_) => break,
                }
            }
            if written >= frame.len() {
                return Ok(());
            }
        } else if state.queued.len() >= self.shared.max_queued {
            return Err(SendError::Full);
        }
        // What the pipe did not take; the frame itself when that is all.
        let rest = match written {
            0 => frame,
            n => frame.get(n..).unwrap_or_default().to_vec(),
        };
        state.queued.push_back(rest);
        drop(state);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// No more frames: the thread writes those queued, then closes the pipe
    /// (the worker reads the end of its input).
    pub(crate) fn close(&self) {
        lock(&self.shared.state).closed = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for StdinWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// A lock on the state, whether or not a thread panicked holding it (the
/// state stays consistent between statements).
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The thread: writes queued frames until closed and drained, or a write
/// fails; then closes the pipe.
fn drain(shared: &Shared, on_error: impl FnOnce(String)) {
    loop {
        let (pipe, frames) = {
            let mut state = lock(&shared.state);
            while state.queued.is_empty() && !state.closed {
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if state.queued.is_empty() {
                // Closed and written: the pipe closes with its last handle.
                state.pipe = None;
                return;
            }
            let Some(pipe) = state.pipe.clone() else {
                return;
            };
            state.writing = true;
            (pipe, std::mem::take(&mut state.queued))
        };
        let written = frames.iter().try_for_each(|f| write_waiting(&pipe, f));
        let mut state = lock(&shared.state);
        state.writing = false;
        if let Err(e) = written {
            state.closed = true;
            state.pipe = None;
            state.queued.clear();
            drop(state);
            on_error(format!("stdin write failed: {e}"));
            return;
        }
    }
}

/// Writes all of `frame`, waiting for room in a non-blocking pipe.
fn write_waiting(mut pipe: &ChildStdin, mut frame: &[u8]) -> std::io::Result<()> {
    while !frame.is_empty() {
        match pipe.write(frame) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => frame = frame.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_writable(pipe),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits (up to 100 ms, then the caller tries again) until the pipe has
/// room or its reader is gone.
fn wait_writable(pipe: &ChildStdin) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let mut fd = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: poll reads and writes the one pollfd it is given.
        unsafe {
            libc::poll(&mut fd, 1, 100);
        }
    }
    #[cfg(not(unix))]
    {
        let _ = pipe;
        thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Makes our end of the pipe non-blocking (the worker's end is its own).
fn set_nonblocking(stdin: &ChildStdin) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let fd = stdin.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own changes only its flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = stdin;
        Err(std::io::Error::other("non-blocking pipes need Unix"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    /// A `cat` whose stdout we read: what reached its stdin, in order.
    fn cat() -> std::process::Child {
        Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[test]
    fn frames_arrive_whole_and_in_order_past_a_full_pipe() {
        let mut child = cat();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let writer = StdinWriter::start("test-writer".into(), stdin, 1000, |_| {}).unwrap();
        // 300 frames of 1 KiB and some of 200 KiB, more than a pipe holds
        // while nobody reads: the later ones queue.
        let mut want = Vec::new();
        for i in 0..300u32 {
            let len = if i % 50 == 7 { 200 << 10 } else { 1 << 10 };
            let frame: Vec<u8> = (0..len).map(|j| (i as usize * 31 + j) as u8).collect();
            want.extend_from_slice(&frame);
            writer.send(frame).unwrap();
        }
        drop(writer);
        let mut got = Vec::new();
        stdout.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes out of order");
        child.wait().unwrap();
    }

    #[test]
    fn a_worker_that_stops_reading_fills_the_queue_without_blocking() {
        // `sleep` never reads its stdin.
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let writer = StdinWriter::start("test-writer".into(), stdin, 4, |_| {}).unwrap();
        let mut full = None;
        for i in 0..1000 {
            if let Err(e) = writer.send(vec![0; 64 << 10]) {
                full = Some((i, e));
                break;
            }
        }
        let (i, e) = full.expect("the queue never filled");
        assert_eq!(e, SendError::Full);
        assert!(i < 100, "{i} frames of 64 KiB taken by a pipe nobody reads");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_dead_reader_is_reported_once() {
        let mut child = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        child.wait().unwrap();
        let (tx, rx) = mpsc::channel();
        let writer = StdinWriter::start("test-writer".into(), stdin, 4, move |why| {
            tx.send(why).unwrap();
        })
        .unwrap();
        // The first write may fail in the caller (then the frame is queued
        // and the thread meets the same error) or in the thread.
        let _ = writer.send(vec![1; 100]);
        let why = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(why.contains("stdin write failed"), "{why}");
        assert_eq!(writer.send(vec![1; 100]), Err(SendError::Closed));
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    }
}
