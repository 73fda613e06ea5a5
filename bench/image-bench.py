#!/usr/bin/env python3
"""Image pods side by side: `skiff run` vs `podman kube play` (issue 10, "Speed").

Both run the same pod from the same image in the same local registry (already pulled:
the cache is warm), and the time measured is from spawning the command to the moment
the app container's process exists (its command line carries a marker; /proc is polled
every millisecond). Each run is then torn down before the next (skiff: SIGTERM to the
`skiff run` process, by PID; podman: `podman pod rm -f -t 0`), outside the timing.

  bench/image-bench.py --skiff target/release/skiff --image localhost:5000/busybox:latest \
      --work /tmp/x [--runs 20] [--warmup 2] [--no-podman]

podman (from apt) is configured as ../shared/notes/env-facts.md §4 says (runc, cgroupfs,
files under the work dir, the local registry insecure); nothing outside the work dir is
changed, and what podman leaves (its storage mounts, empty cgroup dirs) is removed at the end.
Prints p50/p90/min/max in milliseconds (python3 stdlib only).
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

MARK = "7777"  # the app's `sleep` argument: unique on this machine while the bench runs

INIT_APP = """\
apiVersion: v1
kind: Pod
metadata:
  name: bench
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  initContainers:
  - name: init
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo init"]
  containers:
  - name: app
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["sleep", "{mark}"]
"""

SIDECAR = """\
apiVersion: v1
kind: Pod
metadata:
  name: bench
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  initContainers:
  - name: init
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo init"]
  - name: sidecar
    image: {image}
    imagePullPolicy: IfNotPresent
    restartPolicy: Always
    command: ["sh", "-c", "touch /tmp/ready; exec sleep infinity"]
    startupProbe:
      exec:
        command: ["cat", "/tmp/ready"]
      periodSeconds: 1
  containers:
  - name: app
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["sleep", "{mark}"]
"""


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def show(label, xs):
    print(f"{label:<58} p50 {pct(xs, 50):8.1f}  p90 {pct(xs, 90):8.1f}  "
          f"min {min(xs):8.1f}  max {max(xs):8.1f}  (ms, n={len(xs)})", flush=True)


def app_pid():
    """The PID of a process whose command line is `sleep MARK`, if one exists."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) >= 2 and argv[0].endswith(b"sleep") and argv[1] == MARK.encode():
            return int(d)
    return None


def until_app(t0, proc, limit=60.0):
    while True:
        if app_pid() is not None:
            return (time.monotonic() - t0) * 1000
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the command exited ({proc.returncode}) before the app ran")
        if time.monotonic() - t0 > limit:
            raise SystemExit("the app did not start within 60 s")
        time.sleep(0.001)


def gone(limit=30.0):
    t0 = time.monotonic()
    while app_pid() is not None:
        if time.monotonic() - t0 > limit:
            raise SystemExit("the app outlived its pod's teardown")
        time.sleep(0.01)


def skiff_once(skiff, pod_file, data_dir):
    t0 = time.monotonic()
    proc = subprocess.Popen([skiff, "run", "-f", pod_file, "--data-dir", data_dir, "--rm"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ms = until_app(t0, proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    gone()
    return ms


def podman_env(work):
    base = os.path.join(work, "podman")
    os.makedirs(base, exist_ok=True)
    conf = os.path.join(base, "containers.conf")
    with open(conf, "w") as f:
        f.write(f"""[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
tmp_dir = "{base}/tmp"
""")
    storage = os.path.join(base, "storage.conf")
    with open(storage, "w") as f:
        f.write(f"""[storage]
driver = "overlay"
graphroot = "{base}/graph"
runroot = "{base}/run"
""")
    return base, conf, storage


def podman_once(env, pod_file):
    t0 = time.monotonic()
    proc = subprocess.Popen(["podman", "kube", "play", "--network", "none", pod_file],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ms = until_app(t0, None)
    proc.wait(timeout=60)
    subprocess.run(["podman", "pod", "rm", "-f", "-t", "0", "bench"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    gone()
    return ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skiff", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--registry", help="host:port of the local registry (podman's insecure list)")
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-podman", action="store_true")
    a = ap.parse_args()
    if app_pid() is not None:
        raise SystemExit(f"a `sleep {MARK}` already runs on this machine; stop it first")

    files = {}
    for name, text in (("init-app", INIT_APP), ("sidecar", SIDECAR)):
        path = os.path.join(a.work, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(text.format(image=a.image, mark=MARK))
        files[name] = path
    data_dir = os.path.join(a.work, "skiff-data")
    # Warm skiff's image store (the pull is not what is measured).
    subprocess.run([a.skiff, "image", "pull", "--data-dir", data_dir, "-q", a.image], check=True,
                   stdout=subprocess.DEVNULL)

    use_podman = not a.no_podman
    env = dict(os.environ)
    if use_podman:
        base, conf, storage = podman_env(a.work)
        reg = a.registry or a.image.split("/")[0]
        regs = os.path.join(base, "registries.conf")
        with open(regs, "w") as f:
            f.write(f'unqualified-search-registries = []\n[[registry]]\nlocation = "{reg}"\ninsecure = true\n')
        env.update(CONTAINERS_CONF=conf, CONTAINERS_STORAGE_CONF=storage,
                   CONTAINERS_REGISTRIES_CONF=regs)
        subprocess.run(["podman", "pull", "-q", a.image], env=env, check=True,
                       stdout=subprocess.DEVNULL)

    try:
        runs = {"skiff init+app": [], "podman init+app": [], "skiff init+sidecar(startupProbe)+app": []}
        for i in range(a.warmup + a.runs):
            # interleaved, so machine drift affects both alike
            s = skiff_once(a.skiff, files["init-app"], data_dir)
            p = podman_once(env, files["init-app"]) if use_podman else None
            c = skiff_once(a.skiff, files["sidecar"], data_dir)
            if i >= a.warmup:
                runs["skiff init+app"].append(s)
                if p is not None:
                    runs["podman init+app"].append(p)
                runs["skiff init+sidecar(startupProbe)+app"].append(c)
        print(f"spawn → app process exists, image {a.image} cached, {os.cpu_count()} CPUs")
        for label, xs in runs.items():
            if xs:
                show(label, xs)
        if runs["podman init+app"]:
            ratio = statistics.median(runs["podman init+app"]) / statistics.median(runs["skiff init+app"])
            print(f"podman / skiff (p50): {ratio:.1f}x")
        print("(podman cannot run the sidecar pod: it rejects probes on init containers and ignores "
              "restartPolicy: Always there; ../shared/notes/env-facts.md §4)")
    finally:
        if use_podman:
            subprocess.run(["podman", "pod", "rm", "-f", "-t", "0", "bench"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            subprocess.run(["podman", "system", "reset", "-f"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            remove_empty_cgroups("libpod_parent")


def remove_empty_cgroups(name):
    """podman's cgroupfs manager leaves empty `libpod_parent` dirs (env-facts §4)."""
    for root in ("/sys/fs/cgroup",):
        for hier in os.listdir(root):
            top = os.path.join(root, hier, name)
            if not os.path.isdir(top):
                continue
            for d, subdirs, _ in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
                try:
                    os.rmdir(d)
                except OSError:
                    pass


if __name__ == "__main__":
    sys.exit(main())
