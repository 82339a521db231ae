#!/usr/bin/env bash
# benches/compare.sh [REPS]
#
# echokit's echo server against the hand-written C epoll reference, side by
# side: both servers pinned to CPU 0, the load generator to CPU 1, every cell
# run against A then B then A ... REPS times (default 5), medians and ratios.
# The reference servers and the load generator live in ../shared/bench
# (BENCH=... to point elsewhere); they are built here, never copied in.
#
#   MATRIX="1:64:1 50:64:1 1000:64:1 1:4096:1 50:4096:1 1000:4096:1 1:65536:8"
#   CELL_SECS=3 WARMUP=1    seconds per cell (see ../shared/bench/README.md)
#
# Output: the table that goes into BENCHMARKS.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="${BENCH:-$ROOT/../shared/bench}"
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
need_bench "$@"
REPS="${1:-5}"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
(cd "$BENCH" && ./build.sh >/dev/null)
echo "# $(date -u +%Y-%m-%d) $(nproc) cores, $(uname -r); echokit $(git -C "$ROOT" rev-parse --short HEAD)"
LABEL_A=echokit LABEL_B=c-epoll OUT="${OUT:-$BENCH/results/compare.jsonl}" "$BENCH/compare.sh" \
    "$ROOT/target/release/echokit echo-server tcp://127.0.0.1:{PORT}" \
    "$BENCH/anchors/c-epoll/echo-epoll {PORT}" "$REPS"
