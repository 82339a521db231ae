#!/usr/bin/env python3
"""benches/udp/echo.py [PORT]: the Python baseline for UDP echo.

The echo server a reader of the socket guide would write for UDP: one
socket, a blocking recvfrom / sendto loop. PORT 0 (the default) asks for a
free port. Prints "listening on udp://127.0.0.1:PORT" first. Runs until
killed (SIGTERM) or interrupted.
"""
import socket
import sys

HOST = "127.0.0.1"
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 0

with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind((HOST, PORT))
    print(f"listening on udp://{HOST}:{s.getsockname()[1]}", flush=True)
    try:
        while True:
            data, addr = s.recvfrom(65535)
            s.sendto(data, addr)
    except KeyboardInterrupt:
        pass
