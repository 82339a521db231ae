#!/usr/bin/env python3
"""A TCP echo server that misbehaves on purpose, to test `echokit bench`.

Standard library only: one thread, `selectors`, non-blocking sockets. It
echoes every byte, except that it can

    --corrupt-after N   flip one bit of the byte at offset N of the whole
                        echo (all connections together), once
    --close-after N     close the connection that brings the echo total past
                        N bytes, once (the others go on)
    --freeze-at S       stop reading and echoing for good S seconds after
                        the first connection (the connections stay open)
    --stall-every S --stall T
                        stop for T seconds every S seconds (a garbage
                        collector, a blocking call): nothing is read or
                        echoed meanwhile

It prints "listening on 127.0.0.1:PORT" first (port 0: a free port).

    python3 faulty_echo_server.py [--port P] [options]
"""
import argparse
import selectors
import socket
import time

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--corrupt-after", type=int)
parser.add_argument("--close-after", type=int)
parser.add_argument("--freeze-at", type=float)
parser.add_argument("--stall-every", type=float)
parser.add_argument("--stall", type=float, default=0.1)
args = parser.parse_args()

sel = selectors.DefaultSelector()
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", args.port))
listener.listen(1024)
listener.setblocking(False)
sel.register(listener, selectors.EVENT_READ)
host, port = listener.getsockname()
print(f"listening on tcp://{host}:{port}", flush=True)

echoed = 0
corrupted = False
closed_one = False
pending = {}  # connection -> bytes not yet echoed
last_stall = time.monotonic()
first_accept = None

while True:
    if (args.freeze_at is not None and first_accept is not None
            and time.monotonic() - first_accept >= args.freeze_at):
        time.sleep(3600)
    if args.stall_every and time.monotonic() - last_stall >= args.stall_every:
        time.sleep(args.stall)
        last_stall = time.monotonic()
    for key, _ in sel.select(timeout=0.01):
        sock = key.fileobj
        if sock is listener:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                continue
            if first_accept is None:
                first_accept = time.monotonic()
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pending[conn] = b""
            sel.register(conn, selectors.EVENT_READ)
            continue
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except ConnectionError:
            data = b""
        if not data:
            sel.unregister(sock)
            pending.pop(sock, None)
            sock.close()
            continue
        if (args.corrupt_after is not None and not corrupted
                and echoed <= args.corrupt_after < echoed + len(data)):
            at = args.corrupt_after - echoed
            data = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]
            corrupted = True
        if (args.close_after is not None and not closed_one
                and echoed + len(data) > args.close_after):
            closed_one = True
            sel.unregister(sock)
            pending.pop(sock, None)
            sock.close()
            continue
        echoed += len(data)
        sock.setblocking(True)
        sock.sendall(data)
        sock.setblocking(False)
