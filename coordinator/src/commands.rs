//! What each subcommand does with its configuration.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use tally_coordinator::gen::{write_1brc, write_events, EventsSpec, OneBrcSpec, MAX_STATIONS};
use tally_coordinator::pool::WorkerPool;
use tally_coordinator::run::{run, RunSummary};
use tally_coordinator::{ErrorPolicy, OutputFormat, RunConfig};
use tally_protocol::QuerySpec;

use crate::cli::{Cli, Command, DemoArgs, GenCommand, PoolArgs};

/// Exit code of a run whose result leaves chunks out.
const PARTIAL: u8 = 3;

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            let config = match args.to_config() {
                Err(e) if is_usage(&e) => return Ok(usage(&e)),
                config => config?,
            };
            let stdout = io::stdout();
            let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
            let summary = match run(&config, &mut out) {
                Err(e @ tally_coordinator::Error::Usage(_)) => return Ok(usage(&e.into())),
                summary => summary?,
            };
            Ok(report(&summary))
        }
        Command::Gen(g) => generate(g),
        Command::Workers(args) => workers(&args),
        Command::Demo(args) => demo(&args),
        Command::Stream(args) => crate::stream_cli::run(&args),
    }
}

/// Exit code of bad flags, the same as clap's.
const USAGE: u8 = 2;

/// Whether `e` is the fault of the flags: a `Usage` error, or a plain
/// message from the checks in `cli.rs`; not, say, a worker that cannot be
/// found.
fn is_usage(e: &anyhow::Error) -> bool {
    match e
        .chain()
        .find_map(|c| c.downcast_ref::<tally_coordinator::Error>())
    {
        Some(tally_coordinator::Error::Usage(_)) | None => true,
        Some(_) => false,
    }
}

/// Prints a flag error as `main` prints errors; the exit code 2.
fn usage(e: &anyhow::Error) -> ExitCode {
    eprintln!("tally: {e:#}");
    ExitCode::from(USAGE)
}

/// Whether the error is a closed stdout (`tally ... | head`): a clean exit.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || matches!(
                c.downcast_ref::<tally_coordinator::Error>(),
                Some(tally_coordinator::Error::Output(io)) if io.kind() == io::ErrorKind::BrokenPipe
            )
    })
}

/// The signal that stopped the run, if that is what `e` is.
pub fn interrupted(e: &anyhow::Error) -> Option<i32> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<tally_coordinator::Error>() {
            Some(tally_coordinator::Error::Interrupted(sig)) => Some(*sig),
            _ => None,
        })
}

/// The summary lines shared by runs and streams: bad records left out
/// (with where), and workers lost (their `units` were run again).
pub fn report_losses(
    bad_records: u64,
    bad_samples: &[tally_protocol::Location],
    workers_lost: usize,
    units: &str,
) {
    if bad_records > 0 {
        eprintln!("tally: {bad_records} bad record(s) left out (--on-error skip)");
        for loc in bad_samples {
            eprintln!("  at {loc}");
        }
    }
    if workers_lost > 0 {
        eprintln!(
            "tally: {workers_lost} worker(s) lost and replaced; their {units} were run again"
        );
    }
}

/// The summary on stderr; the exit code.
fn report(s: &RunSummary) -> ExitCode {
    report_losses(
        s.totals.bad_records,
        &s.totals.bad_samples,
        s.workers_lost,
        "chunks",
    );
    if s.skipped.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "tally: PARTIAL RESULT: {} chunk(s) failed on every attempt and are not counted:",
        s.skipped.len()
    );
    for c in &s.skipped {
        let line = c
            .line
            .map(|l| format!(" (from line {l})"))
            .unwrap_or_default();
        eprintln!(
            "  {} bytes {}..{}{line}: {}",
            c.path,
            c.start,
            c.end,
            c.errors.join("; ")
        );
    }
    ExitCode::from(PARTIAL)
}

fn output(path: Option<&std::path::Path>) -> Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(BufWriter::with_capacity(1 << 20, io::stdout().lock())),
    })
}

fn generate(g: GenCommand) -> Result<ExitCode> {
    match g {
        GenCommand::OneBrc {
            rows,
            stations,
            seed,
            output: path,
        } => {
            if !(1..=MAX_STATIONS).contains(&stations) {
                anyhow::bail!("--stations must be between 1 and {MAX_STATIONS}");
            }
            let mut out = output(path.as_deref())?;
            write_1brc(
                &mut out,
                &OneBrcSpec {
                    rows,
                    stations,
                    seed,
                },
            )?;
            out.flush()?;
        }
        GenCommand::Events {
            rows,
            seed,
            output: path,
        } => {
            let mut out = output(path.as_deref())?;
            write_events(&mut out, &EventsSpec { rows, seed })?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn workers(args: &PoolArgs) -> Result<ExitCode> {
    let config = match args.to_config() {
        Err(e) if is_usage(&e) => return Ok(usage(&e)),
        config => config?,
    };
    let started = Instant::now();
    let pool = WorkerPool::start(&config)?;
    let elapsed = started.elapsed();
    let mut out = io::stdout().lock();
    writeln!(out, "worker  pid      protocol  version  kernels")?;
    for w in pool.ready() {
        writeln!(
            out,
            "{:<6}  {:<7}  {:<8}  {:<7}  {}",
            w.id,
            w.pid,
            w.protocol_version,
            w.version,
            w.kernels.join(",")
        )?;
    }
    writeln!(
        out,
        "{} worker(s) `{}` ready in {:.1} ms",
        pool.ready_count(),
        config.command.display(),
        elapsed.as_secs_f64() * 1e3
    )?;
    pool.shutdown(std::time::Duration::from_secs(2));
    Ok(ExitCode::SUCCESS)
}

fn demo(args: &DemoArgs) -> Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("tally-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("measurements.txt");
    let result = (|| -> Result<ExitCode> {
        let t = Instant::now();
        {
            let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
            write_1brc(
                &mut out,
                &OneBrcSpec {
                    rows: args.rows,
                    stations: 413,
                    seed: 1,
                },
            )?;
            out.flush()?;
        }
        let gen_time = t.elapsed();
        let size = std::fs::metadata(&path)?.len();
        let config = RunConfig {
            inputs: vec![path.clone()],
            query: QuerySpec::one_brc(),
            chunk_size: tally_coordinator::config::DEFAULT_CHUNK_SIZE,
            format: OutputFormat::OneBrc,
            pool: args.pool.to_config()?,
            progress: true,
            max_attempts: 3,
            task_timeout: std::time::Duration::from_secs(60),
            on_error: ErrorPolicy::Fail,
        };
        let mut out = BufWriter::new(io::stdout().lock());
        let summary = run(&config, &mut out)?;
        out.flush()?;
        eprintln!(
            "tally demo: generated {} rows ({:.1} MB) in {:.2} s; aggregated {} stations with {} worker(s) in {:.3} s ({:.0} MB/s)",
            args.rows,
            size as f64 / 1e6,
            gen_time.as_secs_f64(),
            summary.groups,
            summary.workers,
            summary.elapsed.as_secs_f64(),
            size as f64 / 1e6 / summary.elapsed.as_secs_f64().max(1e-9),
        );
        Ok(report(&summary))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
