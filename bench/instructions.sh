#!/usr/bin/env bash
# The delimited kernel's instructions per record on 1BRC data, counted by
# cachegrind: a figure that does not drift with the machine's load, unlike
# wall time (on the shared 2-core VM one binary's Q1 time varies by 15% or
# more between runs). Use it to compare two builds of the kernel before
# timing them; it says nothing of cache misses or stalls, so confirm a gain
# with alternating timings (bench/alternate.py) afterwards.
#
# usage: bench/instructions.sh
#   env: ROWS [1200000], STATIONS ["413 10000"], EVENTS_ROWS [1000000]
#
# Runs the scan_file example (the kernel alone, one core, the file read in
# 16 MiB tasks) under `valgrind --tool=cachegrind --cache-sim=no` on a
# generated file per station count. Then Q3's query (the events CSV: the
# general splitter with quoting, several value columns) through `tally run
# -j 1`, counting the worker process: its start-up is in the count, about
# 0.3 instructions a record at a million rows. Last, Q2's query in 1 MiB
# chunks, coordinator and worker summed: the cost of partials. Writes
# bench/results/instructions.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh
ROWS=${ROWS:-1200000}
STATIONS=${STATIONS:-"413 10000"}
EVENTS_ROWS=${EVENTS_ROWS:-1000000}

command -v valgrind >/dev/null || apt_install valgrind
cargo build --release --bin tally >&2
cargo build --release -p tally-worker --example scan_file >&2
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p bench/data bench/results
OUT=bench/results/instructions.txt
echo "commit $(measured_rev)" >"$OUT"
for stations in $STATIONS; do
    file=bench/data/instr-$ROWS-$stations.txt
    [ -s "$file" ] || "$TARGET/release/tally" gen 1brc --rows "$ROWS" --stations "$stations" -o "$file"
    log=$(mktemp)
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        "$TARGET/release/examples/scan_file" "$file" file >"$log.out" 2>"$log"
    refs=$(sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$log" | tr -d ,)
    records=$(sed -n 's/^file: \([0-9]*\) records.*/\1/p' "$log.out")
    rm -f "$log" "$log.out"
    [ -n "$refs" ] && [ -n "$records" ] || { echo "bench/instructions.sh: no count for $file" >&2; exit 1; }
    python3 -c "import sys; r, n, s = map(int, sys.argv[1:]); print(f'{s} stations, {n:,} records: {r:,} instructions, {r / n:.1f} per record')" \
        "$refs" "$records" "$stations" | tee -a "$OUT"
done

# Q3's query, as bench/run.sh runs it; the worker is the child with the
# most instructions (the coordinator only plans and merges).
file=bench/data/instr-events-$EVENTS_ROWS.csv
[ -s "$file" ] || "$TARGET/release/tally" gen events --rows "$EVENTS_ROWS" -o "$file"
log=$(mktemp)
valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null --trace-children=yes \
    "$TARGET/release/tally" run "$file" -j 1 --by country \
    --agg 'count,sum(bytes),mean(latency_ms),min(latency_ms),max(latency_ms),stddev(latency_ms)' \
    --format csv >/dev/null 2>"$log"
refs=$(sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$log" | tr -d , | sort -n | tail -1)
rm -f "$log"
[ -n "$refs" ] || { echo "bench/instructions.sh: no count for $file" >&2; exit 1; }
python3 -c "import sys; r, n = map(int, sys.argv[1:]); print(f'Q3 events CSV (tally run -j 1, worker process), {n:,} rows: {r:,} instructions, {r / n:.1f} per record')" \
    "$refs" "$EVENTS_ROWS" | tee -a "$OUT"
# The cost of partials: Q2's query on the 10,000-station file cut in 1 MiB
# chunks (about 20 partials of 10,000 groups), coordinator and worker
# together: what encoding, sending, decoding and merging partials add to
# the kernel's count above.
file=bench/data/instr-$ROWS-10000.txt
[ -s "$file" ] || "$TARGET/release/tally" gen 1brc --rows "$ROWS" --stations 10000 -o "$file"
log=$(mktemp)
valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null --trace-children=yes \
    "$TARGET/release/tally" run "$file" -j 1 --chunk-size 1M --delimiter ';' --no-header \
    --columns station,temp --by station --agg 'min(temp),mean(temp),max(temp)' \
    --format 1brc >/dev/null 2>"$log"
refs=$(sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$log" | tr -d , |
    python3 -c 'import sys; print(sum(int(l) for l in sys.stdin if l.strip()))')
rm -f "$log"
[ -n "$refs" ] || { echo "bench/instructions.sh: no count for $file in 1 MiB chunks" >&2; exit 1; }
python3 -c "import sys; r, n = map(int, sys.argv[1:]); print(f'Q2 in 1 MiB chunks (tally run -j 1 --chunk-size 1M, coordinator and worker), {n:,} rows: {r:,} instructions, {r / n:.1f} per record')" \
    "$refs" "$ROWS" | tee -a "$OUT"
