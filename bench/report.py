#!/usr/bin/env python3
"""Write BENCHMARKS.md from the results of bench/run.sh (standard library only).

usage: report.py [--results bench/results] [--out BENCHMARKS.md]

Reads, from the results folder: meta.tsv (command, versions, data files),
q1.json ... q4.json (tally, duckdb, polars) and q1-workers.json (j1, j2;
k1, k2: the kernel alone in one and two processes), in hyperfine's JSON
as bench/alternate.py writes it, startup.json
(hyperfine), memory.tsv, and the query outputs *.out to check that the
tools agree. Any of them may be missing; its section is left out.
"""
import argparse
import csv
import datetime
import io
import json
import os
import platform
import statistics
import sys
import time

QUERIES = {
    "q1": "Q1: min/mean/max(temp) by station, 1BRC file, 413 stations",
    "q2": "Q2: min/mean/max(temp) by station, 1BRC file, 10 000 stations",
    "q3": "Q3: count, sum(bytes), mean/min/max/stddev(latency_ms) by country, events CSV",
    "q4": "Q4: min/mean/max(temp) by station, 1BRC file, 2 000 000 stations (many groups)",
}

TOOLS = [("tally", "tally"), ("duckdb", "DuckDB"), ("polars", "Polars")]


# ------------------------------------------------------------------ inputs


def read_tsv(path):
    """Key-value lines `key<TAB>value` as a dict; {} if missing."""
    if not os.path.exists(path):
        return {}
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            out[key] = value
    return out


def read_hyperfine(path):
    """{name: {median, mean, stddev, min, max, runs}} from a hyperfine JSON
    (or bench/alternate.py's, which has the same fields)."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    out = {}
    for r in doc.get("results", []):
        times = r.get("times") or []
        median = r.get("median")
        if median is None and times:
            median = statistics.median(times)
        out[r["command"]] = {
            "median": median,
            "mean": r.get("mean"),
            "stddev": r.get("stddev") or 0.0,
            "min": r.get("min"),
            "max": r.get("max"),
            "runs": len(times),
        }
    return out


def machine():
    """CPU model, logical CPUs, memory, kernel."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 0
    mem = "unknown"
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    kib = int(line.split()[1])
                    mem = f"{kib / 1024 / 1024:.1f} GiB"
                    break
    except (OSError, ValueError):
        pass
    return {
        "cpu": model,
        "nproc": cpus,
        "memory": mem,
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
    }


# ------------------------------------------------------------------ agreement


def parse_1brc(text):
    """`{name=min/mean/max, ...}` as {name: (min, mean, max)}."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError("not in {name=min/mean/max, ...} form")
    out = {}
    body = text[1:-1]
    if not body:
        return out
    for item in body.split(", "):
        name, _, values = item.rpartition("=")
        out[name] = tuple(float(v) for v in values.split("/"))
    return out


def agree_1brc(base_text, other_text):
    """A short verdict comparing two 1BRC outputs."""
    a, b = parse_1brc(base_text), parse_1brc(other_text)
    if list(a) != list(b):
        missing = len(set(a) ^ set(b))
        if missing:
            return f"**differ**: {len(a)} vs {len(b)} stations, {missing} not in both"
        return "**differ**: same stations, different order"
    exact, rounding = 0, 0
    for name, (lo, mean, hi) in a.items():
        lo2, mean2, hi2 = b[name]
        if lo != lo2 or hi != hi2 or abs(mean - mean2) > 0.1 + 1e-9:
            return f"**differ** at {name!r}: {a[name]} vs {b[name]}"
        if mean == mean2:
            exact += 1
        else:
            rounding += 1
    if rounding == 0:
        return f"identical ({exact} stations)"
    return (
        f"agree ({len(a)} stations; {rounding} means differ by 0.1 where the exact "
        "mean is a rounding tie and float summation order decides)"
    )


def agree_csv(base_text, other_text, rel=1e-6):
    """A short verdict comparing two CSV outputs cell by cell (numbers with a
    relative tolerance; headers not compared)."""
    a = list(csv.reader(io.StringIO(base_text)))[1:]
    b = list(csv.reader(io.StringIO(other_text)))[1:]
    if len(a) != len(b):
        return f"**differ**: {len(a)} vs {len(b)} rows"
    for ra, rb in zip(a, b):
        if len(ra) != len(rb):
            return f"**differ**: {len(ra)} vs {len(rb)} columns in row {ra[:1]}"
        for x, y in zip(ra, rb):
            if x == y:
                continue
            try:
                fx, fy = float(x), float(y)
            except ValueError:
                return f"**differ**: {x!r} vs {y!r} in row {ra[:1]}"
            if abs(fx - fy) > rel * max(abs(fx), abs(fy), 1e-12):
                return f"**differ**: {x} vs {y} in row {ra[:1]}"
    return f"agree ({len(a)} groups, numbers within {rel:g} relative)"


def agreement(results, query):
    """Verdicts for DuckDB and Polars against tally, or None."""
    texts = {}
    for tool, _ in TOOLS:
        path = os.path.join(results, f"{query}.{tool}.out")
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                texts[tool] = f.read()
    if "tally" not in texts:
        return None
    out = []
    for tool, label in TOOLS[1:]:
        if tool not in texts:
            continue
        try:
            if query == "q3":
                verdict = agree_csv(texts["tally"], texts[tool])
            else:
                verdict = agree_1brc(texts["tally"], texts[tool])
        except (ValueError, IndexError) as e:
            verdict = f"could not compare: {e}"
        out.append((label, verdict))
    return out


# ------------------------------------------------------------------ output


def secs(x):
    return "–" if x is None else f"{x:.3f}"


def ratio(x, base):
    return "–" if x is None or not base else f"{x / base:.2f}×"


def gen_rows(meta, query):
    """Row count from the recorded `gen ... --rows N` command."""
    words = meta.get(f"{query}_gen", "").split()
    if "--rows" in words:
        i = words.index("--rows")
        if i + 1 < len(words) and words[i + 1].isdigit():
            return int(words[i + 1])
    return None


def human_bytes(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def query_section(lines, results, meta, query):
    data = read_hyperfine(os.path.join(results, f"{query}.json"))
    if not data:
        return None
    lines.append(f"### {QUERIES[query]}")
    lines.append("")
    rows = gen_rows(meta, query)
    size = meta.get(f"{query}_bytes")
    desc = [f"`{meta.get(f'{query}_file', '?')}`"]
    if rows:
        desc.append(f"{rows:,} rows")
    if size and size.isdigit():
        desc.append(human_bytes(int(size)))
    desc.append(f"made by `tally {meta.get(f'{query}_gen', '?')}`")
    lines.append("Input: " + ", ".join(desc) + ".")
    lines.append("")
    base = data.get("tally", {}).get("median")
    lines.append("| tool | median (s) | mean ± sd (s) | min (s) | max (s) | runs | time / tally's |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for tool, label in TOOLS:
        r = data.get(tool)
        if not r:
            continue
        lines.append(
            f"| {label} | {secs(r['median'])} | {secs(r['mean'])} ± {r['stddev']:.3f} "
            f"| {secs(r['min'])} | {secs(r['max'])} | {r['runs']} | {ratio(r['median'], base)} |"
        )
    lines.append("")
    parts = []
    for tool, label in TOOLS[1:]:
        r = data.get(tool)
        if r and base:
            parts.append(f"{label}/tally = **{r['median'] / base:.2f}**")
    if parts:
        lines.append("Ratios of medians (above 1: tally is faster): " + ", ".join(parts) + ".")
    if base and rows:
        mb = f", {int(size) / base / 1e6:,.0f} MB/s" if size and size.isdigit() else ""
        lines.append(f"tally throughput: {rows / base / 1e6:,.1f} M rows/s{mb}.")
    verdicts = agreement(results, query)
    if verdicts:
        lines.append("")
        lines.append("Same answers? " + "; ".join(f"{label} vs tally: {v}" for label, v in verdicts) + ".")
    lines.append("")
    return base


def workers_section(lines, results):
    data = read_hyperfine(os.path.join(results, "q1-workers.json"))
    if not data or "j1" not in data or "j2" not in data:
        return
    j1, j2 = data["j1"]["median"], data["j2"]["median"]
    lines.append("### Scaling: tally on Q1 with 1 and 2 workers")
    lines.append("")
    lines.append("| command | median (s) | mean ± sd (s) | runs |")
    lines.append("|---|---:|---:|---:|")
    rows = (
        ("j1", "tally `-j1`"),
        ("j2", "tally `-j2`"),
        ("k1", "the kernel alone, one process, whole file"),
        ("k2", "the kernel alone, two processes side by side, a half each"),
    )
    for key, label in rows:
        r = data.get(key)
        if r:
            lines.append(
                f"| {label} | {secs(r['median'])} | {secs(r['mean'])} ± {r['stddev']:.3f} | {r['runs']} |"
            )
    lines.append("")
    if j1 and j2:
        lines.append(f"Speed-up from 1 to 2 workers: **{j1 / j2:.2f}×** (ideal 2×).")
    k1 = data.get("k1", {}).get("median")
    k2 = data.get("k2", {}).get("median")
    if k1 and k2 and j1 and j2:
        lines.append(
            f"The same from one process to two of the kernel alone "
            f"(`worker/examples/scan_file`: no coordinator, no pipes, no merge; "
            f"what this machine gives for a second core on this scan): **{k1 / k2:.2f}×**. "
            f"tally's speed-up is {(j1 / j2) / (k1 / k2) * 100:.0f}% of it."
        )
    lines.append("")


def startup_section(lines, results):
    data = read_hyperfine(os.path.join(results, "startup.json"))
    if not data:
        return
    lines.append("### Start-up")
    lines.append("")
    lines.append("| command | median (ms) | mean ± sd (ms) |")
    lines.append("|---|---:|---:|")
    for name, r in data.items():
        lines.append(
            f"| `{name}` | {r['median'] * 1e3:.1f} | {r['mean'] * 1e3:.1f} ± {r['stddev'] * 1e3:.1f} |"
        )
    lines.append("")
    lines.append(
        "The Python rows are the fixed cost inside every DuckDB and Polars time above "
        "(interpreter start and import)."
    )
    lines.append("")
    spawn = read_numbers(os.path.join(results, "spawn.txt"))
    if spawn:
        lines.append(
            f"Pool spawn and handshake of 2 workers, as `tally workers -j 2` reports it "
            f"(first spawn to last handshake): median **{statistics.median(spawn):.1f} ms**, "
            f"min {min(spawn):.1f}, max {max(spawn):.1f}, {len(spawn)} runs (target ≤ 5 ms)."
        )
        lines.append("")


def read_numbers(path):
    """The numbers in `path`, one a line; [] if it is missing."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [float(l) for l in f if l.strip()]


def memory_section(lines, results):
    path = os.path.join(results, "memory.tsv")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        return
    lines.append("### Peak memory")
    lines.append("")
    lines.append("| tool | input | rows | max RSS (MiB) |")
    lines.append("|---|---|---:|---:|")
    for r in rows:
        try:
            mib = f"{int(r['max_rss_kb']) / 1024:.0f}"
        except (KeyError, ValueError):
            mib = "–"
        rows_s = f"{int(r['rows']):,}" if r.get("rows", "").isdigit() else r.get("rows", "")
        tool = dict(TOOLS).get(r.get("tool", ""), r.get("tool", ""))
        lines.append(f"| {tool} | `{r.get('file', '')}` | {rows_s} | {mib} |")
    lines.append("")
    lines.append(
        "Maximum resident set size from `/usr/bin/time -v`: the largest single process "
        "of the command (for tally, the coordinator or one worker, not their sum)."
    )
    lines.append("")


def render(results):
    meta_path = os.path.join(results, "meta.tsv")
    meta = read_tsv(meta_path)
    m = machine()
    # When the run was (bench/run.sh records it; older results have the time
    # their metadata was written), not when this report is written.
    when = meta.get("date") or datetime.datetime.fromtimestamp(
        os.path.getmtime(meta_path) if os.path.exists(meta_path) else time.time(),
        datetime.timezone.utc,
    ).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        "GROUP BY over big files: tally against DuckDB and Polars. Generated by "
        "`bench/run.sh` and `bench/report.py`; do not edit by hand, rerun instead.",
        "",
        "## Setup",
        "",
        f"- Date: {when}",
        f"- CPU: {m['cpu']}, {m['nproc']} logical CPUs (`nproc`)",
        f"- Memory: {m['memory']}",
        f"- OS: {m['os']}",
        f"- tally: {meta.get('tally_version', '?')}, commit {meta.get('tally_rev', '?')}",
        f"- DuckDB {meta.get('duckdb_version', '?')}, Polars {meta.get('polars_version', '?')} "
        f"(Python {meta.get('python_version', '?')}), {meta.get('hyperfine_version', 'hyperfine ?')}",
        "",
        "Command:",
        "",
        "```sh",
        meta.get("command", "bench/run.sh"),
        "```",
        "",
        "Method: warm page cache (the file was just read), "
        f"`bench/alternate.py --warmup 1 --runs {meta.get('runs', '?')}`: one warm-up "
        "round, then rounds that run tally, DuckDB and Polars once each in turn, so that "
        "all three meet the machine's drift alike (hyperfine would time every run of one "
        "tool before the next); medians of wall-clock seconds, output discarded. Every tool "
        "uses its default parallelism (all CPUs). DuckDB and Polars run the same query from "
        "a Python script (`bench/duckdb_q.py`, `bench/polars_q.py`) that reads the file "
        "with an explicit schema, groups, sorts and prints the result; their times include "
        "starting Python (see Start-up). Each tool's output is kept in `bench/results/` and "
        "compared with tally's.",
        "",
        "## Results",
        "",
    ]
    summary = []
    for query in QUERIES:
        if query in meta.get("queries", " ".join(QUERIES)).split():
            base = query_section(lines, results, meta, query)
            if base is not None:
                summary.append(query)
    if not summary:
        lines.append("No query results found.")
        lines.append("")
    workers_section(lines, results)
    startup_section(lines, results)
    memory_section(lines, results)
    for name, title, intro in LISTED_SECTIONS:
        listed_section(lines, os.path.join(results, name), title, intro)
    stream_section(lines)
    return "\n".join(lines).rstrip("\n") + "\n"


# Sections whose body is a text file of bench/results/, a list item a line:
# (file, title, introduction).
LISTED_SECTIONS = [
    (
        # bench/linear.sh
        "linear.txt",
        "Growth: Q1 at 50M and 500M rows (`bench/linear.sh`)",
        [
            "Time should grow linearly (target: 500M ≤ 10.5× the 50M time); the",
            "anonymous memory (heap, not the mapped file) of the coordinator and of",
            "each worker should not grow at all.",
        ],
    ),
    (
        # bench/instructions.sh
        "instructions.txt",
        "Kernel instructions per record (`bench/instructions.sh`)",
        [
            "The delimited kernel alone on one core (the `scan_file` example, reading with",
            "`\"` quoting as `tally run` does by default), and Q3's query through",
            "`tally run -j 1` (its worker process), counted by cachegrind: unlike wall",
            "time, this does not move with the machine's load. The last line counts",
            "Q2's query in 1 MiB chunks, coordinator and worker together: beside the",
            "kernel's line for 10,000 stations, it shows what partials cost.",
        ],
    ),
]


def listed_section(lines, path, title, intro):
    """A section whose body is the lines of the text file `path`, as a
    list; nothing if the file is missing."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        text = [l.strip() for l in f if l.strip()]
    lines.append(f"### {title}")
    lines.append("")
    lines.extend(intro)
    lines.append("")
    for l in text:
        lines.append(f"- {l}")
    lines.append("")


def stream_section(lines):
    """The streaming results (bench/stream.sh writes bench/STREAM_RESULTS.md)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "STREAM_RESULTS.md")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        text = f.read().splitlines()
    lines.append("## Streaming (`bench/stream.sh`)")
    lines.append("")
    for line in text:
        if line.startswith("# "):
            continue  # the file's own title
        lines.append("#" + line if line.startswith("## ") else line)
    lines.append("")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="bench/results")
    ap.add_argument("--out", default="BENCHMARKS.md")
    args = ap.parse_args(argv[1:])
    text = render(args.results)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
