//! Command-line flags (clap) and their conversion into the library's
//! validated configurations. Each flag's help says its default and its cost.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tally_coordinator::query::{
    parse_aggregates, parse_byte, parse_columns, parse_duration, parse_size,
};
use tally_coordinator::{ErrorPolicy, OutputFormat, PoolConfig, RunConfig, WorkerCommand};
use tally_protocol::{InputFormat, OnError, QuerySpec};

/// tally: GROUP BY over big files on every core, with worker processes.
#[derive(Parser, Debug)]
#[command(name = "tally", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Aggregate files: `tally run events.csv --by country --agg 'count,mean(latency_ms)'`.
    Run(RunArgs),
    /// Write test data to stdout (or -o FILE).
    #[command(subcommand)]
    Gen(GenCommand),
    /// Start the pool, shake hands, and print each worker's version, pid and kernels.
    Workers(PoolArgs),
    /// Generate 1BRC rows into a temporary file, aggregate them, print the result and the time.
    Demo(DemoArgs),
    /// Aggregate a stream as it flows (stdin or --follow FILE), NDJSON out per window:
    /// `tail -f log.ndjson | tally stream --ndjson --by status --agg 'count,mean(ms)' --window 10s`.
    Stream(crate::stream_cli::StreamArgs),
}

/// Worker pool flags.
#[derive(Args, Debug, Clone)]
pub struct PoolArgs {
    /// Worker processes [default: the number of cores]. Each costs a
    /// process start (~1 ms) and its memory.
    #[arg(short = 'j', long = "workers")]
    pub workers: Option<usize>,
    /// The tally-worker binary [default: $TALLY_WORKER, else next to
    /// tally, else on PATH].
    #[arg(long, conflicts_with = "worker_cmd")]
    pub worker: Option<PathBuf>,
    /// A whole command line that starts one worker, run with `sh -c`
    /// (e.g. `ssh node7 tally-worker`).
    #[arg(long)]
    pub worker_cmd: Option<String>,
}

/// `tally run` flags.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Input files (regular files; they are split into chunks).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Key columns, comma-separated [default: none, one global row].
    #[arg(long)]
    pub by: Option<String>,
    /// Aggregates: count, sum(x), min(x), max(x), mean(x), var(x), stddev(x), count(x).
    #[arg(long, default_value = "count")]
    pub agg: String,
    /// Field delimiter, one byte (`;`, `,`, `\t`, `|`).
    #[arg(short = 'd', long, default_value = ",")]
    pub delimiter: String,
    /// Quote byte for RFC 4180 fields, or `none` to read quotes as data.
    #[arg(long, default_value = "\"")]
    pub quote: String,
    /// The files have no header line; name the columns with --columns.
    #[arg(long)]
    pub no_header: bool,
    /// Column names for header-less files, comma-separated.
    #[arg(long)]
    pub columns: Option<String>,
    /// Chunk size (e.g. 64M, 512K); each file's last two chunk lengths go
    /// in eighths, the last few pieces smaller still. Smaller chunks
    /// balance better and cost more messages.
    /// Output never depends on -j; only the last digits of var/stddev can
    /// change with the chunk size.
    #[arg(long, default_value = "64M")]
    pub chunk_size: String,
    /// Output format [default: table on a terminal, else csv].
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// What to do with a value that does not parse, or a chunk that fails
    /// on every attempt: stop (fail) or leave it out and report it (skip).
    #[arg(long, value_enum, default_value = "fail")]
    pub on_error: OnErrorArg,
    /// Attempts per chunk before it is poison.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// A task running longer than this has its worker killed and the task
    /// sent elsewhere (e.g. 30s, 500ms).
    #[arg(long, default_value = "60s")]
    pub task_timeout: String,
    /// Never draw a progress bar (it is drawn only on a terminal, after 1 s).
    #[arg(long)]
    pub no_progress: bool,
    /// Pool flags.
    #[command(flatten)]
    pub pool: PoolArgs,
}

/// Output formats.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum FormatArg {
    /// Aligned columns.
    Table,
    /// CSV with a header.
    Csv,
    /// A JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// `{name=min/mean/max, ...}` as in the One Billion Row Challenge.
    #[value(name = "1brc")]
    OneBrc,
}

/// Error policies.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum OnErrorArg {
    /// Stop and say where.
    Fail,
    /// Leave out, count, report on stderr.
    Skip,
}

/// `--delimiter` and `--quote` (`none` for no quoting): two different
/// single bytes.
pub fn delimiter_and_quote(delimiter: &str, quote: &str) -> Result<(u8, Option<u8>)> {
    let delimiter = parse_byte(delimiter, "--delimiter")?;
    let quote = match quote {
        "none" | "" => None,
        q => Some(parse_byte(q, "--quote")?),
    };
    if quote == Some(delimiter) {
        bail!("--quote and --delimiter cannot be the same byte");
    }
    Ok((delimiter, quote))
}

/// Fails unless every wanted name is among `columns` (`what` names the
/// list in the message; `hint` follows it).
pub fn check_columns<'a>(
    wanted: impl IntoIterator<Item = &'a String>,
    columns: &[String],
    what: &str,
    hint: &str,
) -> Result<()> {
    for name in wanted {
        if !columns.contains(name) {
            bail!(
                "column `{name}` is not among {what} ({}){hint}",
                columns.join(",")
            );
        }
    }
    Ok(())
}

impl From<OnErrorArg> for ErrorPolicy {
    fn from(a: OnErrorArg) -> ErrorPolicy {
        match a {
            OnErrorArg::Fail => ErrorPolicy::Fail,
            OnErrorArg::Skip => ErrorPolicy::Skip,
        }
    }
}

impl From<OnErrorArg> for OnError {
    fn from(a: OnErrorArg) -> OnError {
        match a {
            OnErrorArg::Fail => OnError::Fail,
            OnErrorArg::Skip => OnError::Skip,
        }
    }
}

/// `tally gen` subcommands.
#[derive(Subcommand, Debug)]
pub enum GenCommand {
    /// 1BRC measurements: `station;temperature` lines.
    #[command(name = "1brc")]
    OneBrc {
        /// Rows to write.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Distinct stations, up to 4,000,000 (413 as in 1BRC; 10000 for the
        /// high-cardinality variant; millions for a query of as many groups).
        #[arg(long, default_value_t = 413)]
        stations: usize,
        /// Random seed; the same seed gives the same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Web events CSV with a header (ts,user,country,status,latency_ms,bytes,path).
    Events {
        /// Rows to write.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Random seed; the same seed gives the same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// `tally demo` flags.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Rows to generate.
    #[arg(long, default_value_t = 5_000_000)]
    pub rows: u64,
    /// Pool flags.
    #[command(flatten)]
    pub pool: PoolArgs,
}

impl PoolArgs {
    /// The validated pool configuration.
    pub fn to_config(&self) -> Result<PoolConfig> {
        let workers = match self.workers {
            Some(0) => bail!("-j/--workers must be at least 1"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let command = match &self.worker_cmd {
            Some(cmd) => WorkerCommand::shell(cmd),
            None => WorkerCommand::locate(self.worker.as_deref())?,
        };
        Ok(PoolConfig::new(workers, command))
    }
}

impl RunArgs {
    /// The validated run configuration.
    pub fn to_config(&self) -> Result<RunConfig> {
        let (delimiter, quote) = delimiter_and_quote(&self.delimiter, &self.quote)?;
        let columns = match &self.columns {
            Some(c) => parse_columns(c, "--columns")?,
            None if self.no_header => {
                bail!("--no-header needs --columns to name the columns")
            }
            None => Vec::new(),
        };
        if !self.no_header && !columns.is_empty() {
            bail!("--columns names the columns of header-less files; add --no-header");
        }
        let group_by = match &self.by {
            Some(b) => parse_columns(b, "--by")?,
            None => Vec::new(),
        };
        let aggregates = parse_aggregates(&self.agg)?;
        if self.no_header {
            let wanted = group_by
                .iter()
                .chain(aggregates.iter().filter_map(|a| a.column.as_ref()));
            check_columns(wanted, &columns, "--columns", "")?;
        }
        let on_error = ErrorPolicy::from(self.on_error);
        let query = QuerySpec {
            kernel: "delimited".into(),
            input: InputFormat {
                delimiter,
                quote,
                header: !self.no_header,
                columns,
                format: Default::default(),
            },
            group_by,
            aggregates,
            on_error: self.on_error.into(),
            panes: None,
        };
        let format = match self.format {
            Some(FormatArg::Table) => OutputFormat::Table,
            Some(FormatArg::Csv) => OutputFormat::Csv,
            Some(FormatArg::Json) => OutputFormat::Json,
            Some(FormatArg::Ndjson) => OutputFormat::Ndjson,
            Some(FormatArg::OneBrc) => OutputFormat::OneBrc,
            None if std::io::stdout().is_terminal() => OutputFormat::Table,
            None => OutputFormat::Csv,
        };
        tally_coordinator::run::validate(&query, format)?;
        Ok(RunConfig {
            inputs: self.files.clone(),
            query,
            chunk_size: parse_size(&self.chunk_size).context("--chunk-size")?,
            format,
            pool: self.pool.to_config()?,
            progress: !self.no_progress,
            max_attempts: self.max_attempts.max(1),
            task_timeout: parse_duration(&self.task_timeout).context("--task-timeout")?,
            on_error,
        })
    }
}
