//! The messages, one enum per direction.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::{Partial, QuerySpec};

/// Coordinator to worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToWorker {
    /// First message: the coordinator's protocol version. The worker answers
    /// with [`FromWorker::Hello`].
    Hello {
        /// [`crate::PROTOCOL_VERSION`] of the coordinator.
        protocol_version: u32,
        /// Whether the coordinator reads partials in the columns form
        /// ([`crate::packed::Columns`]) as well as in the groups form. A
        /// worker may send either then; without it (absent: `false`), the
        /// groups form only. Left out when `false`, so that such a `Hello`
        /// is the same bytes as before the field existed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        partial_columns: bool,
    },
    /// Prepare a query once; tasks refer to it by `query_id`. No answer: a
    /// query that cannot be prepared fails each of its tasks.
    Prepare {
        /// Identifier chosen by the coordinator.
        query_id: u64,
        /// The query.
        query: QuerySpec,
    },
    /// Aggregate one chunk. The answer is [`FromWorker::Result`] or
    /// [`FromWorker::TaskError`] with the same `task_id`.
    Task {
        /// Identifier chosen by the coordinator, unique within a run.
        task_id: u64,
        /// A prepared query.
        query_id: u64,
        /// Where the records are.
        source: Source,
    },
    /// Finish: the worker exits after answering what it holds.
    Shutdown,
}

/// Where a task's records are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A byte range of a file the worker opens itself. The task owns the
    /// records that start in `[start, end)`; the last one may run past `end`.
    FileRange {
        /// Path, as the worker can open it.
        path: String,
        /// First byte of the range.
        start: u64,
        /// One past the last byte of the range.
        end: u64,
        /// Whether `start` lies inside a quoted field (an odd number of quote
        /// bytes before it). The coordinator learns this from the quote
        /// counts of the chunks before, and re-sends a task whose guess was
        /// wrong.
        start_in_quotes: bool,
    },
    /// Whole records carried in the message (stdin, streams, remote
    /// workers without the file).
    Inline {
        /// Name for error messages (`"<stdin>"`).
        name: String,
        /// Line number of the first record, for error messages.
        first_line: u64,
        /// Byte offset of the first record in the whole input, for error
        /// messages. Left out of the frame when 0 (a version 1 frame: an
        /// older worker reads it as before, and ignores the key when sent).
        #[serde(default, skip_serializing_if = "is_zero")]
        first_byte: u64,
        /// The records; as MessagePack bin.
        bytes: ByteBuf,
    },
}

/// Whether a count is 0 (left out of a frame).
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Worker to coordinator.
///
/// `P` is how a result's partial is held: [`Partial`] (what workers build
/// and send), or [`crate::PackedPartial`], which decodes the same bytes
/// without allocating per group (what the coordinator reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromWorker<P = Partial> {
    /// Answer to [`ToWorker::Hello`].
    Hello {
        /// [`crate::PROTOCOL_VERSION`] of the worker.
        protocol_version: u32,
        /// The worker build's version (free text).
        worker_version: String,
        /// Process id, for logs and error messages.
        pid: u32,
        /// Kernel names it can run.
        kernels: Vec<String>,
    },
    /// A task's partial aggregate.
    Result(TaskResult<P>),
    /// A task that failed.
    TaskError(TaskError),
}

/// A finished task; `P` as in [`FromWorker`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult<P = Partial> {
    /// The task's identifier.
    pub task_id: u64,
    /// The aggregate over the task's records.
    pub partial: P,
    /// What was read.
    pub counters: Counters,
    /// The first few records left out under [`crate::OnError::Skip`].
    pub bad_samples: Vec<Location>,
}

/// What a task read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Records aggregated.
    pub records: u64,
    /// Bytes of the records the task owned.
    pub bytes: u64,
    /// Records left out because a value did not parse.
    pub bad_records: u64,
    /// Quote bytes in the task's byte range (file sources with quoting):
    /// the coordinator sums these to know whether a later chunk starts
    /// inside quotes.
    pub quotes: u64,
    /// Whether the task was parsed with `start_in_quotes` (echoed).
    pub start_in_quotes: bool,
    /// The largest event time in the task, in milliseconds since the
    /// epoch (queries with [`crate::PaneSpec`] only; absent on the wire
    /// otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_event_ms: Option<i64>,
}

/// A failed task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskError {
    /// The task's identifier.
    pub task_id: u64,
    /// Whose fault.
    pub kind: ErrorKind,
    /// What went wrong, for a person.
    pub message: String,
    /// Where, when known.
    pub location: Option<Location>,
}

/// Classes of task failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The data is bad (a value that does not parse, a record too long).
    /// Retrying elsewhere gives the same answer.
    Input,
    /// The query does not fit the data (unknown column, unknown kernel).
    Query,
    /// The worker could not read the source (missing file, permissions).
    Io,
    /// A bug or resource failure in the worker; another worker may succeed.
    Internal,
}

/// A place in the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// File path or stream name.
    pub path: String,
    /// 1-based line number, when known.
    pub line: Option<u64>,
    /// Byte offset of the record's first byte.
    pub byte_offset: u64,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line} (byte {})", self.path, self.byte_offset),
            None => write!(f, "{} (byte {})", self.path, self.byte_offset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode_frame, FrameReader, DEFAULT_MAX_FRAME};
    use crate::{AggFunc, Aggregate, GroupState, InputFormat, NumState, OnError};

    fn round_trip<T>(msg: &T) -> T
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        let mut wire = Vec::new();
        encode_frame(&mut wire, msg).unwrap();
        FrameReader::new(&wire[..], DEFAULT_MAX_FRAME)
            .read_message()
            .unwrap()
            .unwrap()
    }

    #[test]
    fn every_message_round_trips() {
        let query = QuerySpec {
            kernel: "delimited".into(),
            input: InputFormat {
                delimiter: b';',
                quote: Some(b'"'),
                header: false,
                columns: vec!["station".into(), "temp".into()],
                format: Default::default(),
            },
            group_by: vec!["station".into()],
            aggregates: vec![Aggregate {
                func: AggFunc::Mean,
                column: Some("temp".into()),
            }],
            on_error: OnError::Skip,
            panes: None,
        };
        let to = [
            ToWorker::Hello {
                protocol_version: 1,
                partial_columns: false,
            },
            ToWorker::Prepare { query_id: 3, query },
            ToWorker::Task {
                task_id: 9,
                query_id: 3,
                source: Source::FileRange {
                    path: "/data/m.txt".into(),
                    start: 0,
                    end: 1 << 40,
                    start_in_quotes: true,
                },
            },
            ToWorker::Task {
                task_id: 10,
                query_id: 3,
                source: Source::Inline {
                    name: "<stdin>".into(),
                    first_line: 1,
                    first_byte: 0,
                    bytes: ByteBuf::from(b"a;1.0\n".to_vec()),
                },
            },
            ToWorker::Shutdown,
        ];
        for m in &to {
            assert_eq!(&round_trip(m), m);
        }
        let mut state = NumState::default();
        state.push_f64(2.5);
        let from = [
            FromWorker::Hello {
                protocol_version: 1,
                worker_version: "0.1.0".into(),
                pid: 42,
                kernels: vec!["delimited".into()],
            },
            FromWorker::Result(TaskResult {
                task_id: 9,
                partial: Partial {
                    groups: vec![GroupState {
                        key: vec![Some(ByteBuf::from(b"Hamburg".to_vec())), None],
                        rows: 1,
                        values: vec![state],
                    }],
                },
                counters: Counters {
                    records: 1,
                    bytes: 12,
                    ..Counters::default()
                },
                bad_samples: vec![Location {
                    path: "x".into(),
                    line: Some(3),
                    byte_offset: 20,
                }],
            }),
            FromWorker::TaskError(TaskError {
                task_id: 9,
                kind: ErrorKind::Input,
                message: "not a number".into(),
                location: None,
            }),
        ];
        for m in &from {
            assert_eq!(&round_trip(m), m);
        }
    }

    #[test]
    fn stream_additions_round_trip_and_old_frames_decode() {
        use crate::{PaneSpec, RecordFormat};
        let mut query = QuerySpec {
            kernel: "delimited".into(),
            input: InputFormat::ndjson(),
            group_by: vec!["user.country".into()],
            aggregates: vec![Aggregate {
                func: AggFunc::Count,
                column: None,
            }],
            on_error: OnError::Fail,
            panes: Some(PaneSpec {
                time_field: "ts".into(),
                pane_ms: 2000,
                windows_per_pane: 5,
                lateness_ms: 1500,
            }),
        };
        let msg = ToWorker::Prepare {
            query_id: 1,
            query: query.clone(),
        };
        assert_eq!(round_trip(&msg), msg);
        // Without the additions, the frame is a version 1 frame: no new keys.
        query.panes = None;
        query.input.format = RecordFormat::Delimited;
        let mut wire = Vec::new();
        encode_frame(&mut wire, &ToWorker::Prepare { query_id: 1, query }).unwrap();
        let text = String::from_utf8_lossy(&wire);
        assert!(!text.contains("panes") && !text.contains("format"));
        let counters = Counters::default();
        let mut wire = Vec::new();
        encode_frame(&mut wire, &counters).unwrap();
        assert!(!String::from_utf8_lossy(&wire).contains("max_event_ms"));
        let back: Counters = FrameReader::new(&wire[..], DEFAULT_MAX_FRAME)
            .read_message()
            .unwrap()
            .unwrap();
        assert_eq!(back, counters);
        // An inline batch from the start of its input is a version 1 frame;
        // one from further in says where it starts, and round-trips.
        let inline = |first_byte| ToWorker::Task {
            task_id: 1,
            query_id: 1,
            source: Source::Inline {
                name: "<stdin>".into(),
                first_line: 7,
                first_byte,
                bytes: ByteBuf::from(b"a;1.0\n".to_vec()),
            },
        };
        let mut wire = Vec::new();
        encode_frame(&mut wire, &inline(0)).unwrap();
        assert!(!String::from_utf8_lossy(&wire).contains("first_byte"));
        assert_eq!(round_trip(&inline(0)), inline(0));
        assert_eq!(round_trip(&inline(1 << 40)), inline(1 << 40));
    }

    #[test]
    fn shutdown_is_a_bare_string_and_hello_a_map() {
        // The byte layout PROTOCOL.md promises.
        let mut wire = Vec::new();
        encode_frame(&mut wire, &ToWorker::Shutdown).unwrap();
        assert_eq!(&wire[4..], b"\xa8shutdown");
        wire.clear();
        encode_frame(
            &mut wire,
            &ToWorker::Hello {
                protocol_version: 1,
                partial_columns: false,
            },
        )
        .unwrap();
        assert_eq!(&wire[..4], &[26, 0, 0, 0]);
        assert_eq!(&wire[4..], b"\x81\xa5hello\x81\xb0protocol_version\x01");
        // As tally's coordinator sends it: it reads partials in columns.
        wire.clear();
        let hello = ToWorker::Hello {
            protocol_version: 1,
            partial_columns: true,
        };
        encode_frame(&mut wire, &hello).unwrap();
        assert_eq!(
            &wire[4..],
            b"\x81\xa5hello\x82\xb0protocol_version\x01\xafpartial_columns\xc3"
        );
        let back: ToWorker = FrameReader::new(&wire[..], DEFAULT_MAX_FRAME)
            .read_message()
            .unwrap()
            .unwrap();
        assert_eq!(back, hello);
    }
}
