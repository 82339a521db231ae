#!/usr/bin/env bash
# benches/app.sh [SECONDS=5] [REPS=3] [CONCURRENCY=32]
#
# Requests per second of `echokit app-server` beside the guide's Python
# app-server (benches/app/py_app_server.py: one thread, selectors), measured
# in the same run and alternated echokit, Python, echokit ... REPS times.
# Each server runs alone on CPU 0 (taskset -c 0: echokit then runs one event
# loop); the load generator (benches/app/appload.c) on CPU 1 keeps
# CONCURRENCY connections in flight, each one `search morpheus` request (the
# guide's bytes) and its whole response checked byte for byte, one request
# per connection as the guide's server closes after each. 1 s of warm-up,
# then SECONDS counted. Everything stays on 127.0.0.1, on ports the kernel
# picks. Build echokit first: cargo build --release.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP="$ROOT/benches/app"
SECS="${1:-5}"
REPS="${2:-3}"
CONC="${3:-32}"
ECHOKIT="${ECHOKIT:-$ROOT/target/release/echokit}"
[ -x "$ECHOKIT" ] || { echo "benches/app.sh: build echokit first (cargo build --release)" >&2; exit 1; }
mkdir -p "$APP/bin"
cc -O2 -Wall -Wextra -o "$APP/bin/appload" "$APP/appload.c"
TMP="$(mktemp -d)"
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
cleanup() { kill_server; rm -rf "$TMP"; }
trap cleanup EXIT
# The guide's request and the answer it must get, as the guide's Python builds them.
PYTHONPATH="$ROOT/tests/peers" python3 - "$TMP" <<'PY'
import json, sys
from guide_protocol import TABLE, message
def text(obj):
    return json.dumps(obj, ensure_ascii=False).encode()
req = message("text/json", "utf-8", text({"action": "search", "value": "morpheus"}))
resp = message("text/json", "utf-8", text({"result": TABLE["morpheus"]}))
open(sys.argv[1] + "/req", "wb").write(req)
open(sys.argv[1] + "/resp", "wb").write(resp)
PY
run_one() { # label command...
    local label="$1"; shift
    port=""
    start_server "$label" tcp "$@" || exit 1
    local line t0 t1 g0 g1
    # CPU time (clock ticks) of the server and of the generator (a reaped
    # child of this shell): the generator's connects and closes cost the
    # kernel as much as the server's accepts, so it may be the limit; server
    # CPU per request says what the server costs either way.
    t0="$(proc_ticks "$server_pid")"
    g0="$(children_ticks $$)"
    line="$(taskset -c 1 "$APP/bin/appload" "$host" "$port" "$SECS" "$CONC" "$TMP/req" "$TMP/resp")"
    t1="$(proc_ticks "$server_pid")"
    g1="$(children_ticks $$)"
    stop_server
    local tck; tck="$(getconf CLK_TCK)"
    local wall; wall="$(python3 -c "print($SECS + 1)")"
    echo "{\"server\": \"$label\", \"rep\": $rep, \"server_cpu\": $(python3 -c "print(round(($t1 - $t0) / $tck / $wall, 2))"), \"generator_cpu\": $(python3 -c "print(round(($g1 - $g0) / $tck / $wall, 2))"), ${line#\{}" | tee -a "$TMP/results"
}
for rep in $(seq 1 "$REPS"); do
    run_one echokit "$ECHOKIT" -q app-server 127.0.0.1:0
    run_one python python3 "$APP/py_app_server.py" 0
done
echo
echo "Command: \`benches/app.sh $SECS $REPS $CONC\`, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) cores; echokit $(git -C "$ROOT" rev-parse --short HEAD)"
python3 - "$TMP/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["server"], []).append(r)
print("\n| server | requests/s (median) | min-max | errors | CPU server | CPU generator | server us/request |\n|---|---:|---:|---:|---:|---:|---:|")
med = {}
for name, rs in by.items():
    v = [r["rps"] for r in rs]
    med[name] = statistics.median(v)
    cpu = statistics.median(r["server_cpu"] for r in rs)
    gen = statistics.median(r["generator_cpu"] for r in rs)
    us = statistics.median(1e6 * r["server_cpu"] / r["rps"] for r in rs)
    print(f"| {name} | {med[name]:,.0f} | {min(v):,.0f}-{max(v):,.0f} | {sum(r['errors'] for r in rs)} | {cpu:.2f} | {gen:.2f} | {us:.1f} |")
reps = sorted({r["rep"] for r in rows})
ratios = [next(r["rps"] for r in rows if r["rep"] == k and r["server"] == "echokit") /
          next(r["rps"] for r in rows if r["rep"] == k and r["server"] == "python") for k in reps]
print(f"\nechokit / Python: {med['echokit'] / med['python']:.2f} of the medians (rep by rep {min(ratios):.2f}-{max(ratios):.2f})")
PY
