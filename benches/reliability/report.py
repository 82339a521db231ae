#!/usr/bin/env python3
"""benches/reliability/report.py META RESULTS LINES

RELIABILITY.md from one run of benches/reliability.sh, on stdout.

META holds `key=value` lines (command, date, machine); RESULTS one line per
test, `name TAB small|heavy TAB ok|FAILED TAB milliseconds`; LINES the
tests' figures, `small|heavy TAB RELIABILITY <scenario> key=value ...`.

Each scenario of SCENARIOS gets a section: what it shows, its bar, and a
table of its figure lines (one column per key, in the order the test
prints them). A new scenario needs an entry here and a test that prints
`RELIABILITY <its key> ...` lines; a scenario that printed nothing in this
run says so, and lines of a scenario not listed here still get a table,
under "Other figures".
"""
import re
import sys

# (key, title, what it shows, bar) in the order.
SCENARIOS = [
    (
        "idle",
        "10,000 idle connections",
        "10,000 connections to one echo-server, each after one 64-byte echo, "
        "held idle for 10 s: the server's memory per connection, the CPU it "
        "uses while nothing happens, and that every connection (and a new "
        "one) still echoes afterwards.",
        "under 1 KiB of server memory per idle connection (no buffer kept), "
        "under 1% of a core while idle, every connection echoes.",
    ),
    (
        "emfile",
        "EMFILE storm",
        "The echo-server run with a descriptor limit of 64 (as "
        "`prlimit --nofile=64` sets it) while clients keep "
        "connecting: what it costs while accept() fails with EMFILE (CPU, "
        "accepts per second, log lines per second) and how long it takes to "
        "serve again once descriptors are free. 52 connections hold the "
        "table; 200 clients knock (connect, send a byte, wait for the echo or "
        "the end, again 50 ms later) for 12 s; the held connections echo "
        "every 500 ms; then they close and a new client knocks until served.",
        "under 5% of a core and at most 2 log lines a second while out of "
        "descriptors, every held connection served throughout, no knock left "
        "unanswered for 3 s (the reserve descriptor closes the queued), a new "
        "client served within 2 s of descriptors being freed.",
    ),
    (
        "half_close",
        "Half-close, byte-exact, over TCP v4, v6 and Unix",
        "A client sends a pseudo-random stream (0 B to 256 MiB), shuts down "
        "its write side and reads the echo until EOF, sending and reading at "
        "once; every byte is checked as it arrives. The small sizes (0 B, "
        "1 B, 64 KiB - 1 ... 4 MiB) run in the default tier, the heavy "
        "ones (16, 64 and 256 MiB) in the script; `mib_per_s` is shown "
        "from 1 MiB up.",
        "every byte back, in order, then EOF; the server's peak memory grows "
        "by less than 16 MiB whatever the stream's size.",
    ),
    (
        "resets",
        "Clients that reset mid-echo, beside one byte-exact stream",
        "Clients that send up to 256 KiB, read the first byte of their echo "
        "and reset (half by SO_LINGER 0, half by closing with echo unread), "
        "from 4 threads, while one stream is echoed and checked byte for "
        "byte; then a new client.",
        "the stream is byte-exact, the server lives and serves a new client "
        "within 1 s, its peak memory grows by less than 16 MiB.",
    ),
    (
        "stall",
        "Clients that never read",
        "50 clients that send and never read their echo: the memory they "
        "may make the server hold, their close at the stall timeout, and a "
        "good client's latency meanwhile.",
        "server memory growth under 16 MiB, every one closed within 5 s of "
        "stalling with `--stall-timeout 3s`, the good client's p99 under 10 ms.",
    ),
    (
        "slow_headers",
        "Slow header senders on the app server",
        "Clients that send an app request's header one byte every 100 ms "
        "(a 96-byte header announced, never finished) to `echokit "
        "app-server --header-timeout T`, while a normal client sends "
        "`search morpheus` requests one after another, each on a new "
        "connection (connect included in its latency).",
        "every slow sender closed at T (not before, within 500 ms after), "
        "the normal client's p99 under 10 ms (50 ms in the small run, run in "
        "CI on a shared machine), memory growth under "
        "16 MiB.",
    ),
    (
        "limits",
        "Connection limits",
        "`--max-conns 100 --max-conns-per-ip 50`: 50 clients from 127.0.0.1 "
        "and 50 from 127.0.0.2 are served; 100 more from 127.0.0.1 (over its "
        "address's limit) and 100 from 127.0.0.3 (over the total) are each "
        "accepted and closed at once; then 10 close and their places are "
        "taken.",
        "every connection within the limits served, every one past them "
        "ended at once (never left in the backlog), freed places taken.",
    ),
    (
        "stopped",
        "Connects while the server is stopped (SIGSTOP), then resumed",
        "Non-blocking connects to an echo-server stopped with SIGSTOP and a "
        "small `--backlog`; then SIGCONT, and each client sends a message "
        "and waits for its echo. The kernel queues backlog + 1 handshakes "
        "and drops the rest (`ListenOverflows`/`ListenDrops` of "
        "/proc/net/netstat, counted for the whole host, as are the SYN "
        "cookies it answers with past the backlog); those come back by "
        "TCP's retransmits, whose schedule decides when they are served. A "
        "new client connects right at the resume (`first_new_client_ms`, "
        "among the retransmits) and another at the end. Every client sends "
        "its message in one segment, with no FIN: when a SYN-cookie "
        "connection's first segment is dropped, a later one that comes "
        "alone fails the cookie's check and the kernel resets it.",
        "overflows counted; the queued connections echoed within 1 s of the "
        "resume; no client fails; the client at the resume echoed within "
        "7.5 s (its SYN retransmitted at most three times); in the heavy "
        "run every client echoed "
        "within 120 s (TCP's own bound); the client at the end served "
        "within 100 ms (500 ms in the small run).",
    ),
    (
        "udp_flood",
        "A UDP flood, then normal service",
        "Sockets send datagrams of 16 B to 64 KiB to a UDP echo-server as "
        "fast as they can (one sending thread per core, the sockets in "
        "turn), each with a thread counting the answers; then the guide's "
        "`Hello, world` datagram, sent again every 10 ms until answered "
        "(`hello_tries`). `server_datagrams` are those the server answered "
        "(its summary); `kernel_rcvbuf_errors` "
        "counts datagrams the kernel dropped at full receive buffers, the "
        "server's and the flooders' (host-wide): the flood is meant to be "
        "more than the server can take.",
        "`Hello, world` answered within 1 s of the flood's end, the server's "
        "peak memory grows by less than 16 MiB.",
    ),
    (
        "fuzz",
        "Fuzzing the app codec",
        "`fuzz/run.sh` runs the libFuzzer target `fuzz/fuzz_targets/"
        "decode.rs` (the decoder never panics, makes progress, decodes the "
        "same whatever the split, and what it decodes encodes back) for "
        "FUZZ_RUNS inputs of up to 4096 bytes.",
        "at least 1,000,000 runs, no crash.",
    ),
    (
        "soak",
        "Soak",
        "`echokit bench` rounds of 10 s, in turn: 64 connections of 1 B-16 KiB "
        "messages 4 deep, connection churn, Unix streams of up to 64 KiB, "
        "UDP, app requests kept alive and one per connection; 20 clients "
        "reset mid-echo beside each round. Both servers' RSS is sampled every "
        "second; growth is the peak after the warm-up (every kind of round "
        "once) over the peak during it.",
        "no error in any round, memory growth of at most 5 MiB per server "
        "(ECHOKIT_SOAK_SECS=600: 10 minutes).",
    ),
    (
        "udp_loop",
        "A forged datagram between two UDP echo endpoints (issue 14)",
        "A raw socket sends one datagram whose source is echokit UDP endpoint "
        "B, to endpoint A, with default flags: A and B in one process (both "
        "ways round), then in two processes. In one process A never answers "
        "it (another port of its own, from this host); between processes "
        "the two bounce it until the loop guard of one mutes the other. "
        "`a_answered`/`b_answered`: datagrams of the loop each answered; "
        "`ended_ms`: from the forged datagram to the mute, by the log's "
        "timestamp. Root tier (`tests/integration/root.rs`).",
        "the loop ends within 1 s, each server answers fewer than 2,000 "
        "datagrams of it, and the server that breaks it logs it.",
    ),
    (
        "unixgram_redirect",
        "A Unix datagram sender aims the echo at a socket it may not write to (issue 14)",
        "A root echo-server on `unixgram:`, a sender running as `nobody`, "
        "and a victim socket in a root-only (0700) directory. `hard_link`: "
        "a hard link to the victim is put at the sender's bound path, then "
        "it sends 100 datagrams. `symlink_swap`: for 10 s the sender swaps "
        "its bound path between a symbolic link to the victim and its own "
        "socket as fast as it can while sending; `own_echoes` is what "
        "reached its own socket (the race was live). Root tier.",
        "0 echoes reach the victim; the refusals are logged.",
    ),
]


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            meta[key] = value
    return meta


def read_results(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def read_lines(path):
    """(scenario, kind, [(key, value)]) for each figure line."""
    out = []
    with open(path) as f:
        for line in f:
            kind, _, text = line.rstrip("\n").partition("\t")
            words = text.split()
            if len(words) < 2 or words[0] != "RELIABILITY":
                continue
            pairs = [w.partition("=")[::2] for w in words[2:]]
            out.append((words[1], kind, pairs))
    return out


def cell(value):
    """Integers of five digits or more with thousands separators."""
    return f"{int(value):,}" if re.fullmatch(r"\d{5,}", value) else value


def table(rows):
    keys = []
    for _, pairs in rows:
        for key, _ in pairs:
            if key not in keys:
                keys.append(key)
    out = ["| run | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for kind, pairs in rows:
        got = dict(pairs)
        out.append(f"| {kind} | " + " | ".join(cell(got.get(k, "")) for k in keys) + " |")
    return "\n".join(out)


def main():
    meta = read_meta(sys.argv[1])
    results = read_results(sys.argv[2])
    lines = read_lines(sys.argv[3])
    failed = [r for r in results if r[2] != "ok"]
    p = print
    p("# Reliability")
    p()
    p("What echokit's servers survive, measured (issues 7 and 14). Every figure")
    p("here comes from one run of one command; the tests behind it are in")
    p("`tests/integration/reliability.rs` and, for those that need root,")
    p("`tests/integration/root.rs` (the fuzz target in `fuzz/`). Of the")
    p("small ones, `half_close` runs with every `cargo test`, the others in")
    p("the serial tier; those, the heavy and the root ones are `#[ignore]`d")
    p("and run by the script, one at a time (`run`: small, heavy or root).")
    p()
    p(f"Command: `{meta['command']}`, {meta['date']}.")
    p()
    p(f"Machine: {meta['cores']} cores ({meta['cpu']}), {meta['memory']},")
    p(f"Linux {meta['kernel']}; echokit {meta['commit']}, {meta['rustc']}.")
    p()
    if failed:
        p("**Failed in this run:** " + ", ".join(f"`{r[0]}`" for r in failed) + ".")
    else:
        p(f"All {len(results)} tests of this run passed.")
    p()
    p("Figures: sizes in bytes or `_mib`, durations in `_ms` or `_secs`,")
    p("CPU in `_pct` of one core. `run` says whether a line came from a")
    p("heavy test, a root one, or a small one (default or serial tier).")
    by = {}
    for scenario, kind, pairs in lines:
        by.setdefault(scenario, []).append((kind, pairs))
    known = {s[0] for s in SCENARIOS}
    for n, (key, title, shows, bar) in enumerate(SCENARIOS, 1):
        p()
        p(f"## {n}. {title}")
        p()
        p(shows)
        p()
        p(f"**Bar:** {bar}")
        p()
        if key in by:
            p(table(by[key]))
        else:
            p(f"_No `RELIABILITY {key}` figures in this run: its test is not "
              "in this build yet, or was left out by a filter._")
    others = [s for s in by if s not in known]
    if others:
        p()
        p("## Other figures")
        for scenario in others:
            p()
            p(f"### {scenario}")
            p()
            p(table(by[scenario]))
    p()
    p("## Every test of this run")
    p()
    p("| test | run | result | seconds |")
    p("|---|---|---|---:|")
    for name, kind, status, millis in results:
        p(f"| `{name}` | {kind} | {status} | {int(millis) / 1000:.1f} |")
    small = [int(r[3]) for r in results if r[1] == "small"]
    if small:
        p()
        p(f"The small tests took {sum(small) / 1000:.1f} s together, one at a time")
        p("(each in its own run of the test binary).")


main()
