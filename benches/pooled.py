#!/usr/bin/env python3
"""benches/pooled.py [RESULTS.jsonl] [RUNS]

Pools the last RUNS (default 3) alternated runs of benches/compare.sh into
one table: for each cell, the median over every sample of each side, and
their ratio. Each run alternates A and B cell by cell, so pooling several
runs keeps that pairing and narrows the noise of a single run's five samples.
"""
import json
import statistics
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "../shared/bench/results/compare.jsonl"
count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
rows = [json.loads(line) for line in open(path) if '"compare"' in line]
runs = []
for row in rows:
    if row["compare"]["run"] not in runs:
        runs.append(row["compare"]["run"])
chosen = set(runs[-count:])
rows = [r for r in rows if r["compare"]["run"] in chosen]
cells = []
for r in rows:
    key = (r["conns"], r["size"], r["depth"])
    if key not in cells:
        cells.append(key)


def median(side, key, figure):
    values = [figure(r) for r in rows if r["compare"]["side"] == side and (r["conns"], r["size"], r["depth"]) == key]
    values = [v for v in values if v is not None]
    return (statistics.median(values), len(values)) if values else (None, 0)


def cpu_per_msg(r):
    cpu = r.get("server_cpu_pct")
    return None if cpu is None or not r["msgs_per_s"] else cpu * 1e4 / r["msgs_per_s"]


print(f"pooled over {len(chosen)} runs")
print("| cell | samples | msgs/s A | msgs/s B | ratio | p99 us A | p99 us B | ratio | CPU/msg us A | B | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for key in cells:
    c, s, d = key
    (ma, n), (mb, _) = median("A", key, lambda r: r["msgs_per_s"]), median("B", key, lambda r: r["msgs_per_s"])
    (pa, _), (pb, _) = median("A", key, lambda r: r["lat_us"]["p99"]), median("B", key, lambda r: r["lat_us"]["p99"])
    (ca, _), (cb, _) = median("A", key, cpu_per_msg), median("B", key, cpu_per_msg)
    print(
        f"| {c}c x {s}B d{d} | {n} | {ma:,.0f} | {mb:,.0f} | {ma / mb:.2f} | {pa:,.1f} | {pb:,.1f} | {pa / pb:.2f} "
        f"| {ca:.2f} | {cb:.2f} | {ca / cb:.2f} |"
    )
