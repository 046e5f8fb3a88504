"""A consumer of a stream's consumer group, as a team would write one with redis-py: read one
entry at a time as consumer $AUTOSCALE_WORKER_ID, work on it, acknowledge it. SIGTERM lets the
entry in hand finish, then exits (the warm shutdown the node's scale-down relies on).

Usage: stream_worker.py STREAM GROUP SECONDS_PER_ENTRY   (REDIS_URL in the environment)
"""

import os
import signal
import sys
import time

import redis

stopping = False


def stop(_signum, _frame):
    global stopping
    stopping = True


def main():
    stream, group, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    signal.signal(signal.SIGTERM, stop)
    conn = redis.Redis.from_url(os.environ["REDIS_URL"])
    me = os.environ.get("AUTOSCALE_WORKER_ID", "consumer")
    while not stopping:
        got = conn.xreadgroup(group, me, {stream: ">"}, count=1, block=200)
        for _key, entries in got or []:
            for entry_id, _fields in entries:
                time.sleep(seconds)
                conn.xack(stream, group, entry_id)


if __name__ == "__main__":
    main()
