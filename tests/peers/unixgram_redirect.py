#!/usr/bin/env python3
"""A Unix datagram sender that tries to aim a server's echo at another
socket, for echokit's return-path tests: written for this project,
standard library only. Run it as a user who may not write to the victim.

    unixgram_redirect.py link DIR SERVER COUNT
        Binds DIR/sender.sock and prints `bound`; waits for a line on stdin
        (meanwhile the test puts a link to the victim at that path), then
        sends COUNT datagrams to SERVER and prints `sent COUNT`.

    unixgram_redirect.py swap DIR SERVER VICTIM SECONDS
        Binds DIR/sender.sock, then for SECONDS swaps that path between a
        symbolic link to VICTIM and its own socket, as fast as it can, while
        a thread sends datagrams to SERVER and another counts the echoes
        that reach its own socket. Prints `sent N, echoed M, swaps K`.
"""
import os
import socket
import sys
import threading
import time


def bound(directory):
    path = os.path.join(directory, "sender.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    return sock, path


def link(directory, server, count):
    sock, _ = bound(directory)
    print("bound", flush=True)
    sys.stdin.readline()
    for _ in range(count):
        sock.sendto(b"aimed elsewhere", server)
    print(f"sent {count}", flush=True)


def swap(directory, server, victim, seconds):
    sock, path = bound(directory)
    sock.settimeout(0.2)
    real = os.path.join(directory, "real.sock")
    os.link(path, real)
    tmp = os.path.join(directory, "swap.tmp")
    stop = time.monotonic() + seconds
    counts = {"sent": 0, "echoed": 0}

    def send():
        while time.monotonic() < stop:
            try:
                sock.sendto(b"aimed elsewhere", server)
                counts["sent"] += 1
            except (BlockingIOError, TimeoutError):
                pass

    def receive():
        # Echoes still in flight when the sending stops arrive soon after.
        while time.monotonic() < stop + 1:
            try:
                sock.recv(64)
                counts["echoed"] += 1
            except TimeoutError:
                pass

    threads = [threading.Thread(target=send), threading.Thread(target=receive)]
    for t in threads:
        t.start()
    swaps = 0
    while time.monotonic() < stop:
        os.symlink(victim, tmp)
        os.replace(tmp, path)
        os.link(real, tmp)
        os.replace(tmp, path)
        swaps += 1
    for t in threads:
        t.join()
    print(f"sent {counts['sent']}, echoed {counts['echoed']}, swaps {swaps}", flush=True)


if sys.argv[1] == "link":
    link(sys.argv[2], sys.argv[3], int(sys.argv[4]))
else:
    swap(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
