#!/usr/bin/env bash
# The long coverage-guided run recorded in docs/fuzzing.md: each target in turn (one core at a
# time, niced, since the machine is shared), its corpus kept in fuzz/corpus/<target>, its
# crashes in fuzz/artifacts/<target>, its logs in fuzz/logs/. libFuzzer stops at a finding,
# so each target is restarted (with the corpus it has built) until its time is used up; fork
# mode would keep going by itself but runs at a fifth of the speed here.
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
  nice -n 10 cargo +nightly fuzz build --debug-assertions -s "${sanitizers[$i]}" "$t" > "logs/$t.build.log" 2>&1
  bin="target/x86_64-unknown-linux-gnu/release/$t"
  end=$(( $(date +%s) + ${secs[$i]} ))
  run=0 total=0
  while (( $(date +%s) < end - 5 )); do
    run=$((run + 1))
    log="logs/$t.$run.log"
    nice -n 10 "$bin" "corpus/$t" -max_total_time=$(( end - $(date +%s) )) -timeout=10 \
      -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="artifacts/$t/" > "$log" 2>&1 || true
    n=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo 0)
    total=$((total + n))
    grep -E "^(SUMMARY|==[0-9]+== ERROR)|panicked at" "$log" | head -3 || true
  done
  echo "$t: $total inputs in $run invocation(s), end $(date -u +%FT%TZ)"
  echo "corpus: $(ls "corpus/$t" | wc -l) files, $(du -sh "corpus/$t" | cut -f1)"
  echo "artifacts: $(ls "artifacts/$t" | wc -l)"
done
