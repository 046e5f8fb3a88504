"""redis-py's register_script flow against a server: EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA.
Prints the results as JSON so the caller can compare two servers.

usage: python3 register_script.py PORT
"""
import json
import sys

import redis

# The original emitter's enqueue: LPUSH the task and INCR the counter atomically.
ENQUEUE = """
local n = redis.call('LPUSH', KEYS[1], ARGV[1])
local total = redis.call('INCR', KEYS[2])
return {n, total}
"""

# KEDA's Redis list scaler: the length of whatever the key holds, 0 for unknown types.
KEDA_LENGTH = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'list' then return redis.call('LLEN', KEYS[1])
elseif t == 'zset' then return redis.call('ZCARD', KEYS[1])
elseif t == 'set' then return redis.call('SCARD', KEYS[1])
elseif t == 'hash' then return redis.call('HLEN', KEYS[1])
else return 0 end
"""


def main() -> int:
    r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), decode_responses=True, socket_timeout=10)
    r.flushall()
    r.script_flush()
    enqueue = r.register_script(ENQUEUE)
    before = r.script_exists(enqueue.sha)[0]
    results = [enqueue(keys=["worker_queue", "worker_queue:enqueued_total"], args=[f"task-{i}"]) for i in range(5)]
    after = r.script_exists(enqueue.sha)[0]
    # The server's own view of the NOSCRIPT round trip.
    stats = r.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {})
    keda = r.register_script(KEDA_LENGTH)
    r.set("a_string", "x")
    lengths = {k: keda(keys=[k]) for k in ["worker_queue", "a_string", "missing"]}
    out = {
        "sha": enqueue.sha,
        "cached_before": bool(before),
        "cached_after": bool(after),
        "results": results,
        "queue": r.lrange("worker_queue", 0, -1),
        "counter": r.get("worker_queue:enqueued_total"),
        "evalsha_calls": evalsha.get("calls"),
        "evalsha_failed": evalsha.get("failed_calls"),
        "keda_lengths": lengths,
    }
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
