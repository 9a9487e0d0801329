#!/usr/bin/env bash
# Streaming benchmarks of `tally stream` (numbers go to bench/STREAM_RESULTS.md).
#
#   S1  sustained throughput: 1BRC lines piped through
#       `tally stream --by station --agg 'mean(temp)' --window 1s -j2`,
#       records/s; and the same job the Node.js child_process way
#       (bench/stream_node.js: batches of 10,000 lines to 2 children over IPC).
#   S2  latency from a window's end to its line on stdout, p50/p99, at half
#       the sustained rate (bench/stream_latency.py).
#   M   memory at overload: `cat` (GB/s) into one worker; peak RSS of tally,
#       and the record count (nothing dropped).
#
# usage: bench/stream.sh            (env: ROWS [20000000], RUNS [3], TALLY)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROWS=${ROWS:-20000000}
RUNS=${RUNS:-3}
if [ -z "${TALLY:-}" ]; then
    cargo build --release >&2
    TALLY=${CARGO_TARGET_DIR:-target}/release/tally
fi
DATA=bench/data/stream-1brc-$ROWS.txt
mkdir -p bench/data bench/results
[ -s "$DATA" ] || "$TALLY" gen 1brc --rows "$ROWS" -o "$DATA"
BYTES=$(stat -c %s "$DATA")
OUT=bench/results/stream.txt
: > "$OUT"
say() { echo "$*" | tee -a "$OUT"; }

say "machine: $(nproc) cores, $(uname -sr); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
say "input: $ROWS rows, $BYTES bytes ($DATA)"

# S1 ------------------------------------------------------------------
best=0
for i in $(seq "$RUNS"); do
    start=$(date +%s.%N)
    lines=$(cat "$DATA" | "$TALLY" stream -d ';' --columns station,temp --by station \
        --agg 'mean(temp)' --window 1s -j2 | wc -l)
    end=$(date +%s.%N)
    rate=$(python3 -c "print(int($ROWS / ($end - $start)))")
    say "S1 tally run $i: $(python3 -c "print(round($end - $start, 3))") s, $rate records/s ($lines window lines)"
    [ "$rate" -gt "$best" ] && best=$rate
done
say "S1 tally best: $best records/s"
if command -v node >/dev/null; then
    for i in $(seq "$RUNS"); do
        say "S1 node run $i: $(node bench/stream_node.js "$DATA")"
    done
fi

# S2 ------------------------------------------------------------------
half=$((best / 2))
say "S2 at half the sustained rate ($half records/s):"
python3 bench/stream_latency.py --tally "$TALLY" --rate "$half" --seconds "${S2_SECONDS:-10}" | tee -a "$OUT"

# M -------------------------------------------------------------------
for j in 1 2; do
    res=$( { /usr/bin/time -f "%M" sh -c "cat '$DATA' | '$TALLY' stream -d ';' --columns station,temp \
        --agg 'count' --every 10s -j$j --time-format ms | tail -1" ; } 2>&1 )
    count=$(echo "$res" | head -1 | python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['count'])")
    rss=$(echo "$res" | tail -1)
    say "M overload -j$j: peak RSS of tally $((rss / 1024)) MiB for $((BYTES / 1048576)) MiB of input; count $count of $ROWS"
done
