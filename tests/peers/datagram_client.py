#!/usr/bin/env python3
"""A datagram echo client as the socket guide's reader writes one, as a test
peer for echokit's server: SOCK_DGRAM with sendto() and recvfrom().

Standard library only. For each size it sends one datagram of that many
bytes (a pattern, so misplaced bytes show), waits for the echo with a
timeout, and prints `ok SIZE` when the echo is byte-identical; otherwise it
prints what went wrong and exits 1.

    python3 datagram_client.py udp HOST PORT SIZE...
    python3 datagram_client.py unixgram SERVER_PATH CLIENT_PATH SIZE...

A Unix datagram client must bind a path of its own, or the server has
nowhere to send the echo.
"""
import socket
import sys

TIMEOUT = 10


def pattern(size):
    return bytes((i * 31 + 7) % 251 for i in range(size))


def main():
    kind = sys.argv[1]
    if kind == "udp":
        host, port = sys.argv[2], int(sys.argv[3])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        server = (host, port)
    elif kind == "unixgram":
        server, client_path = sys.argv[2], sys.argv[3]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # Linux caps a Unix datagram at the sender's send buffer (208 KiB by
        # default): room for the largest the server echoes (256 KiB).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.bind(client_path)
    else:
        sys.exit(f"unknown kind {kind!r}: expected udp or unixgram")
    sizes = [int(s) for s in sys.argv[4:]]
    sock.settimeout(TIMEOUT)
    failed = False
    with sock:
        for size in sizes:
            data = pattern(size)
            sock.sendto(data, server)
            # One more byte than sent: a longer answer would show.
            echo, source = sock.recvfrom(size + 1)
            if echo == data:
                print(f"ok {size}", flush=True)
            else:
                print(f"bad {size}: got {len(echo)} bytes from {source!r}", flush=True)
                failed = True
    sys.exit(1 if failed else 0)


main()
