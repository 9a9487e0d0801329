#!/usr/bin/env python3
"""Run a benchmark query with Polars and print its result.

usage: polars_q.py {q1,q2,q3,q4} FILE

The same queries and output as duckdb_q.py: q1/q2/q4 in the One Billion Row
Challenge format, q3 as CSV. Uses the lazy API (`scan_csv`) so Polars plans
the whole query; set POLARS_ENGINE=streaming to use its streaming engine.
"""
import math
import os
import sys

import polars as pl


def fmt1(x):
    """One decimal, rounding half up as the 1BRC reference does."""
    return f"{math.floor(x * 10.0 + 0.5) / 10.0:.1f}".replace("-0.0", "0.0")


def collect(lazy):
    engine = os.environ.get("POLARS_ENGINE")
    return lazy.collect(engine=engine) if engine else lazy.collect()


def q_1brc(path):
    lazy = (
        pl.scan_csv(
            path,
            separator=";",
            has_header=False,
            quote_char=None,
            schema={"station": pl.String, "temp": pl.Float64},
        )
        .group_by("station")
        .agg(
            pl.col("temp").min().alias("min"),
            pl.col("temp").mean().alias("mean"),
            pl.col("temp").max().alias("max"),
        )
        .sort("station")
    )
    df = collect(lazy)
    body = ", ".join(
        f"{s}={fmt1(lo)}/{fmt1(mean)}/{fmt1(hi)}" for s, lo, mean, hi in df.iter_rows()
    )
    print("{" + body + "}")


def q_events(path):
    lat = pl.col("latency_ms")
    lazy = (
        pl.scan_csv(
            path,
            has_header=True,
            quote_char='"',
            schema={
                "ts": pl.Int64,
                "user": pl.String,
                "country": pl.String,
                "status": pl.Int32,
                "latency_ms": pl.Float64,
                "bytes": pl.Int64,
                "path": pl.String,
            },
        )
        .group_by("country")
        .agg(
            pl.len().alias("count"),
            pl.col("bytes").sum().alias("sum(bytes)"),
            lat.mean().alias("mean(latency_ms)"),
            lat.min().alias("min(latency_ms)"),
            lat.max().alias("max(latency_ms)"),
            lat.std().alias("stddev(latency_ms)"),
        )
        .sort("country")
    )
    df = collect(lazy)
    print(",".join(df.columns))
    for r in df.iter_rows():
        print(",".join("" if v is None else str(v) for v in r))


def main(argv):
    if len(argv) != 3 or argv[1] not in ("q1", "q2", "q3", "q4"):
        sys.exit(__doc__)
    if argv[1] == "q3":
        q_events(argv[2])
    else:
        q_1brc(argv[2])


if __name__ == "__main__":
    main(sys.argv)
