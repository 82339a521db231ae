#!/usr/bin/env python3
"""The socket guide's application server, as a test peer for echokit's
app-client: written for this project, standard library only, speaking the
guide's protocol as its libserver does.

Each connection carries one request: a 2-byte big-endian header length, a
JSON header (byteorder, content-type, content-encoding, content-length),
then the content. A text/json request {"action": "search", "value": V},
decoded with its content-encoding and read by json.loads, is answered from
the guide's table (or with the guide's f-string, even for an unhashable V); a binary request gets the first 10 bytes
of its content back. The server closes the connection after the response.

    python3 app_server.py HOST PORT      (PORT 0 picks a free port)

Its first line on stdout is `listening on tcp://HOST:PORT`.
"""
import json
import socket
import socketserver
import sys

from guide_protocol import TABLE, message, read_message


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.settimeout(10)
        header, content = read_message(sock)
        if header["content-type"] == "text/json":
            req = json.loads(content.decode(header["content-encoding"]))
            action = req.get("action")
            if action == "search":
                query = req.get("value")
                try:
                    found = TABLE.get(query)
                except TypeError:
                    # A dict or list value is unhashable: the guide's
                    # `dict.get` raises here and its server answers nothing.
                    # Issue 14 has echokit answer with the f-string (the
                    # value's repr) instead, so this peer does too.
                    found = None
                answer = found or f"No match for '{query}'."
                body = {"result": answer}
            else:
                body = {"result": f"Error: invalid action '{action}'."}
            reply = message(
                "text/json", "utf-8", json.dumps(body, ensure_ascii=False).encode("utf-8")
            )
        else:
            reply = message(
                "binary/custom-server-binary-type",
                "binary",
                b"First 10 bytes of request: " + content[:10],
            )
        sock.sendall(reply)
        sock.shutdown(socket.SHUT_WR)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 65432
with Server((host, port), Handler) as server:
    print(f"listening on tcp://{host}:{server.server_address[1]}", flush=True)
    server.serve_forever()
