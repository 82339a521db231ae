#!/usr/bin/env bash
# benches/probe.sh [REPS] [RANGE]
#
# How long `echokit probe 127.0.0.1:RANGE` takes (default 1-1024), beside the
# guide's way measured in the same run: a Python loop of connect_ex, one port
# after the other (benches/probe/connect_ex.py). They alternate echokit,
# Python, echokit ... REPS times (default 7); each run's wall time is taken
# around the whole process, start-up included. Prints every run, the medians
# and the ratio echokit/Python, and checks that both found the same open ports.
#
#   ECHOKIT=path   the echokit binary (default target/release/echokit, built
#                  beforehand: cargo build --release)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
reps="${1:-7}"
range="${2:-1-1024}"
first="${range%-*}"
last="${range#*-}"
echokit="${ECHOKIT:-target/release/echokit}"

now() { date +%s.%N; }
e_times=()
p_times=()
for rep in $(seq 1 "$reps"); do
    t0=$(now)
    e_out=$("$echokit" probe --json "127.0.0.1:$range" || true)
    t1=$(now)
    p_out=$(python3 benches/probe/connect_ex.py 127.0.0.1 "$first" "$last")
    t2=$(now)
    e_open=$(python3 -c 'import json,sys; r=json.load(sys.stdin); print(" ".join(p["address"].rsplit(":", 1)[1] for p in r["probes"] if p["state"]=="open"))' <<<"$e_out")
    p_open=$(head -1 <<<"$p_out")
    if [ "$e_open" != "$p_open" ]; then
        echo "rep $rep: open ports differ: echokit [$e_open], python [$p_open]" >&2
        exit 1
    fi
    e=$(echo "$t1 - $t0" | bc -l)
    p=$(echo "$t2 - $t1" | bc -l)
    e_times+=("$e")
    p_times+=("$p")
    printf 'rep %d: echokit %.4f s, python %.4f s, open [%s]\n' "$rep" "$e" "$p" "$e_open"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
me=$(median "${e_times[@]}")
mp=$(median "${p_times[@]}")
printf 'median: echokit %.4f s, python connect_ex loop %.4f s, echokit/python %.3f\n' "$me" "$mp" "$(echo "$me / $mp" | bc -l)"
