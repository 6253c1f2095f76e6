#!/usr/bin/env python3
"""Calibration: what one small loopback TCP write costs on this machine, with no server involved.

Usage: python3 bench/calibrate-write.py [ROUNDS] [PAUSE_S]

Opens 1000 TCP connections on 127.0.0.1. A reader process pinned to CPU 1 drains them with
epoll; this process, pinned to CPU 0, sends 150 bytes to each connection in turn, ROUNDS times
(default 50), sleeping PAUSE_S (default 0.02) between rounds. It prints the user and kernel CPU
time per send(). On loopback the kernel time of a send includes the receiver's TCP receive path
and its wake-up, so this is the floor for "one write per delivery" in any server measured here.
Bounded: 1000 × ROUNDS writes, then it exits.
"""
import os
import selectors
import socket
import sys
import time

N = 1000
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 50
PAUSE = float(sys.argv[2]) if len(sys.argv) > 2 else 0.02
SIZE = 150

ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(2048)
port = ls.getsockname()[1]
pid = os.fork()
if pid == 0:
    os.sched_setaffinity(0, {1})
    sel = selectors.DefaultSelector()
    conns = []
    for _ in range(N):
        c, _ = ls.accept()
        c.setblocking(False)
        sel.register(c, selectors.EVENT_READ)
        conns.append(c)
    total, want = 0, N * ROUNDS * SIZE
    deadline = time.time() + 120
    while total < want and time.time() < deadline:
        for k, _ in sel.select(1):
            try:
                total += len(k.fileobj.recv(65536))
            except BlockingIOError:
                pass
    os._exit(0)

os.sched_setaffinity(0, {0})
socks = []
for _ in range(N):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    socks.append(s)
time.sleep(0.5)
msg = b"x" * SIZE
t0, w0 = os.times(), time.time()
for _ in range(ROUNDS):
    for s in socks:
        s.send(msg)
    if PAUSE:
        time.sleep(PAUSE)
t1, w1 = os.times(), time.time()
n = N * ROUNDS
print(
    f"writes={n} size={SIZE} user_us_per_write={(t1.user - t0.user) / n * 1e6:.2f} "
    f"sys_us_per_write={(t1.system - t0.system) / n * 1e6:.2f} wall_s={w1 - w0:.2f}"
)
os.waitpid(pid, 0)
