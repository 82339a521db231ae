#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] [RUNS]: a coverage-guided run of the protocol
# decoder with libFuzzer through cargo-fuzz on the stable toolchain
# (--sanitizer none), for SECONDS (default 60; 0 for no time limit) or,
# when RUNS is given, until RUNS inputs have run, whichever comes first.
# Installs cargo-fuzz when it is missing. Findings go to
# fuzz/artifacts/decode/; the corpus grows in fuzz/corpus/decode/.
# libFuzzer ends with "Done N runs in S second(s)" or, on a crash, exits
# non-zero with the input that crashed in fuzz/artifacts/decode/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
SECS="${1:-60}"
RUNS="${2:-}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
mkdir -p corpus/decode
# Seed: the guide's search request.
printf '\x00\x67{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 41}{"action": "search", "value": "morpheus"}' \
    | sed 's/^/\x05/' > corpus/decode/guide-search
cargo fuzz run --sanitizer none decode corpus/decode -- -max_total_time="$SECS" -max_len=4096 ${RUNS:+-runs="$RUNS"}
