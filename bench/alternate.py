#!/usr/bin/env python3
"""Times shell commands in alternation and writes hyperfine's JSON.

usage: bench/alternate.py [--warmup N] [--runs N] --export-json FILE
                          -n NAME COMMAND [-n NAME COMMAND ...]

hyperfine times every run of one command before it starts the next one.
On this shared 2-core machine the speed drifts by tens of percent over
minutes, so a ratio of two commands timed minutes apart carries that drift
(Q1 at 500M rows against 50M rows: 9.5x in one sitting, 12.8x in another,
same binaries). Here each round runs every command once, in the order
given, so each command meets the same conditions as the others; the
medians of the rounds are then comparable.

Each command runs through `bash -c`, its output discarded, as hyperfine
does with `--output=null`; a command that fails stops the script. The
JSON holds, per command, what bench/report.py reads of hyperfine's:
`command` (the name), `times` (wall seconds per run), `mean`, `median`,
`stddev`, `min`, `max`, `user` and `system` (mean CPU seconds, the
command's processes together, including any that outlive it: this
process adopts orphans), and `max_rss_kb` (the largest resident set of
any one of them, in any run).
"""

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time


PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans():
    """Makes this process the reaper of its descendants' orphans (Linux).

    tally does not wait for its workers' exits (they release their pipes,
    then unmap their files), so a worker can outlive the command. A
    process's resource usage reaches only the parent that waits for it:
    without this, such a worker's CPU time and memory would count nowhere.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    except (OSError, AttributeError) as e:
        sys.exit(f"bench/alternate.py: cannot reap orphans ({e}); CPU and memory would be undercounted")


def run_once(command):
    """Wall, user and system seconds and the largest resident set (KiB) of
    one run of `command`. The wall time ends when the command exits; its
    CPU time and memory include every process it started, including those
    that outlived it (see `adopt_orphans`), which are waited for after."""
    started = time.perf_counter()
    child = subprocess.Popen(
        ["bash", "-c", command], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"bench/alternate.py: command failed (exit {code}): {command}")
    user, system, max_rss = usage.ru_utime, usage.ru_stime, usage.ru_maxrss
    while True:
        try:
            _, _, usage = os.wait4(-1, 0)
        except ChildProcessError:
            break
        user += usage.ru_utime
        system += usage.ru_stime
        max_rss = max(max_rss, usage.ru_maxrss)
    return wall, user, system, max_rss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--export-json", required=True)
    parser.add_argument(
        "-n", dest="named", nargs=2, action="append", metavar=("NAME", "COMMAND"),
        required=True,
    )
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0:
        sys.exit("bench/alternate.py: --runs must be at least 1, --warmup at least 0")
    adopt_orphans()

    for _ in range(args.warmup):
        for _, command in args.named:
            run_once(command)
    runs = {name: [] for name, _ in args.named}
    for round_ in range(args.runs):
        for name, command in args.named:
            runs[name].append(run_once(command))
        line = ", ".join(f"{name} {runs[name][-1][0]:.3f} s" for name, _ in args.named)
        print(f"round {round_ + 1}/{args.runs}: {line}", file=sys.stderr)

    results = []
    for name, command in args.named:
        walls = [r[0] for r in runs[name]]
        results.append({
            "command": name,
            "shell_command": command,
            "times": walls,
            "mean": statistics.mean(walls),
            "median": statistics.median(walls),
            "stddev": statistics.stdev(walls) if len(walls) > 1 else 0.0,
            "min": min(walls),
            "max": max(walls),
            "user": statistics.mean(r[1] for r in runs[name]),
            "system": statistics.mean(r[2] for r in runs[name]),
            "max_rss_kb": max(r[3] for r in runs[name]),
        })
        print(
            f"{name}: median {results[-1]['median']:.3f} s "
            f"(min {results[-1]['min']:.3f}, max {results[-1]['max']:.3f})",
            file=sys.stderr,
        )
    with open(args.export_json, "w", encoding="utf-8") as f:
        json.dump({"results": results}, f, indent=1)


if __name__ == "__main__":
    main()
