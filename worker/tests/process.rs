//! The real `tally-worker` binary, spoken to over its stdin and stdout with
//! the frames of `tally_protocol`: the conversation of PROTOCOL.md, and how
//! the process ends (shutdown, stdin closed, garbage: an exit status and a
//! message, never a panic).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use tally_worker::tally_protocol::frame::{self, FrameReader, DEFAULT_MAX_FRAME};
use tally_worker::tally_protocol::{
    AggFunc, Aggregate, ErrorKind, FromWorker, InputFormat, OnError, PackedPartial, Partial,
    QuerySpec, Source, TaskError, ToWorker, PROTOCOL_VERSION,
};

/// A running worker: write frames to `stdin`, read frames from `stdout`.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
}

impl Worker {
    fn start() -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tally-worker"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG")
            .spawn()
            .expect("spawn tally-worker");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        Worker {
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, msg: &ToWorker) {
        frame::write_message(self.stdin.as_mut().expect("stdin open"), msg).expect("send");
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("send raw");
        stdin.flush().unwrap();
    }

    fn recv(&mut self) -> FromWorker {
        // A frame reader reads exactly one frame's bytes, so a fresh one per
        // message loses nothing.
        FrameReader::new(&mut self.stdout, DEFAULT_MAX_FRAME)
            .read_message()
            .expect("a frame from the worker")
            .expect("the worker closed stdout early")
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (up to 5 s) for the exit; returns the status, the rest of
    /// stdout and stderr.
    fn finish(mut self) -> (ExitStatus, Vec<u8>, String) {
        self.close_stdin();
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the worker did not exit within 5 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut rest = Vec::new();
        self.stdout.read_to_end(&mut rest).unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            !stderr.contains("panicked"),
            "the worker panicked:\n{stderr}"
        );
        (status, rest, stderr)
    }
}

fn hello(w: &mut Worker) -> u32 {
    hello_reading(w, false)
}

/// [`hello`] from a coordinator that reads partials in columns or not.
fn hello_reading(w: &mut Worker, partial_columns: bool) -> u32 {
    w.send(&ToWorker::Hello {
        protocol_version: PROTOCOL_VERSION,
        partial_columns,
    });
    match w.recv() {
        FromWorker::Hello {
            protocol_version,
            pid,
            kernels,
            worker_version,
        } => {
            assert_eq!(protocol_version, PROTOCOL_VERSION);
            assert_eq!(pid, w.child.id(), "the pid is the process's");
            assert!(kernels.iter().any(|k| k == "delimited"), "{kernels:?}");
            assert!(!worker_version.is_empty());
            pid
        }
        other => panic!("expected hello, got {other:?}"),
    }
}

fn query(header: bool) -> QuerySpec {
    QuerySpec {
        kernel: "delimited".into(),
        input: InputFormat {
            delimiter: b';',
            quote: Some(b'"'),
            header,
            columns: if header {
                vec![]
            } else {
                vec!["station".into(), "temp".into()]
            },
            format: Default::default(),
        },
        group_by: vec!["station".into()],
        aggregates: vec![
            Aggregate {
                func: AggFunc::Count,
                column: None,
            },
            Aggregate {
                func: AggFunc::Sum,
                column: Some("temp".into()),
            },
        ],
        on_error: OnError::Fail,
        panes: None,
    }
}

fn inline(bytes: &[u8]) -> Source {
    Source::Inline {
        name: "<test>".into(),
        first_line: 10,
        first_byte: 0,
        bytes: ByteBuf::from(bytes.to_vec()),
    }
}

/// Prepares [`query`] without a header as query 1 and sends it one task,
/// `task_id`, on the inline `records`.
fn prepare_one_task(w: &mut Worker, task_id: u64, records: &[u8]) {
    w.send(&ToWorker::Prepare {
        query_id: 1,
        query: query(false),
    });
    w.send(&ToWorker::Task {
        task_id,
        query_id: 1,
        source: inline(records),
    });
}

/// (key, rows, exact sum) per group of a result, sorted.
fn groups(reply: &FromWorker, task: u64) -> Vec<(String, u64, f64)> {
    let FromWorker::Result(r) = reply else {
        panic!("expected a result for task {task}, got {reply:?}");
    };
    assert_eq!(r.task_id, task);
    let mut g: Vec<(String, u64, f64)> = r
        .partial
        .groups
        .iter()
        .map(|g| {
            let key = g.key[0]
                .as_ref()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default();
            (key, g.rows, g.values[0].sum())
        })
        .collect();
    g.sort_by(|a, b| a.0.cmp(&b.0));
    g
}

#[test]
fn handshake_prepare_tasks_shutdown() {
    let mut w = Worker::start();
    hello(&mut w);
    prepare_one_task(&mut w, 5, b"Oslo;-3.5\nHamburg;12.0\n\"Oslo\";1.5\n");
    let r = w.recv();
    assert_eq!(
        groups(&r, 5),
        [
            ("Hamburg".to_string(), 1, 12.0),
            ("Oslo".to_string(), 2, -2.0)
        ]
    );

    // A file range: the worker opens the file itself. With a header, in
    // two chunks cut in the middle of a record.
    let dir = std::env::temp_dir().join(format!("tally-worker-process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.csv");
    let text = b"station;temp\nA;1.0\nB;2.5\nA;3.0\n";
    std::fs::write(&path, text).unwrap();
    w.send(&ToWorker::Prepare {
        query_id: 2,
        query: query(true),
    });
    let cut = 20; // inside `B;2.5`
    for (task_id, start, end) in [(6, 0, cut), (7, cut, text.len() as u64)] {
        w.send(&ToWorker::Task {
            task_id,
            query_id: 2,
            source: Source::FileRange {
                path: path.to_str().unwrap().into(),
                start,
                end,
                start_in_quotes: false,
            },
        });
    }
    // Answers in order, one per task.
    assert_eq!(
        groups(&w.recv(), 6),
        [("A".to_string(), 1, 1.0), ("B".to_string(), 1, 2.5)]
    );
    assert_eq!(groups(&w.recv(), 7), [("A".to_string(), 1, 3.0)]);

    // A bad value: a task error of kind input, with the line.
    w.send(&ToWorker::Task {
        task_id: 8,
        query_id: 1,
        source: inline(b"Oslo;1\nOslo;warm\n"),
    });
    match w.recv() {
        FromWorker::TaskError(e) => {
            assert_eq!(e.task_id, 8);
            assert_eq!(e.kind, ErrorKind::Input);
            assert!(e.message.contains("warm"), "{}", e.message);
            let loc = e.location.expect("a location");
            assert_eq!(loc.path, "<test>");
            assert_eq!(loc.line, Some(11));
        }
        other => panic!("expected a task error, got {other:?}"),
    }

    // A missing file: a task error of kind io, and the worker goes on.
    w.send(&ToWorker::Task {
        task_id: 9,
        query_id: 2,
        source: Source::FileRange {
            path: dir.join("missing.csv").to_str().unwrap().into(),
            start: 0,
            end: 10,
            start_in_quotes: false,
        },
    });
    match w.recv() {
        FromWorker::TaskError(e) => {
            assert_eq!(e.task_id, 9);
            assert_eq!(e.kind, ErrorKind::Io, "{}", e.message);
            assert!(e.message.contains("missing.csv"), "{}", e.message);
        }
        other => panic!("expected a task error, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();

    w.send(&ToWorker::Shutdown);
    let (status, rest, stderr) = w.finish();
    assert!(status.success(), "{status}:\n{stderr}");
    assert!(rest.is_empty(), "nothing after shutdown: {rest:?}");
}

/// A coordinator that reads partials in columns gets them so: the same
/// groups, in bytes that only a columns reader decodes.
#[test]
fn partials_come_in_columns_when_the_coordinator_reads_them() {
    let records = b"Oslo;-3.5\nHamburg;12.0\n\"Oslo\";1.5\nBergen;\n";
    let mut frames = Vec::new();
    for columns in [false, true] {
        let mut w = Worker::start();
        hello_reading(&mut w, columns);
        prepare_one_task(&mut w, 3, records);
        let body = FrameReader::new(&mut w.stdout, DEFAULT_MAX_FRAME)
            .read_frame()
            .unwrap()
            .unwrap()
            .to_vec();
        frames.push(body);
        w.send(&ToWorker::Shutdown);
        let (status, _, stderr) = w.finish();
        assert!(status.success(), "{status}:\n{stderr}");
    }
    let [groups_form, columns_form] = [&frames[0], &frames[1]];
    assert_ne!(groups_form, columns_form);
    assert!(frame::decode::<FromWorker>(columns_form).is_err());
    let as_groups: FromWorker = frame::decode(groups_form).unwrap();
    let packed = |body: &[u8]| match frame::decode::<FromWorker<PackedPartial>>(body).unwrap() {
        FromWorker::Result(r) => r.partial,
        other => panic!("expected a result, got {other:?}"),
    };
    assert_eq!(packed(columns_form), packed(groups_form));
    assert_eq!(Partial::from(&packed(columns_form)).groups.len(), 3);
    assert_eq!(
        groups(&as_groups, 3),
        [
            ("Bergen".to_string(), 1, 0.0),
            ("Hamburg".to_string(), 1, 12.0),
            ("Oslo".to_string(), 2, -2.0)
        ]
    );
}

#[test]
fn shutdown_right_after_hello() {
    let mut w = Worker::start();
    hello(&mut w);
    w.send(&ToWorker::Shutdown);
    let (status, rest, stderr) = w.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(rest.is_empty());
}

#[test]
fn closing_stdin_exits_0() {
    let mut w = Worker::start();
    hello(&mut w);
    w.send(&ToWorker::Prepare {
        query_id: 1,
        query: query(false),
    });
    let (status, rest, stderr) = w.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(rest.is_empty());
}

#[test]
fn closing_stdin_before_anything_exits_0() {
    let w = Worker::start();
    let (status, rest, stderr) = w.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(rest.is_empty());
}

/// Sends `bytes` after a handshake; expects exit 1 and a message on stderr
/// that contains `what`.
fn garbage(bytes: &[u8], what: &str) {
    let mut w = Worker::start();
    let pid = hello(&mut w);
    w.send_raw(bytes);
    let (status, rest, stderr) = w.finish();
    assert_eq!(status.code(), Some(1), "{status}:\n{stderr}");
    assert!(rest.is_empty(), "no reply to garbage: {rest:?}");
    assert!(
        stderr.contains("tally-worker") && stderr.contains(&pid.to_string()),
        "the message names the worker and its pid:\n{stderr}"
    );
    assert!(stderr.contains(what), "expected `{what}` in:\n{stderr}");
}

#[test]
fn garbage_frame_exits_1_with_a_message() {
    garbage(&[3, 0, 0, 0, 0xc1, 0xc1, 0xc1], "does not decode");
}

#[test]
fn wrong_message_type_exits_1() {
    // A valid frame holding a worker's message, not a coordinator's. (A
    // worker's `hello` would decode: a coordinator's `hello` with fields it
    // does not know, which are ignored.)
    let mut bytes = Vec::new();
    frame::encode_frame(
        &mut bytes,
        &FromWorker::<Partial>::TaskError(TaskError {
            task_id: 1,
            kind: ErrorKind::Internal,
            message: "not for a worker".into(),
            location: None,
        }),
    )
    .unwrap();
    garbage(&bytes, "does not decode");
}

#[test]
fn oversized_frame_exits_1_without_allocating() {
    garbage(&u32::MAX.to_le_bytes(), "exceeds the maximum");
}

#[test]
fn stream_ending_inside_a_frame_exits_1() {
    let mut bytes = Vec::new();
    frame::encode_frame(&mut bytes, &ToWorker::Shutdown).unwrap();
    bytes.truncate(bytes.len() - 2);
    garbage(&bytes, "stream ended inside a frame");
}
