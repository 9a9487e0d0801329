#!/usr/bin/env bash
# Benchmark: GROUP BY over big files, tally vs DuckDB vs Polars.
#
# usage: bench/run.sh
#
# Environment (defaults in brackets):
#   QUERIES    queries to run, any of q1 q2 q3 q4         ["q1 q2 q3 q4"]
#   RUNS       timed runs per command (after 1 warm-up)   [5]
#   Q1_ROWS    rows of the 1BRC file, 413 stations        [50000000]
#   Q2_ROWS    rows of the 1BRC file, 10000 stations      [50000000]
#   Q3_ROWS    rows of the events CSV                     [10000000]
#   Q4_ROWS    rows of the 1BRC file, 2,000,000 stations  [10000000]
#   EXTRAS     also run -j1/-j2, start-up and memory: 1/0 [1]
#   SCALING_RUNS  timed rounds of -j1/-j2 and the kernel alone [15]
#              (a second each; a speed-up is a ratio of two noisy
#              medians, so it gets more rounds than the queries)
#   TALLY      use this tally binary instead of building one
#
# Writes bench/data/ (generated inputs, reused while their spec is
# unchanged), bench/results/ (hyperfine JSON, query outputs, metadata) and
# BENCHMARKS.md at the repository root (by bench/report.py).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh

QUERIES=${QUERIES:-"q1 q2 q3 q4"}
RUNS=${RUNS:-5}
Q1_ROWS=${Q1_ROWS:-50000000}
Q2_ROWS=${Q2_ROWS:-50000000}
Q3_ROWS=${Q3_ROWS:-10000000}
Q4_ROWS=${Q4_ROWS:-10000000}
EXTRAS=${EXTRAS:-1}
SCALING_RUNS=${SCALING_RUNS:-15}

DATA=bench/data
RESULTS=bench/results
VENV=.venv
PY=$VENV/bin/python

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }

for q in $QUERIES; do
    case $q in q1 | q2 | q3 | q4) ;; *) die "unknown query '$q' in QUERIES (use q1 q2 q3 q4)" ;; esac
done
case $RUNS in '' | *[!0-9]*) die "RUNS must be a positive integer, got '$RUNS'" ;; esac
case $SCALING_RUNS in '' | *[!0-9]*) die "SCALING_RUNS must be a positive integer, got '$SCALING_RUNS'" ;; esac

# ---------------------------------------------------------------- tools

ensure_hyperfine() {
    command -v hyperfine >/dev/null || apt_install hyperfine
}

ensure_venv() {
    if [ -x "$PY" ] && "$PY" -c 'import duckdb, polars' 2>/dev/null; then return; fi
    log "creating $VENV with duckdb and polars (PyPI)"
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade duckdb polars
    "$PY" -c 'import duckdb, polars' || die "duckdb/polars did not import from $VENV"
}

build_tally() {
    if [ -n "${TALLY:-}" ]; then
        [ -x "$TALLY" ] || die "TALLY=$TALLY is not an executable"
        return
    fi
    log "building tally (release)"
    cargo build --release
    cargo build --release -p tally-worker --example scan_file
    local target=${CARGO_TARGET_DIR:-target}
    TALLY=$target/release/tally
    SCAN_FILE=$target/release/examples/scan_file
    [ -x "$TALLY" ] || die "no tally binary at $TALLY after the build"
}

# ---------------------------------------------------------------- data

# gen FILE ARGS...: runs `tally gen ARGS > FILE` unless FILE exists and was
# made by the same command (recorded in FILE.spec).
gen() {
    local file=$1
    shift
    local spec="gen $*"
    if [ -f "$file" ] && [ -f "$file.spec" ] && [ "$(cat "$file.spec")" = "$spec" ]; then
        return
    fi
    log "generating $file: tally $spec"
    rm -f "$file" "$file.spec"
    "$TALLY" gen "$@" >"$file.tmp"
    mv "$file.tmp" "$file"
    printf '%s\n' "$spec" >"$file.spec"
    uncache "$file"
}

data_file() {
    case $1 in
        q1) echo "$DATA/q1.txt" ;;
        q2) echo "$DATA/q2.txt" ;;
        q3) echo "$DATA/q3.csv" ;;
        q4) echo "$DATA/q4.txt" ;;
    esac
}

make_data() {
    mkdir -p "$DATA"
    local q
    for q in $QUERIES; do
        case $q in
            q1) gen "$DATA/q1.txt" 1brc --rows "$Q1_ROWS" ;;
            q2) gen "$DATA/q2.txt" 1brc --rows "$Q2_ROWS" --stations 10000 ;;
            q3) gen "$DATA/q3.csv" events --rows "$Q3_ROWS" ;;
            q4) gen "$DATA/q4.txt" 1brc --rows "$Q4_ROWS" --stations 2000000 ;;
        esac
    done
}

# ---------------------------------------------------------------- commands

# Shell-quoted command lines, as hyperfine runs them through a shell.

tally_cmd() { # query file [extra tally flags...]
    local query=$1 file=$2
    shift 2
    local extra=${*:+ $*}
    case $query in
        q1 | q2 | q4)
            echo "$(q "$TALLY") run $(q "$file")$extra ${ONEBRC_QUERY[*]@Q}"
            ;;
        q3)
            echo "$(q "$TALLY") run $(q "$file")$extra --by country --agg 'count,sum(bytes),mean(latency_ms),min(latency_ms),max(latency_ms),stddev(latency_ms)' --format csv"
            ;;
    esac
}
duckdb_cmd() { echo "$(q "$PY") bench/duckdb_q.py $1 $(q "$2")"; }
polars_cmd() { echo "$(q "$PY") bench/polars_q.py $1 $(q "$2")"; }

# ---------------------------------------------------------------- runs

run_query() {
    local query=$1 file
    file=$(data_file "$query")
    local t d p
    t=$(tally_cmd "$query" "$file")
    d=$(duckdb_cmd "$query" "$file")
    p=$(polars_cmd "$query" "$file")
    log "$query: checking each command once (outputs in $RESULTS/$query.*.out)"
    bash -c "$t" >"$RESULTS/$query.tally.out" || die "tally failed on $query: $t"
    bash -c "$d" >"$RESULTS/$query.duckdb.out" || die "duckdb failed on $query: $d"
    bash -c "$p" >"$RESULTS/$query.polars.out" || die "polars failed on $query: $p"
    log "$query: timing ($RUNS rounds of the three in turn, warm cache)"
    python3 bench/alternate.py --warmup 1 --runs "$RUNS" \
        --export-json "$RESULTS/$query.json" \
        -n tally "$t" -n duckdb "$d" -n polars "$p"
}

run_workers() {
    local file=$DATA/q1.txt
    # What the machine gives for a second core, without tally's coordinator:
    # the kernel alone (worker/examples/scan_file) in one process on the
    # whole file, and in two processes side by side on its halves. Only
    # when this script built tally (the example is built with it).
    local kernel=()
    if [ -n "${SCAN_FILE:-}" ] && [ -x "$SCAN_FILE" ]; then
        kernel=(-n k1 "$(kernel_cmd "$SCAN_FILE" "$file" 1)"
            -n k2 "$(kernel_cmd "$SCAN_FILE" "$file" 2)")
        log "q1: tally -j1 vs -j2; the kernel alone in one process vs two"
    else
        log "q1: tally -j1 vs -j2 (TALLY given: no kernel-alone ceiling)"
    fi
    python3 bench/alternate.py --warmup 1 --runs "$SCALING_RUNS" \
        --export-json "$RESULTS/q1-workers.json" \
        -n j1 "$(tally_cmd q1 "$file" -j1)" -n j2 "$(tally_cmd q1 "$file" -j2)" "${kernel[@]}"
}

run_startup() {
    local one=$DATA/one-line.txt
    printf 'Hamburg;12.0\n' >"$one"
    log "start-up: tally run on a 1-line file; tally workers; Python imports for reference"
    # --shell=none: no shell start-up inside these millisecond timings.
    hyperfine --shell=none --warmup 3 --runs 20 --output=null \
        --export-json "$RESULTS/startup.json" \
        -n "tally run (1-line file)" "$(tally_cmd q1 "$one")" \
        -n "tally workers" "$(q "$TALLY") workers" \
        -n "python -c 'import duckdb'" "$(q "$PY") -c 'import duckdb'" \
        -n "python -c 'import polars'" "$(q "$PY") -c 'import polars'"
    # The pool alone: `tally workers` reports the time from the first spawn
    # to the last worker's handshake ("... ready in 3.1 ms"), without the
    # start of tally itself.
    local i
    for i in $(seq 20); do
        "$TALLY" workers -j 2 | sed -n 's/.* ready in \([0-9.]*\) ms$/\1/p'
    done >"$RESULTS/spawn.txt"
    [ -s "$RESULTS/spawn.txt" ] || die "tally workers printed no 'ready in ... ms' line"
}

# max_rss_kb CMD: the largest resident set of any one process of CMD, those
# that outlive it included (tally does not wait for its workers' exits;
# bench/alternate.py adopts them). GNU time would see only the processes
# CMD waited for.
max_rss_kb() {
    local json
    json=$(mktemp)
    python3 bench/alternate.py --warmup 0 --runs 1 --export-json "$json" -n cmd "$1" 2>/dev/null ||
        { rm -f "$json"; return 1; }
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["results"][0]["max_rss_kb"])' "$json"
    rm -f "$json"
}

run_memory() {
    # Two sizes for tally: Q1 and a tenth of it, to show whether memory grows with input.
    local small=$DATA/mem-small.txt small_rows=$((Q1_ROWS / 10 > 0 ? Q1_ROWS / 10 : 1))
    gen "$small" 1brc --rows "$small_rows"
    log "memory: max RSS"
    {
        printf 'tool\tfile\trows\tmax_rss_kb\n'
        printf 'tally\t%s\t%s\t%s\n' "$small" "$small_rows" "$(max_rss_kb "$(tally_cmd q1 "$small")")"
        printf 'tally\t%s\t%s\t%s\n' "$DATA/q1.txt" "$Q1_ROWS" "$(max_rss_kb "$(tally_cmd q1 "$DATA/q1.txt")")"
        printf 'duckdb\t%s\t%s\t%s\n' "$DATA/q1.txt" "$Q1_ROWS" "$(max_rss_kb "$(duckdb_cmd q1 "$DATA/q1.txt")")"
        printf 'polars\t%s\t%s\t%s\n' "$DATA/q1.txt" "$Q1_ROWS" "$(max_rss_kb "$(polars_cmd q1 "$DATA/q1.txt")")"
    } >"$RESULTS/memory.tsv"
}

write_meta() {
    local git_rev
    git_rev=$(measured_rev)
    local cmd="QUERIES='$QUERIES' RUNS=$RUNS Q1_ROWS=$Q1_ROWS Q2_ROWS=$Q2_ROWS Q3_ROWS=$Q3_ROWS Q4_ROWS=$Q4_ROWS EXTRAS=$EXTRAS SCALING_RUNS=$SCALING_RUNS bench/run.sh"
    {
        printf 'command\t%s\n' "$cmd"
        printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
        printf 'tally_rev\t%s\n' "$git_rev"
        printf 'tally_version\t%s\n' "$("$TALLY" --version 2>/dev/null || echo unknown)"
        printf 'duckdb_version\t%s\n' "$("$PY" -c 'import duckdb; print(duckdb.__version__)')"
        printf 'polars_version\t%s\n' "$("$PY" -c 'import polars; print(polars.__version__)')"
        printf 'hyperfine_version\t%s\n' "$(hyperfine --version)"
        printf 'python_version\t%s\n' "$("$PY" -c 'import sys; print(sys.version.split()[0])')"
        printf 'queries\t%s\n' "$QUERIES"
        printf 'runs\t%s\n' "$RUNS"
        local query file
        for query in $QUERIES; do
            file=$(data_file "$query")
            printf '%s_file\t%s\n' "$query" "$file"
            printf '%s_bytes\t%s\n' "$query" "$(wc -c <"$file" | tr -d ' ')"
            printf '%s_gen\t%s\n' "$query" "$(cat "$file.spec")"
        done
    } >"$RESULTS/meta.tsv"
}

main() {
    ensure_hyperfine
    ensure_venv
    build_tally
    mkdir -p "$RESULTS"
    # Results of an earlier run with other settings must not leak into the report.
    rm -f "$RESULTS"/*.json "$RESULTS"/*.out "$RESULTS"/*.tsv
    make_data
    local query
    for query in $QUERIES; do
        run_query "$query"
    done
    if [ "$EXTRAS" = 1 ]; then
        case " $QUERIES " in *" q1 "*) run_workers ;; *) log "-j1/-j2 needs q1 in QUERIES, skipped" ;; esac
        run_startup
        case " $QUERIES " in *" q1 "*) run_memory ;; *) log "memory needs q1 in QUERIES, skipped" ;; esac
    fi
    write_meta
    log "writing BENCHMARKS.md"
    python3 bench/report.py --results "$RESULTS" --out BENCHMARKS.md
    log "done: BENCHMARKS.md"
}

main "$@"
