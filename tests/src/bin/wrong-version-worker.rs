//! A worker from another release: it answers the handshake with the next
//! protocol version, writes a line to stderr, and then only waits for its
//! stdin to close. The coordinator must stop at once, naming both versions.
#![allow(clippy::unwrap_used)]

use std::io::{BufReader, Read};

use tally_worker::tally_protocol::frame::{write_message, FrameReader, DEFAULT_MAX_FRAME};
use tally_worker::tally_protocol::{FromWorker, Partial, ToWorker, PROTOCOL_VERSION};

fn main() {
    let pid = std::process::id();
    let mut stdin = BufReader::new(std::io::stdin().lock());
    let mut stdout = std::io::stdout().lock();
    let hello = FrameReader::new(&mut stdin, DEFAULT_MAX_FRAME).read_message::<ToWorker>();
    if let Ok(Some(ToWorker::Hello {
        protocol_version, ..
    })) = hello
    {
        eprintln!("wrong-version-worker {pid}: coordinator speaks {protocol_version}");
        write_message(
            &mut stdout,
            &FromWorker::<Partial>::Hello {
                protocol_version: PROTOCOL_VERSION + 1,
                worker_version: "9.9.9-wrong".into(),
                pid,
                kernels: vec!["delimited".into()],
            },
        )
        .unwrap();
    }
    let _ = std::io::copy(&mut stdin.by_ref(), &mut std::io::sink());
}
