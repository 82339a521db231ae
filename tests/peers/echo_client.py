#!/usr/bin/env python3
"""The socket guide's echo client, as a test peer for echokit's server.

Standard library only, and as naive as the guide's: it sends b"Hello, world"
with sendall(), reads once with recv(1024), and prints what it got.

    python3 echo_client.py [HOST] [PORT]      (default 127.0.0.1 65432)
"""
import socket
import sys

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 65432

with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.connect((HOST, PORT))
    s.sendall(b"Hello, world")
    data = s.recv(1024)

print(f"Received {data!r}")
