#!/usr/bin/env python3
"""systemd's socket activation, as a test harness: bind sockets, then exec a
program that finds them at descriptors 3, 4, ... (sd_listen_fds(3)).

Standard library only. Each SPEC is bound (and listened on, for a stream)
before the exec, in order, and passed at descriptor 3 + its index, with
LISTEN_FDS, LISTEN_PID (this process's pid, which the program keeps across
exec) and LISTEN_FDNAMES set as systemd sets them. Port 0 picks a free port:
the program learns the real one from the socket.

    python3 socket_activate.py SPEC... -- PROGRAM ARGS...

    SPEC  tcp:HOST        a TCP listener on HOST, port 0 (HOST may be ::1)
          udp:HOST        a UDP socket on HOST, port 0
          unix:PATH       a Unix stream listener at PATH
          unixgram:PATH   a Unix datagram socket at PATH
          pipe:           the read end of a pipe (not a socket)
          connected:      a connected TCP socket (what Accept=yes passes)
          accept-yes:HOST:PORT  connect to HOST:PORT and pass the connection
                          as stdin and stdout too, as systemd's Accept=yes
                          with StandardInput=socket does
"""
import fcntl
import os
import socket
import sys


def make(spec):
    kind, _, where = spec.partition(":")
    if kind in ("tcp", "udp"):
        family = socket.AF_INET6 if ":" in where else socket.AF_INET
        stream = kind == "tcp"
        s = socket.socket(family, socket.SOCK_STREAM if stream else socket.SOCK_DGRAM)
        s.bind((where, 0))
        if stream:
            s.listen(128)
        return s.detach()
    if kind in ("unix", "unixgram"):
        stream = kind == "unix"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM if stream else socket.SOCK_DGRAM)
        s.bind(where)
        if stream:
            s.listen(128)
        return s.detach()
    if kind == "pipe":
        read_end, _write_end = os.pipe()
        return read_end
    if kind == "accept-yes":
        host, _, port = where.rpartition(":")
        conn = socket.create_connection((host, int(port)))
        os.dup2(conn.fileno(), 0)
        os.dup2(conn.fileno(), 1)
        return conn.detach()
    if kind == "connected":
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        client.close()
        listener.close()
        return accepted.detach()
    sys.exit(f"unknown SPEC {spec!r}")


def main():
    args = sys.argv[1:]
    if "--" not in args:
        sys.exit(__doc__)
    split = args.index("--")
    specs, program = args[:split], args[split + 1 :]
    fds = [make(spec) for spec in specs]
    # Move them up out of the way first, so that placing one at 3 + i never
    # overwrites another not yet placed.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
    for fd in fds:
        os.close(fd)
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i, inheritable=True)
        os.close(fd)
    os.environ["LISTEN_FDS"] = str(len(fds))
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDNAMES"] = ":".join(f"harness{i}" for i in range(len(fds)))
    os.execvp(program[0], program)


main()
