//! The serve loop: frames in, frames out, one message at a time.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;

use tally_protocol::frame::{self, FrameReader, DEFAULT_MAX_FRAME};
use tally_protocol::{
    ErrorKind, FromWorker, Source, TaskError, TaskResult, ToWorker, PROTOCOL_VERSION,
};

use crate::{Error, PreparedQuery, Registry, TaskFailure};

/// Answers a coordinator: reads [`ToWorker`] frames from `input` and writes
/// [`FromWorker`] frames to `output`, flushing after each, until `Shutdown`
/// or a clean end of `input`.
///
/// * `Hello` is answered with this worker's protocol version (even when the
///   coordinator's differs: the coordinator judges), version, pid and
///   kernel names. When it says the coordinator reads partials in columns
///   (`partial_columns`), results carry their partials so from then on.
/// * `Prepare` prepares the query with the kernel it names and keeps it by
///   id. A query that fails to prepare fails each of its tasks with the same
///   message.
/// * `Task` runs and is answered with a result or a task error.
///
/// A frame that cannot be read or decoded, or a reply that cannot be
/// written, ends the loop with an [`Error`]: the process should exit.
pub fn serve<R: Read, W: Write>(input: R, output: W, registry: &Registry) -> Result<(), Error> {
    serve_into(input, output, registry, &mut Queries::new())
}

/// The queries a worker has prepared, by id: their state (mapped files,
/// tables) outlives [`serve_into`], so that [`run_main`] can let go of the
/// coordinator before tearing it down.
type Queries = HashMap<u64, Result<Box<dyn PreparedQuery>, TaskFailure>>;

/// [`serve`], leaving the prepared queries in `queries`.
fn serve_into<R: Read, W: Write>(
    input: R,
    mut output: W,
    registry: &Registry,
    queries: &mut Queries,
) -> Result<(), Error> {
    let mut reader = FrameReader::new(input, DEFAULT_MAX_FRAME);
    let mut out = Vec::new();
    // Whether the coordinator reads partials in the columns form (its
    // `Hello` says so): cheaper to write and to read than one MessagePack
    // value per field of every group.
    let mut columns = false;
    loop {
        // The query whose prepared state gets this reply's partial back.
        let mut recycle_to = None;
        let Some(msg) = reader.read_message::<ToWorker>()? else {
            log::debug!("input closed; exiting");
            break;
        };
        let reply = match msg {
            ToWorker::Hello {
                protocol_version,
                partial_columns,
            } => {
                columns = partial_columns;
                if protocol_version != PROTOCOL_VERSION {
                    log::warn!(
                        "coordinator speaks protocol {protocol_version}, this worker {PROTOCOL_VERSION}"
                    );
                }
                FromWorker::Hello {
                    protocol_version: PROTOCOL_VERSION,
                    worker_version: env!("CARGO_PKG_VERSION").to_string(),
                    pid: std::process::id(),
                    kernels: registry.names(),
                }
            }
            ToWorker::Prepare { query_id, query } => {
                let prepared = match registry.get(&query.kernel) {
                    Some(kernel) => kernel.prepare(&query),
                    None => Err(TaskFailure::new(
                        ErrorKind::Query,
                        format!(
                            "unknown kernel `{}`; this worker has: {}",
                            query.kernel,
                            registry.names().join(", ")
                        ),
                    )),
                };
                if let Err(e) = &prepared {
                    log::debug!("query {query_id} failed to prepare: {e}");
                }
                queries.insert(query_id, prepared);
                continue;
            }
            ToWorker::Task {
                task_id,
                query_id,
                source,
            } => {
                log::debug!("task {task_id} of query {query_id}: {}", describe(&source));
                recycle_to = Some(query_id);
                let outcome = match queries.get_mut(&query_id) {
                    Some(Ok(prepared)) => prepared.run(&source),
                    Some(Err(failure)) => Err(failure.clone()),
                    None => Err(TaskFailure::new(
                        ErrorKind::Internal,
                        format!("query {query_id} was not prepared on this worker"),
                    )),
                };
                match outcome {
                    Ok(mut o) => FromWorker::Result(TaskResult {
                        task_id,
                        partial: {
                            o.partial.set_columns(columns);
                            o.partial
                        },
                        counters: o.counters,
                        bad_samples: o.bad_samples,
                    }),
                    Err(f) => FromWorker::TaskError(TaskError {
                        task_id,
                        kind: f.kind,
                        message: f.message,
                        location: f.location,
                    }),
                }
            }
            ToWorker::Shutdown => {
                log::debug!("shutdown");
                break;
            }
        };
        out.clear();
        frame::encode_frame(&mut out, &reply)?;
        output.write_all(&out)?;
        output.flush()?;
        if let (FromWorker::Result(result), Some(query_id)) = (reply, recycle_to) {
            if let Some(Ok(prepared)) = queries.get_mut(&query_id) {
                prepared.recycle(result.partial);
            }
        }
    }
    output.flush()?;
    Ok(())
}

/// A task's source in a few words, for logs.
fn describe(source: &Source) -> String {
    match source {
        Source::FileRange {
            path, start, end, ..
        } => format!("{path} bytes {start}..{end}"),
        Source::Inline { name, bytes, .. } => format!("{name}, {} inline bytes", bytes.len()),
    }
}

/// The whole of a worker's `main`: installs the logger (stderr, `RUST_LOG`,
/// default `warn`), serves stdin/stdout with `registry`, and turns the
/// outcome into an exit code. A broken pipe on stdout (the coordinator went
/// away) is a clean exit; any other error is printed to stderr and exits 1.
/// Last, it points stdout and stderr at `/dev/null` and only then drops the
/// prepared queries (unmapping their files), at `SCHED_IDLE`: the
/// coordinator, which waits for the end of those pipes, goes on meanwhile.
/// The calling thread stays at that priority and the process's stdout and
/// stderr stay pointed at `/dev/null`: return from `main` with the code.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     tally_worker::run_main(tally_worker::Registry::with_builtins())
/// }
/// ```
pub fn run_main(registry: Registry) -> ExitCode {
    tally_protocol::allocator::keep_freed_memory();
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .target(env_logger::Target::Stderr)
        .try_init();
    let stdin = io::stdin().lock();
    let mut queries = Queries::new();
    let code = match serve_into(
        BufReader::new(stdin),
        BufWriter::new(raw_stdout()),
        &registry,
        &mut queries,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "tally-worker (pid {}): {e}; the coordinator must restart this worker",
                std::process::id()
            );
            ExitCode::FAILURE
        }
    };
    // Everything this worker had to say is said. The coordinator waits for
    // the end of its stdout and stderr, not for its exit: let go of both
    // before the prepared queries are torn down, which unmaps their files
    // (2.7 ms for a 1 GB file, on the coordinator's clock when it waited).
    release_stdio();
    yield_to_others();
    drop(queries);
    code
}

/// Where replies go: stdout, unbuffered by std.
///
/// Why not `io::stdout()`: std's stdout is line-buffered, and a frame is
/// binary, so a reply that holds a newline byte went out in two writes
/// (up to its last newline, then the rest on the flush), and the
/// coordinator's reader woke for each: Q1's partials (38 KB) went out as
/// 37,942 and 811 bytes. A duplicate of fd 1 writes each frame whole, in
/// one `write`. It is closed when [`serve_into`] returns, before
/// [`release_stdio`] lets go of the pipe. Where fd 1 cannot be duplicated
/// (or off Unix), the line-buffered stdout it is.
fn raw_stdout() -> Box<dyn Write> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        match io::stdout().as_fd().try_clone_to_owned() {
            Ok(fd) => return Box::new(std::fs::File::from(fd)),
            Err(e) => log::debug!("cannot duplicate stdout ({e}); writing through std's"),
        }
    }
    Box::new(io::stdout().lock())
}

/// Lowers this thread to `SCHED_IDLE`: what is left to do (unmapping,
/// freeing) then runs only where no other work wants the processor, so it
/// does not hold up the coordinator's last steps. Best effort.
fn yield_to_others() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler reads `param` and changes only this
        // thread's scheduling class.
        unsafe {
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
        }
    }
}

/// Points stdout and stderr at `/dev/null`, so that the pipes to the
/// coordinator end (when nothing else holds them) while this process goes
/// on. Best effort: where `/dev/null` cannot be opened, nothing changes and
/// the pipes end when the process exits.
fn release_stdio() {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
            return;
        };
        for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
            // SAFETY: dup2 only replaces the descriptor `fd` with a copy of
            // `null`, which stays open across the call; no Rust object owns
            // fd 1 or 2 (std's handles to them write through the number,
            // and now reach /dev/null).
            unsafe {
                libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_bytes::ByteBuf;
    use tally_protocol::{AggFunc, Aggregate, QuerySpec};

    fn query(kernel: &str) -> QuerySpec {
        QuerySpec {
            kernel: kernel.into(),
            aggregates: vec![Aggregate {
                func: AggFunc::Mean,
                column: Some("temp".into()),
            }],
            ..QuerySpec::one_brc()
        }
    }

    fn inline(bytes: &[u8]) -> Source {
        Source::Inline {
            name: "<stdin>".into(),
            first_line: 1,
            first_byte: 0,
            bytes: ByteBuf::from(bytes.to_vec()),
        }
    }

    /// Serves `messages` (without Shutdown unless given) and returns replies.
    fn exchange(messages: &[ToWorker]) -> (Result<(), Error>, Vec<FromWorker>) {
        let mut input = Vec::new();
        for m in messages {
            frame::encode_frame(&mut input, m).unwrap();
        }
        let mut output = Vec::new();
        let res = serve(&input[..], &mut output, &Registry::with_builtins());
        let mut reader = FrameReader::new(&output[..], DEFAULT_MAX_FRAME);
        let mut replies = Vec::new();
        while let Some(m) = reader.read_message().unwrap() {
            replies.push(m);
        }
        (res, replies)
    }

    #[test]
    fn hello_prepare_task_shutdown() {
        let (res, replies) = exchange(&[
            ToWorker::Hello {
                protocol_version: 99,
                partial_columns: false,
            },
            ToWorker::Prepare {
                query_id: 1,
                query: query("delimited"),
            },
            ToWorker::Task {
                task_id: 7,
                query_id: 1,
                source: inline(b"Hamburg;12.0\nOslo;-3.5\nHamburg;8.0\n"),
            },
            ToWorker::Task {
                task_id: 8,
                query_id: 1,
                source: inline(b"Oslo;cold\n"),
            },
            ToWorker::Task {
                task_id: 9,
                query_id: 2,
                source: inline(b""),
            },
            ToWorker::Shutdown,
            ToWorker::Hello {
                protocol_version: 1,
                partial_columns: false,
            },
        ]);
        res.unwrap();
        assert_eq!(replies.len(), 4, "nothing after shutdown: {replies:?}");
        match &replies[0] {
            FromWorker::Hello {
                protocol_version,
                worker_version,
                pid,
                kernels,
            } => {
                assert_eq!(*protocol_version, PROTOCOL_VERSION);
                assert_eq!(worker_version, env!("CARGO_PKG_VERSION"));
                assert_eq!(*pid, std::process::id());
                assert_eq!(kernels, &["delimited"]);
            }
            other => panic!("expected hello, got {other:?}"),
        }
        match &replies[1] {
            FromWorker::Result(r) => {
                assert_eq!(r.task_id, 7);
                assert_eq!(r.counters.records, 3);
                assert_eq!(r.partial.groups.len(), 2);
                let hamburg = r
                    .partial
                    .groups
                    .iter()
                    .find(|g| g.key == vec![Some(ByteBuf::from(b"Hamburg".to_vec()))])
                    .unwrap();
                assert_eq!(hamburg.values[0].mean(), Some(10.0));
            }
            other => panic!("expected result, got {other:?}"),
        }
        match &replies[2] {
            FromWorker::TaskError(e) => {
                assert_eq!(e.task_id, 8);
                assert_eq!(e.kind, ErrorKind::Input);
                assert_eq!(e.message, "column `temp`: `cold` is not a number");
                assert_eq!(e.location.as_ref().and_then(|l| l.line), Some(1));
            }
            other => panic!("expected task error, got {other:?}"),
        }
        match &replies[3] {
            FromWorker::TaskError(e) => {
                assert_eq!(e.task_id, 9);
                assert_eq!(e.kind, ErrorKind::Internal);
            }
            other => panic!("expected task error, got {other:?}"),
        }
    }

    #[test]
    fn failed_prepare_fails_each_task() {
        let (res, replies) = exchange(&[
            ToWorker::Prepare {
                query_id: 1,
                query: query("nope"),
            },
            ToWorker::Task {
                task_id: 1,
                query_id: 1,
                source: inline(b"a;1\n"),
            },
            ToWorker::Task {
                task_id: 2,
                query_id: 1,
                source: inline(b"a;1\n"),
            },
        ]);
        // Clean end of input without Shutdown is fine too.
        res.unwrap();
        assert_eq!(replies.len(), 2);
        for (r, id) in replies.iter().zip([1, 2]) {
            match r {
                FromWorker::TaskError(e) => {
                    assert_eq!(e.task_id, id);
                    assert_eq!(e.kind, ErrorKind::Query);
                    assert_eq!(
                        e.message,
                        "unknown kernel `nope`; this worker has: delimited"
                    );
                }
                other => panic!("expected task error, got {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_frame_is_an_error() {
        let mut input = Vec::new();
        frame::encode_frame(
            &mut input,
            &ToWorker::Hello {
                protocol_version: 1,
                partial_columns: false,
            },
        )
        .unwrap();
        input.extend_from_slice(&[3, 0, 0, 0, 0xc1, 0xc1, 0xc1]);
        let mut output = Vec::new();
        let err = serve(&input[..], &mut output, &Registry::with_builtins()).unwrap_err();
        assert!(matches!(
            err,
            Error::Protocol(tally_protocol::Error::Decode { .. })
        ));
        assert!(!err.is_broken_pipe());
        // The hello was answered before.
        assert!(!output.is_empty());
    }

    #[test]
    fn broken_pipe_is_recognised() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut input = Vec::new();
        frame::encode_frame(
            &mut input,
            &ToWorker::Hello {
                protocol_version: 1,
                partial_columns: false,
            },
        )
        .unwrap();
        let err = serve(&input[..], Closed, &Registry::with_builtins()).unwrap_err();
        assert!(err.is_broken_pipe(), "{err}");
    }
}
