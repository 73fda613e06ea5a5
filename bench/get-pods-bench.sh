#!/usr/bin/env bash
# `skiff get pods` with 1000 finished pods in the data dir (issue 8 item 6 "Speed", goal
# <= 100 ms in a release build). A script, not a timed test.
#
#   ./bench/get-pods-bench.sh             # PODS=1000 RUNS=30 by default
#   PODS=5000 RUNS=10 ./bench/get-pods-bench.sh
#
# Builds skiff in release (honours CARGO_TARGET_DIR). One real `skiff run` (an init
# container, two app containers, one restart) makes a pod directory; it is copied PODS times
# under new names and uids (pod.json, summary.json, the logs), as many finished pods as
# `skiff run` would leave. Then prints p50/p90/min/max wall time (ms, process start to exit)
# of `skiff get pods`, `-o wide`, `-A`, `-o name`, and `skiff logs` of one pod among them.
# The data dir lives in a temp dir under /tmp, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

PODS=${PODS:-1000}
RUNS=${RUNS:-30}

cargo build --release -q -p skiff
target=${CARGO_TARGET_DIR:-$PWD/target}
skiff="$target/release/skiff"

# Under /tmp, not /dev/shm: a container sees its own private /dev, so the "once" marker the
# app container writes must be on a host filesystem it shares.
work=$(mktemp -d /tmp/skiff-get-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
data="$work/data"

cat > "$work/pod.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: template
spec:
  runtimeClassName: host
  restartPolicy: OnFailure
  initContainers:
  - name: prep
    image: busybox
    command: ["/bin/sh", "-c", "echo prepared"]
  containers:
  - name: app
    image: busybox
    command: ["/bin/sh", "-c", "if [ -f $work/once ]; then echo second; exit 0; fi; touch $work/once; echo first; exit 3"]
  - name: side
    image: busybox
    command: ["/bin/sh", "-c", "for i in \$(seq 1 200); do echo side line \$i; done"]
EOF
"$skiff" run -f "$work/pod.yaml" --data-dir "$data" --keep-pods "$((PODS + 10))" >/dev/null 2>&1
template=$(ls -d "$data"/pods/default_template_*)
uid=${template##*_}

echo "skiff $("$skiff" --version | awk 'NR == 1 {print $3}') ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(nproc) CPUs, kernel $(uname -r), $PODS finished pods, runs=$RUNS, data dir $data"

python3 - "$skiff" "$data" "$template" "$uid" "$PODS" "$RUNS" <<'PY'
import json, os, shutil, statistics, subprocess, sys, time, uuid

skiff, data, template, uid, pods, runs = sys.argv[1:7]
pods, runs = int(pods), int(runs)

# PODS copies of the real pod under new names and uids (the template itself removed).
for i in range(pods):
    name, new_uid = f"pod-{i:04d}", str(uuid.uuid4())
    dest = os.path.join(data, "pods", f"default_{name}_{new_uid}")
    shutil.copytree(template, dest)
    for f in ("pod.json", "summary.json"):
        p = os.path.join(dest, f)
        with open(p) as fh:
            text = fh.read()
        text = text.replace(uid, new_uid).replace('"template"', json.dumps(name))
        with open(p, "w") as fh:
            fh.write(text)
shutil.rmtree(template)

def bench(label, args):
    out = subprocess.run([skiff] + args, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{label}: exit {out.returncode}: {out.stderr}")
    lines = len(out.stdout.splitlines())
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([skiff] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    print(f"{label:<34} p50 {p(0.5):7.1f}  p90 {p(0.9):7.1f}  min {ms[0]:7.1f}  max {ms[-1]:7.1f} ms  ({lines} lines)")

d = ["--data-dir", data]
bench("skiff get pods", ["get", "pods"] + d)
bench("skiff get pods -o wide", ["get", "pods", "-o", "wide"] + d)
bench("skiff get pods -A", ["get", "pods", "-A"] + d)
bench("skiff get pods -o name", ["get", "pods", "-o", "name"] + d)
bench("skiff get pods pod-0500", ["get", "pods", "pod-0500"] + d)
bench("skiff logs pod-0500 -c side", ["logs", "pod-0500", "-c", "side"] + d)
bench("skiff --version (process floor)", ["--version"])
PY
