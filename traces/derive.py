#!/usr/bin/env python3
"""Derives the evaluation traces from the extracted NASA-HTTP request timestamps.

    python3 traces/derive.py        (from the repository root; rewrites the two CSVs)

Deterministic: no randomness. See traces/README.md for what each step means.
"""
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
# Both slices start at 00:09, the first quiet minute (10 requests): the simulator starts every
# policy with 12 workers, and a slice that opened at the busy minutes 00:00-00:08 (35-56
# requests each) would measure that start, not the policy (no policy, not even a clairvoyant
# one, reached 98.5 % on it).
START_S = 9 * 60


def read_seconds(path):
    with open(path) as f:
        return [int(line) for line in f if line.strip() and not line.startswith("#") and line.strip() != "timestamp"]


def smooth(seconds, out_path):
    # The 63 whole minutes 00:09-01:11; per-minute counts, read as rates at each minute's centre.
    minutes = 63
    counts = [0] * minutes
    for s in seconds:
        m = (s - START_S) // 60
        if 0 <= m < minutes:
            counts[m] += 1
    total = sum(counts)
    length_s = 600  # 63 minutes compressed 6.3 times
    compress = minutes * 60 / length_s
    target_mean = 5.5
    scale = target_mean * length_s / total

    def rate(t):  # requests per recorded second at recorded time t, linear between minute centres
        x = t / 60.0 - 0.5
        i = max(0, min(minutes - 2, math.floor(x)))
        w = max(0.0, min(1.0, x - i))
        return (counts[i] * (1 - w) + counts[i + 1] * w) / 60.0

    rows, carried, emitted = [], 0.0, 0
    for s in range(length_s):
        r = rate((s + 0.5) * compress) * compress * scale
        carried += r
        n = round(carried) - emitted  # whole counts whose running total tracks the rates
        emitted += n
        rows.append(n)
    with open(out_path, "w") as f:
        f.write(f"# Smooth slice: NASA-HTTP 1 Aug 1995 00:09-01:12 (-0400), {total} requests counted per minute,\n")
        f.write(f"# linearly interpolated, compressed {compress:g}x in time (63 min -> 10 min) and scaled x{scale:.4f}\n")
        f.write("# to a mean of 5.5 requests/s; whole counts per second. Derived by traces/derive.py.\n")
        f.write("second,count\n")
        for s, n in enumerate(rows):
            f.write(f"{s},{n}\n")
    return rows


def bursty(seconds, out_path):
    # Every request from 00:09:00 on, its recorded second compressed so that the mean is about
    # 5.5 requests/s; the requests of one recorded second are spread evenly over its compressed
    # span, since the log's resolution is one second.
    kept = [s for s in seconds if s >= START_S]
    span = kept[-1] - START_S + 1
    compress = round(span * 5.5 / len(kept), 1)
    by_second = {}
    for s in kept:
        by_second[s] = by_second.get(s, 0) + 1
    times = []
    for s in sorted(by_second):
        n = by_second[s]
        for k in range(n):
            times.append(((s - START_S) + (k + 0.5) / n) / compress)
    with open(out_path, "w") as f:
        f.write(f"# Bursty slice: every request of NASA-HTTP 1 Aug 1995 00:09:00-01:12:24 (-0400), {len(kept)} requests,\n")
        f.write(f"# time compressed {compress:g}x (mean ~5.5 requests/s); requests of one recorded second spread evenly\n")
        f.write("# over it. Derived by traces/derive.py.\n")
        f.write("timestamp\n")
        for t in times:
            f.write(f"{t:.3f}\n")
    return times


if __name__ == "__main__":
    secs = read_seconds(os.path.join(HERE, "nasa-aug95-0000-0112.csv"))
    rows = smooth(secs, os.path.join(HERE, "nasa-smooth.csv"))
    print(f"smooth: {len(rows)} s, {sum(rows)} requests, mean {sum(rows)/len(rows):.2f}/s, peak {max(rows)}/s")
    times = bursty(secs, os.path.join(HERE, "nasa-bursty.csv"))
    span = math.floor(times[-1]) + 1
    per = [0] * span
    for t in times:
        per[math.floor(t)] += 1
    print(f"bursty: {span} s, {len(times)} requests, mean {len(times)/span:.2f}/s, peak {max(per)}/s")
