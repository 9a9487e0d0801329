#!/usr/bin/env bash
# How tally scales with workers on this machine: Q1 and Q2 (the 1BRC
# queries of bench/run.sh) at -j 1, 2, 4, ... and, in the same rounds, the
# kernel alone (worker/examples/scan_file) in as many processes side by
# side, each on an equal part of the file: no coordinator, no pipes, no
# merge, so what the machine itself gives for more cores. On a lent
# 16-core machine: `WORKERS="1 2 4 8 16" bench/scaling.sh`.
#
# usage: bench/scaling.sh
#   env: WORKERS  worker counts [1 2 4 ... up to the number of CPUs]
#        RUNS     timed rounds (after 1 warm-up) [5]
#        QUERIES  q1 q2 [q1 q2]
#        TALLY, SCAN_FILE  prebuilt binaries (default: build them)
#
# Writes bench/results/scaling-QUERY.json (bench/alternate.py's JSON) and
# bench/results/scaling.md (a table per query), and prints the tables.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh

die() { printf 'bench/scaling.sh: %s\n' "$*" >&2; exit 1; }

RUNS=${RUNS:-5}
QUERIES=${QUERIES:-"q1 q2"}
if [ -z "${WORKERS:-}" ]; then
    WORKERS=1
    n=2
    while [ "$n" -le "$(nproc)" ]; do WORKERS="$WORKERS $n"; n=$((n * 2)); done
fi
case $RUNS in '' | *[!0-9]* | 0) die "RUNS must be a positive integer, got '$RUNS'" ;; esac
for j in $WORKERS; do
    case $j in '' | *[!0-9]* | 0) die "WORKERS must be positive integers, got '$j'" ;; esac
done

if [ -z "${TALLY:-}" ] || [ -z "${SCAN_FILE:-}" ]; then
    cargo build --release >&2
    cargo build --release -p tally-worker --example scan_file >&2
    target=${CARGO_TARGET_DIR:-target}
    TALLY=${TALLY:-$target/release/tally}
    SCAN_FILE=${SCAN_FILE:-$target/release/examples/scan_file}
fi
[ -x "$TALLY" ] || die "no tally binary at $TALLY"
[ -x "$SCAN_FILE" ] || die "no scan_file binary at $SCAN_FILE"

mkdir -p bench/data bench/results
OUT=bench/results/scaling.md
{
    echo "# Scaling ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, tally $(measured_rev))"
    echo
    echo "Command: \`WORKERS=\"$WORKERS\" RUNS=$RUNS QUERIES=\"$QUERIES\" bench/scaling.sh\`; medians of $RUNS alternating rounds."
} >"$OUT"

for query in $QUERIES; do
    case $query in
        q1) file=bench/data/q1.txt gen_args=(1brc --rows 50000000) ;;
        q2) file=bench/data/q2.txt gen_args=(1brc --rows 50000000 --stations 10000) ;;
        *) die "unknown query '$query' (q1 or q2)" ;;
    esac
    [ -s "$file" ] || "$TALLY" gen "${gen_args[@]}" -o "$file"
    # From disk, then read once: the page cache as bench/run.sh leaves it.
    uncache "$file"
    "$TALLY" run "$file" "${ONEBRC_QUERY[@]}" >/dev/null
    cmds=()
    for j in $WORKERS; do
        cmds+=(-n "tally-j$j" "$(q "$TALLY") run $(q "$file") -j $j ${ONEBRC_QUERY[*]@Q}")
        cmds+=(-n "kernel-$j" "$(kernel_cmd "$SCAN_FILE" "$file" "$j")")
    done
    printf '\n==> %s: %s\n' "$query" "workers $WORKERS" >&2
    json=bench/results/scaling-$query.json
    python3 bench/alternate.py --warmup 1 --runs "$RUNS" --export-json "$json" "${cmds[@]}"
    python3 - "$json" "$query" "$WORKERS" >>"$OUT" <<'EOF'
import json, sys
path, query, workers = sys.argv[1], sys.argv[2], sys.argv[3].split()
med = {r["command"]: r["median"] for r in json.load(open(path))["results"]}
t1, k1 = med["tally-j1"], med["kernel-1"]
print(f"\n## {query}\n")
print("| workers | tally (s) | speed-up | kernel alone (s) | speed-up | tally's share of the kernel's speed-up |")
print("|---:|---:|---:|---:|---:|---:|")
for j in workers:
    t, k = med[f"tally-j{j}"], med[f"kernel-{j}"]
    print(f"| {j} | {t:.3f} | {t1 / t:.2f}x | {k:.3f} | {k1 / k:.2f}x | {(t1 / t) / (k1 / k) * 100:.0f}% |")
EOF
done
cat "$OUT"
