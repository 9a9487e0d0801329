//! End-to-end tests of tally: real `tally` and `tally-worker` processes,
//! real pipes, real files. Run with `cargo test --workspace` (which builds
//! every binary first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

/// The One Billion Row Challenge reference samples, byte for byte.
mod conformance_1brc;
