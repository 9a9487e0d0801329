//! End-to-end tests of tally: real `tally` and `tally-worker` processes,
//! real pipes, real files. Run with `cargo test --workspace` (which builds
//! every binary first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

/// Missing files, empty files, unknown columns, bad values, odd bytes.
mod bad_input;
/// The One Billion Row Challenge reference samples, byte for byte.
mod conformance_1brc;
/// Results against an independent reference (Python's `csv` module):
/// generated events and hand-written nasty CSV, -j1/-j3, tiny chunks.
mod csv_reference;
/// The same bytes for any `-j` and any chunk size, in every format.
mod determinism;
/// No worker outlives tally: normal end, error, Ctrl-C, SIGTERM, SIGKILL.
mod processes;

/// Workers killed (`kill -9`), stopped, crashing, hanging, writing garbage:
/// the output does not change.
mod chaos;
/// Ctrl-C, SIGTERM and SIGKILL of the coordinator: no worker left running.
mod coordinator_exit;
/// Helpers of the fault-tolerance tests (background runs, fault injection).
mod faults;
/// Poison chunks: the error names them; `--on-error skip` leaves out exactly them.
mod poison;
/// `tally stream`: windows against a reference, processing time,
/// backpressure, workers killed mid-stream.
mod stream;
/// Workers that cannot start: fail fast, say why, no retry loop.
mod worker_start;
