#!/usr/bin/env bash
# Side-by-side throughput of redis-server and autoscale-node under redis-benchmark, plus
# resident memory with 1,000,000 queued 100-byte elements and with 5,000 idle connections.
# Prints Markdown tables.
#
# usage: scripts/bench-broker.sh [requests (default 200000)] [clients (default 50)] [rounds (default 3)]
#        ONLY=persistence RECOVERY_ELEMENTS=8000000 scripts/bench-broker.sh   (the append-only file part alone)
#        ONLY=throughput TESTS=hset,sadd,zadd,zpopmin,spop,xadd scripts/bench-broker.sh   (one table, other commands)
#        ONLY=zsets scripts/bench-broker.sh   (sorted-set memory alone)
# Each round runs redis-server then autoscale-node; the table shows the median of the rounds, so
# machine noise hits both sides alike.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
C=${2:-50}
ROUNDS=${3:-3}
TESTS=${TESTS:-ping,lpush,rpush,lpop,rpop,lrange_100}
BIN=target/release/autoscale-node
[ -x "$BIN" ] || cargo build --release --quiet
command -v redis-benchmark >/dev/null || { echo "redis-benchmark not found (apt-get install redis-tools)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "server on $1 did not start" >&2; exit 1; }

RP=$(free_port); redis-server --port "$RP" --save "" --appendonly no --bind 127.0.0.1 >/dev/null & RPID=$!
OP=$(free_port); "$BIN" serve --port "$OP" --http-port 0 >/dev/null 2>&1 & OPID=$!
trap 'kill $RPID $OPID 2>/dev/null || true' EXIT
wait_up "$RP"; wait_up "$OP"

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Sorted-set memory (ONLY=zsets): resident growth of fresh servers filled with 100,000 sets of
# 10 members (m0…m9, scores 0…9: small sets, Redis's listpacks) and with one set of 1,000,000
# members (member:<i>, score i), in batches of 100 commands that wait for their replies.
if [ "${ONLY:-all}" = zsets ]; then
  zfill() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
port, shape = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
def command(args):
    parts = [str(a).encode() for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
if shape == "small":
    cmds = [command(["ZADD", "zs:%d" % i] + [x for j in range(10) for x in (j, "m%d" % j)]) for i in range(100000)]
else:
    cmds = [command(["ZADD", "zbig"] + [x for j in range(i, i + 100) for x in (j, "member:%d" % j)]) for i in range(0, 1000000, 100)]
for i in range(0, len(cmds), 100):
    batch = cmds[i:i + 100]
    s.sendall(b"".join(batch))
    buf = b""
    while buf.count(b"\r\n") < len(batch):
        buf += s.recv(65536)
PY
  }
  zrss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
  echo "| sorted sets | redis-server growth (MiB) | autoscale-node growth (MiB) | ratio | redis-server RSS (MiB) | autoscale-node RSS (MiB) |"
  echo "|---|---|---|---|---|---|"
  for shape in small big; do
    kill $RPID $OPID 2>/dev/null; wait $RPID $OPID 2>/dev/null || true
    RP=$(free_port); redis-server --port "$RP" --save "" --appendonly no --bind 127.0.0.1 >/dev/null & RPID=$!
    OP=$(free_port); "$BIN" serve --port "$OP" --http-port 0 >/dev/null 2>&1 & OPID=$!
    wait_up "$RP"; wait_up "$OP"; sleep 0.5
    r0=$(zrss $RPID); o0=$(zrss $OPID)
    zfill "$RP" $shape; zfill "$OP" $shape; sleep 0.5
    r1=$(zrss $RPID); o1=$(zrss $OPID)
    [ $shape = small ] && name="100,000 × 10 members" || name="1 × 1,000,000 members"
    printf '| %s (%s) | %.1f | %.1f | %.2f | %.1f | %.1f |\n' "$name" "$(redis-cli -p "$OP" OBJECT ENCODING "$([ $shape = small ] && echo zs:7 || echo zbig)")" \
      "$(echo "($r1-$r0)/1024" | bc -l)" "$(echo "($o1-$o0)/1024" | bc -l)" "$(echo "($o1-$o0)/($r1-$r0)" | bc -l)" \
      "$(echo "$r1/1024" | bc -l)" "$(echo "$o1/1024" | bc -l)"
  done
  exit 0
fi
# ONLY=persistence skips to the append-only file section at the end.
if [ "${ONLY:-all}" != persistence ]; then
# One pass of redis-benchmark --csv; prints "test,rps" lines.
bench() { redis-benchmark -p "$1" -t "$TESTS" -c "$C" -n "$N" -P "$2" --csv -q 2>/dev/null | tail -n +2 | cut -d, -f1,2 | tr -d '"'; }

echo "| test | pipeline | redis-server req/s | autoscale-node req/s | ratio |"
echo "|---|---|---|---|---|"
for P in 1 16; do
  declare -A R=() O=()
  for _ in $(seq "$ROUNDS"); do
    redis-cli -p "$RP" FLUSHALL >/dev/null; redis-cli -p "$OP" FLUSHALL >/dev/null
    while IFS=, read -r t v; do R[$t]="${R[$t]:-} $v"; done < <(bench "$RP" "$P")
    while IFS=, read -r t v; do O[$t]="${O[$t]:-} $v"; done < <(bench "$OP" "$P")
  done
  for t in "${!R[@]}"; do
    r=$(echo "${R[$t]}" | median); o=$(echo "${O[$t]:-0}" | median)
    printf '| %s | %s | %.0f | %.0f | %.2f |\n' "$t" "$P" "$r" "$o" "$(echo "$o / $r" | bc -l)"
  done | sort
  unset R O
done
[ "${ONLY:-all}" = throughput ] && exit 0

# Scripting: the original emitter's enqueue script (LPUSH + INCR) through EVALSHA.
ENQUEUE="local n = redis.call('LPUSH', KEYS[1], ARGV[1]); redis.call('INCR', KEYS[2]); return n"
SHA_R=$(redis-cli -p "$RP" SCRIPT LOAD "$ENQUEUE"); SHA_O=$(redis-cli -p "$OP" SCRIPT LOAD "$ENQUEUE")
[ "$SHA_R" = "$SHA_O" ] || { echo "script SHA differs: $SHA_R vs $SHA_O" >&2; exit 1; }
evalsha() { redis-benchmark -p "$1" -c "$C" -n "$N" -P "$2" --csv -q EVALSHA "$SHA_R" 2 worker_queue worker_queue:enqueued_total task 2>/dev/null | tail -n 1 | cut -d, -f2 | tr -d '"'; }
echo
echo "| EVALSHA enqueue script | pipeline | redis-server req/s | autoscale-node req/s | ratio |"
echo "|---|---|---|---|---|"
for P in 1 16; do
  rs=""; os=""
  for _ in $(seq "$ROUNDS"); do
    redis-cli -p "$RP" DEL worker_queue >/dev/null; redis-cli -p "$OP" DEL worker_queue >/dev/null
    rs="$rs $(evalsha "$RP" "$P")"; os="$os $(evalsha "$OP" "$P")"
  done
  r=$(echo "$rs" | median); o=$(echo "$os" | median)
  printf '| EVALSHA (LPUSH + INCR) | %s | %.0f | %.0f | %.2f |\n' "$P" "$r" "$o" "$(echo "$o / $r" | bc -l)"
done

# Memory: 1,000,000 elements of 100 bytes in one list, pushed in pipelined batches.
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
fill() {
  python3 - "$1" <<'PY'
import socket, sys
port = int(sys.argv[1]); s = socket.create_connection(("127.0.0.1", port))
val = b"x" * 100
cmd = b"*3\r\n$5\r\nRPUSH\r\n$3\r\nmem\r\n$100\r\n" + val + b"\r\n"
batch = cmd * 1000
for _ in range(1000):
    s.sendall(batch)
    need = 1000; buf = b""
    while need:
        buf += s.recv(65536); need = 1000 - buf.count(b"\r\n")
PY
}
# Fresh servers: after the throughput runs each allocator holds freed memory that a fill would
# reuse without growing, which flatters whichever kept more.
kill $RPID $OPID 2>/dev/null; wait $RPID $OPID 2>/dev/null || true
RP=$(free_port); redis-server --port "$RP" --save "" --appendonly no --bind 127.0.0.1 >/dev/null & RPID=$!
OP=$(free_port); "$BIN" serve --port "$OP" --http-port 0 >/dev/null 2>&1 & OPID=$!
wait_up "$RP"; wait_up "$OP"
r0=$(rss_kb $RPID); o0=$(rss_kb $OPID)
fill "$RP"; fill "$OP"
r1=$(rss_kb $RPID); o1=$(rss_kb $OPID)
echo
echo "| 1,000,000 × 100-byte elements | redis-server | autoscale-node | ratio |"
echo "|---|---|---|---|"
printf '| resident memory (MiB) | %.1f | %.1f | %.2f |\n' "$(echo "$r1/1024" | bc -l)" "$(echo "$o1/1024" | bc -l)" "$(echo "$o1/$r1" | bc -l)"
printf '| growth over empty (MiB) | %.1f | %.1f | %.2f |\n' "$(echo "($r1-$r0)/1024" | bc -l)" "$(echo "($o1-$o0)/1024" | bc -l)" "$(echo "($o1-$o0)/($r1-$r0)" | bc -l)"
echo "llen: redis-server $(redis-cli -p "$RP" LLEN mem), autoscale-node $(redis-cli -p "$OP" LLEN mem)"

# Idle connections: 5,000 clients that connect and stay silent, then the same after one PING
# each (a read buffer was needed once), on fresh servers. Bar (issue 12): ≤ 4 KB each.
kill $RPID $OPID 2>/dev/null; wait $RPID $OPID 2>/dev/null || true
RP=$(free_port); redis-server --port "$RP" --save "" --appendonly no --bind 127.0.0.1 --maxclients 6000 >/dev/null & RPID=$!
OP=$(free_port); "$BIN" serve --port "$OP" --http-port 0 >/dev/null 2>&1 & OPID=$!
wait_up "$RP"; wait_up "$OP"
idle() {
  python3 - "$1" "$2" <<'PY'
import resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (12000, max(12000, resource.getrlimit(resource.RLIMIT_NOFILE)[1])))
port, pid, n = int(sys.argv[1]), int(sys.argv[2]), 5000
def rss():
    return int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")).split()[1])
time.sleep(0.5); r0 = rss()
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
time.sleep(1); silent = rss()
for s in socks: s.sendall(b"PING\r\n")
for s in socks: s.recv(16)
time.sleep(3); spoke = rss()
print(f"{(silent - r0) / n:.2f} {(spoke - r0) / n:.2f}")
PY
}
read -r rs rp < <(idle "$RP" "$RPID"); read -r os op < <(idle "$OP" "$OPID")
echo
echo "| 5,000 idle connections, KB each | redis-server | autoscale-node |"
echo "|---|---|---|"
printf '| connected, silent | %.2f | %.2f |\n' "$rs" "$os"
printf '| after one PING each (3 s later) | %.2f | %.2f |\n' "$rp" "$op"
fi

# Persistence (issue 15): both servers with the append-only file on, at appendfsync everysec
# and always, on fresh servers with empty logs in temporary directories. Our INFO shows how many
# commands each fsync covered (group commit). Then recovery: a log of RECOVERY_ELEMENTS (env,
# default 1,000,000) 100-byte elements pushed one per command, and the time from start to the
# first PONG for each server.
kill $RPID $OPID 2>/dev/null; wait $RPID $OPID 2>/dev/null || true
AOF_TESTS=rpush,lpush
aof_start() { # fsync dir_redis dir_ours
  RP=$(free_port); redis-server --port "$RP" --save "" --appendonly yes --appendfsync "$1" --dir "$2" --bind 127.0.0.1 >/dev/null & RPID=$!
  OP=$(free_port); "$BIN" serve --port "$OP" --http-port 0 --appendonly yes --appendfsync "$1" --dir "$3" >/dev/null 2>&1 & OPID=$!
  wait_up "$RP"; wait_up "$OP"
}
aof_bench() { redis-benchmark -p "$1" -t "$AOF_TESTS" -c "$C" -n "$N" -P "$2" --csv -q 2>/dev/null | tail -n +2 | cut -d, -f1,2 | tr -d '"'; }
info() { redis-cli -p "$1" INFO "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f {print $2}'; }
echo
echo "| appendonly yes: test | appendfsync | pipeline | redis-server req/s | autoscale-node req/s | ratio | our commands per fsync |"
echo "|---|---|---|---|---|---|---|"
for FSYNC in everysec always; do
  RDIR=$(mktemp -d); ODIR=$(mktemp -d)
  aof_start "$FSYNC" "$RDIR" "$ODIR"
  for P in 1 16; do
    declare -A R=() O=()
    cmds0=$(info "$OP" stats total_commands_processed); fs0=$(info "$OP" persistence aof_fsyncs)
    for _ in $(seq "$ROUNDS"); do
      redis-cli -p "$RP" FLUSHALL >/dev/null; redis-cli -p "$OP" FLUSHALL >/dev/null
      while IFS=, read -r t v; do R[$t]="${R[$t]:-} $v"; done < <(aof_bench "$RP" "$P")
      while IFS=, read -r t v; do O[$t]="${O[$t]:-} $v"; done < <(aof_bench "$OP" "$P")
    done
    cmds1=$(info "$OP" stats total_commands_processed); fs1=$(info "$OP" persistence aof_fsyncs)
    per=$(echo "($cmds1 - $cmds0) / ($fs1 - $fs0 + 0.000001)" | bc -l)
    for t in "${!R[@]}"; do
      r=$(echo "${R[$t]}" | median); o=$(echo "${O[$t]:-0}" | median)
      printf '| %s | %s | %s | %.0f | %.0f | %.2f | %.0f |\n' "$t" "$FSYNC" "$P" "$r" "$o" "$(echo "$o / $r" | bc -l)" "$per"
    done | sort
    unset R O
  done
  kill $RPID $OPID 2>/dev/null; wait $RPID $OPID 2>/dev/null || true
  rm -rf "$RDIR" "$ODIR"
done

ELEMENTS=${RECOVERY_ELEMENTS:-1000000}
fill_n() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
port, total = int(sys.argv[1]), int(sys.argv[2]); s = socket.create_connection(("127.0.0.1", port))
cmd = b"*3\r\n$5\r\nRPUSH\r\n$3\r\nmem\r\n$100\r\n" + b"x" * 100 + b"\r\n"
left = total
while left:
    n = min(1000, left); left -= n
    s.sendall(cmd * n)
    need = n; buf = b""
    while need:
        buf += s.recv(65536); need = n - buf.count(b"\r\n")
PY
}
RDIR=$(mktemp -d); ODIR=$(mktemp -d)
aof_start everysec "$RDIR" "$ODIR"
fill_n "$RP" "$ELEMENTS"; fill_n "$OP" "$ELEMENTS"
redis-cli -p "$RP" SHUTDOWN >/dev/null 2>&1 || true; redis-cli -p "$OP" SHUTDOWN >/dev/null 2>&1 || true
wait $RPID $OPID 2>/dev/null || true
rsize=$(du -sb "$RDIR" | cut -f1); osize=$(du -sb "$ODIR" | cut -f1)
# Seconds from start until the server answers PONG with every element loaded.
recover() { # port cmd...
  local port=$1; shift
  local t0; t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1 &
  local pid=$!
  until [ "$(redis-cli -p "$port" PING 2>/dev/null)" = "PONG" ]; do sleep 0.01; done
  echo "$(echo "$(date +%s.%N) - $t0" | bc -l) $pid"
}
RP=$(free_port); read -r rt RPID < <(recover "$RP" redis-server --port "$RP" --save "" --appendonly yes --dir "$RDIR" --bind 127.0.0.1)
OP=$(free_port); read -r ot OPID < <(recover "$OP" "$BIN" serve --port "$OP" --http-port 0 --appendonly yes --dir "$ODIR")
echo
echo "| recovery of $ELEMENTS pushes | redis-server | autoscale-node | ratio |"
echo "|---|---|---|---|"
printf '| log size (MB) | %.0f | %.0f | %.2f |\n' "$(echo "$rsize/1000000" | bc -l)" "$(echo "$osize/1000000" | bc -l)" "$(echo "$osize/$rsize" | bc -l)"
printf '| start to first PONG (s) | %.2f | %.2f | %.2f |\n' "$rt" "$ot" "$(echo "$ot/$rt" | bc -l)"
echo "llen after recovery: redis-server $(redis-cli -p "$RP" LLEN mem), autoscale-node $(redis-cli -p "$OP" LLEN mem)"
kill $RPID $OPID 2>/dev/null; wait $RPID $OPID 2>/dev/null || true
rm -rf "$RDIR" "$ODIR"
