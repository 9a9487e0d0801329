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
command's processes together).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def run_once(command):
    """Wall, user and system seconds of one run of `command`."""
    started = time.perf_counter()
    child = subprocess.Popen(
        ["bash", "-c", command], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"bench/alternate.py: command failed (exit {code}): {command}")
    return wall, usage.ru_utime, usage.ru_stime


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
