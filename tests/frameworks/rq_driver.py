"""Runs an RQ workload against one server and prints what became of every job, as JSON.

Usage: rq_driver.py REDIS_URL JOBS

The workload: JOBS plain jobs, 5% of them delayed by one second (RQ's scheduler), 5% failing
once and retried, and one long job whose worker is killed (SIGKILL) while it runs. The summary
is the same for any server that keeps RQ's promises, so a test compares redis-server's with
ours.
"""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import redis
from rq import Queue, Retry
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(url, *extra):
    return subprocess.Popen(
        # SimpleWorker runs jobs in the worker process instead of forking a work horse per job:
        # the same protocol on the broker, at a fraction of the CPU.
        ["rq", "worker", "--url", url, "--with-scheduler", "--worker-class", "rq.worker.SimpleWorker",
         *extra, "jobs"],
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def main():
    url, total = sys.argv[1], int(sys.argv[2])
    conn = redis.Redis.from_url(url)
    conn.flushall()
    q = Queue("jobs", connection=conn)

    # A long job, and a worker killed while it runs it: RQ leaves the job in the started
    # registry until its heartbeat lapses, then cleanup moves it to the failed registry.
    victim = q.enqueue("fwjobs.slow", "victim", 30, job_timeout=60)
    w = worker(url)
    wait_for(lambda: victim.get_status(refresh=True) == "started", 60, "the long job to start")
    # The machine running the worker dies: the job is abandoned mid-run.
    os.kill(w.pid, signal.SIGKILL)
    w.wait(timeout=30)

    expected = {}
    for i in range(total):
        if i % 20 == 0:
            job = q.enqueue_in(timedelta(seconds=1), "fwjobs.square", i)
            expected[job.id] = i * i
        elif i % 20 == 1:
            job = q.enqueue("fwjobs.flaky", i, retry=Retry(max=2))
            expected[job.id] = -i
        else:
            job = q.enqueue("fwjobs.square", i)
            expected[job.id] = i * i

    workers = [worker(url), worker(url)]
    try:
        done = lambda: sum(
            1 for s in Job.fetch_many(list(expected), connection=conn) if s and s.get_status() == "finished"
        )
        wait_for(lambda: done() == total, 300, f"{total} jobs to finish")
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            w.wait(timeout=60)

    results = {}
    for job in Job.fetch_many(list(expected), connection=conn):
        results[job.id] = job.return_value()
    wrong = sorted(j for j, v in expected.items() if results.get(j) != v)
    retried = sum(1 for i in range(total) if i % 20 == 1 and conn.get(f"fwtest:attempts:{i}") == b"2")

    # The killed worker's job: RQ's promise is that cleanup of the started registry, once the
    # job's heartbeat has lapsed, fails it into the failed registry (never silently drops it).
    StartedJobRegistry(queue=q).cleanup(timestamp=time.time() + 3600)
    victim_status = victim.get_status(refresh=True)
    in_failed = victim.id in FailedJobRegistry(queue=q).get_job_ids()

    print(json.dumps({
        "jobs": total,
        "finished": total - len(wrong),
        "wrong_or_lost": len(wrong),
        "retried_once": retried,
        "killed_job_status": str(victim_status.value if hasattr(victim_status, "value") else victim_status),
        "killed_job_in_failed_registry": in_failed,
        "queue_left": len(q),
    }, sort_keys=True))


if __name__ == "__main__":
    main()
