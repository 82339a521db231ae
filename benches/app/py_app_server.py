#!/usr/bin/env python3
"""A benchmark baseline: the socket guide's application server as its
readers write it, one thread with `selectors`, non-blocking sockets, one
request per connection, closed after the response. Standard library only;
written for this project (benches only).

    python3 py_app_server.py PORT      (0 picks a free port)

Its first line on stdout is `listening on tcp://127.0.0.1:PORT`.
"""
import json
import os
import selectors
import socket
import struct
import sys

# The guide's table and message framing, shared with the test peers.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "peers"))
from guide_protocol import TABLE, message  # noqa: E402

sel = selectors.DefaultSelector()


def answer(header, content):
    if header["content-type"] == "text/json":
        req = json.loads(content.decode(header["content-encoding"]))
        if req.get("action") == "search":
            value = req.get("value")
            body = {"result": TABLE.get(value) or f"No match for '{value}'."}
        else:
            body = {"result": f"Error: invalid action '{req.get('action')}'."}
        return message("text/json", "utf-8", json.dumps(body, ensure_ascii=False).encode("utf-8"))
    return message("binary/custom-server-binary-type", "binary",
                   b"First 10 bytes of request: " + content[:10])


class Conn:
    def __init__(self, sock):
        self.sock, self.inbuf, self.out = sock, b"", None

    def readable(self):
        data = self.sock.recv(4096)
        if not data:
            return self.close()
        self.inbuf += data
        if len(self.inbuf) < 2:
            return
        (hlen,) = struct.unpack(">H", self.inbuf[:2])
        if len(self.inbuf) < 2 + hlen:
            return
        header = json.loads(self.inbuf[2:2 + hlen].decode("utf-8"))
        end = 2 + hlen + header["content-length"]
        if len(self.inbuf) < end:
            return
        self.out = answer(header, self.inbuf[2 + hlen:end])
        sel.modify(self.sock, selectors.EVENT_WRITE, self)

    def writable(self):
        sent = self.sock.send(self.out)
        self.out = self.out[sent:]
        if not self.out:
            self.close()

    def close(self):
        sel.unregister(self.sock)
        self.sock.close()


lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0))
lsock.listen(1024)
lsock.setblocking(False)
sel.register(lsock, selectors.EVENT_READ, None)
print(f"listening on tcp://127.0.0.1:{lsock.getsockname()[1]}", flush=True)
try:
    while True:
        for key, mask in sel.select():
            if key.data is None:
                try:
                    conn, _ = lsock.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, Conn(conn))
            elif mask & selectors.EVENT_READ:
                key.data.readable()
            else:
                key.data.writable()
except KeyboardInterrupt:
    pass
