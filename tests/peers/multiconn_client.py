#!/usr/bin/env python3
"""The socket guide's multi-connection client, as a test peer for echokit's server.

Standard library only. Like the guide's: NUM_CONNS non-blocking sockets
started with connect_ex(), one selectors loop, each connection sending
"Message 1 from client." and "Message 2 from client." and closing once as
many bytes came back as it sent. Unlike the guide's, it also checks that the
echo is exactly what was sent and exits 1 when any connection fails, so a
test can rely on its status.

    python3 multiconn_client.py HOST PORT NUM_CONNS
"""
import selectors
import socket
import sys
import types

MESSAGES = [b"Message 1 from client.", b"Message 2 from client."]
sel = selectors.DefaultSelector()
failures = 0


def start_connections(host, port, num_conns):
    server_addr = (host, port)
    for i in range(num_conns):
        connid = i + 1
        print(f"Starting connection {connid} to {server_addr}")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(server_addr)
        events = selectors.EVENT_READ | selectors.EVENT_WRITE
        data = types.SimpleNamespace(
            connid=connid,
            msg_total=sum(len(m) for m in MESSAGES),
            recv_total=0,
            received=b"",
            messages=MESSAGES.copy(),
            outb=b"",
        )
        sel.register(sock, events, data=data)


def close(sock, data):
    global failures
    if data.received != b"".join(MESSAGES):
        failures += 1
        print(f"Connection {data.connid}: echo differs: {data.received!r}")
    print(f"Closing connection {data.connid}")
    sel.unregister(sock)
    sock.close()


def service_connection(key, mask):
    sock = key.fileobj
    data = key.data
    if mask & selectors.EVENT_READ:
        try:
            recv_data = sock.recv(1024)
        except ConnectionError as e:
            print(f"Connection {data.connid}: {e}")
            recv_data = b""
        if recv_data:
            print(f"Received {recv_data!r} from connection {data.connid}")
            data.recv_total += len(recv_data)
            data.received += recv_data
        if not recv_data or data.recv_total == data.msg_total:
            close(sock, data)
            return
    if mask & selectors.EVENT_WRITE:
        if not data.outb and data.messages:
            data.outb = data.messages.pop(0)
        if data.outb:
            print(f"Sending {data.outb!r} to connection {data.connid}")
            sent = sock.send(data.outb)
            data.outb = data.outb[sent:]
        elif not data.messages:
            sel.modify(sock, selectors.EVENT_READ, data=data)


if len(sys.argv) != 4:
    print(f"Usage: {sys.argv[0]} <host> <port> <num_connections>")
    sys.exit(1)

host, port, num_conns = sys.argv[1:4]
start_connections(host, int(port), int(num_conns))
try:
    while True:
        events = sel.select(timeout=1)
        for key, mask in events:
            service_connection(key, mask)
        if not sel.get_map():
            break
finally:
    sel.close()
sys.exit(1 if failures else 0)
