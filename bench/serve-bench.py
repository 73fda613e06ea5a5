#!/usr/bin/env python3
"""skiff serve benchmark (issue 11, "Speed"). A script, not a timed test.

    ./bench/serve-bench.py                 # builds skiff in release first
    PODS=100 RUNS=20 ./bench/serve-bench.py

Starts `skiff serve` (release build; honours CARGO_TARGET_DIR) on a temporary data dir with
HTTPS on a free loopback port, talks to it as a client does (TLS verified with the daemon's
CA, bearer token from `skiff kubeconfig`), and prints:

a. Idle RSS of the daemon (VmRSS after start, no pods; every page it touched, shared ones too),
   and its anonymous part (RssAnon; the rest is the binary's own clean file pages).
b. apply -> all containers running: from sending the POST of a `host` pod (an init container
   `/bin/true` and an app `sleep infinity`) until a watch (opened before) delivers the status
   with the app running; p50/p90 over RUNS pods (each deleted before the next). Compare with
   `./bench/run-bench.sh`'s `skiff run` start figure for the same containers.
c. Watch latency: a label PATCH, from its response (committed) to the MODIFIED event on a
   watch of that pod; p50/p90 over RUNS patches. (Includes the client's own reading.)
d. RSS with PODS running pods (the same pod shape), and the time to get them all running.
e. `GET /api/v1/namespaces/default/pods` as a Table (kubectl get pods) with those pods: p50.

Everything is cleaned up: pods deleted through the API (gracefully: the objects stay until
the node has stopped them), the daemon stopped with SIGTERM, the data dir removed. Processes are never killed by name.
"""
import base64
import http.client
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RUNS = int(os.environ.get("RUNS", "20"))
PODS = int(os.environ.get("PODS", "100"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SKIFF = os.path.join(TARGET, "release", "skiff")
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def build():
    subprocess.run(["cargo", "build", "--release", "-p", "skiff"], cwd=ROOT, check=True)


def rss_kib(pid, field="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def rss_text(pid):
    """VmRSS, and how much of it is anonymous (the rest: the binary's own file pages)."""
    return f"{rss_kib(pid) / 1024:.1f} MiB (anonymous {rss_kib(pid, 'RssAnon:') / 1024:.1f} MiB)"


class Client:
    def __init__(self, kubeconfig):
        import re
        server = re.search(r"server: \"?https://([^\s\"]+)", kubeconfig).group(1)
        self.host, port = server.rsplit(":", 1)
        self.port = int(port)
        ca = base64.b64decode(re.search(r"certificate-authority-data: \"?([^\s\"]+)", kubeconfig).group(1))
        self.token = re.search(r"token: \"?([^\s\"]+)", kubeconfig).group(1)
        self.ctx = ssl.create_default_context(cadata=ca.decode())

    def conn(self):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)

    def request(self, method, path, body=None, ctype="application/json", accept="application/json", conn=None):
        c = conn or self.conn()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": accept}
        if body is not None:
            headers["Content-Type"] = ctype
            body = json.dumps(body).encode() if not isinstance(body, bytes) else body
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, data

    def watch(self, path):
        """Yields (type, object) lines of a watch; a generator over one connection."""
        c = self.conn()
        c.request("GET", path, headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"})
        r = c.getresponse()
        buf = b""
        while True:
            chunk = r.read1(65536)
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    ev = json.loads(line)
                    yield time.perf_counter(), ev


def pod(name):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "runtimeClassName": "host",
            "terminationGracePeriodSeconds": 1,
            "initContainers": [{"name": "init", "image": "busybox", "command": ["/bin/true"]}],
            "containers": [{"name": "app", "image": "busybox", "command": ["/bin/sleep", "infinity"]}],
        },
    }


def app_running(obj):
    for cs in (obj.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == "app" and "running" in (cs.get("state") or {}):
            return True
    return False


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    if os.geteuid() != 0:
        sys.exit("serve-bench: run as root (pods run in sandboxes)")
    if os.environ.get("NO_BUILD") != "1":
        build()
    tmp = tempfile.mkdtemp(prefix="skiff-serve-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    data = os.path.join(tmp, "data")
    daemon = subprocess.Popen([SKIFF, "serve", "--data-dir", data, "--listen", "127.0.0.1:0"],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "daemon.log"), "w"))
    client = None
    try:
        endpoint = os.path.join(data, "serve", "endpoint.json")
        for _ in range(300):
            if os.path.exists(endpoint):
                break
            time.sleep(0.05)
        kc = subprocess.run([SKIFF, "kubeconfig", "--data-dir", data], capture_output=True, text=True, check=True).stdout
        client = Client(kc)
        for _ in range(100):
            try:
                if client.request("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        time.sleep(1.0)
        print(f"a. idle RSS: {rss_text(daemon.pid)}")

        # b. apply -> running
        lat = []
        base = "/api/v1/namespaces/default/pods"
        for i in range(RUNS):
            name = f"b{i}"
            st, data_ = client.request("GET", base)
            rv = json.loads(data_)["metadata"]["resourceVersion"]
            events = client.watch(f"{base}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3D{name}")
            t0 = time.perf_counter()
            st, body = client.request("POST", base, pod(name))
            assert st == 201, body
            for t, ev in events:
                if app_running(ev["object"]):
                    lat.append((t - t0) * 1000)
                    break
            events.close()
            client.request("DELETE", f"{base}/{name}")
        print(f"b. apply -> running: p50 {statistics.median(lat):.1f} ms, p90 {pct(lat, 90):.1f} ms (n={len(lat)})")

        # c. watch latency
        client.request("POST", base, pod("w"))
        st, data_ = client.request("GET", f"{base}/w")
        rv = json.loads(data_)["metadata"]["resourceVersion"]
        got = []
        stop = threading.Event()
        arrived = {}

        def reader():
            for t, ev in client.watch(f"{base}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dw"):
                v = ((ev["object"].get("metadata") or {}).get("labels") or {}).get("n")
                if v is not None:
                    arrived[v] = t
                if stop.is_set():
                    return

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        time.sleep(0.5)
        conn = client.conn()
        for i in range(RUNS):
            st, _ = client.request("PATCH", f"{base}/w", {"metadata": {"labels": {"n": str(i)}}},
                                   ctype="application/merge-patch+json", conn=conn)
            t_ack = time.perf_counter()
            for _ in range(1000):
                if str(i) in arrived:
                    break
                time.sleep(0.0005)
            if str(i) in arrived:
                got.append(max(0.0, (arrived[str(i)] - t_ack) * 1000))
        stop.set()
        print(f"c. watch event after the committed PATCH: p50 {statistics.median(got):.2f} ms, p90 {pct(got, 90):.2f} ms (n={len(got)})")
        client.request("DELETE", f"{base}/w")

        # d. PODS running pods
        t0 = time.perf_counter()
        for i in range(PODS):
            st, body = client.request("POST", base, pod(f"d{i}"), conn=conn)
            assert st == 201, body
        while True:
            st, data_ = client.request("GET", base, conn=conn)
            items = json.loads(data_)["items"]
            if sum(1 for p in items if app_running(p)) >= PODS:
                break
            time.sleep(0.1)
        t_all = time.perf_counter() - t0
        time.sleep(2)
        print(f"d. {PODS} pods running after {t_all:.1f} s; daemon RSS {rss_text(daemon.pid)}")

        # e. Table list
        tl = []
        for _ in range(RUNS):
            t = time.perf_counter()
            st, _ = client.request("GET", f"{base}?limit=500", accept=TABLE, conn=conn)
            tl.append((time.perf_counter() - t) * 1000)
        print(f"e. GET pods as a Table with {PODS} pods: p50 {statistics.median(tl):.1f} ms (client-measured round trip)")
    finally:
        if client is not None:
            try:
                st, data_ = client.request("GET", "/api/v1/pods")
                for p in json.loads(data_)["items"]:
                    m = p["metadata"]
                    # Graceful (the pods' 1 s): the object stays until the node has stopped
                    # the pod, so an empty list means nothing runs any more.
                    client.request("DELETE", f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}")
                for _ in range(600):
                    st, data_ = client.request("GET", "/api/v1/pods")
                    if not json.loads(data_)["items"]:
                        break
                    time.sleep(0.1)
                time.sleep(1)
            except Exception as e:  # cleanup goes on
                print(f"cleanup: {e}", file=sys.stderr)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
