#!/usr/bin/env python3
"""Run a benchmark query with DuckDB and print its result.

usage: duckdb_q.py {q1,q2,q3,q4} FILE

q1, q2, q4: min/mean/max(temp) by station over a header-less `station;temp` file,
        printed in the One Billion Row Challenge format
        `{name=min/mean/max, ...}` (names in byte order, means rounded half up).
q3:     count, sum(bytes), mean/min/max/stddev(latency_ms) by country over the
        events CSV (header, RFC 4180 quoting, empty latency = NULL), as CSV.
"""
import math
import sys

import duckdb


def fmt1(x):
    """One decimal, rounding half up as the 1BRC reference does."""
    return f"{math.floor(x * 10.0 + 0.5) / 10.0:.1f}".replace("-0.0", "0.0")


def q_1brc(con, path):
    rows = con.execute(
        """
        SELECT station, min(temp), avg(temp), max(temp)
        FROM read_csv(?, delim = ';', header = false, quote = '', escape = '',
                      columns = {'station': 'VARCHAR', 'temp': 'DOUBLE'})
        GROUP BY station
        ORDER BY station
        """,
        [path],
    ).fetchall()
    body = ", ".join(f"{s}={fmt1(lo)}/{fmt1(mean)}/{fmt1(hi)}" for s, lo, mean, hi in rows)
    print("{" + body + "}")


def q_events(con, path):
    rows = con.execute(
        """
        SELECT country, count(*), sum(bytes), avg(latency_ms), min(latency_ms),
               max(latency_ms), stddev_samp(latency_ms)
        FROM read_csv(?, header = true, delim = ',', quote = '"', escape = '"',
                      columns = {'ts': 'BIGINT', 'user': 'VARCHAR',
                                 'country': 'VARCHAR', 'status': 'INTEGER',
                                 'latency_ms': 'DOUBLE', 'bytes': 'BIGINT',
                                 'path': 'VARCHAR'})
        GROUP BY country
        ORDER BY country
        """,
        [path],
    ).fetchall()
    print("country,count,sum(bytes),mean(latency_ms),min(latency_ms),max(latency_ms),stddev(latency_ms)")
    for r in rows:
        print(",".join("" if v is None else str(v) for v in r))


def main(argv):
    if len(argv) != 3 or argv[1] not in ("q1", "q2", "q3", "q4"):
        sys.exit(__doc__)
    con = duckdb.connect()
    if argv[1] == "q3":
        q_events(con, argv[2])
    else:
        q_1brc(con, argv[2])


if __name__ == "__main__":
    main(sys.argv)
