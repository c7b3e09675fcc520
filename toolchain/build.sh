#!/usr/bin/env bash
# Builds every tool the real end-to-end run needs, from Go modules and Debian packages, cached
# by version in $KC_CACHE (default /var/cache/kubeadm-cluster): a machine that built them once
# rebuilds nothing. Then links them into BIN_DIR (default .e2e/bin in this checkout).
#
# Usage: toolchain/build.sh [BIN_DIR]      (`make tools`)
# Builds: the Pulumi CLI and Python language host (at requirements.txt's `pulumi==`), the
# command, docker and kubernetes provider plugins (at their requirements.txt pins), Kubernetes
# (versions.sh), etcd, CoreDNS and pause (the versions this kubeadm asks for), flanneld, the
# kind CLI, local-path-provisioner, crictl, the CNI plugins and the flannel CNI plugin, the
# component and app images, the node image kubeadm-cluster/node:VERSION, and a signed apt repository of Kubernetes
# packages laid out like the community one (kubernetes-apt-repo.sh). For upgrade tests, also the
# previous minor (PREVIOUS_KUBERNETES_VERSION): Kubernetes, the etcd and CoreDNS its kubeadm
# names, its crictl, its component images and its apt repository (no node image), and one root
# serving both minors' repositories, $KC_CACHE/apt-repos-PREVIOUS+CURRENT (kubernetes-apt-root.sh).
# A failed piece stops the build with one line naming it and the command that failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=toolchain/lib.sh
source "$here/lib.sh"
# shellcheck source=toolchain/versions.sh
source "$here/versions.sh"
root=$(dirname "$here")
bin=${1:-$root/.e2e/bin}

# pin NAME: the version requirements.txt pins NAME to.
pin() {
  local version
  version=$(sed -n "s/^$1==\([0-9.]*\)\$/\1/p" "$root/requirements.txt")
  [[ -n $version ]] || die "requirements.txt pins no version of $1"
  printf '%s' "$version"
}

# step LABEL CMD...: one line per piece, with its time (cached pieces take well under a second).
step() {
  local label=$1 start=$SECONDS
  shift
  "$@"
  printf '  %-28s %4ss\n' "$label" "$((SECONDS - start))" >&2
}

pulumi_version=$(pin pulumi)
command_version=$(pin pulumi-command)
docker_version=$(pin pulumi-docker)
kubernetes_provider_version=$(pin pulumi-kubernetes)

echo "toolchain: building into $KC_CACHE (cached pieces are skipped)" >&2
step "pulumi $pulumi_version" "$here/pulumi.sh" "$pulumi_version"
step "provider command $command_version" "$here/provider-standin.sh" command "$command_version"
step "provider docker $docker_version" "$here/provider-standin.sh" docker "$docker_version"
step "provider kubernetes $kubernetes_provider_version" "$here/provider-kubernetes.sh" "$kubernetes_provider_version"
step "kubernetes $KUBERNETES_VERSION" "$here/kubernetes.sh" "$KUBERNETES_VERSION"

# etcd, CoreDNS and pause at the versions this kubeadm names in its image list.
kubeadm_image_versions "$KC_CACHE/kubernetes-$KUBERNETES_VERSION/bin/kubeadm" "$KUBERNETES_VERSION" ||
  die "building images failed: 'kubeadm config images list --kubernetes-version $KUBERNETES_VERSION' names no etcd, CoreDNS or pause image"
step "etcd $ETCD_VERSION" "$here/node-binaries.sh" etcd "$ETCD_VERSION"
step "coredns $COREDNS_VERSION" "$here/node-binaries.sh" coredns "$COREDNS_VERSION"
step "flannel $FLANNEL_VERSION" "$here/node-binaries.sh" flannel "$FLANNEL_VERSION"
step "kind $KIND_VERSION" "$here/node-binaries.sh" kind "$KIND_VERSION"
step "local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION" "$here/node-binaries.sh" \
  local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION"
step "pause" "$here/node-binaries.sh" pause -
step "cri-tools $CRI_TOOLS_VERSION" "$here/node-binaries.sh" cri-tools "$CRI_TOOLS_VERSION"
step "cni-plugins $CNI_PLUGINS_VERSION" "$here/node-binaries.sh" cni-plugins "$CNI_PLUGINS_VERSION"
step "flannel-cni $FLANNEL_CNI_SOURCE_VERSION" "$here/node-binaries.sh" flannel-cni "$FLANNEL_CNI_SOURCE_VERSION"
step "apt repo $KUBERNETES_VERSION" "$here/kubernetes-apt-repo.sh" "$KUBERNETES_VERSION" \
  "$CRI_TOOLS_VERSION" "$CNI_PLUGINS_VERSION"

# The previous minor, which an upgrade test starts from. Its etcd and CoreDNS are the ones its
# own kubeadm names (the locals keep KUBERNETES_VERSION's ETCD_VERSION & co. as they were);
# pause is the build above. Its images are made after the Docker runtime, below.
previous_minor() {
  local ETCD_TAG ETCD_VERSION COREDNS_VERSION PAUSE_TAG
  step "kubernetes $PREVIOUS_KUBERNETES_VERSION" "$here/kubernetes.sh" "$PREVIOUS_KUBERNETES_VERSION"
  kubeadm_image_versions "$KC_CACHE/kubernetes-$PREVIOUS_KUBERNETES_VERSION/bin/kubeadm" "$PREVIOUS_KUBERNETES_VERSION" ||
    die "building images failed: 'kubeadm config images list --kubernetes-version $PREVIOUS_KUBERNETES_VERSION' names no etcd, CoreDNS or pause image"
  step "etcd $ETCD_VERSION" "$here/node-binaries.sh" etcd "$ETCD_VERSION"
  step "coredns $COREDNS_VERSION" "$here/node-binaries.sh" coredns "$COREDNS_VERSION"
  step "cri-tools $PREVIOUS_CRI_TOOLS_VERSION" "$here/node-binaries.sh" cri-tools "$PREVIOUS_CRI_TOOLS_VERSION"
  step "apt repo $PREVIOUS_KUBERNETES_VERSION" "$here/kubernetes-apt-repo.sh" "$PREVIOUS_KUBERNETES_VERSION" \
    "$PREVIOUS_CRI_TOOLS_VERSION" "$CNI_PLUGINS_VERSION"
}
previous_minor
# Both minors' repositories under one root, for the stand-in's pkgs.k8s.io.
step "apt repos, both minors" "$here/kubernetes-apt-root.sh" "$PREVIOUS_KUBERNETES_VERSION" "$KUBERNETES_VERSION"
# The e2e's internet stand-in for the machines target (tests/e2e/internet.py).
step "registry" "$here/registry.sh"
step "internet stand-in" "$here/internet-standin.sh"
step "test CA" "$here/test-ca.sh"
step "docker runtime" "$here/docker-runtime.sh"
step "node image $KUBERNETES_VERSION" "$here/node-image.sh" "$KUBERNETES_VERSION"
step "images $PREVIOUS_KUBERNETES_VERSION" "$here/images.sh" "$PREVIOUS_KUBERNETES_VERSION"

mkdir -p "$bin"
for dir in "pulumi-$pulumi_version" "provider-command-$command_version" \
  "provider-docker-$docker_version" "provider-kubernetes-$kubernetes_provider_version" \
  "kubernetes-$KUBERNETES_VERSION" "kind-$KIND_VERSION"; do
  for tool in "$KC_CACHE/$dir/bin/"*; do
    ln -sfn "$tool" "$bin/$(basename "$tool")"
  done
done
echo "toolchain: tools linked in $bin" >&2
