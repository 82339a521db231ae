"""The socket guide's application protocol, as its programs frame it, shared
by the Python peers app_client.py and app_server.py. Standard library only.

A message is a 2-byte big-endian header length, the JSON header
(byteorder, content-type, content-encoding, content-length) written by
json.dumps(ensure_ascii=False), then the content.
"""
import json
import struct
import sys

# The guide's search table.
TABLE = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}


def message(content_type, encoding, content):
    """The bytes of one message, as the guide's programs build them."""
    header = {
        "byteorder": sys.byteorder,
        "content-type": content_type,
        "content-encoding": encoding,
        "content-length": len(content),
    }
    header_bytes = json.dumps(header, ensure_ascii=False).encode("utf-8")
    return struct.pack(">H", len(header_bytes)) + header_bytes + content


def read_exactly(sock, n):
    """n bytes from a blocking socket; EOFError if it closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("the peer closed mid-message")
        data += chunk
    return data


def read_message(sock):
    """One message from a blocking socket: (header dict, content bytes)."""
    (hdrlen,) = struct.unpack(">H", read_exactly(sock, 2))
    header = json.loads(read_exactly(sock, hdrlen).decode("utf-8"))
    return header, read_exactly(sock, header["content-length"])
