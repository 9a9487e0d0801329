//! Synthetic data generators for benchmarks and tests (`tally gen`).
//!
//! - [`write_1brc`]: One Billion Row Challenge measurements,
//!   `<station>;<temperature>` lines;
//! - [`write_events`]: a web-request events CSV with RFC 4180 quoting and
//!   empty fields.
//!
//! Both are deterministic: the same spec gives the same bytes on every
//! machine and for any thread count. Rows are made in fixed blocks, each from
//! its own random stream derived from `(seed, block index)`, by all cores,
//! and written in order. Floating-point work uses only IEEE 754 basic
//! operations (no platform `ln`/`exp`), so no libm difference can leak in.
//!
//! ```
//! use tally_coordinator::gen::{write_1brc, OneBrcSpec};
//!
//! let mut out = Vec::new();
//! write_1brc(&mut out, &OneBrcSpec { rows: 3, stations: 413, seed: 1 })?;
//! assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 3);
//! # Ok::<(), std::io::Error>(())
//! ```

mod blocks;
mod events;
mod math;
mod names;
mod onebrc;

pub use events::{
    write_events, write_events_with_threads, EventsSpec, EVENTS_HEADER, EVENTS_START_MS,
};
pub use names::{station_names, MAX_NAME_BYTES, MAX_STATIONS};
pub use onebrc::{write_1brc, write_1brc_with_threads, OneBrcSpec};
