#!/usr/bin/env bash
# Job benchmark (issue 12, "Speed"): `skiff run -f job.yaml` of a Job with 100 completions,
# parallelism 10, each pod an init container, a native sidecar and an app that do nothing
# (host runtime class). A script, not a timed test.
#
#   ./bench/job-bench.sh                 # RUNS=3 by default
#   RUNS=5 SKIFF=target/debug/skiff ./bench/job-bench.sh
#
# Prints the wall time of each run and the "containers' own work": the same commands in the
# same order and parallelism run by the shell (per pod: init `/bin/true`; sidecar
# `sleep infinity` in the background; app `/bin/true`; the sidecar stopped with SIGTERM and
# reaped; 10 pods at a time through `xargs -P 10`). skiff's own time = skiff − baseline.
# Builds skiff in release unless SKIFF names a binary. Data dirs live in a temp dir (on
# /dev/shm when present), removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
if [ -z "${SKIFF:-}" ]; then
    cargo build --release -q -p skiff
    SKIFF="${CARGO_TARGET_DIR:-$PWD/target}/release/skiff"
fi

tmp_parent=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && tmp_parent=/dev/shm
work=$(mktemp -d "$tmp_parent/skiff-job-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

cat > "$work/job.yaml" <<'YAML'
apiVersion: batch/v1
kind: Job
metadata:
  name: bench
spec:
  completions: 100
  parallelism: 10
  template:
    spec:
      runtimeClassName: host
      restartPolicy: Never
      terminationGracePeriodSeconds: 5
      initContainers:
      - name: init
        image: bench
        command: ["/bin/true"]
      - name: sidecar
        image: bench
        restartPolicy: Always
        command: ["/bin/sh", "-c", "trap 'kill $$!; exit 0' TERM; /bin/sleep infinity & wait"]
      containers:
      - name: app
        image: bench
        command: ["/bin/true"]
YAML

cat > "$work/pod.sh" <<'SH'
/bin/true
/bin/sleep infinity &
side=$!
/bin/true
kill -TERM "$side"
wait "$side" || true
SH

now() { echo "$EPOCHREALTIME"; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }

echo "skiff $("$SKIFF" --version | awk 'NR==1{print $3}') ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(nproc) CPUs, runs=$RUNS, work dir $work"
base_best=
for i in $(seq "$RUNS"); do
    t0=$(now)
    seq 100 | xargs -P 10 -I{} /bin/sh "$work/pod.sh" >/dev/null 2>&1
    t1=$(now)
    b=$(ms "$t0" "$t1")
    if [ -z "$base_best" ] || [ "$b" -lt "$base_best" ]; then base_best=$b; fi
done
echo "baseline (shell, same containers, 10 at a time): best ${base_best} ms"
for i in $(seq "$RUNS"); do
    rm -rf "$work/data"
    t0=$(now)
    "$SKIFF" run -f "$work/job.yaml" --data-dir "$work/data" --rm >/dev/null 2>"$work/stderr" || {
        cat "$work/stderr"; exit 1; }
    t1=$(now)
    s=$(ms "$t0" "$t1")
    tail -n 1 "$work/stderr"
    echo "run $i: skiff ${s} ms, skiff's own time ≈ $((s - base_best)) ms"
done
