//! Prints the frames of PROTOCOL.md's examples in hex, so a port of the
//! protocol to another language can be checked byte for byte:
//! `cargo run -p tally-protocol --example frames`.

use serde_bytes::ByteBuf;
use tally_protocol::frame::encode_frame;
use tally_protocol::*;

/// The example messages of PROTOCOL.md, with their titles.
fn examples() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut push = |title: &'static str, frame: Result<(), Error>, buf: &mut Vec<u8>| {
        if frame.is_ok() {
            out.push((title, std::mem::take(buf)));
        }
    };
    let mut b = Vec::new();
    let r = encode_frame(
        &mut b,
        &ToWorker::Hello {
            protocol_version: 1,
            partial_columns: true,
        },
    );
    push("hello (coordinator)", r, &mut b);
    let r = encode_frame(
        &mut b,
        &FromWorker::<Partial>::Hello {
            protocol_version: 1,
            worker_version: "0.1.0".into(),
            pid: 4242,
            kernels: vec!["delimited".into()],
        },
    );
    push("hello (worker)", r, &mut b);
    let r = encode_frame(
        &mut b,
        &ToWorker::Prepare {
            query_id: 1,
            query: QuerySpec {
                kernel: "delimited".into(),
                input: InputFormat {
                    delimiter: b';',
                    quote: None,
                    header: false,
                    columns: vec!["station".into(), "temp".into()],
                    format: RecordFormat::Delimited,
                },
                group_by: vec!["station".into()],
                aggregates: vec![Aggregate {
                    func: AggFunc::Max,
                    column: Some("temp".into()),
                }],
                on_error: OnError::Fail,
                panes: None,
            },
        },
    );
    push("prepare", r, &mut b);
    let r = encode_frame(
        &mut b,
        &ToWorker::Task {
            task_id: 7,
            query_id: 1,
            source: Source::FileRange {
                path: "/d/m.txt".into(),
                start: 0,
                end: 8388608,
                start_in_quotes: false,
            },
        },
    );
    push("task (file range)", r, &mut b);
    let r = encode_frame(
        &mut b,
        &ToWorker::Task {
            task_id: 8,
            query_id: 1,
            source: Source::Inline {
                name: "<stdin>".into(),
                first_line: 1,
                first_byte: 0,
                bytes: ByteBuf::from(b"Oslo;-3.5\n".to_vec()),
            },
        },
    );
    push("task (inline)", r, &mut b);
    // The answer to that task, its partial as groups and then in columns.
    let result = |partial| {
        FromWorker::Result(TaskResult {
            task_id: 8,
            partial,
            counters: Counters {
                records: 1,
                bytes: 10,
                bad_records: 0,
                quotes: 0,
                start_in_quotes: false,
                max_event_ms: None,
            },
            bad_samples: vec![],
        })
    };
    let mut partial = PackedPartial::default();
    partial.push_group(
        [Some(&b"Oslo"[..])],
        1,
        [NumState::from_exact(1, -35, None, 1, -35, -35)],
    );
    let r = encode_frame(&mut b, &result(partial.clone()));
    push("result", r, &mut b);
    partial.set_columns(true);
    let r = encode_frame(&mut b, &result(partial));
    push("result (partial in columns)", r, &mut b);
    let r = encode_frame(
        &mut b,
        &FromWorker::<Partial>::TaskError(TaskError {
            task_id: 7,
            kind: ErrorKind::Input,
            message: "bad".into(),
            location: Some(Location {
                path: "/d/m.txt".into(),
                line: Some(3),
                byte_offset: 20,
            }),
        }),
    );
    push("task error", r, &mut b);
    let r = encode_frame(
        &mut b,
        &ToWorker::Prepare {
            query_id: 2,
            query: QuerySpec {
                kernel: "delimited".into(),
                input: InputFormat::ndjson(),
                group_by: vec![],
                aggregates: vec![Aggregate {
                    func: AggFunc::Count,
                    column: None,
                }],
                on_error: OnError::Fail,
                panes: Some(PaneSpec {
                    time_field: "ts".into(),
                    pane_ms: 1000,
                    windows_per_pane: 1,
                    lateness_ms: 0,
                }),
            },
        },
    );
    push("prepare (stream: NDJSON, event-time panes)", r, &mut b);
    let r = encode_frame(
        &mut b,
        &ToWorker::Task {
            task_id: 9,
            query_id: 2,
            source: Source::Inline {
                name: "<stdin>".into(),
                first_line: 1,
                first_byte: 0,
                bytes: ByteBuf::from(b"{\"ts\":1500}\n".to_vec()),
            },
        },
    );
    push("task (stream batch)", r, &mut b);
    let r = encode_frame(
        &mut b,
        &FromWorker::Result(TaskResult {
            task_id: 9,
            partial: Partial {
                groups: vec![GroupState {
                    key: vec![
                        Some(ByteBuf::from(b"1".to_vec())),
                        Some(ByteBuf::from(b"0".to_vec())),
                    ],
                    rows: 1,
                    values: vec![],
                }],
            },
            counters: Counters {
                records: 1,
                bytes: 12,
                bad_records: 0,
                quotes: 0,
                start_in_quotes: false,
                max_event_ms: Some(1500),
            },
            bad_samples: vec![],
        }),
    );
    push("result (stream: pane 1, closure class 0)", r, &mut b);
    let r = encode_frame(&mut b, &ToWorker::Shutdown);
    push("shutdown", r, &mut b);
    out
}

/// The examples as the Markdown PROTOCOL.md embeds.
pub fn render() -> String {
    let mut s = String::new();
    for (title, frame) in examples() {
        s.push_str(&format!("#### {title}\n\n```\n"));
        for line in frame.chunks(16) {
            let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
            s.push_str(&hex.join(" "));
            s.push('\n');
        }
        s.push_str("```\n\n");
    }
    s
}

#[allow(dead_code)]
fn main() {
    print!("{}", render());
}
