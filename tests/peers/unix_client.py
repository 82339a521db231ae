#!/usr/bin/env python3
"""The socket guide's echo client over a Unix stream socket (AF_UNIX,
SOCK_STREAM), as a test peer for echokit's server.

Standard library only: it connects to the path, sends every message with
sendall(), shuts down its write side, reads until the server closes, and
prints what came back.

    python3 unix_client.py PATH MESSAGE...
"""
import socket
import sys

path = sys.argv[1]
messages = [m.encode() for m in sys.argv[2:]] or [b"Hello, world"]
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
    s.settimeout(10)
    s.connect(path)
    for m in messages:
        s.sendall(m)
    s.shutdown(socket.SHUT_WR)
    echo = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        echo += chunk
print(f"Received {echo!r}")
