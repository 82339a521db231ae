#!/usr/bin/env bash
# benches/memory.sh [CONNECTIONS] [REPS]
#
# Server memory per idle connection: ../shared/bench/memory.sh opens
# CONNECTIONS (default 10,000) connections, echoes 64 bytes on each, holds
# them idle and reports the server's RSS growth per connection. Runs echokit
# and the C epoll reference alternately REPS times (default 3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="${BENCH:-$ROOT/../shared/bench}"
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
need_bench "$@"
N="${1:-10000}"
REPS="${2:-3}"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
(cd "$BENCH" && ./build.sh >/dev/null)
echo "# $(date -u +%Y-%m-%d) $(nproc) cores, $(uname -r); echokit $(git -C "$ROOT" rev-parse --short HEAD); $N connections"
for rep in $(seq 1 "$REPS"); do
    echo "## rep $rep"
    "$BENCH/memory.sh" "$ROOT/target/release/echokit echo-server tcp://127.0.0.1:{PORT}" echokit "$N"
    "$BENCH/memory.sh" "$BENCH/anchors/c-epoll/echo-epoll {PORT}" c-epoll "$N"
done
