#!/usr/bin/env python3
"""benches/before_after.py [RESULTS.jsonl] [RUN]

Judges one alternated run of ../shared/bench/compare.sh with A = after and
B = before (the same cells, each rep against A then B): for each cell, the
rep-by-rep ratios A/B of messages per second and of server CPU per message,
their median and spread; then, pooled over the ping-pong cells (depth 1),
the geometric mean of every rep's ratio. The bulk cell (depth > 1) is shown,
not pooled. RUN is a run id (default: the last run in the file).
"""
import json
import math
import statistics
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "../shared/bench/results/compare.jsonl"
rows = [json.loads(line) for line in open(path) if '"compare"' in line]
run = sys.argv[2] if len(sys.argv) > 2 else rows[-1]["compare"]["run"]
rows = [r for r in rows if r["compare"]["run"] == run]


def cpu_per_msg(r):
    cpu = r.get("server_cpu_pct")
    return None if cpu is None or not r["msgs_per_s"] else cpu * 1e4 / r["msgs_per_s"]


samples = {}
for r in rows:
    key = (r["conns"], r["size"], r["depth"])
    samples.setdefault(key, {}).setdefault(r["compare"]["rep"], {})[r["compare"]["side"]] = r

print(f"run {run}: ratios after/before, rep by rep")
print("| cell | reps | msgs/s median | spread | CPU/msg median | spread |")
print("|---|---:|---:|---|---:|---|")
pooled_msgs, pooled_cpu, worst = [], [], None
for key, reps in samples.items():
    msgs, cpu = [], []
    for pair in reps.values():
        if "A" not in pair or "B" not in pair or not pair["B"]["msgs_per_s"]:
            continue
        msgs.append(pair["A"]["msgs_per_s"] / pair["B"]["msgs_per_s"])
        ca, cb = cpu_per_msg(pair["A"]), cpu_per_msg(pair["B"])
        if ca is not None and cb:
            cpu.append(ca / cb)
    if not msgs:
        continue
    c, s, d = key
    ping_pong = d == 1
    label = f"{c}c x {s}B d{d}" + ("" if ping_pong else " (bulk: shown, not judged)")
    m = statistics.median(msgs)
    mc = statistics.median(cpu) if cpu else float("nan")
    print(
        f"| {label} | {len(msgs)} | {m:.2f} | {min(msgs):.2f}-{max(msgs):.2f} "
        f"| {mc:.2f} | {min(cpu, default=float('nan')):.2f}-{max(cpu, default=float('nan')):.2f} |"
    )
    if ping_pong:
        pooled_msgs += msgs
        pooled_cpu += cpu
        worst = m if worst is None else min(worst, m)


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


if pooled_msgs:
    print()
    print(
        f"ping-pong cells pooled: geometric mean msgs/s {geomean(pooled_msgs):.3f} "
        f"over {len(pooled_msgs)} pairs; CPU per message {geomean(pooled_cpu):.3f} "
        f"over {len(pooled_cpu)}; lowest cell median msgs/s {worst:.2f}"
    )
