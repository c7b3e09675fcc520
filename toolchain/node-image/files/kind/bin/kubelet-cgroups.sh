#!/bin/bash
# Runs before the kubelet: makes its cgroup root exist. cgroup v1: the entrypoint made /kubelet
# and /kubelet.slice in every hierarchy; the named systemd hierarchy may still lack /kubelet.
# cgroup v2: enable every controller for /kubelet and /kubelet.slice (possible only now that
# systemd has moved every process out of the root cgroup).
set -euo pipefail
root=/sys/fs/cgroup
if [[ ! -f $root/cgroup.controllers ]]; then
  mkdir -p "$root/systemd/kubelet"
  exit 0
fi
enable_all() {
  local controllers
  controllers=$(<"$root/$1/cgroup.controllers")
  [[ -n $controllers ]] || return 0
  sed -e 's/^/+/' -e 's/ / +/g' <<<"$controllers" >"$root/$1/cgroup.subtree_control"
}
enable_all /
for group in kubelet kubelet.slice; do
  mkdir -p "$root/$group"
  enable_all "$group"
done
