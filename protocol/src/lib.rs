//! The wire protocol of tally: what a coordinator and a worker say to each
//! other over a pipe, and the algebra of the partial aggregates they trade.
//!
//! * [`frame`]: a frame is a `u32` little-endian length and that many bytes of
//!   MessagePack. A length above the reader's maximum is refused before any
//!   allocation.
//! * [`message`]: [`ToWorker`] and [`FromWorker`], the two directions. Every
//!   struct is a MessagePack map keyed by field name (but for the groups of
//!   a partial and their states, arrays in field order: see [`partial`]),
//!   every enum a one-entry map `{variant: body}` (a bare string for
//!   variants without a body), so a worker in any language reads them with
//!   a stock msgpack library.
//! * [`query`]: the query a coordinator prepares on its workers.
//! * [`partial`]: mergeable aggregate states ([`NumState`], [`Partial`]).
//!   The merge is part of the contract: a custom worker must produce states
//!   that merge the same way.
//! * [`table`]: the [`GroupTable`] that merges partials group by group, and
//!   hands the groups out in key order.
//! * [`packed`]: [`PackedPartial`], a [`Partial`] decoded from the same
//!   bytes into flat arrays, which a coordinator merges without allocating
//!   per group; it also reads and writes the partial's columns form (five
//!   byte strings, [`packed::Columns`]), which a coordinator asks for in its
//!   `Hello`.
//!
//! This crate is the only one that owns wire types; PROTOCOL.md at the top of
//! the repository describes the same bytes for non-Rust readers.
//!
//! ```
//! use tally_protocol::{frame, ToWorker, PROTOCOL_VERSION};
//! let mut wire = Vec::new();
//! frame::write_message(&mut wire, &ToWorker::Hello { protocol_version: PROTOCOL_VERSION, partial_columns: false }).unwrap();
//! let mut reader = frame::FrameReader::new(&wire[..], frame::DEFAULT_MAX_FRAME);
//! let back: ToWorker = reader.read_message().unwrap().unwrap();
//! assert_eq!(back, ToWorker::Hello { protocol_version: PROTOCOL_VERSION, partial_columns: false });
//! ```
#![deny(missing_docs)]

pub mod allocator;
mod error;
pub mod frame;
pub mod message;
pub mod packed;
pub mod partial;
pub mod query;
pub mod table;

pub use error::Error;
pub use message::{
    Counters, ErrorKind, FromWorker, Location, Source, TaskError, TaskResult, ToWorker,
};
pub use packed::{PackedGroup, PackedPartial};
pub use partial::{GroupState, NumState, Partial};
pub use query::{AggFunc, Aggregate, InputFormat, OnError, PaneSpec, QuerySpec, RecordFormat};
pub use table::{GroupKeyParts, GroupRef, GroupTable};

/// Version of the wire protocol. Bumped on any incompatible change; the
/// handshake refuses a peer with another version.
pub const PROTOCOL_VERSION: u32 = 1;
