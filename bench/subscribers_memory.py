"""Server memory per subscriber against per idle connection: 1,000 idle connections, then
1,000 connections that SUBSCRIBE to one bucket; the growth of the server's RSS, per
connection, for each. Starts the given kv-server binary on a free port and stops it.

    python3 bench/subscribers_memory.py target/release/kv-server

Needs an open-file limit above 2,100 (`ulimit -n 10000`).
"""
import socket
import subprocess
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def opened(port, count, lines):
    """`count` connections, each sent `lines` and answered (one reply line expected)."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    for s in sockets:
        s.sendall(lines)
    for s in sockets:
        s.recv(100)
    time.sleep(1)
    return sockets


def main():
    port = free_port()
    server = subprocess.Popen(
        [sys.argv[1], "--port", str(port), "--max-connections", "5000"],
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                control = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.1)
        control.sendall(b"CREATE b\r\n")
        control.recv(10)
        base = rss_kib(server.pid)
        idle = opened(port, 1000, b"PING\r\n")
        after_idle = rss_kib(server.pid)
        subscribers = opened(port, 1000, b"SUBSCRIBE b\r\nPING\r\n")
        after_subscribers = rss_kib(server.pid)
        print(f"idle connection: {(after_idle - base) * 1024 / 1000:.0f} B each")
        print(f"subscriber:      {(after_subscribers - after_idle) * 1024 / 1000:.0f} B each")
        del idle, subscribers
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
