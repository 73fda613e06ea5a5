#!/usr/bin/env python3
"""skiff serve: exec, port-forward and Job benchmark (issue 12, "Speed"). A script, not a test.

    ./bench/workload-bench.py                  # builds skiff in release first
    NO_BUILD=1 RUNS=30 MB=1024 COMPLETIONS=100 PARALLELISM=10 ./bench/workload-bench.py

Starts `skiff serve` (release build; honours CARGO_TARGET_DIR) on a temporary data dir and
drives it with the installed kubectl (KUBECTL, default `kubectl.1.33` beside `kubectl`), and
prints:

a. `kubectl exec POD -- true` round trip: wall time of the whole kubectl process, p50/p90 over
   RUNS; and the same for `kubectl get pod POD` (kubectl's own start-up and the TLS handshake,
   which every kubectl call pays) so skiff's share can be read off.
b. port-forward throughput: MB megabytes sent through `kubectl port-forward` into a pod whose
   container discards them (`busybox nc -ll -p PORT -e cat >/dev/null`... a sink), MB/s.
c. A Job of COMPLETIONS completions with PARALLELISM pods at once, each pod an init container
   (`true`), a native sidecar (`sleep infinity`) and an app (`true`): the time from apply to
   the Complete condition, and skiff's own time beyond the containers' work (the containers do
   nothing, so all of it is skiff's).

Everything is cleaned up: the Job is deleted with Background propagation, pods deleted through
the API, the daemon stopped with SIGTERM, the data dir removed. Processes are never killed by
name.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RUNS = int(os.environ.get("RUNS", "30"))
MB = int(os.environ.get("MB", "1024"))
COMPLETIONS = int(os.environ.get("COMPLETIONS", "100"))
PARALLELISM = int(os.environ.get("PARALLELISM", "10"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SKIFF = os.path.join(TARGET, "release", "skiff")


def kubectl_bin():
    if os.environ.get("KUBECTL"):
        return os.environ["KUBECTL"]
    base = shutil.which("kubectl")
    if base:
        real = os.path.realpath(base)
        for cand in (os.path.join(os.path.dirname(real), "kubectl.1.33"),
                     os.path.join(os.path.dirname(base), "kubectl.1.33")):
            if os.path.exists(cand):
                return cand
        return base
    sys.exit("workload-bench: kubectl is not installed")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Kubectl:
    def __init__(self, tmp, kubeconfig):
        self.bin = kubectl_bin()
        self.env = dict(os.environ, HOME=os.path.join(tmp, "home"), KUBECONFIG=kubeconfig)
        self.cache = os.path.join(tmp, "home", "cache")

    def cmd(self, *args):
        return [self.bin, "--cache-dir", self.cache, *args]

    def run(self, *args, input_=None, check=True):
        r = subprocess.run(self.cmd(*args), env=self.env, capture_output=True, text=True, input=input_)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {r.stderr}")
        return r

    def apply(self, obj):
        self.run("apply", "-f", "-", input_=json.dumps(obj))


def host_pod(name, command, labels=None):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "runtimeClassName": "host",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": "busybox", "command": command}],
        },
    }


def bench_exec(k):
    k.apply(host_pod("exec", ["/bin/sleep", "infinity"]))
    k.run("wait", "--for=condition=Ready", "pod/exec", "--timeout=60s")
    k.run("exec", "exec", "--", "true")  # warm the discovery cache
    exec_ms, get_ms = [], []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        k.run("exec", "exec", "--", "true")
        exec_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        k.run("get", "pod", "exec")
        get_ms.append((time.perf_counter() - t0) * 1000)
    e50, g50 = statistics.median(exec_ms), statistics.median(get_ms)
    print(f"a. kubectl exec -- true: p50 {e50:.1f} ms, p90 {pct(exec_ms, 90):.1f} ms; "
          f"kubectl get pod: p50 {g50:.1f} ms; exec beyond a get: {e50 - g50:.1f} ms (n={RUNS})")


def bench_port_forward(k):
    port = 31000 + os.getpid() % 2000
    k.apply(host_pod("sink", ["/bin/sh", "-c", f"exec busybox nc -ll -p {port} -e /bin/sh -c 'cat >/dev/null'"]))
    k.run("wait", "--for=condition=Ready", "pod/sink", "--timeout=60s")
    pf = subprocess.Popen(k.cmd("port-forward", "pod/sink", f":{port}"), env=k.env,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = pf.stdout.readline()
        local = int(line.split("127.0.0.1:")[1].split()[0])
        threading.Thread(target=pf.stdout.read, daemon=True).start()
        time.sleep(0.3)
        s = socket.create_connection(("127.0.0.1", local))
        chunk = b"x" * (1 << 20)
        t0 = time.perf_counter()
        for _ in range(MB):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(60)
        try:
            s.recv(1)
        except OSError:
            pass
        dt = time.perf_counter() - t0
        s.close()
        print(f"b. port-forward: {MB} MiB in {dt:.2f} s = {MB / dt:.0f} MiB/s")
    finally:
        pf.terminate()
        pf.wait()


def bench_job(k):
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "bench"},
        "spec": {
            "completions": COMPLETIONS, "parallelism": PARALLELISM, "backoffLimit": 0,
            "template": {"spec": {
                "runtimeClassName": "host", "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "initContainers": [
                    {"name": "init", "image": "busybox", "command": ["/bin/true"]},
                    # Exits at SIGTERM at once (a `sleep` as its namespace's PID 1 would ignore
                    # it and cost the grace period, which is the container's time, not skiff's).
                    {"name": "side", "image": "busybox",
                     "command": ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"],
                     "restartPolicy": "Always"},
                ],
                "containers": [{"name": "app", "image": "busybox", "command": ["/bin/true"]}],
            }},
        },
    }
    t0 = time.perf_counter()
    k.apply(job)
    k.run("wait", "--for=condition=Complete", "job/bench", "--timeout=600s")
    dt = time.perf_counter() - t0
    j = json.loads(k.run("get", "job", "bench", "-o", "json").stdout)
    print(f"c. Job of {COMPLETIONS} completions, parallelism {PARALLELISM} (init + sidecar + app, "
          f"all doing nothing): {dt:.2f} s apply -> Complete (succeeded {j['status'].get('succeeded')}); "
          f"the containers' own work is ~0 s, so all of it is skiff's")
    k.run("delete", "job", "bench", "--cascade=background", "--wait=true", "--timeout=120s", check=False)


def main():
    if os.geteuid() != 0:
        sys.exit("workload-bench: run as root (pods run in sandboxes)")
    if os.environ.get("NO_BUILD") != "1":
        subprocess.run(["cargo", "build", "--release", "-p", "skiff"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="skiff-workload-bench-")
    data = os.path.join(tmp, "data")
    daemon = subprocess.Popen([SKIFF, "serve", "--data-dir", data, "--listen", "127.0.0.1:0"],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "daemon.log"), "w"))
    k = None
    try:
        endpoint = os.path.join(data, "serve", "endpoint.json")
        for _ in range(300):
            if os.path.exists(endpoint):
                break
            time.sleep(0.05)
        kc_path = os.path.join(tmp, "kubeconfig")
        with open(kc_path, "w") as f:
            f.write(subprocess.run([SKIFF, "kubeconfig", "--data-dir", data], capture_output=True,
                                   text=True, check=True).stdout)
        k = Kubectl(tmp, kc_path)
        for _ in range(100):
            if k.run("get", "--raw", "/readyz", check=False).returncode == 0:
                break
            time.sleep(0.1)
        bench_exec(k)
        bench_port_forward(k)
        bench_job(k)
    finally:
        if k is not None:
            k.run("delete", "jobs", "--all", "--cascade=background", "--wait=false", check=False)
            k.run("delete", "pods", "--all", "--grace-period=1", "--wait=true", "--timeout=120s", check=False)
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
