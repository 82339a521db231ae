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
import sys

from guide_protocol import message, read_message

host, port, action, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if action == "search":
    content = json.dumps({"action": action, "value": value}, ensure_ascii=False).encode("utf-8")
    request = message("text/json", "utf-8", content)
else:
    request = message("binary/custom-client-binary-type", "binary", bytes(action + value, "utf-8"))

with socket.create_connection((host, port), timeout=10) as sock:
    sock.sendall(request)
    rheader, rcontent = read_message(sock)
if rheader["content-type"] == "text/json":
    result = json.loads(rcontent.decode(rheader["content-encoding"])).get("result")
    print(f"Got result: {result}")
else:
    print(f"Got response: {rcontent!r}")
