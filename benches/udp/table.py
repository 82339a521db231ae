#!/usr/bin/env python3
"""benches/udp/table.py RESULTS.jsonl RUN

The markdown table of one run of benches/udp.sh: for each server, the median
datagrams/s over its repetitions, their min-max, the loss (lost / sent over
every repetition), the mismatched and late replies, the CPU (in CPUs) of
the server (median; near 1.00: the server is the limit), of the generator
(median; near 1.00: the generator may be the limit) and of everything else
on the machine (the worst rep; above 0.10, other work disturbed the run and
a warning says so); then the ratios of echokit's
median to each baseline's, with the min-max of the ratios rep by rep (each
rep runs the servers back to back, so its ratio pairs samples taken close
together). Failed repetitions (no reply) are not in the medians and are
counted in their own column.
"""
import json
import statistics
import sys

NAMES = {"echokit": "echokit", "base": "base (echokit BASE)", "c": "C recvmmsg/sendmmsg",
         "python": "Python recvfrom/sendto"}

path, run = sys.argv[1], sys.argv[2]
rows = []
with open(path) as results:
    for line in results:
        line = line.strip()
        if line:
            row = json.loads(line)
            if row.get("run") == run:
                rows.append(row)
servers = []
for r in rows:
    if r["server"] not in servers:
        servers.append(r["server"])


def good(server):
    return [r for r in rows if r["server"] == server and r["ok"]]


def fmt(x):
    return f"{x:,.0f}"


print("| server | datagrams/s (median) | min-max | loss % | mismatched | late "
      "| CPU server | CPU generator | CPU others (max) | reps | failed |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
medians = {}
for server in servers:
    ok = good(server)
    failed = sum(1 for r in rows if r["server"] == server and not r["ok"])
    if not ok:
        print(f"| {NAMES.get(server, server)} | - | - | - | - | - | - | - | - | 0 | {failed} |")
        continue
    dps = [r["dps"] for r in ok]
    medians[server] = statistics.median(dps)
    sent = sum(r["sent"] for r in ok)
    loss = 100.0 * sum(r["lost"] for r in ok) / sent if sent else 0.0
    print(f"| {NAMES.get(server, server)} | {fmt(medians[server])} | {fmt(min(dps))}-{fmt(max(dps))} "
          f"| {loss:.3f} | {sum(r['mismatched'] for r in ok)} | {sum(r['late'] for r in ok)} "
          f"| {statistics.median(r['server_cpu'] for r in ok):.2f} "
          f"| {statistics.median(r['gen_cpu'] for r in ok):.2f} "
          f"| {max(r['others_cpu'] for r in ok):.2f} | {len(ok)} | {failed} |")

if "echokit" in medians:
    print()
    print("| ratio | of the medians | rep by rep: median | geometric mean | min-max |")
    print("|---|---:|---:|---:|---:|")
    for base in ("base", "c", "python"):
        if base not in medians:
            continue
        by_rep = []
        for rep in sorted({r["rep"] for r in rows}):
            a = [r["dps"] for r in good("echokit") if r["rep"] == rep]
            b = [r["dps"] for r in good(base) if r["rep"] == rep]
            if a and b:
                by_rep.append(a[0] / b[0])
        if by_rep:
            spread = f"{min(by_rep):.2f}-{max(by_rep):.2f}"
            pooled = (f"{statistics.median(by_rep):.2f} | "
                      f"{statistics.geometric_mean(by_rep):.2f}")
        else:
            spread, pooled = "-", "- | -"
        print(f"| echokit / {NAMES[base].split()[0]} | {medians['echokit'] / medians[base]:.2f} "
              f"| {pooled} | {spread} |")
elif "c" in medians and "python" in medians:
    print()
    print(f"C / Python: {medians['c'] / medians['python']:.2f} (echokit not measured)")

disturbed = [r for r in rows if r.get("others_cpu", 0) > 0.10]
if disturbed:
    worst = max(r["others_cpu"] for r in disturbed)
    print()
    print(f"Warning: other processes took up to {worst:.2f} CPUs during {len(disturbed)} of the "
          f"{len(rows)} runs: these figures are disturbed; run again on a quiet machine.")
