#!/usr/bin/env bash
# Q1 cost at 50M and 500M rows: time (must grow linearly) and the peak
# anonymous memory of the coordinator and of each worker (must not grow;
# the mapped file is page cache, not counted). Needs ~9 GB of disk for the
# 500M-row file. Writes bench/results/linear.txt, which bench/report.py
# puts into BENCHMARKS.md.
#
# usage: bench/linear.sh          (env: BIG_ROWS [500000000], RUNS [3], TALLY)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh
BIG_ROWS=${BIG_ROWS:-500000000}
RUNS=${RUNS:-3}
if [ -z "${TALLY:-}" ]; then
    cargo build --release >&2
    TALLY=${CARGO_TARGET_DIR:-target}/release/tally
fi
mkdir -p bench/data bench/results
SMALL=bench/data/q1.txt
BIG=bench/data/q1-$BIG_ROWS.txt
[ -s "$SMALL" ] || "$TALLY" gen 1brc --rows 50000000 -o "$SMALL"
[ -s "$BIG" ] || "$TALLY" gen 1brc --rows "$BIG_ROWS" -o "$BIG"
# Both files start from disk, so that the page cache holds both the same
# way (2 MiB folios, see `uncache` in bench/lib.sh), not one in the 4 KiB
# pages a fresh `tally gen` leaves.
uncache "$SMALL" "$BIG"
OUT=bench/results/linear.txt
: > "$OUT"

# The two files' runs alternate (bench/alternate.py): this machine's speed
# drifts by tens of percent over minutes, and hyperfine, which times all
# runs of one command before the next, put that drift into the ratio (9.5x
# and 12.8x in two sittings, same binaries).
python3 bench/alternate.py --warmup 1 --runs "$RUNS" \
    --export-json bench/results/linear.json \
    -n 50M "$TALLY run $SMALL ${ONEBRC_QUERY[*]@Q}" -n big "$TALLY run $BIG ${ONEBRC_QUERY[*]@Q}"
python3 - "$BIG_ROWS" "$RUNS" >> "$OUT" <<'PY'
import json, statistics, sys
r = json.load(open("bench/results/linear.json"))["results"]
a, b = (x["median"] for x in r)
big = f"{int(sys.argv[1]) // 1_000_000}M rows"
print(f"time: 50M rows {a:.3f} s, {big} {b:.3f} s "
      f"(medians of {sys.argv[2]} alternating runs); ratio {b / a:.2f}")
# CPU seconds drift less than wall seconds on a shared machine.
ca, cb = (x["user"] + x["system"] for x in r)
print(f"CPU (user + system, all processes): 50M rows {ca:.3f} s, {big} {cb:.3f} s "
      f"(means); ratio {cb / ca:.2f}")
PY

# Peak RssAnon (kB) of the coordinator and of its workers, sampled every 10 ms.
peak() {
    "$TALLY" run "$1" "${ONEBRC_QUERY[@]}" > /dev/null &
    local pid=$! maxc=0 maxw=0 v w
    while kill -0 "$pid" 2>/dev/null; do
        v=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$v" ] && [ "$v" -gt "$maxc" ] && maxc=$v
        for w in $(pgrep -P "$pid" || true); do
            v=$(awk '/RssAnon/ {print $2}' "/proc/$w/status" 2>/dev/null || true)
            [ -n "$v" ] && [ "$v" -gt "$maxw" ] && maxw=$v
        done
        sleep 0.01
    done
    wait "$pid"
    echo "memory: $(basename "$1"): coordinator peak RssAnon $maxc kB, largest worker peak RssAnon $maxw kB"
}
peak "$SMALL" >> "$OUT"
peak "$BIG" >> "$OUT"
cat "$OUT"
