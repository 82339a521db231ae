#!/usr/bin/env python3
"""The socket guide's application client, as a test peer for echokit's
app-server: written for this project, standard library only, building its
request exactly as the guide's libclient does.

    python3 app_client.py HOST PORT ACTION VALUE

`search VALUE` sends {"action": "search", "value": VALUE} as text/json;
any other action sends ACTION + VALUE as binary content. It prints
`Got result: ...` or `Got response: b'...'` as the guide's client does.
"""
import json
import socket
import struct
import sys


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("the server closed mid-message")
        data += chunk
    return data


host, port, action, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if action == "search":
    content_type, encoding = "text/json", "utf-8"
    content = json.dumps({"action": action, "value": value}, ensure_ascii=False).encode(encoding)
else:
    content_type, encoding = "binary/custom-client-binary-type", "binary"
    content = bytes(action + value, encoding="utf-8")
header = {
    "byteorder": sys.byteorder,
    "content-type": content_type,
    "content-encoding": encoding,
    "content-length": len(content),
}
header_bytes = json.dumps(header, ensure_ascii=False).encode("utf-8")
request = struct.pack(">H", len(header_bytes)) + header_bytes + content

with socket.create_connection((host, port), timeout=10) as sock:
    sock.sendall(request)
    (hdrlen,) = struct.unpack(">H", read_exactly(sock, 2))
    rheader = json.loads(read_exactly(sock, hdrlen).decode("utf-8"))
    rcontent = read_exactly(sock, rheader["content-length"])
if rheader["content-type"] == "text/json":
    result = json.loads(rcontent.decode(rheader["content-encoding"])).get("result")
    print(f"Got result: {result}")
else:
    print(f"Got response: {rcontent!r}")
