#!/usr/bin/env bash
# skiff speed benchmark (issue 3, "Speed"). A script, not a timed test.
#
#   ./bench/run-bench.sh            # RUNS=40 WARMUP=3 by default
#   RUNS=100 ./bench/run-bench.sh
#   SKIFF_BIN=/tmp/skiff-old ./bench/run-bench.sh   # a given binary, no build
#
# Builds skiff in release (`cargo build --release -p skiff`; honours CARGO_TARGET_DIR), then
# prints p50/p90/min/max (milliseconds) of:
#
# a. End to end: wall time of `skiff run -f POD --data-dir DIR` for a 3-container pod: init
#    `/bin/true`, a sidecar `/bin/sleep infinity` with an exec startupProbe (`/bin/true`,
#    periodSeconds 1), an app `/bin/true` (restartPolicy Never: the run ends when the app
#    has exited, the sidecar was stopped and everything is cleaned up).
#    Accounting: "the containers' own work" is measured, not assumed. A shell runs the same
#    commands in the order skiff must run them (init; sidecar in the background; probe; app;
#    stop the sidecar; wait for it). The startup probe's first run is not skiff overhead but
#    kubelet protocol (SEMANTICS P3): the probe worker's ticker starts at pod admission and
#    the first probe of the sidecar comes at the first tick after it started, i.e. one period
#    (1 s) after admission. So the shell baseline starts `sleep 1` first (that tick) and runs
#    the probe and the app after it; init and sidecar start overlap that second, exactly as in
#    skiff and the kubelet. overhead = p50(skiff) - p50(baseline), likewise for p90.
#    Because the tick hides skiff's work before it (start-up, init, sidecar start), the same
#    pod WITHOUT the startup probe is measured as well against its own shell baseline: there
#    nothing hides anything, so that figure is every millisecond skiff adds.
#    Runs of the four commands are interleaved so machine drift affects them alike.
# b. Sidecar restart: a sidecar (bash) writes $EPOCHREALTIME just before `exit 1`; its next
#    instance writes $EPOCHREALTIME first thing. The first restart is immediate (R5), later
#    ones back off >= 10 s, so one crash per pod over RUNS pods. The floor is the same two
#    bash scripts run back to back by bash (process exit, reap, fork+exec, bash start-up).
# c. `skiff validate -f examples/web-with-sidecars.yaml` (the fast path), next to /bin/true.
# d. The container monitor: its start (exec + runtime init) next to /bin/true, and its private
#    memory (RssAnon) while holding a container that wrote 200 000 lines.
#
# Data dirs live in a temp dir (on /dev/shm when present), removed at exit. Processes are
# never killed by name; every run must exit 0 or the script stops.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-40}
WARMUP=${WARMUP:-3}

# SKIFF_BIN=path: measure that binary instead of building (an A/B of two commits).
if [ -n "${SKIFF_BIN:-}" ]; then
    skiff=$SKIFF_BIN
else
    cargo build --release -q -p skiff
    target=${CARGO_TARGET_DIR:-$PWD/target}
    skiff="$target/release/skiff"
fi

tmp_parent=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && tmp_parent=/dev/shm
work=$(mktemp -d "$tmp_parent/skiff-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "skiff $("$skiff" --version | awk 'NR==1{print $3}') ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(nproc) CPUs, kernel $(uname -r), runs=$RUNS warm-up=$WARMUP, work dir $work"
if [ "$(id -u)" = 0 ]; then echo "root: containers are tracked with cgroup2 when available"; else echo "not root: containers are tracked with process groups"; fi

python3 bench/bench.py e2e --skiff "$skiff" --work "$work" --runs "$RUNS" --warmup "$WARMUP"
python3 bench/bench.py restart --skiff "$skiff" --work "$work" --runs "$RUNS" --warmup "$WARMUP"
python3 bench/bench.py monitor --skiff "$skiff" --work "$work" --runs "$((RUNS * 5))" --warmup "$WARMUP"
python3 bench/bench.py validate --skiff "$skiff" --work "$work" --runs "$((RUNS * 3))" --warmup "$WARMUP" \
    --example examples/web-with-sidecars.yaml
