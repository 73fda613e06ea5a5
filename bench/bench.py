#!/usr/bin/env python3
"""Timing helper for bench/run-bench.sh (python3 stdlib only).

Runs commands repeatedly, times them with a monotonic clock, and prints
p50/p90/min/max. See run-bench.sh for what is measured and how the
"containers' own work" is accounted for.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

POD3 = """\
# Bench pod (issue 3 "Speed"): one init, one sidecar with an exec startupProbe,
# one app that exits 0. Every container does ~nothing.
apiVersion: v1
kind: Pod
metadata:
  name: bench
spec:
  runtimeClassName: host
  restartPolicy: Never
  initContainers:
  - name: init
    image: bench
    command: ["/bin/true"]
  - name: sidecar
    image: bench
    restartPolicy: Always
    command: ["/bin/sh", "-c", "trap 'kill $$!; exit 0' TERM; /bin/sleep infinity & wait"]
{probe}  containers:
  - name: app
    image: bench
    command: ["/bin/true"]
"""

PROBE = """\
    startupProbe:
      exec:
        command: ["/bin/true"]
      periodSeconds: 1
"""

# The same containers run by a shell, in the order skiff must run them. The
# `sleep 1` started first stands for the startup probe's first tick, which
# comes one period after the probe worker was created at pod admission
# (SEMANTICS P3); init and sidecar start overlap it, as in the kubelet.
# Under skiff the sidecar is PID 1 of its own PID namespace (as under Kubernetes), where
# SIGTERM only ends a process that handles it, so the pod's sidecar is a shell trapping it
# around `sleep`. The baselines run the bare `sleep` (a plain child, ended by `kill`): the
# extra shell is counted as skiff's overhead (slightly pessimistic, and race-free: a shell
# killed before its trap is set would leave the sleep holding the output pipe).
BASE3 = ("sleep 1 & t=$!; /bin/true; /bin/sleep infinity & s=$!; wait $t; "
         "/bin/true; /bin/true; kill $s; wait $s; exit 0")
BASE3_NOPROBE = "/bin/true; /bin/sleep infinity & s=$!; /bin/true; kill $s; wait $s; exit 0"

# Sidecar that crashes once (first instance), then runs. Timestamps come from
# bash's $EPOCHREALTIME (a builtin: no fork).
CRASHER = r"""
if [ -e "$D/crashed" ]; then printf '%s\n' "$EPOCHREALTIME" > "$D/restarted"; trap 'kill $!; exit 0' TERM; /bin/sleep infinity & wait; exit 0; fi
: > "$D/crashed"
/bin/sleep 0.1
printf '%s\n' "$EPOCHREALTIME" > "$D/crash"; exit 1
"""
APP_WAIT = r"""
: > "$D/app-up"
i=0; until [ -e "$D/restarted" ]; do i=$((i+1)); [ $i -gt 500 ] && exit 1; /bin/sleep 0.01; done
exit 0
"""
RESTART_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: restart
spec:
  runtimeClassName: host
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: crasher
    image: bench
    restartPolicy: Always
    command: ["/bin/bash", "-c", {crasher}]
    env: [{{name: D, value: {dir}}}]
    volumeMounts: [{{name: d, mountPath: {dir}}}]
  containers:
  - name: app
    image: bench
    command: ["/bin/bash", "-c", {app}]
    env: [{{name: D, value: {dir}}}]
    volumeMounts: [{{name: d, mountPath: {dir}}}]
  # The work dir may be on /dev/shm, which containers do not share with the host (each pod
  # has its own): a hostPath volume, as a real pod would use.
  volumes:
  - name: d
    hostPath: {{path: {dir}, type: Directory}}
"""


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(label, xs_ms):
    return {
        "label": label,
        "n": len(xs_ms),
        "p50": pct(xs_ms, 50),
        "p90": pct(xs_ms, 90),
        "min": min(xs_ms),
        "max": max(xs_ms),
    }


def show(s):
    print(f"  {s['label']:<44} n={s['n']:<4} p50 {s['p50']:8.1f}  p90 {s['p90']:8.1f}"
          f"  min {s['min']:8.1f}  max {s['max']:8.1f}  ms", flush=True)


def time_cmd(argv, runs, warmup, cleanup=None, env=None):
    out = []
    for i in range(warmup + runs):
        t0 = time.perf_counter_ns()
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, env=env)
        t1 = time.perf_counter_ns()
        if r.returncode != 0:
            sys.stderr.write(r.stderr.decode(errors="replace"))
            sys.exit(f"bench: {argv[:3]} exited {r.returncode}")
        if cleanup:
            cleanup()
        if i >= warmup:
            out.append((t1 - t0) / 1e6)
    return out


def interleaved(pairs, runs, warmup, cleanup):
    """Times several commands alternately (so drift hits them all alike)."""
    res = {label: [] for label, _ in pairs}
    for i in range(warmup + runs):
        for label, argv in pairs:
            t0 = time.perf_counter_ns()
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            t1 = time.perf_counter_ns()
            if r.returncode != 0:
                sys.stderr.write(r.stderr.decode(errors="replace"))
                sys.exit(f"bench: {label} exited {r.returncode}")
            cleanup()
            if i >= warmup:
                res[label].append((t1 - t0) / 1e6)
    return res


def e2e(args):
    data = os.path.join(args.work, "data")
    pod3 = os.path.join(args.work, "pod3.yaml")
    pod3np = os.path.join(args.work, "pod3-noprobe.yaml")
    with open(pod3, "w") as f:
        f.write(POD3.format(probe=PROBE))
    with open(pod3np, "w") as f:
        f.write(POD3.format(probe=""))

    def clean():
        shutil.rmtree(data, ignore_errors=True)

    run = [args.skiff, "run", "--data-dir", data, "-f"]
    res = interleaved([
        ("skiff run (3-container pod, startupProbe)", run + [pod3]),
        ("shell baseline (same work, 1 s tick)", ["/bin/sh", "-c", BASE3]),
        ("skiff run (same pod, no startupProbe)", run + [pod3np]),
        ("shell baseline (no probe)", ["/bin/sh", "-c", BASE3_NOPROBE]),
    ], args.runs, args.warmup, clean)
    s = [summary(k, v) for k, v in res.items()]
    print("a. end to end (wall time of the whole command)")
    for x in s:
        show(x)
    print(f"  => overhead, pod with startupProbe:   p50 {s[0]['p50'] - s[1]['p50']:6.1f} ms"
          f"   p90 {s[0]['p90'] - s[1]['p90']:6.1f} ms   (skiff - baseline)")
    print(f"  => overhead, pod without probe:       p50 {s[2]['p50'] - s[3]['p50']:6.1f} ms"
          f"   p90 {s[2]['p90'] - s[3]['p90']:6.1f} ms   (skiff - baseline)")


def restart(args):
    lat, floor = [], []
    for i in range(args.warmup + args.runs):
        d = tempfile.mkdtemp(prefix="restart-", dir=args.work)
        pod = os.path.join(d, "pod.yaml")
        with open(pod, "w") as f:
            f.write(RESTART_POD.format(crasher=json.dumps(CRASHER), app=json.dumps(APP_WAIT),
                                      dir=json.dumps(d)))
        r = subprocess.run([args.skiff, "run", "--data-dir", os.path.join(d, "data"), "-f", pod],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            sys.stderr.write(r.stderr.decode(errors="replace"))
            sys.exit(f"bench: restart pod exited {r.returncode}")
        crash = float(open(os.path.join(d, "crash")).read())
        again = float(open(os.path.join(d, "restarted")).read())
        # Floor: the same two bash instances run back to back by bash itself
        # (exit, reap, fork+exec, bash start-up): the containers' own part.
        f = subprocess.run(["/bin/bash", "-c",
                            f"export D={d}; /bin/bash -c 'printf %s $EPOCHREALTIME > $D/fc; exit 1';"
                            " /bin/bash -c 'printf %s $EPOCHREALTIME > $D/fr'; exit 0"],
                           stdin=subprocess.DEVNULL)
        if f.returncode != 0:
            sys.exit("bench: floor measurement failed")
        fc = float(open(os.path.join(d, "fc")).read())
        fr = float(open(os.path.join(d, "fr")).read())
        shutil.rmtree(d, ignore_errors=True)
        if i >= args.warmup:
            lat.append((again - crash) * 1e3)
            floor.append((fr - fc) * 1e3)
    print("b. sidecar restart: crash timestamp -> first timestamp of the new instance")
    show(summary("skiff (first restart, immediate per R5)", lat))
    show(summary("floor: bash runs the same two scripts", floor))


def validate(args):
    print("c. skiff validate (examples/web-with-sidecars.yaml)")
    show(summary("skiff validate", time_cmd([args.skiff, "validate", "-f", args.example],
                                            args.runs, args.warmup)))
    show(summary("floor: /bin/true", time_cmd(["/bin/true"], args.runs, args.warmup)))


MONITOR_POD = """apiVersion: v1
kind: Pod
metadata: {{name: mon}}
spec:
  runtimeClassName: host
  restartPolicy: Never
  containers:
  - name: flood
    image: x
    command: ["/bin/sh", "-c", "seq 1 200000; seq 1 2000 | tr -d '\\n'; echo; sleep 2"]
"""


def monitor(args):
    """The container monitor: its start cost (exec + runtime init, as a process that exits
    right after parsing its arguments) against /bin/true, and its private memory (RssAnon)
    while it holds a container that has written 200 000 lines and one 8 KiB line."""
    mon = os.path.join(os.path.dirname(args.skiff), "skiff-monitor")
    print("d. container monitor (skiff-monitor)")
    bad = [mon, "--pid", "1"]  # missing --log/--exit: exits 2 after parsing

    def start_cost(argv):
        out = []
        for i in range(args.warmup + args.runs):
            t0 = time.perf_counter_ns()
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            t1 = time.perf_counter_ns()
            if i >= args.warmup:
                out.append((t1 - t0) / 1e6)
        return out
    show(summary("skiff-monitor start (exec to exit)", start_cost(bad)))
    show(summary("floor: /bin/true", start_cost(["/bin/true"])))
    rss = []
    for i in range(5):
        d = tempfile.mkdtemp(prefix="monitor-", dir=args.work)
        pod = os.path.join(d, "pod.yaml")
        with open(pod, "w") as f:
            f.write(MONITOR_POD.format(dir=d))
        p = subprocess.Popen([args.skiff, "run", "--data-dir", os.path.join(d, "data"), "-f", pod],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        # (The container's /dev/shm is its pod's own: it cannot leave a mark in this work dir,
        # so the end of its output is read from its log.)
        pods = os.path.join(d, "data", "pods")
        deadline = time.time() + 30
        while True:
            if time.time() > deadline:
                sys.exit("bench: the flood did not finish")
            try:
                pdir = os.path.join(pods, os.listdir(pods)[0], "flood")
                with open(os.path.join(pdir, "0.log"), "rb") as f:
                    f.seek(0, 2)
                    f.seek(max(0, f.tell() - 200))
                    if f.read().rstrip().endswith(b"19992000"):
                        break
            except (OSError, IndexError):
                pass
            time.sleep(0.01)
        time.sleep(0.1)
        rec = json.load(open(os.path.join(pdir, "0.state.json")))
        status = open(f"/proc/{rec['monitor']['pid']}/status").read()
        kb = int(next(l for l in status.splitlines() if l.startswith("RssAnon:")).split()[1])
        rss.append(kb)
        if p.wait() != 0:
            sys.exit("bench: monitor pod failed")
        shutil.rmtree(d, ignore_errors=True)
    print(f"  monitor RssAnon after 200 000 lines: max {max(rss)} KiB (runs: {rss})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["e2e", "restart", "validate", "monitor"])
    ap.add_argument("--skiff", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--example", default="examples/web-with-sidecars.yaml")
    args = ap.parse_args()
    {"e2e": e2e, "restart": restart, "validate": validate, "monitor": monitor}[args.what](args)


if __name__ == "__main__":
    main()
