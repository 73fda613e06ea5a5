#!/usr/bin/env bash
# `skiff validate` start-to-exit time next to /bin/true (issue 8 "Speed"): builds the release
# binary (honours CARGO_TARGET_DIR) and prints p50/p90/min/max of both, RUNS runs each after
# WARMUP (defaults 300 and 10). `perf stat` page faults and task-clock follow when perf is
# installed: on a VM most of a short command's time is page faults at start.
#
#   ./bench/validate-bench.sh [MANIFEST]      # default examples/web-with-sidecars.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-300}
WARMUP=${WARMUP:-10}
example=${1:-examples/web-with-sidecars.yaml}
nice cargo build --release -q -p skiff
skiff="${CARGO_TARGET_DIR:-$PWD/target}/release/skiff"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 bench/bench.py validate --skiff "$skiff" --work "$work" --runs "$RUNS" --warmup "$WARMUP" \
    --example "$example"
if command -v perf >/dev/null; then
    for cmd in "$skiff validate -f $example" "/bin/true"; do
        # shellcheck disable=SC2086
        perf stat -r 100 -e task-clock,page-faults $cmd 2>&1 >/dev/null |
            awk -v c="$cmd" '/task-clock|page-faults|elapsed/ {printf "  %-40s %s %s %s\n", c, $1, $2, $3}'
    done
fi
