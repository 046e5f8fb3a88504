#!/usr/bin/env bash
# The long coverage-guided run recorded in docs/fuzzing.md: each target in turn (one core at a
# time, niced, since the machine is shared), its corpus kept in fuzz/corpus/<target>, its
# crashes in fuzz/artifacts/<target>, its log in fuzz/logs/<target>.log. Fork mode with
# crashes, timeouts and OOMs ignored: one finding does not end the run, every one is kept.
#
# usage: fuzz/long-run.sh SECONDS_PARSER SECONDS_DISPATCH SECONDS_LUA
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")"
secs=("${1:-1500}" "${2:-2400}" "${3:-2400}")
targets=(parser dispatch lua)
# AddressSanitizer only for the Lua target: it runs the workspace's one unsafe module
# (Lua C functions); elsewhere it would cost two thirds of the throughput for safe code.
sanitizers=(none none address)
mkdir -p logs
for i in 0 1 2; do
  t=${targets[$i]}
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t: ${secs[$i]} s, sanitizer ${sanitizers[$i]}, start $(date -u +%FT%TZ)"
  nice -n 10 cargo +nightly fuzz run --debug-assertions -s "${sanitizers[$i]}" "$t" "corpus/$t" -- \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="${secs[$i]}" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="artifacts/$t/" > "logs/$t.log" 2>&1 || echo "$t exited with $?"
  # Fork mode's status lines start with the total number of inputs run so far.
  grep -E "^#[0-9]+:" "logs/$t.log" | tail -1 || true
  echo "corpus: $(ls "corpus/$t" | wc -l) files, $(du -sh "corpus/$t" | cut -f1)"
  echo "artifacts: $(ls "artifacts/$t" | wc -l)"
done
