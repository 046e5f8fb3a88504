"""Hijack attempts on the Lua sandbox, then redis-py's register_script flow on a fresh
connection: with a sandbox as strict as Redis 7's, every attempt fails and the script still
pushes. Prints the results as JSON so the caller can compare two servers.

usage: python3 sandbox_hijack.py PORT
"""
import json
import sys

import redis

ATTEMPTS = [
    "redis.call = function() return 'hijacked' end return 'ok'",
    "rawset(redis, 'call', function() return 'hijacked' end) return 'ok'",
    "rawset(_G, 'redis', {call = function() return 'hijacked' end}) return 'ok'",
    "setmetatable(_G, nil) return 'ok'",
    "getmetatable('').__index.rep = function() return 'hijacked' end return 'ok'",
    "table.insert(redis, function() end) return 'ok'",
    "loadstring('redis.call = nil')() return 'ok'",
    "return loadfile('/etc/passwd')",
    "return dofile('/etc/passwd')",
]

PUSH = "return redis.call('RPUSH', KEYS[1], ARGV[1])"


def main() -> int:
    port = int(sys.argv[1])
    attacker = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=10)
    attacker.flushall()
    attacker.script_flush()
    errors = []
    for body in ATTEMPTS:
        try:
            errors.append(["ok", attacker.eval(body, 0)])
        except redis.ResponseError as e:
            errors.append(["error", str(e)])
    victim = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=10)
    push = victim.register_script(PUSH)
    lengths = [push(keys=["jobs"], args=[f"job-{i}"]) for i in range(3)]
    out = {
        "attempts": errors,
        "lengths": lengths,
        "jobs": victim.lrange("jobs", 0, -1),
        "call_is_a_function": victim.eval("return type(redis.call)", 0),
    }
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
