"""The socket guide's way to find open ports: connect_ex on each, one after
the other. The baseline of benches/probe.sh.

    python3 connect_ex.py HOST FIRST LAST   prints the open ports, then the seconds taken
"""

import socket
import sys
import time

host, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
started = time.perf_counter()
open_ports = []
for port in range(first, last + 1):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        if s.connect_ex((host, port)) == 0:
            open_ports.append(port)
print(" ".join(map(str, open_ports)))
print(f"{time.perf_counter() - started:.6f}")
