#!/usr/bin/env python3
"""HSCAN and SSCAN of large values, autoscale-node against redis-server side by side.

Usage: scripts/bench-scan.py [N] [COUNT]   (a release build: cargo build --release)

Fills a hash and a set of N elements (default 200,000) on both servers, times one full scan
of each with COUNT (default 100), three times, and prints the medians and the ratio
ours / redis-server (time: lower is better).
"""

import os
import socket
import statistics
import subprocess
import sys
import time

import redis

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "autoscale-node")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(argv, port):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = redis.Redis(port=port)
    for _ in range(200):
        try:
            conn.ping()
            return proc, conn
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    raise SystemExit(f"{argv[0]} did not start on port {port}")


def fill(conn, n):
    conn.flushall()
    p = conn.pipeline(transaction=False)
    for i in range(0, n, 1000):
        batch = range(i, min(i + 1000, n))
        p.hset("h", mapping={f"f{j}": j for j in batch})
        p.sadd("s", *[f"m{j}" for j in batch])
    p.execute()


def full_scan(conn, cmd, key, count):
    start_t = time.perf_counter()
    cursor = 0
    while True:
        cursor, _ = conn.execute_command(cmd, key, cursor, "COUNT", count)
        if int(cursor) == 0:
            return time.perf_counter() - start_t


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    rp, op = free_port(), free_port()
    servers = {
        "redis-server": start(["redis-server", "--port", str(rp), "--save", "", "--bind", "127.0.0.1"], rp),
        "autoscale-node": start([BIN, "serve", "--port", str(op), "--http-port", "0"], op),
    }
    try:
        times = {}
        for name, (_, conn) in servers.items():
            fill(conn, n)
            for cmd, key in (("HSCAN", "h"), ("SSCAN", "s")):
                times[(name, cmd)] = statistics.median(full_scan(conn, cmd, key, count) for _ in range(3))
        print(f"full scan of {n} elements, COUNT {count} (median of 3, seconds)")
        print(f"{'command':8} {'redis-server':>13} {'ours':>8} {'ours/redis':>11}")
        for cmd in ("HSCAN", "SSCAN"):
            r, o = times[("redis-server", cmd)], times[("autoscale-node", cmd)]
            print(f"{cmd:8} {r:13.2f} {o:8.2f} {o / r:11.2f}")
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
