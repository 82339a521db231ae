# benches/lib.sh: what the bench scripts share, sourced by them.
#
# The caller sets TMP (a private temporary directory), and may set
# READY_SECS (10) and STOP_SECS (5). A server is started pinned to CPU 0 and
# its address is read from the first line it prints ("listening on
# SCHEME://HOST:PORT"), through a FIFO: no polling, no fixed port.

READY_SECS="${READY_SECS:-10}"
STOP_SECS="${STOP_SECS:-5}"
server_pid=""   # the server running now, if any
server_out=""   # the read end of its stdout

# start_server LABEL SCHEME COMMAND...: starts COMMAND pinned to CPU 0 and
# reads "listening on SCHEME://HOST:PORT" from its first line of stdout; sets
# server_pid, host and port. Returns 1 (server stopped) if no such line comes.
start_server() {
    local label="$1" scheme="$2" line=""
    shift 2
    rm -f "$TMP/stdout"
    mkfifo "$TMP/stdout"
    taskset -c 0 "$@" </dev/null >"$TMP/stdout" 2>"$TMP/$label.stderr" &
    server_pid=$!
    exec {server_out}<"$TMP/stdout"
    read -r -t "$READY_SECS" -u "$server_out" line || true
    if [[ $line =~ ^listening\ on\ $scheme://\[?([^]]*)\]?:([0-9]+)$ ]]; then
        host="${BASH_REMATCH[1]}"
        port="${BASH_REMATCH[2]}"
        return 0
    fi
    stop_server >/dev/null 2>&1 || true
    echo "$label did not print 'listening on $scheme://HOST:PORT' within ${READY_SECS}s" \
        "(first line: '${line}'); its stderr:" >&2
    sed 's/^/    /' "$TMP/$label.stderr" >&2
    return 1
}

# state PID: the process's state letter (Z for a zombie), empty once reaped.
state() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    stat="${stat##*) }"
    echo "${stat%% *}"
}

# stop_server: SIGTERM, up to STOP_SECS for the server to exit, then SIGKILL;
# reaps it and checks that it and its port are gone. Sets stop_ms and killed.
stop_server() {
    local pid="$server_pid" t0 s i
    t0="${EPOCHREALTIME/./}"
    killed=false
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_SECS * 50; i++)); do
        s="$(state "$pid")"
        [ -z "$s" ] || [ "$s" = Z ] && break
        sleep 0.02
    done
    s="$(state "$pid")"
    if [ -n "$s" ] && [ "$s" != Z ]; then
        echo "server $pid still running ${STOP_SECS}s after SIGTERM: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        killed=true
    fi
    wait "$pid" 2>/dev/null || true
    stop_ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
    server_pid=""
    exec {server_out}<&-
    [ -z "$(state "$pid")" ] || { echo "server $pid is still there after being stopped" >&2; exit 1; }
    if [ -n "${port:-}" ] && [ -n "$(ss -Htuln "sport = :$port" 2>/dev/null)" ]; then
        echo "port $port is still bound after its server $pid was stopped: $(ss -Htulnp "sport = :$port")" >&2
        exit 1
    fi
}

# kill_server: for an EXIT trap; stops a server still running, at once.
kill_server() {
    if [ -n "$server_pid" ]; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}

# proc_ticks PID: its utime + stime in clock ticks; nothing if it is gone.
proc_ticks() {
    local s f
    s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    read -r -a f <<<"${s##*) }"
    echo $((f[11] + f[12]))
}

# children_ticks PID: the cutime + cstime of PID (its reaped children).
children_ticks() {
    local s f
    s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    read -r -a f <<<"${s##*) }"
    echo $((f[13] + f[14]))
}

# need_bench: stops with what to do when $BENCH, the reference kit, is not
# there. The kit (the hand-written C epoll server and the other reference
# servers, the reference load generator, compare.sh and memory.sh) is not
# part of a clone of echokit: the scripts that measure against it take its
# path in BENCH, by default ../shared/bench beside the clone.
need_bench() {
    if [[ -x "$BENCH/build.sh" && -x "$BENCH/compare.sh" ]]; then
        return 0
    fi
    cat >&2 <<MSG
$(basename "$0"): the reference kit is not at $BENCH.
  This script measures echokit against reference servers (a hand-written
  C epoll echo server, tokio, monoio, Python) and a reference load
  generator, which a clone of echokit does not include. Point BENCH at a
  copy of the kit (a directory with build.sh, compare.sh, memory.sh,
  anchors/ and the load generator), e.g.
      BENCH=/path/to/bench $0 $*
  The scripts that need no kit: benches/udp.sh, benches/app.sh,
  benches/probe.sh and benches/reliability.sh.
MSG
    exit 2
}
