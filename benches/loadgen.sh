#!/usr/bin/env bash
# benches/loadgen.sh [REPS] [CONNS] [SIZE]
#
# Is `echokit bench` a load generator to trust? It and ../shared/bench's
# reference load generator (raw epoll, verifies every byte) take turns
# against the same C epoll echo server: server pinned to CPU 0, generator to
# CPU 1, echokit then reference, REPS times (default 5), 3 s windows after
# 1 s of warm-up. Prints each run, then the medians of messages/s and of
# client CPU per message, and the ratios echokit/reference.
# Defaults: 50 connections of 64-byte messages, depth 1.
#
# BEFORE=path/to/echokit puts another build's bench in the reference's
# place: the before/after of a change to the bench itself, alternated the
# same way (after = this checkout's build, first in each rep).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="${BENCH:-$ROOT/../shared/bench}"
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
need_bench "$@"
REPS="${1:-5}"
CONNS="${2:-50}"
SIZE="${3:-64}"
CELL="${CELL:-3}"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
(cd "$BENCH" && ./build.sh >/dev/null)
ECHOKIT="$ROOT/target/release/echokit"
LOADGEN="$BENCH/target/release/loadgen"
OUT="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
taskset -c 0 "$BENCH/anchors/c-epoll/echo-epoll" "$PORT" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$OUT"' EXIT
for _ in $(seq 1 50); do ss -Hltn "sport = :$PORT" | grep -q LISTEN && break; sleep 0.1; done

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(uname -r); echokit $(git -C "$ROOT" rev-parse --short HEAD); reference ${BEFORE:-loadgen}; c-epoll on CPU 0, generators on CPU 1; -c $CONNS -s $SIZE, ${CELL}s after 1s warm-up"
for rep in $(seq 1 "$REPS"); do
    taskset -c 1 "$ECHOKIT" bench "127.0.0.1:$PORT" -c "$CONNS" -s "$SIZE" \
        --duration "${CELL}s" --warmup 1s --json >"$OUT/echokit-$rep.json"
    if [ -n "${BEFORE:-}" ]; then
        taskset -c 1 "$BEFORE" bench "127.0.0.1:$PORT" -c "$CONNS" -s "$SIZE" \
            --duration "${CELL}s" --warmup 1s --json >"$OUT/loadgen-$rep.json"
    else
        taskset -c 1 "$LOADGEN" -c "$CONNS" -s "$SIZE" -t "$CELL" -w 1 -q "127.0.0.1:$PORT" \
            >"$OUT/loadgen-$rep.json"
    fi
done
python3 - "$OUT" "$REPS" <<'EOF'
import json, statistics, sys
out, reps = sys.argv[1], int(sys.argv[2])
rows = []
for rep in range(1, reps + 1):
    e = json.load(open(f"{out}/echokit-{rep}.json"))
    l = json.loads(open(f"{out}/loadgen-{rep}.json").read().strip().splitlines()[-1])
    e_rate, e_cpu = e["messages_per_second"], e["client_cpu_us_per_message"]
    if "msgs_per_s" in l:  # the reference load generator
        assert e["passed"] and l["errors"]["total"] == 0, (e["errors"], l["errors"])
        l_rate = l["msgs_per_s"]
        l_cpu = l["client_cpu_pct"] / 100 / l_rate * 1e6
    else:  # BEFORE: another echokit build
        assert e["passed"] and l["passed"], (e["errors"], l["errors"])
        l_rate, l_cpu = l["messages_per_second"], l["client_cpu_us_per_message"]
    rows.append((e_rate, l_rate, e_cpu, l_cpu))
    print(f"rep {rep}: echokit {e_rate:>9,.0f} msg/s {e_cpu:5.2f} us/msg | "
          f"reference {l_rate:>9,.0f} msg/s {l_cpu:5.2f} us/msg | "
          f"ratio {e_rate / l_rate:.3f} msg/s, {e_cpu / l_cpu:.3f} cpu/msg")
med = [statistics.median(c) for c in zip(*rows)]
print(f"median: echokit {med[0]:,.0f} msg/s, {med[2]:.2f} us/msg; "
      f"reference {med[1]:,.0f} msg/s, {med[3]:.2f} us/msg")
rates = sorted(r[0] / r[1] for r in rows)
cpus = sorted(r[2] / r[3] for r in rows)
geo = lambda xs: statistics.geometric_mean(xs)
print(f"echokit/reference: msg/s {statistics.median(rates):.3f} ({rates[0]:.3f}-{rates[-1]:.3f}), "
      f"client CPU per message {statistics.median(cpus):.3f} ({cpus[0]:.3f}-{cpus[-1]:.3f}); "
      f"geometric means {geo(rates):.3f}, {geo(cpus):.3f}")
EOF
