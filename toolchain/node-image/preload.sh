#!/bin/bash
# Runs inside a container of the node image while it is built (toolchain/node-image.sh): starts
# containerd on its own, imports every image tarball in /preload into the k8s.io namespace
# (unpacked on first use, as kind's images do), lists them, and stops containerd again.
set -euo pipefail
containerd >/tmp/containerd.log 2>&1 &
pid=$!
for _ in $(seq 60); do
  ctr version >/dev/null 2>&1 && break
  sleep 1
done
ctr version >/dev/null || { cat /tmp/containerd.log; exit 1; }
for tarball in /preload/*.tar; do
  ctr --namespace=k8s.io images import --all-platforms --no-unpack --digests "$tarball"
done
# ctr also names each archive's index import-DATE@DIGEST: keep only the real tags.
ctr --namespace=k8s.io images ls -q | { grep '^import-' || true; } |
  xargs -r ctr --namespace=k8s.io images rm >/dev/null
ctr --namespace=k8s.io images ls -q | grep -v '^sha256:'
kill "$pid"
wait "$pid" || true
rm -f /tmp/containerd.log
