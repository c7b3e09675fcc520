#!/usr/bin/env bash
# Builds the kind-compatible node image kubeadm-cluster/node:K8S_VERSION on this machine, with no
# registry: Debian bookworm with systemd as init (behind an entrypoint of our own), containerd
# and runc, the CNI plugins in /opt/cni/bin, kubeadm/kubelet/kubectl with kubelet's unit and
# kubeadm drop-in, /kind/version, /kind/manifests/default-cni.yaml (flannel) and
# default-storage.yaml (local-path-provisioner's StorageClass `standard`), and every image from
# toolchain/images.sh preloaded in containerd's k8s.io namespace.
#
# Usage: toolchain/node-image.sh K8S_VERSION   (for example v1.37.2)
# Needs the Docker engine set up by toolchain/docker-runtime.sh (the preload step runs a
# privileged container) and the binaries toolchain/images.sh lists. Nothing is rebuilt when no
# input changed. Stage 1 (packages and files) is kept as kubeadm-cluster/node-build:K8S_VERSION.
set -euo pipefail
# shellcheck source=toolchain/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=toolchain/image-lib.sh
source "$(dirname "$0")/image-lib.sh"

version=${1:?usage: node-image.sh K8S_VERSION}
[[ $version =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "kubernetes version '$version': expected v1.MINOR.PATCH, like v1.37.2"
here=$(cd "$(dirname "$0")" && pwd)
node_files=$here/node-image
image=kubeadm-cluster/node:$version
stage1=kubeadm-cluster/node-build:$version
build=$KC_CACHE/images/build
k8s=$KC_CACHE/kubernetes-$version

require_engine
"$here/images.sh" "$version"
mapfile -t preload <"$KC_CACHE/images/preload-$version.txt"
sandbox=$(grep -m1 '/pause:' <<<"$(printf '%s\n' "${preload[@]}")") || die "no pause image in the preload list"
flannel=$(grep -m1 '/flannel:' <<<"$(printf '%s\n' "${preload[@]}")") || die "no flannel image in the preload list"
provisioner=$(grep -m1 '/local-path-provisioner:' <<<"$(printf '%s\n' "${preload[@]}")") ||
  die "no local-path-provisioner image in the preload list"

# Stage 1: packages, files and binaries.
key1=$(inputs_key "$here/lib.sh" "$here/image-lib.sh" "$0" "$node_files" "$k8s/bin/kubeadm" \
  "$k8s/bin/kubelet" "$k8s/bin/kubectl" "$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")" \
  "$version" "$sandbox" "$flannel" "$provisioner")
if ! image_current "$stage1" "$key1"; then
  context=$build/node-$version
  rm -rf "$context"
  mkdir -p "$context/bin"
  cp "$node_files/Dockerfile" "$context/"
  cp -r "$node_files/files" "$context/"
  sed "s|@SANDBOX_IMAGE@|$sandbox|" "$node_files/files/etc/containerd/config.toml.in" \
    >"$context/files/etc/containerd/config.toml"
  sed "s|@FLANNEL_IMAGE@|$flannel|" "$node_files/files/kind/manifests/default-cni.yaml.in" \
    >"$context/files/kind/manifests/default-cni.yaml"
  sed -e "s|@PROVISIONER_IMAGE@|$provisioner|" -e "s|@HELPER_IMAGE@|$BASE_IMAGE|g" \
    "$node_files/files/kind/manifests/default-storage.yaml.in" >"$context/files/kind/manifests/default-storage.yaml"
  echo "$version" >"$context/files/kind/version"
  for bin in kubeadm kubelet kubectl; do
    cp -l "$k8s/bin/$bin" "$context/bin/" 2>/dev/null || cp "$k8s/bin/$bin" "$context/bin/"
  done
  docker_build node-image "$stage1" "$context" --build-arg "BASE=$BASE_IMAGE"
  rm -rf "$context"
  image_done "$stage1" "$key1"
fi

# Stage 2: the images, preloaded into containerd, committed as the node image.
ids=()
for name in "${preload[@]}"; do
  ids+=("$(docker image inspect -f '{{.Id}}' "$name")") || die "image $name is missing (run toolchain/images.sh $version)"
done
key2=$(inputs_key "$key1" "$(docker image inspect -f '{{.Id}}' "$stage1")" "$node_files/preload.sh" \
  "${preload[@]}" "${ids[@]}")
if image_current "$image" "$key2"; then
  echo "$image is up to date"
  exit 0
fi
tars=$KC_CACHE/images/preload-tars
mkdir -p "$tars"
rm -f "$tars"/*.tar "$tars"/*.id
for name in "${preload[@]}"; do
  run node-image docker save -o "$tars/${name//[\/:]/_}.tar" "$name"
done
container=kubeadm-cluster-node-preload-$$
trap 'docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
run node-image docker run --name "$container" --privileged --tmpfs /run --tmpfs /tmp \
  -v "$tars:/preload:ro" -v "$node_files/preload.sh:/usr/local/bin/preload-images:ro" \
  --entrypoint /usr/local/bin/preload-images "$stage1"
run node-image docker commit \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
  "$container" "$image"
docker rm -f "$container" >/dev/null
rm -f "$tars"/*.tar
image_done "$image" "$key2"
docker image ls "$image"
