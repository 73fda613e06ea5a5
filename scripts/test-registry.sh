#!/usr/bin/env bash
# Local registry fixture for skiff's image tests and the pull benchmark.
#
#   scripts/test-registry.sh start [DIR]   build the images, start the registries, push
#   scripts/test-registry.sh stop  [DIR]   stop the registries this script started (by PID)
#   scripts/test-registry.sh env   [DIR]   print the variables the tests read
#
# DIR defaults to $SKIFF_REGISTRY_DIR or /tmp/skiff-test-registry. Needs (Debian):
# docker-registry skopeo umoci busybox-static apache2-utils (htpasswd) curl python3.
#
# Two docker-registry instances, on 127.0.0.1 only, each with its own config (Debian's
# shipped config listens on every interface and enables a broken htpasswd auth):
#   - anonymous, port $SKIFF_REGISTRY_PORT (default: a free port, kept in DIR/port):
#       busybox:latest  OCI manifest, gzip layer (umoci-built: busybox-static + applets)
#       busybox:v2s2    the same as a Docker schema2 manifest
#       busybox:zstd    OCI manifest with a zstd layer
#       busybox:multi   an OCI index: linux/amd64 (the image above) + linux/arm64 (a stub)
#       armonly:latest  an OCI index with only linux/arm64 (must be refused here)
#       big:latest      about 50 MB of layers (random + text) for the pull benchmark
#   - htpasswd basic auth (user skiff, password skiff-pw), port+1: private/busybox:latest
# PIDs are written to DIR/registry.pid and DIR/registry-auth.pid; `stop` kills only those.
set -euo pipefail

cmd=${1:-start}
DIR=${2:-${SKIFF_REGISTRY_DIR:-/tmp/skiff-test-registry}}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

need() {
    local missing=()
    for t in docker-registry skopeo umoci htpasswd curl python3; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    [ -x /bin/busybox ] || missing+=(busybox-static)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "test-registry: missing ${missing[*]} (apt-get install docker-registry skopeo umoci busybox-static apache2-utils curl python3)" >&2
        exit 3
    fi
}

free_port() {
    python3 - <<'EOF'
import socket
# Two consecutive free ports (anonymous registry, auth registry).
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    try:
        t = socket.socket(); t.bind(("127.0.0.1", p + 1)); t.close()
        print(p); break
    except OSError:
        continue
EOF
}

stop_pid() {
    local f=$1
    [ -f "$f" ] || return 0
    local pid
    pid=$(cat "$f")
    # Only a docker-registry we started: check the command line before killing.
    if [ -n "$pid" ] && grep -q docker-registry "/proc/$pid/cmdline" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$f"
}

registry_config() { # name port auth?
    local name=$1 port=$2 auth=${3:-}
    mkdir -p "$DIR/$name-data"
    {
        echo "version: 0.1"
        echo "log: {level: warn}"
        echo "storage:"
        echo "  cache: {blobdescriptor: inmemory}"
        echo "  filesystem: {rootdirectory: $DIR/$name-data}"
        echo "  delete: {enabled: true}"
        echo "http:"
        echo "  addr: 127.0.0.1:$port"
        if [ -n "$auth" ]; then
            echo "auth:"
            echo "  htpasswd: {realm: skiff-test, path: $DIR/htpasswd}"
        fi
    } >"$DIR/$name.yml"
}

start_registry() { # name port
    local name=$1 port=$2
    if [ -f "$DIR/$name.pid" ] && kill -0 "$(cat "$DIR/$name.pid")" 2>/dev/null; then
        return 0
    fi
    nohup docker-registry serve "$DIR/$name.yml" >"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
    for _ in $(seq 1 100); do
        # 200 (anonymous) or 401 (auth): it answers.
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
        [ "$code" = 200 ] || [ "$code" = 401 ] && return 0
        sleep 0.1
    done
    echo "test-registry: $name did not start; see $DIR/$name.log" >&2
    exit 1
}

build_busybox() { # layout tag
    local layout=$1 tag=$2 bundle=$DIR/bundle
    rm -rf "$bundle"
    [ -d "$layout" ] || umoci init --layout "$layout"
    umoci new --image "$layout:$tag"
    umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
    local r=$bundle/rootfs
    mkdir -p "$r"/{bin,etc,tmp,proc,sys,dev,root}
    chmod 1777 "$r/tmp"
    cp /bin/busybox "$r/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] && continue
        ln -sf busybox "$r/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$r/etc/group"
    umoci repack --image "$layout:$tag" "$bundle"
    umoci config --image "$layout:$tag" --config.cmd /bin/sh \
        --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.workingdir /
    rm -rf "$bundle"
}

build_big() { # layout tag: two layers, 30 MB random (incompressible) + ~45 MB of text (~22 MB gzip)
    local layout=$1 tag=$2 bundle=$DIR/bundle
    rm -rf "$bundle"
    umoci new --image "$layout:$tag"
    umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
    mkdir -p "$bundle/rootfs/data"
    head -c 30000000 /dev/urandom >"$bundle/rootfs/data/random.bin"
    umoci repack --image "$layout:$tag" "$bundle"
    rm -rf "$bundle"
    umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
    python3 - "$bundle/rootfs/data/text" <<'EOF'
import random, sys, os
os.makedirs(sys.argv[1], exist_ok=True)
rnd = random.Random(7)
words = [''.join(rnd.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rnd.randint(2, 12))) for _ in range(5000)]
for i in range(40):
    with open(f"{sys.argv[1]}/f{i:03}.txt", "w") as f:
        f.write(' '.join(rnd.choice(words) for _ in range(150000)))
EOF
    umoci repack --image "$layout:$tag" "$bundle"
    rm -rf "$bundle"
}

# An index over the amd64 image plus an arm64 stub (its own config; same layer), and an
# index with only arm64. Written as OCI layouts skopeo can copy with --all.
make_indexes() { # src-layout
    python3 - "$1" "$DIR" <<'EOF'
import hashlib, json, os, shutil, sys
src, out = sys.argv[1], sys.argv[2]
def blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs(f"{layout}/blobs/sha256", exist_ok=True)
    with open(f"{layout}/blobs/sha256/{d}", "wb") as f: f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
idx = json.load(open(f"{src}/index.json"))
latest = [m for m in idx["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "latest"][0]
man = json.load(open(f"{src}/blobs/sha256/{latest['digest'][7:]}"))
cfg = json.load(open(f"{src}/blobs/sha256/{man['config']['digest'][7:]}"))
# A zstd variant by hand (skopeo 1.9 does not recompress for a registry destination):
# the layer gunzipped and re-compressed with the zstd CLI, the diffID unchanged.
import gzip, subprocess
layout = f"{out}/zstd-layout"
shutil.rmtree(layout, ignore_errors=True)
os.makedirs(f"{layout}/blobs/sha256")
open(f"{layout}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
zl = []
for l in man["layers"]:
    raw = gzip.decompress(open(f"{src}/blobs/sha256/{l['digest'][7:]}", "rb").read())
    z = subprocess.run(["zstd", "-q", "-3", "-c"], input=raw, stdout=subprocess.PIPE, check=True).stdout
    zl.append(dict(blob(layout, z), mediaType="application/vnd.oci.image.layer.v1.tar+zstd"))
cd = blob(layout, json.dumps(cfg).encode())
zm = dict(man, layers=zl, config=dict(man["config"], **cd))
zmd = blob(layout, json.dumps(zm).encode())
json.dump({"schemaVersion": 2, "manifests": [dict(zmd, mediaType="application/vnd.oci.image.manifest.v1+json",
           annotations={"org.opencontainers.image.ref.name": "latest"})]}, open(f"{layout}/index.json", "w"))
for name, plats in (("multi", ["amd64", "arm64"]), ("armonly", ["arm64"])):
    layout = f"{out}/{name}-layout"
    shutil.rmtree(layout, ignore_errors=True)
    shutil.copytree(f"{src}/blobs", f"{layout}/blobs")
    open(f"{layout}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
    entries = []
    for arch in plats:
        c = dict(cfg); c["architecture"] = arch
        cd = blob(layout, json.dumps(c).encode())
        m = dict(man); m["config"] = dict(man["config"], **cd)
        md = blob(layout, json.dumps(m).encode())
        entries.append(dict(md, mediaType="application/vnd.oci.image.manifest.v1+json",
                            platform={"architecture": arch, "os": "linux"}))
    ix = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    ixd = blob(layout, json.dumps(ix).encode())
    json.dump({"schemaVersion": 2, "manifests": [dict(ixd, mediaType="application/vnd.oci.image.index.v1+json",
               annotations={"org.opencontainers.image.ref.name": "latest"})]}, open(f"{layout}/index.json", "w"))
EOF
}

push() { # src dest [skopeo args]
    local src=$1 dest=$2
    shift 2
    skopeo copy -q --dest-tls-verify=false "$@" "$src" "docker://$dest"
}

case "$cmd" in
start)
    need
    if [ -n "${SKIFF_REGISTRY_PORT:-}" ]; then
        port=$SKIFF_REGISTRY_PORT
    elif [ -f "$DIR/port" ] && [ -f "$DIR/registry.pid" ] && kill -0 "$(cat "$DIR/registry.pid")" 2>/dev/null; then
        port=$(cat "$DIR/port")
    else
        port=$(free_port)
    fi
    echo "$port" >"$DIR/port"
    aport=$((port + 1))
    htpasswd -Bbc "$DIR/htpasswd" skiff skiff-pw 2>/dev/null
    registry_config registry "$port"
    registry_config registry-auth "$aport" auth
    start_registry registry "$port"
    start_registry registry-auth "$aport"

    L=$DIR/oci
    if [ ! -f "$DIR/images.done" ]; then
        rm -rf "$L"
        build_busybox "$L" latest
        build_big "$L" big
        umoci gc --layout "$L"
        make_indexes "$L"
        touch "$DIR/images.done"
    fi
    R=127.0.0.1:$port
    push "oci:$L:latest" "$R/busybox:latest"
    push "oci:$L:latest" "$R/busybox:v2s2" --format v2s2
    push "oci:$DIR/zstd-layout:latest" "$R/busybox:zstd" --dest-oci-accept-uncompressed-layers
    push "oci:$DIR/multi-layout:latest" "$R/busybox:multi" --all
    push "oci:$DIR/armonly-layout:latest" "$R/armonly:latest" --all
    push "oci:$L:big" "$R/big:latest"
    push "oci:$L:latest" "127.0.0.1:$aport/private/busybox:latest" --dest-creds skiff:skiff-pw
    echo "test-registry: anonymous 127.0.0.1:$port, basic auth 127.0.0.1:$aport (skiff/skiff-pw); stop: $0 stop $DIR"
    ;;
stop)
    stop_pid "$DIR/registry.pid"
    stop_pid "$DIR/registry-auth.pid"
    ;;
env)
    port=$(cat "$DIR/port")
    echo "SKIFF_TEST_REGISTRY=127.0.0.1:$port"
    echo "SKIFF_TEST_AUTH_REGISTRY=127.0.0.1:$((port + 1))"
    ;;
*)
    echo "usage: $0 start|stop|env [DIR]" >&2
    exit 2
    ;;
esac
