#!/usr/bin/env bash
# Pod sandbox create + teardown per pod (issue 4 "Speed", goal <= 10 ms). Root only.
#
#   ./bench/sandbox-bench.sh          # 200 iterations per case
#   ./bench/sandbox-bench.sh 1000
#
# Runs crates/skiff-node/examples/sandbox_bench.rs in release (honours CARGO_TARGET_DIR):
# PodSandbox::create (pod cgroup, namespace holder in new net/uts/ipc[/pid] namespaces, lo up,
# hostname, volumes dir) + destroy (holder SIGKILLed and reaped, cgroup removed), p50/p90/min/max
# in ms after 5 warm-ups; then the same with one /bin/true container in its own mount namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -q -p skiff-node --example sandbox_bench -- "${1:-200}"
