#!/usr/bin/env bash
# benches/udp.sh [SECONDS] [REPS] [SIZE]
#
# UDP echo throughput, in datagrams/s, of `echokit echo-server udp://127.0.0.1:0`
# beside two baselines measured in the same run: a hand-written C loop
# (benches/udp/echo.c: one thread, blocking recvmmsg/sendmmsg, 64 a batch)
# and the guide reader's Python loop (benches/udp/echo.py: recvfrom/sendto).
# Each server runs alone, pinned to CPU 0; the load generator
# (benches/udp/flood.c) runs pinned to CPU 1, warms up 1 s, then counts
# verified replies for SECONDS (default 5). The servers alternate echokit, C,
# Python, echokit ... REPS times (default 3); SIZE is the datagram payload in
# bytes (default 64). Everything stays on 127.0.0.1, on ports the kernel picks.
#
#   ECHOKIT=path        the echokit binary (default target/release/echokit,
#                       built beforehand: cargo build --release);
#                       ECHOKIT=none measures the baselines only
#   BASE=path           another echokit binary (say, main before a change),
#                       run beside ECHOKIT in each rep, the two in turn
#                       first; the table adds their ratio rep by rep
#   BASELINES="c python" which of the baselines to run (either, both, or "")
#   WINDOW=32 SOCKETS=4 datagrams in flight per generator socket, sockets
#   OUT=path            results, appended (default benches/results/udp.jsonl)
#   STOP_SECS=5         how long a server may take to exit after SIGTERM
#                       before it is killed (SIGKILL)
#
# Each server is started with port 0 and read for its first stdout line,
# `listening on udp://HOST:PORT`; after its run it gets SIGTERM, then SIGKILL
# if it is still there STOP_SECS later, and the script checks that it and its
# port are gone. Each run appends one JSON line to OUT: flood's (see
# benches/udp/flood.c) with the run's id, the rep, whether it succeeded, how
# the server stopped, and the CPU taken by the server and by everything else
# on the machine meanwhile ("others_cpu": other work on this noisy machine
# shows there, and the table warns about it).
#
# Output: progress on stderr; on stdout a header line and the markdown tables
# for BENCHMARKS.md (benches/udp/table.py). Exit status 1 if any run failed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UDP="$ROOT/benches/udp"
SECS="${1:-5}"
REPS="${2:-3}"
SIZE="${3:-64}"
WINDOW="${WINDOW:-32}"
SOCKETS="${SOCKETS:-4}"
ECHOKIT="${ECHOKIT:-$ROOT/target/release/echokit}"
OUT="${OUT:-$ROOT/benches/results/udp.jsonl}"
STOP_SECS="${STOP_SECS:-5}"
CC="${CC:-cc}"

die() { echo "benches/udp.sh: $*" >&2; exit 1; }
[[ $SECS =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "SECONDS must be a number, not '$SECS'"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, not '$REPS'"
[[ $SIZE =~ ^[0-9]+$ ]] || die "SIZE must be an integer, not '$SIZE'"
[[ $STOP_SECS =~ ^[1-9][0-9]*$ ]] || die "STOP_SECS must be a positive integer, not '$STOP_SECS'"

mkdir -p "$UDP/bin" "$(dirname "$OUT")"
# Built aside, then renamed: a run already going keeps its binaries.
for prog in flood:flood echo-c:echo; do
    "$CC" -O2 -Wall -Wextra -o "$UDP/bin/${prog%%:*}.$$" "$UDP/${prog#*:}.c"
    mv -f "$UDP/bin/${prog%%:*}.$$" "$UDP/bin/${prog%%:*}"
done
# The interpreter itself, not a pyenv or venv shim in front of it: SIGTERM
# then goes straight to the server.
PYTHON="$(python3 -c 'import sys; print(sys.executable)')"

TMP="$(mktemp -d)"
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
cleanup() {
    kill_server
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start LABEL: start_server with LABEL's command line.
start() {
    case "$1" in
    echokit) start_server echokit udp "$ECHOKIT" echo-server udp://127.0.0.1:0 ;;
    base) start_server base udp "$BASE" echo-server udp://127.0.0.1:0 ;;
    c) start_server c udp "$UDP/bin/echo-c" 0 ;;
    python) start_server python udp "$PYTHON" "$UDP/echo.py" 0 ;;
    esac
}

LABELS=()
if [ "$ECHOKIT" = none ]; then
    echo "# ECHOKIT=none: measuring the baselines only" >&2
elif [ ! -x "$ECHOKIT" ]; then
    die "$ECHOKIT not found: build echokit first (cargo build --release), or set ECHOKIT=none to measure the baselines only"
else
    # Probe: an echokit without UDP support rejects udp:// and exits.
    port=""
    if start echokit 2>"$TMP/probe"; then
        stop_server
        LABELS+=(echokit)
    else
        echo "# $ECHOKIT does not serve udp:// (yet?): measuring the baselines only" >&2
        sed 's/^/#   /' "$TMP/probe" >&2
    fi
fi
BASELINES="${BASELINES-c python}"
if [ -n "${BASE:-}" ]; then
    [ -x "$BASE" ] || die "BASE=$BASE is not an executable"
    LABELS+=(base)
fi
# shellcheck disable=SC2206
LABELS+=($BASELINES)

RUN="$(date -u +%Y%m%dT%H%M%SZ)-$$"
if [[ " ${LABELS[*]} " = *" echokit "* ]]; then
    rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    [ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || rev="$rev+changes"
    what="echokit $rev (binary of $(date -u -r "$ECHOKIT" '+%Y-%m-%d %H:%M') UTC)"
else
    what="baselines only"
fi
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
header="Command: \`benches/udp.sh $SECS $REPS $SIZE\` (WINDOW=$WINDOW SOCKETS=$SOCKETS), $(date -u '+%Y-%m-%d %H:%M') UTC, Linux $(uname -r), $(nproc) cores, ${cpu:-unknown CPU}; $what"

# CPU accounting around each flood: the machine's busy ticks (steal
# included) less the server's and the generator's, to tell how much
# everything else took meanwhile. The loopback traffic's softirq work runs in
# the sending process and counts as its CPU, unless the kernel accounts irq
# time apart (CONFIG_IRQ_TIME_ACCOUNTING): then it is left out here too.
TCK="$(getconf CLK_TCK)"
IRQ_APART=0
if grep -qs '^CONFIG_IRQ_TIME_ACCOUNTING=y' "/boot/config-$(uname -r)" ||
    { [ -r /proc/config.gz ] && zcat /proc/config.gz | grep -q '^CONFIG_IRQ_TIME_ACCOUNTING=y'; }; then
    IRQ_APART=1
fi
machine_ticks() { awk -v apart=$IRQ_APART '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, apart * ($7 + $8) }' /proc/stat; }
field() { sed -n "s/.*\"$1\":\([-0-9.a-z]*\).*/\1/p" <<<"$2"; }

failures=0
for rep in $(seq 1 "$REPS"); do
    order=("${LABELS[@]}")
    # With BASE, the two echokits take turns going first.
    if [ -n "${BASE:-}" ] && [ $((rep % 2)) -eq 0 ] && [ "${order[0]}" = echokit ]; then
        order[0]=base order[1]=echokit
    fi
    for label in "${order[@]}"; do
        port=""
        if ! start "$label"; then
            failures=$((failures + 1))
            continue
        fi
        ok=true
        read -r m0 i0 <<<"$(machine_ticks)"
        s0="$(proc_ticks "$server_pid")"
        t0="${EPOCHREALTIME/./}"
        result="$(FLOOD_SERVER="$label" timeout -k 2 "$(( ${SECS%.*} + 15 ))" \
            taskset -c 1 "$UDP/bin/flood" "$host" "$port" "$SECS" "$SIZE" "$WINDOW" "$SOCKETS" \
            2>"$TMP/flood.stderr")" || ok=false
        t1="${EPOCHREALTIME/./}"
        s1="$(proc_ticks "$server_pid")"
        s1="${s1:-$s0}"
        read -r m1 i1 <<<"$(machine_ticks)"
        died=false
        case "$(state "$server_pid")" in '' | Z) died=true ok=false ;; esac
        stop_server
        if ! $ok; then
            failures=$((failures + 1))
            echo "rep $rep, $label: failed" >&2
            sed 's/^/    /' "$TMP/flood.stderr" >&2
            if $died; then
                echo "    the server exited during the run; the end of its stderr:" >&2
                tail -n 5 "$TMP/$label.stderr" | sed 's/^/        /' >&2
            fi
            [ -n "$result" ] || result="{\"server\":\"$label\",\"dps\":0,\"gen_cpu_s\":0}"
        fi
        # server_cpu: the server's share of its CPU while flood ran (warm-up
        # included); others_cpu: CPUs' worth taken by everything else.
        cpu="$(awk -v us=$((t1 - t0)) -v tck="$TCK" -v srv=$((s1 - s0)) -v busy=$((m1 - m0 - i1 + i0)) \
            -v gen="$(field gen_cpu_s "$result")" 'BEGIN {
                wall = us / 1e6
                others = ((busy - srv) / tck - gen) / wall
                printf "\"server_cpu\":%.2f,\"others_cpu\":%.2f", srv / tck / wall, others < 0 ? 0 : others }')"
        line="{\"run\":\"$RUN\",\"rep\":$rep,\"ok\":$ok,\"died\":$died,\"stop_ms\":$stop_ms,\"killed\":$killed,$cpu,${result#\{}"
        echo "$line" >>"$OUT"
        echo "# rep $rep $label: $(printf "%.0f" "$(field dps "$result")") datagrams/s," \
            "$(field lost "$result") lost; CPU: server $(field server_cpu "$line")," \
            "generator $(field gen_cpu "$result"), others $(field others_cpu "$line");" \
            "server stopped in ${stop_ms} ms$($killed && echo ', by SIGKILL')" >&2
    done
done

[ -z "$(jobs -p)" ] || die "processes left running: $(jobs -p | tr '\n' ' ')"
echo
echo "$header"
echo
python3 "$UDP/table.py" "$OUT" "$RUN"
[ "$failures" -eq 0 ] || die "$failures of the runs failed (see above)"
