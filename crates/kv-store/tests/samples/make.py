#!/usr/bin/env python3
"""Drives a built kv-server to write a data directory sample: python3 make.py BINARY DIR [extra args]."""
import os, re, signal, socket, subprocess, sys, time
binary, d, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
p = subprocess.Popen([binary, "--port", "0", "--data-dir", d, *extra], stderr=subprocess.PIPE, text=True)
port = None
while port is None:
    line = p.stderr.readline()
    m = re.search(r"Accepting connections on port (\d+)", line)
    if m: port = int(m.group(1))
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rwb")
def ask(req, n=1):
    f.write(req.encode() + b"\n"); f.flush()
    return [f.readline() for _ in range(n)]
print(ask("CREATE shop"), ask("PUT shop milk 1"), ask("PUT shop eggs 12"), ask("CREATE empty"),
      ask("PUT shop bread 2"), ask("DELETE shop bread"), ask("GET shop eggs", 2))
s.close()
time.sleep(0.3)
p.send_signal(signal.SIGTERM)
print("exit", p.wait(10))
