#!/usr/bin/env bash
# Prepares a Debian 12 machine for building and running skiff: system packages, then a
# release build. Needs root for apt (run as root or with sudo) and a Rust toolchain
# (rustup, Rust >= 1.89, the oldest its dependencies build with; Debian 12's own rustc is too old).
set -euo pipefail
cd "$(dirname "$0")/.."

# runc: the OCI runtime image pods run with; busybox-static: the examples' image (made below).
packages=(build-essential pkg-config ca-certificates procps busybox-static runc)
if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
    echo "setup: not root; skipping apt-get (needs: ${packages[*]})" >&2
fi
if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install Rust with rustup (https://rustup.rs), then rerun" >&2
    exit 1
fi
cargo build --release -q -p skiff
target=${CARGO_TARGET_DIR:-$(pwd)/target}
echo "setup: built $target/release/skiff"
if [ "$(id -u)" = 0 ]; then
    # The bundled examples' image, made offline from the host's busybox-static.
    ./scripts/busybox-image.sh "$target/release/skiff"
fi
