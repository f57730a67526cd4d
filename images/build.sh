#!/usr/bin/env bash
# Build the workload images under images/ with the local Docker engine, offline.
# usage: images/build.sh [TAG]   (default tag: seeker-demo:latest)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tag="${1:-seeker-demo:latest}"
busybox="${BUSYBOX:-/bin/busybox}"
if ! [ -x "$busybox" ]; then
    echo "images/build.sh: no busybox at $busybox; install Debian's busybox-static" >&2
    exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
    echo "images/build.sh: $busybox is dynamically linked; install busybox-static (or set BUSYBOX)" >&2
    exit 1
fi
cp "$busybox" "$here/busybox/busybox"
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$here/busybox" >/dev/null
echo "built $tag"
