//! The `tally-worker` binary answers the handshake and exits when its stdin
//! closes. (Being an integration test of this package also makes
//! `cargo test --workspace` build the binary, which the end-to-end tests in
//! `tests/` start through `tally`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use tally_protocol::frame::{encode_frame, FrameReader, DEFAULT_MAX_FRAME};
use tally_protocol::{FromWorker, ToWorker, PROTOCOL_VERSION};

#[test]
fn answers_hello_and_exits_on_eof() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally-worker"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tally-worker");
    let mut hello = Vec::new();
    encode_frame(
        &mut hello,
        &ToWorker::Hello {
            protocol_version: PROTOCOL_VERSION,
            partial_columns: false,
        },
    )
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&hello).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", out.status);
    let mut reader = FrameReader::new(&out.stdout[..], DEFAULT_MAX_FRAME);
    match reader.read_message::<FromWorker>().unwrap() {
        Some(FromWorker::Hello {
            protocol_version, ..
        }) => assert_eq!(protocol_version, PROTOCOL_VERSION),
        other => panic!("expected hello, got {other:?}"),
    }
    assert!(reader.read_message::<FromWorker>().unwrap().is_none());
}
