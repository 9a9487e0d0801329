# Helpers shared by the bench scripts (sourced, not run).

# as_root CMD...: runs CMD as root (directly, or through sudo).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        printf 'bench: need root to run: %s\n' "$*" >&2
        exit 1
    fi
}

# apt_install PKG: installs a Debian package (updating the lists if the
# first try fails), or stops the script where there is no apt-get.
apt_install() {
    command -v apt-get >/dev/null || { printf 'bench: %s is missing and apt-get is not available: install %s\n' "$1" "$1" >&2; exit 1; }
    printf '\n==> installing %s (apt-get)\n' "$1" >&2
    as_root apt-get install -y "$1" || { as_root apt-get update && as_root apt-get install -y "$1"; }
}

# uncache FILE...: drops each FILE's pages from the page cache (they are
# written back first), so that the next run reads it from disk. A file just
# written sits in the cache in 4 KiB pages; read back by tally (which asks
# for 2 MiB pages on its mappings) it is held in 2 MiB folios, as any file
# tally reads from disk is. Measured on Q1 at 500M rows: 4.29 s over the
# pages `tally gen` left, 3.98 s once read back. Every tool then reads the
# same warm cache.
uncache() {
    local f
    for f in "$@"; do
        sync "$f"
        dd if="$f" iflag=nocache count=0 status=none
    done
}

# measured_rev: the short commit of what is being measured, "(with
# uncommitted changes)" appended when the tree differs from it, or
# "unknown" outside git. BENCHMARKS.md is the benchmarks' own output: a
# change there is not a change to what was measured.
measured_rev() {
    local rev
    rev=$(git rev-parse --short HEAD 2>/dev/null) || { echo unknown; return; }
    git diff --quiet HEAD -- . ':!BENCHMARKS.md' 2>/dev/null || rev="$rev (with uncommitted changes)"
    echo "$rev"
}

# The 1BRC query of Q1, Q2 and Q4 as `tally run` flags: min/mean/max of
# temp by station over `station;temp` lines, printed in the 1BRC format.
# shellcheck disable=SC2034 # used by the scripts that source this file
ONEBRC_QUERY=(--delimiter ';' --no-header --columns station,temp --by station
    --agg 'min(temp),mean(temp),max(temp)' --format 1brc)

# q WORD: WORD quoted for a command that runs through `bash -c`.
q() { printf '%q' "$1"; }

# kernel_cmd SCAN_FILE FILE N: a command (for `bash -c`) that runs the
# kernel alone (worker/examples/scan_file, the 1BRC query) in N processes
# side by side, each on an Nth of FILE; N = 1 reads the whole file.
kernel_cmd() {
    local s f n=$3 i cmd=""
    s=$(q "$1")
    f=$(q "$2")
    if [ "$n" -eq 1 ]; then
        echo "$s $f file"
        return
    fi
    for ((i = 0; i < n; i++)); do cmd+="$s $f file $i/$n & "; done
    echo "${cmd}wait"
}
