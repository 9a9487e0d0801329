//! An application that keeps answering while analytics run in worker
//! processes: it produces request events, hands them to a tally stream
//! with `try_push` (never blocking), picks up per-window results with
//! `try_iter`, and answers its own "requests" every few milliseconds the
//! whole time. At the end it prints how long its loop ever stalled.
//!
//! `cargo run --release -p tally-coordinator --example live_app [SECONDS]`
//! (after `cargo build --release`, so that `tally-worker` is next to it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tally_coordinator::output::ResultSet;
use tally_coordinator::stream::{
    Clock, StreamConfig, StreamHandle, TimeMode, TryPushError, WindowMode, WindowSpec,
};
use tally_coordinator::{query, PoolConfig, WorkerCommand};
use tally_protocol::{InputFormat, OnError, QuerySpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let query = QuerySpec {
        kernel: "delimited".into(),
        input: InputFormat::ndjson(),
        group_by: vec!["route".into()],
        aggregates: query::parse_aggregates("count,mean(req.ms),max(req.ms)")?,
        on_error: OnError::Fail,
        panes: None,
    };
    let mut config = StreamConfig::new(
        query.clone(),
        PoolConfig::new(2, WorkerCommand::locate(None)?),
    );
    config.window = WindowMode::Windowed(WindowSpec::tumbling(250));
    config.time = TimeMode::Event {
        field: "ts".into(),
        lateness_ms: 50,
    };
    let stream = StreamHandle::start(config)?;
    let clock = Clock::new();

    let routes = ["/", "/login", "/search", "/cart"];
    // route -> (window end, count, mean) of the latest closed window.
    let mut latest: BTreeMap<String, (i64, u64, f64)> = BTreeMap::new();
    let (mut produced, mut pushed_back, mut answered, mut windows) = (0u64, 0u64, 0u64, 0u64);
    let mut worst_stall = Duration::ZERO;
    let mut pending: Option<Vec<u8>> = None;
    let started = Instant::now();
    let mut last_turn = Instant::now();
    let mut seed = 1u64;
    while started.elapsed().as_secs_f64() < seconds {
        // 1. Produce a burst of events (the app's own work).
        let chunk = pending.take().unwrap_or_else(|| {
            let mut out = String::with_capacity(64 * 500);
            let now = clock.now_ms();
            for _ in 0..500 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let route = routes[(seed >> 60) as usize % routes.len()];
                let ms = 1 + (seed >> 33) % 200;
                out.push_str(&format!(
                    "{{\"ts\":{now},\"route\":\"{route}\",\"req\":{{\"ms\":{ms}}}}}\n"
                ));
                produced += 1;
            }
            out.into_bytes()
        });
        // 2. Hand them over without ever blocking.
        match stream.try_push(chunk) {
            Ok(()) => {}
            Err(TryPushError::Full(back)) => {
                pushed_back += 1;
                pending = Some(back);
            }
            Err(TryPushError::Closed(_)) => break,
        }
        // 3. Pick up the windows that closed.
        for w in stream.results().try_iter() {
            windows += 1;
            let set = ResultSet::new(&query, &w.groups);
            for g in &w.groups {
                let route = g.key[0]
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                let mean = set.cells(g.as_group_ref())[1]
                    .text()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0.0);
                latest.insert(route, (w.end_ms, g.rows, mean));
            }
        }
        // 4. Answer a "request" from the latest results.
        answered += 1;
        if answered % 200 == 0 {
            if let Some((end, n, mean)) = latest.get("/search") {
                println!(
                    "GET /stats/search -> window ending {end}: {n} requests, mean {mean:.1} ms"
                );
            }
        }
        let now = Instant::now();
        worst_stall = worst_stall.max(now - last_turn);
        last_turn = now;
        std::thread::sleep(Duration::from_millis(1));
    }
    let summary = stream.finish()?;
    println!(
        "produced {produced} events; the stream took {} records into {} windows ({windows} seen live); \
         {pushed_back} pushes handed back under backpressure; {answered} requests answered; \
         the app's loop never stalled longer than {:.1} ms",
        summary.records,
        summary.windows,
        worst_stall.as_secs_f64() * 1e3
    );
    Ok(())
}
