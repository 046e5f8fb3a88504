#!/usr/bin/env bash
# Regenerates the evaluation reports in docs/eval/ from the bundled models (see docs/agent.md):
# for each workload, the metrics-only model (models/model.safetensors, 8 s decisions) and the
# calendar model (models/calendar.safetensors, 4 s decisions), each against every baseline at
# its own decision period. Usage: scripts/eval-reports.sh [path/to/autoscale-node]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/autoscale-node}
[ -x "$bin" ] || { echo "build first: cargo build --release (or pass the binary)" >&2; exit 1; }
workloads=(
  "original|"
  "shuffled|--shuffle-phases"
  "rate400-shuffled|--shuffle-phases --base-rate 400"
  "rate200|--base-rate 200"
  "local-startup|--startup-delay-s 0.1"
)
for entry in "${workloads[@]}"; do
  name=${entry%%|*}
  opts=${entry#*|}
  # shellcheck disable=SC2086
  "$bin" eval --policy models/model.safetensors --episodes 10 $opts --report "docs/eval/$name" >/dev/null
  # shellcheck disable=SC2086
  "$bin" eval --policy models/calendar.safetensors --episodes 10 $opts --report "docs/eval/calendar-$name" >/dev/null
  echo "docs/eval/$name, docs/eval/calendar-$name"
done
