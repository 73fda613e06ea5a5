#!/usr/bin/env bash
# Makes the image the bundled examples use, with no network: `busybox:1.35` (Debian 12's
# busybox-static is 1.35.0; the same tag exists on Docker Hub, so the examples run unchanged on
# a cluster, which pulls the real one). Packs the host's /bin/busybox with its applet links and
# a minimal /etc/passwd and /etc/group into a one-layer image in skiff's store.
#
#   scripts/busybox-image.sh SKIFF [--data-dir DIR] [--name REF]
#
# Idempotent: an image already present under the name is kept.
set -euo pipefail
skiff=${1:?usage: busybox-image.sh SKIFF [--data-dir DIR] [--name REF]}
shift
data_args=()
name=docker.io/library/busybox:1.35
while [ $# -gt 0 ]; do
    case "$1" in
        --data-dir) data_args=(--data-dir "$2"); shift 2 ;;
        --name) name=$2; shift 2 ;;
        *) echo "busybox-image: unknown argument $1" >&2; exit 2 ;;
    esac
done
if "$skiff" image inspect "${data_args[@]}" "$name" >/dev/null 2>&1; then
    exit 0
fi
[ -x /bin/busybox ] || { echo "busybox-image: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,root,proc,sys,dev,var/tmp}
chmod 1777 "$root/tmp" "$root/var/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
    # `--list` names busybox itself: linking it would replace the binary.
    [ "$applet" = busybox ] && continue
    ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
"$skiff" image import "${data_args[@]}" --from-dir "$root" --name "$name" --cmd sh \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin >/dev/null
echo "busybox-image: $name made from $(/bin/busybox | head -1 | awk '{print $1, $2}') (host's busybox-static)"
