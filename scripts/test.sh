#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: system packages the tests need, formatting,
# lints, then every test (unit, property, integration on real processes as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# docker-registry, skopeo, umoci, apache2-utils (htpasswd), zstd, curl: the registry fixture
# (scripts/test-registry.sh); runc, crun: the OCI runtimes; chromium: the timeline picture's
# browser test.
packages=(build-essential pkg-config ca-certificates procps busybox-static python3 iproute2 util-linux
    docker-registry skopeo umoci apache2-utils zstd curl runc crun chromium)
if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# A one-shot build gains nothing from incremental state, which would double the target dir.
export CARGO_INCREMENTAL=0

cargo fmt --all --check
cargo clippy --workspace --all-targets -q -- -D warnings

# One local registry for every image test (loopback only; stopped by PID at the end).
registry_dir=$(mktemp -d /tmp/skiff-test-registry.XXXXXX)
trap './scripts/test-registry.sh stop "$registry_dir" >/dev/null 2>&1 || true; rm -rf "$registry_dir"' EXIT
./scripts/test-registry.sh start "$registry_dir" >"$registry_dir/start.log" 2>&1 \
    || { cat "$registry_dir/start.log" >&2; exit 1; }
eval "$(./scripts/test-registry.sh env "$registry_dir")"
export SKIFF_TEST_REGISTRY SKIFF_TEST_AUTH_REGISTRY

cargo test --workspace --no-fail-fast
