#!/usr/bin/env python3
"""Reference GROUP BY for tally's end-to-end tests, standard library only.

    group_by.py FILE --by a,b --values x,y [--delimiter C] [--no-header --columns a,b,...]

Reads FILE with the `csv` module (RFC 4180: quoted delimiters, doubled
quotes, quoted newlines, CRLF), and prints one JSON object:

    {"groups": [{"key": ["US", null], "rows": 12,
                 "values": {"x": {"count": 11, "sum": "123.45", "sum_exact": true,
                                  "min": "0.5", "max": "99.1", "mean": "11.2",
                                  "stddev": "3.4"}}}]}

Semantics as tally documents them (SQL): an empty field is a null, both as a
key and as a value; `count` counts rows, `count(x)` non-null values; the
standard deviation is the sample one (null below two values). Floats are
printed with repr() as strings so that the reader parses them exactly; the
sum is an exact decimal string computed with `decimal` (`sum_exact` says
whether every value was a plain decimal without an exponent, which tally also
sums exactly). Groups are sorted as tally sorts them: per key column, a null
first, then by the UTF-8 bytes. Blank lines are not records.
"""

import argparse
import csv
import decimal
import json
import re
import sys

decimal.getcontext().prec = 200
ZERO = decimal.Decimal(0)
PLAIN_DECIMAL = re.compile(r"^ *[+-]?(\d+\.?\d*|\.\d+) *$")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--by", default="")
    p.add_argument("--values", default="")
    p.add_argument("--delimiter", default=",")
    p.add_argument("--no-header", action="store_true")
    p.add_argument("--columns", default="")
    a = p.parse_args()
    by = [c for c in a.by.split(",") if c]
    values = [c for c in a.values.split(",") if c]

    # newline="" lets the csv module see quoted newlines and CRLF itself.
    with open(a.file, newline="", encoding="utf-8", errors="surrogateescape") as f:
        rows = csv.reader(f, delimiter=a.delimiter, quotechar='"', strict=True)
        if a.no_header:
            header = a.columns.split(",")
        else:
            header = next(rows)
        index = {name: i for i, name in enumerate(header)}
        key_at = [index[c] for c in by]
        value_at = [index[c] for c in values]
        groups = {}
        for record in rows:
            if not record:
                continue  # a blank line
            key = tuple(record[i] if record[i] != "" else None for i in key_at)
            g = groups.setdefault(key, {"rows": 0, "values": [[] for _ in values]})
            g["rows"] += 1
            for slot, i in zip(g["values"], value_at):
                text = record[i]
                if text.strip(" ") != "":
                    slot.append(text)

    out = []
    for key in sorted(groups, key=sort_key):
        g = groups[key]
        out.append(
            {
                "key": list(key),
                "rows": g["rows"],
                "values": {name: summarise(texts) for name, texts in zip(values, g["values"])},
            }
        )
    sys.stdout.write(json.dumps({"groups": out}) + "\n")


def sort_key(key):
    return [(0, b"") if k is None else (1, k.encode("utf-8", "surrogateescape")) for k in key]


def summarise(texts):
    n = len(texts)
    if n == 0:
        return {"count": 0, "sum": None, "sum_exact": True, "min": None, "max": None,
                "mean": None, "stddev": None}
    exact = all(PLAIN_DECIMAL.match(t) for t in texts)
    floats = [float(t) for t in texts]
    # tally sums plain decimals exactly and other forms as the f64 they
    # parse to; Decimal(float) is that f64 exactly. At 200 digits the sums
    # and sums of squares below are exact, and mean and variance err far
    # below the tests' tolerance.
    if exact:
        values = [decimal.Decimal(t.strip(" ")) for t in texts]
    else:
        values = [decimal.Decimal(x) for x in floats]
    s1 = sum(values, ZERO)
    s2 = sum((v * v for v in values), ZERO)
    mean = s1 / n
    stddev = None
    if n >= 2:
        m2 = s2 - s1 * s1 / n
        stddev = (max(m2, ZERO) / (n - 1)).sqrt()
    total = s1 if exact else sum((decimal.Decimal(t.strip(" ")) for t in texts), ZERO)
    return {
        "count": n,
        "sum": plain(total),
        "sum_exact": exact,
        "min": repr(min(floats)),
        "max": repr(max(floats)),
        "mean": repr(float(mean)),
        "stddev": None if stddev is None else repr(float(stddev)),
    }


def plain(d):
    """A Decimal as plain digits without exponent or trailing zeros."""
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text


if __name__ == "__main__":
    main()
