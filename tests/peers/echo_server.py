#!/usr/bin/env python3
"""The socket guide's echo server, as a test peer for echokit's client.

Standard library only. It does what the guide's server does: bind, listen,
accept one client, print "Connected by", recv(1024) and sendall() until the
client closes, then exit. For tests it takes HOST and PORT (port 0 picks a
free port) and prints the address it bound on its first line.

    python3 echo_server.py [HOST] [PORT]      (default 127.0.0.1 65432)
"""
import socket
import sys

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 65432

with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST, PORT))
    s.listen()
    host, port = s.getsockname()
    print(f"listening on {host}:{port}", flush=True)
    conn, addr = s.accept()
    with conn:
        print("Connected by", addr, flush=True)
        while True:
            data = conn.recv(1024)
            if not data:
                break
            conn.sendall(data)
