//! A batch run: plan chunks, start the pool, schedule, merge, print.

use std::io::Write;
use std::time::{Duration, Instant};

use tally_protocol::{AggFunc, QuerySpec};

use crate::config::{OutputFormat, RunConfig};
use crate::error::{Error, Result};
use crate::merger::Totals;
use crate::output::ResultSet;
use crate::planner;
use crate::pool::WorkerPool;
use crate::progress::Progress;
use crate::scheduler::{self, ScheduleOptions, SkippedChunk};

/// What a run did besides printing its result.
#[derive(Debug)]
pub struct RunSummary {
    /// Records, bytes and bad records.
    pub totals: Totals,
    /// Chunks left out under `--on-error skip`.
    pub skipped: Vec<SkippedChunk>,
    /// Workers lost and replaced.
    pub workers_lost: usize,
    /// Groups printed.
    pub groups: usize,
    /// Chunks planned.
    pub chunks: usize,
    /// Workers started at the beginning.
    pub workers: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// Checks what the worker cannot: that the output format fits the query.
pub fn validate(query: &QuerySpec, format: OutputFormat) -> Result<()> {
    if format == OutputFormat::OneBrc {
        let cols: Vec<&str> = query.value_columns();
        let has = |f: AggFunc| query.aggregates.iter().any(|a| a.func == f);
        if query.group_by.len() != 1
            || cols.len() != 1
            || !(has(AggFunc::Min) && has(AggFunc::Mean) && has(AggFunc::Max))
        {
            return Err(Error::Usage(
                "--format 1brc needs one --by column and `min(x),mean(x),max(x)` of one column"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Runs `config` and writes the result to `out`.
pub fn run(config: &RunConfig, out: &mut dyn Write) -> Result<RunSummary> {
    let started = Instant::now();
    validate(&config.query, config.format)?;
    if config.inputs.is_empty() {
        return Err(Error::Usage("no input file given".into()));
    }
    let chunks = planner::plan(&config.inputs, config.chunk_size)?;
    let mut pool_config = config.pool.clone();
    // More workers than chunks would only cost start-up time.
    pool_config.workers = pool_config.workers.min(chunks.len()).max(1);
    let mut pool = WorkerPool::start(&pool_config)?;
    log::debug!(
        "{} workers ready after {:.3?}",
        pool.ready_count(),
        started.elapsed()
    );
    if let Some(w) = pool
        .ready()
        .find(|w| !w.kernels.contains(&config.query.kernel))
    {
        return Err(Error::Workers(format!(
            "worker pid {} has no kernel `{}` (it has: {})",
            w.pid,
            config.query.kernel,
            w.kernels.join(", ")
        )));
    }
    let total = chunks.total_bytes();
    let mut progress = Progress::new(total, config.progress);
    let opts = ScheduleOptions {
        max_attempts: config.max_attempts.max(1),
        task_timeout: config.task_timeout,
        in_flight_per_worker: pool_config.in_flight_per_worker.max(1),
        on_error: config.on_error,
        max_respawns: 4 * pool_config.workers + 16,
    };
    let outcome = scheduler::run_batch(&mut pool, &config.query, &chunks, &opts, &mut progress);
    progress.finish();
    log::debug!("last result after {:.3?}", started.elapsed());
    pool.shutdown(Duration::from_secs(2));
    log::debug!("workers stopped after {:.3?}", started.elapsed());
    let outcome = outcome?;
    log::debug!(
        "{} groups merged after {:.3?}",
        outcome.table.len(),
        started.elapsed()
    );
    let result = ResultSet::sorted(&config.query, &outcome.table);
    log::debug!("groups sorted after {:.3?}", started.elapsed());
    result.write(out, config.format)?;
    out.flush()?;
    log::debug!("result written after {:.3?}", started.elapsed());
    Ok(RunSummary {
        totals: outcome.totals,
        skipped: outcome.skipped,
        workers_lost: outcome.workers_lost,
        groups: result.len(),
        chunks: chunks.len(),
        workers: pool_config.workers,
        elapsed: started.elapsed(),
    })
}
