#!/usr/bin/env bash
# benches/reliability.sh [FILTER]
#
# The reliability suite (issues 7 and 14) in one command: builds release, runs
# every test of tests/integration/reliability.rs, the #[ignore]d heavy ones
# too, and the root tier of tests/integration/root.rs (so, as root),
# one at a time (--test-threads=1 --nocapture), then FUZZ_RUNS (1,000,000)
# runs of the app codec's fuzz target (fuzz/run.sh), and writes
# RELIABILITY.md: each scenario's figures (the tests' `RELIABILITY <scenario>
# key=value ...` lines), what it shows and its bar, every test's result, the
# command, the machine and the date. It exits 1 if a test failed or the fuzzer
# crashed, after writing the report all the same.
#
#   ECHOKIT_SOAK_SECS  the soak's length (600, the issue's 10 minutes)
#   FUZZ_RUNS          fuzz inputs to run (1000000)
#   FILTER             run only the tests whose name contains it ("fuzz" for
#                      the fuzzer alone) and print the report on stdout
#                      instead of writing RELIABILITY.md
#
# Takes about 20 minutes (the soak is half of it); run it on a quiet machine,
# as the CPU and latency figures share the cores with whatever else runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILTER="${1:-}"
export ECHOKIT_SOAK_SECS="${ECHOKIT_SOAK_SECS:-600}"
FUZZ_RUNS="${FUZZ_RUNS:-1000000}"
# The fuzzer stops at FUZZ_RUNS; this only bounds a pathologically slow run.
FUZZ_MAX_SECS=3600
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$ROOT"

# The command as given, with the settings that differ from the defaults.
command_line="benches/reliability.sh${FILTER:+ $FILTER}"
[ "$FUZZ_RUNS" = 1000000 ] || command_line="FUZZ_RUNS=$FUZZ_RUNS $command_line"
[ "$ECHOKIT_SOAK_SECS" = 600 ] || command_line="ECHOKIT_SOAK_SECS=$ECHOKIT_SOAK_SECS $command_line"

wanted() { [ -z "$FILTER" ] || [[ $1 == *"$FILTER"* ]]; }

echo "building (release) ..." >&2
cargo build --release --quiet
cargo test --release --quiet --test integration --no-run 2>/dev/null
# The reliability tests (their serial tier and their heavy_ ones too) and
# the root tier's own module.
mapfile -t all < <(
    cargo test --release --quiet --test integration -- --list --include-ignored \
        reliability:: root:: 2>/dev/null \
        | sed -n 's/^\(\(reliability\|reliability::serial\|root\)::[^:]*\): test$/\1/p'
)

touch "$TMP/lines" "$TMP/results"
failed=0
for t in "${all[@]}"; do
    wanted "$t" || continue
    name="${t##*::}"
    kind=small
    [[ $name != heavy_* ]] || kind=heavy
    [[ $t != root::* ]] || kind=root
    echo "$name ($kind) ..." >&2
    t0="${EPOCHREALTIME/./}"
    status=ok
    cargo test --release --quiet --test integration -- --exact "$t" --include-ignored \
        --test-threads=1 --nocapture >"$TMP/$name.log" 2>&1 || status=FAILED
    took=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
    { grep -o 'RELIABILITY .*' "$TMP/$name.log" || true; } | sed "s/^/$kind\t/" >>"$TMP/lines"
    printf '%s\t%s\t%s\t%s\n' "$name" "$kind" "$status" "$took" >>"$TMP/results"
    if [ "$status" != ok ]; then
        failed=1
        echo "  FAILED; its output:" >&2
        grep -v '^RELIABILITY ' "$TMP/$name.log" | sed 's/^/    /' | tail -40 >&2
    fi
done

if wanted fuzz; then
    echo "fuzz: $FUZZ_RUNS runs of fuzz/fuzz_targets/decode.rs ..." >&2
    # (find fails on a directory not made yet: 0, not an exit under pipefail.)
    artifacts() { { find fuzz/artifacts/decode -type f 2>/dev/null || true; } | wc -l; }
    before="$(artifacts)"
    t0="${EPOCHREALTIME/./}"
    status=ok
    fuzz/run.sh "$FUZZ_MAX_SECS" "$FUZZ_RUNS" >"$TMP/fuzz.log" 2>&1 || status=FAILED
    took=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
    crashes=$(( $(artifacts) - before ))
    # libFuzzer's last words: "Done N runs in S second(s)"; on a crash there
    # is none, and the last "#N" status line tells how far it got.
    if [[ "$(grep -a 'Done [0-9]* runs in' "$TMP/fuzz.log" | tail -1)" =~ Done\ ([0-9]+)\ runs\ in\ ([0-9]+)\ second ]]; then
        runs="${BASH_REMATCH[1]}" fuzz_secs="${BASH_REMATCH[2]}"
    else
        # (No such line when the fuzzer never started: then 0, not an exit
        # under set -e and pipefail before the report is written.)
        runs="$({ grep -ao '^#[0-9]*' "$TMP/fuzz.log" || true; } | tail -1 | tr -d '#')"
        runs="${runs:-0}" fuzz_secs="?"
    fi
    [ "$runs" -ge "$FUZZ_RUNS" ] || status=FAILED
    [ "$crashes" -eq 0 ] || status=FAILED
    corpus="$({ find fuzz/corpus/decode -type f 2>/dev/null || true; } | wc -l)"
    printf 'heavy\t%s\n' "RELIABILITY fuzz target=decode runs=$runs secs=$fuzz_secs crashes=$crashes corpus_inputs=$corpus max_len=4096" >>"$TMP/lines"
    printf '%s\t%s\t%s\t%s\n' "fuzz/run.sh $FUZZ_MAX_SECS $FUZZ_RUNS" heavy "$status" "$took" >>"$TMP/results"
    if [ "$status" != ok ]; then
        failed=1
        echo "  FAILED ($runs runs, $crashes crashes); the end of its output:" >&2
        tail -30 "$TMP/fuzz.log" | sed 's/^/    /' >&2
    fi
fi

# The machine and the build the figures come from.
dirty=""
[ -z "$(git status --porcelain --untracked-files=no)" ] || dirty=" (with uncommitted changes)"
cat >"$TMP/meta" <<EOF
command=$command_line
date=$(date -u '+%Y-%m-%d %H:%M UTC')
kernel=$(uname -r)
cores=$(nproc)
memory=$(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
cpu=$(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)
commit=$(git rev-parse --short HEAD)$dirty
rustc=$(rustc --version)
EOF

report="$ROOT/RELIABILITY.md"
[ -z "$FILTER" ] || report="$TMP/RELIABILITY.md"
python3 "$ROOT/benches/reliability/report.py" "$TMP/meta" "$TMP/results" "$TMP/lines" >"$report"
if [ -n "$FILTER" ]; then
    cat "$report"
else
    echo "wrote $report" >&2
fi
exit "$failed"
