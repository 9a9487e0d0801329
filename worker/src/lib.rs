//! The tally worker: computation kernels and the loop that serves them to a
//! coordinator over a pipe.
//!
//! A coordinator (`tally`) starts worker processes and speaks the protocol
//! of [`tally_protocol`] to each over its stdin/stdout: a handshake, then
//! `Prepare` a query once and `Task`s that name a byte range of a file or
//! carry records inline. The worker answers each task with a mergeable
//! partial ([`PackedPartial`](tally_protocol::PackedPartial), on the wire a
//! [`Partial`](tally_protocol::Partial)) or a task error. Stdout carries
//! frames only; logs go to stderr through [`log`].
//!
//! * [`Kernel`] and [`PreparedQuery`]: what a computation implements.
//! * [`Registry`]: the kernels a worker offers, by name;
//!   [`Registry::with_builtins`] has the [`delimited`] kernel (grouped
//!   count/sum/min/max/mean/var/stddev over CSV and delimited text).
//! * [`serve`]: the loop, over any `Read`/`Write`; [`run_main`]: the whole
//!   `main` of a worker binary.
//!
//! # A custom worker
//!
//! A custom build depends on `tally-worker`, registers its kernels next to
//! the built-in ones, and serves. Its `main` would be
//! `tally_worker::run_main(registry)`; here the loop runs over in-memory
//! pipes instead of stdin/stdout:
//!
//! ```
//! use tally_worker::tally_protocol::{
//!     frame, Counters, FromWorker, GroupState, Partial, QuerySpec, Source, ToWorker,
//! };
//! use tally_worker::{Kernel, PreparedQuery, Registry, TaskFailure, TaskOutput};
//!
//! /// Counts the newlines of a source, in one global group.
//! struct LineCount;
//!
//! impl Kernel for LineCount {
//!     fn name(&self) -> &str {
//!         "lines"
//!     }
//!     fn prepare(&self, _query: &QuerySpec) -> Result<Box<dyn PreparedQuery>, TaskFailure> {
//!         Ok(Box::new(LineCount))
//!     }
//! }
//!
//! impl PreparedQuery for LineCount {
//!     fn run(&mut self, source: &Source) -> Result<TaskOutput, TaskFailure> {
//!         let bytes: &[u8] = match source {
//!             Source::Inline { bytes, .. } => bytes,
//!             Source::FileRange { .. } => &[], // a real kernel would read the file
//!         };
//!         let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
//!         Ok(TaskOutput {
//!             partial: Partial {
//!                 groups: vec![GroupState { key: vec![], rows: lines, values: vec![] }],
//!             }
//!             .into(),
//!             counters: Counters { records: lines, bytes: bytes.len() as u64, ..Counters::default() },
//!             bad_samples: vec![],
//!         })
//!     }
//! }
//!
//! let mut registry = Registry::with_builtins();
//! registry.register(Box::new(LineCount));
//!
//! // What a coordinator would send: hello, then shutdown.
//! let mut input = Vec::new();
//! frame::encode_frame(&mut input, &ToWorker::Hello { protocol_version: 1, partial_columns: false }).unwrap();
//! frame::encode_frame(&mut input, &ToWorker::Shutdown).unwrap();
//! let mut output = Vec::new();
//! tally_worker::serve(&input[..], &mut output, &registry).unwrap();
//!
//! let mut replies = frame::FrameReader::new(&output[..], frame::DEFAULT_MAX_FRAME);
//! match replies.read_message::<FromWorker>().unwrap() {
//!     Some(FromWorker::Hello { kernels, .. }) => assert_eq!(kernels, ["delimited", "lines"]),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```
#![deny(missing_docs)]

pub mod delimited;
mod error;
mod kernel;
mod registry;
mod serve;

pub use error::Error;
pub use kernel::{Kernel, PreparedQuery, TaskFailure, TaskOutput};
pub use registry::Registry;
pub use serve::{run_main, serve};
/// The protocol crate this worker speaks, re-exported so a custom worker
/// uses the same version.
pub use tally_protocol;
