//! The tally coordinator: starts `tally-worker` processes, cuts inputs into
//! chunks, schedules them over the workers' stdin/stdout, merges the partial
//! aggregates in chunk order, and prints the result.
//!
//! Data flow of a batch run: [`planner`] (files -> chunks) -> [`scheduler`]
//! (chunks -> tasks on the [`pool`]'s workers, retries) -> [`merger`]
//! (results in chunk order, quote-state checks) -> [`output`].
//!
//! A Rust application uses it through [`run::run`] with a [`RunConfig`]:
//!
//! ```no_run
//! use tally_coordinator::{query, OutputFormat, PoolConfig, RunConfig, WorkerCommand, ErrorPolicy};
//! use tally_protocol::{InputFormat, OnError, QuerySpec};
//! # fn main() -> Result<(), tally_coordinator::Error> {
//! let query = QuerySpec {
//!     kernel: "delimited".into(),
//!     input: InputFormat { delimiter: b',', quote: Some(b'"'), header: true, columns: vec![], format: Default::default() },
//!     group_by: vec!["country".into()],
//!     aggregates: query::parse_aggregates("count,mean(latency_ms)")?,
//!     on_error: OnError::Fail,
//!     panes: None,
//! };
//! let config = RunConfig {
//!     inputs: vec!["events.csv".into()],
//!     query,
//!     chunk_size: tally_coordinator::config::DEFAULT_CHUNK_SIZE,
//!     format: OutputFormat::Csv,
//!     pool: PoolConfig::new(4, WorkerCommand::locate(None)?),
//!     progress: false,
//!     max_attempts: 3,
//!     task_timeout: std::time::Duration::from_secs(60),
//!     on_error: ErrorPolicy::Fail,
//! };
//! tally_coordinator::run::run(&config, &mut std::io::stdout())?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod config;
mod error;
pub mod gen;
pub mod merger;
pub mod output;
pub mod planner;
pub mod pool;
pub mod progress;
pub mod query;
pub mod run;
pub mod scheduler;
pub mod signals;
mod stdin_writer;
pub mod stream;

pub use config::{ErrorPolicy, OutputFormat, PoolConfig, RunConfig, WorkerCommand};
pub use error::{Error, Result};
