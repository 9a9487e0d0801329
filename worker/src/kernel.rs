//! What a kernel is: a named computation that prepares a query once and then
//! runs it over many sources.

use std::fmt;

use tally_protocol::{Counters, ErrorKind, Location, PackedPartial, QuerySpec, Source};

/// A computation a worker offers under a name (`QuerySpec::kernel`).
///
/// The serve loop calls [`Kernel::prepare`] once per query, then
/// [`PreparedQuery::run`] once per task of that query, on one thread.
pub trait Kernel: Send + Sync {
    /// The name queries use to pick this kernel.
    fn name(&self) -> &str;

    /// Checks `query` and builds the state its tasks share (resolved
    /// columns, caches). A failure here fails every task of the query with
    /// the failure's message.
    fn prepare(&self, query: &QuerySpec) -> Result<Box<dyn PreparedQuery>, TaskFailure>;
}

/// A query prepared by a [`Kernel`], ready to run tasks.
pub trait PreparedQuery: Send {
    /// Aggregates the records of one source into a partial.
    fn run(&mut self, source: &Source) -> Result<TaskOutput, TaskFailure>;

    /// Takes back the partial of a task whose result has been sent, so the
    /// next task can build its partial in the same memory (a partial of a
    /// million groups is tens of MiB, fresh pages each time otherwise).
    /// The default drops it.
    fn recycle(&mut self, partial: PackedPartial) {
        drop(partial);
    }
}

/// The outcome of a task that worked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOutput {
    /// The aggregate over the task's records, in flat arrays (a kernel that
    /// builds a [`tally_protocol::Partial`] converts it with `.into()`); it
    /// goes on the wire as the `Partial` of the same groups would.
    pub partial: PackedPartial,
    /// What was read.
    pub counters: Counters,
    /// Where the first few skipped records were (under `OnError::Skip`).
    pub bad_samples: Vec<Location>,
}

/// The outcome of a task that failed; becomes a `TaskError` on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFailure {
    /// Whose fault.
    pub kind: ErrorKind,
    /// What went wrong and what to do, for a person.
    pub message: String,
    /// Where in the input, when known.
    pub location: Option<Location>,
}

impl TaskFailure {
    /// A failure without a location.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        TaskFailure {
            kind,
            message: message.into(),
            location: None,
        }
    }

    /// The same failure, at `location`.
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{loc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for TaskFailure {}
