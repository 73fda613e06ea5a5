#!/usr/bin/env bash
# Pull benchmark (issue 10 "Speed"): `skiff image pull` of the ~50 MB fixture image against
# `skopeo copy docker://… dir:` from the same local registry. Both fetch, verify (sha256)
# and store the compressed blobs; skopeo never decompresses, so skiff's unpack (done after
# the fetch) is timed separately and reported in MB/s of layer data.
#
#   bench/pull.sh [RUNS]        (default 5; builds skiff --release, starts the fixture)
#
# skiff's fetch time = its wall time minus the unpack time it reports; each run starts from
# an empty store / directory. Prints the median of each and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target}
nice -n 10 cargo build --release -q -p skiff
SKIFF=$CARGO_TARGET_DIR/release/skiff

FIX=$(mktemp -d)
cleanup() { scripts/test-registry.sh stop "$FIX" >/dev/null 2>&1 || true; rm -rf "$FIX"; }
trap cleanup EXIT
scripts/test-registry.sh start "$FIX" >/dev/null
REG=127.0.0.1:$(cat "$FIX/port")
IMAGE=$REG/big:latest

python3 - "$SKIFF" "$IMAGE" "$RUNS" <<'EOF'
import re, shutil, statistics, subprocess, sys, tempfile, time
skiff, image, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])

def timed(argv):
    t = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True)
    dt = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"{argv[0]} failed: {p.stderr}")
    return dt, p.stderr

sk_fetch, sk_unpack, sko, size = [], [], [], 0
for i in range(runs + 1):  # the first round is a warm-up
    d = tempfile.mkdtemp()
    try:
        wall, err = timed([skiff, "image", "pull", "--data-dir", d, image])
        m = re.search(r"fetched ([\d.]+) MB .*unpacked in ([\d.]+)s", err)
        if not m:
            sys.exit(f"unexpected skiff output: {err}")
        size, unpack = float(m.group(1)), float(m.group(2))
    finally:
        shutil.rmtree(d)
    d = tempfile.mkdtemp()
    try:
        swall, _ = timed(["skopeo", "copy", "-q", "--src-tls-verify=false", "docker://" + image, "dir:" + d + "/img"])
    finally:
        shutil.rmtree(d)
    if i == 0:
        continue
    sk_fetch.append(wall - unpack); sk_unpack.append(unpack); sko.append(swall)

f, u, s = (statistics.median(x) for x in (sk_fetch, sk_unpack, sko))
print(f"image {image}: {size:.1f} MB compressed, {runs} runs (medians)")
print(f"skopeo copy dir:          {s:.3f} s  ({size / s:.0f} MB/s)")
print(f"skiff fetch+verify+store: {f:.3f} s  ({size / f:.0f} MB/s)  = {f / s:.2f}x skopeo")
print(f"skiff unpack:             {u:.3f} s  ({size / u:.0f} MB/s of layer data)")
EOF
