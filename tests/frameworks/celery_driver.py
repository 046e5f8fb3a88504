"""Runs a Celery workload against one server and prints what became of every task, as JSON.

Usage: celery_driver.py REDIS_URL TASKS

The workload: TASKS plain tasks, 5% with a countdown of one second (scheduled), 5% failing
once and retried, and one long task whose worker is killed (SIGKILL) while it runs: with late
acknowledgement the transport redelivers it to the next worker after the visibility timeout.
"""

import json
import os
import signal
import subprocess
import sys
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(url, name):
    env = dict(os.environ, FWTEST_REDIS_URL=url)
    return subprocess.Popen(
        ["celery", "-A", "celeryapp", "worker", "-c", "2", "-n", f"{name}@%h", "-l", "warning",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def main():
    url, total = sys.argv[1], int(sys.argv[2])
    os.environ["FWTEST_REDIS_URL"] = url
    sys.path.insert(0, HERE)
    conn = redis.Redis.from_url(url)
    conn.flushall()
    from celeryapp import flaky, slow, square

    # The worker that dies: it takes the long task, then its whole process group is killed.
    victim = slow.delay("victim", 4)
    w = worker(url, "victim")
    deadline = time.monotonic() + 60
    while victim.state != "STARTED" and not conn.hlen("unacked"):
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the long task to be taken")
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(w.pid, signal.SIGKILL)
    w.wait(timeout=30)

    expected = []
    for i in range(total):
        if i % 20 == 0:
            expected.append((square.apply_async((i,), countdown=1), i * i))
        elif i % 20 == 1:
            expected.append((flaky.delay(i), -i))
        else:
            expected.append((square.delay(i), i * i))

    workers = [worker(url, "a"), worker(url, "b")]
    try:
        wrong = 0
        for result, value in expected:
            if result.get(timeout=300) != value:
                wrong += 1
        # Redelivered after the visibility timeout (a worker restores unacked messages).
        victim_value = victim.get(timeout=120)
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            w.wait(timeout=60)

    retried = sum(1 for i in range(total) if i % 20 == 1 and conn.get(f"fwtest:attempts:{i}") == b"2")
    print(json.dumps({
        "tasks": total,
        "succeeded": total - wrong,
        "wrong_or_lost": wrong,
        "retried_once": retried,
        "killed_task_result": victim_value,
        "unacked_left": conn.hlen("unacked"),
        "queue_left": conn.llen("celery"),
    }, sort_keys=True))


if __name__ == "__main__":
    main()
