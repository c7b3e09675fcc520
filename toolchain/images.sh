#!/usr/bin/env bash
# Builds, from binaries built on this machine, every container image a kubeadm cluster on the
# local node image needs, tagged as kubeadm expects them, so that nothing is ever pulled:
#   registry.k8s.io/kube-{apiserver,controller-manager,scheduler,proxy}:K8S_VERSION,
#   registry.k8s.io/etcd, registry.k8s.io/coredns/coredns, registry.k8s.io/pause (tags from
#   `kubeadm config images list`), kubeadm-cluster/flannel:FLANNEL_VERSION (the node image's
#   pod network), kubeadm-cluster/nginx:1.0 and :1.1 (an unprivileged nginx on port 8080,
#   two tags that differ, for roll-out tests), and kubeadm-cluster/local-path-provisioner:
#   LOCAL_PATH_PROVISIONER_VERSION (the node image's default storage; its helper pods run the
#   Debian base image, preloaded too).
# Also, under the names flannel FLANNEL_VERSION's own manifest (kube-flannel.yml) uses, for
# machines that apply that manifest unchanged: ghcr.io/flannel-io/flannel:FLANNEL_VERSION (the
# same image as kubeadm-cluster/flannel) and ghcr.io/flannel-io/flannel-cni-plugin:
# FLANNEL_CNI_PLUGIN_TAG (/flannel, the flannel CNI plugin, and cp). The node image does not
# preload these two. And the local target's load balancer, HAProxy from Debian's package, under
# the name the program uses by default (LOAD_BALANCER_IMAGE); it runs in the host's engine.
#
# Usage: toolchain/images.sh K8S_VERSION   (for example v1.37.2)
# Inputs (built by the other toolchain scripts; KC_WAIT_SECONDS=N waits for their .done):
#   $KC_CACHE/kubernetes-K8S_VERSION/bin/, $KC_CACHE/etcd-ETCD_VERSION/bin/etcd,
#   $KC_CACHE/coredns-COREDNS_VERSION/bin/coredns, $KC_CACHE/flannel-FLANNEL_VERSION/bin/flanneld,
#   $KC_CACHE/flannel-cni-FLANNEL_CNI_SOURCE_VERSION/bin/flannel, $KC_CACHE/pause/bin/pause,
#   $KC_CACHE/local-path-provisioner-LOCAL_PATH_PROVISIONER_VERSION/bin/local-path-provisioner.
# Output: the images in the local engine, and $KC_CACHE/images/preload-K8S_VERSION.txt listing
# those the node image preloads. Images whose inputs did not change are not rebuilt.
set -euo pipefail
# shellcheck source=toolchain/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=toolchain/image-lib.sh
source "$(dirname "$0")/image-lib.sh"

version=${1:?usage: images.sh K8S_VERSION}
[[ $version =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "kubernetes version '$version': expected v1.MINOR.PATCH, like v1.37.2"
# shellcheck source=toolchain/versions.sh
source "$(dirname "$0")/versions.sh"
wait_done "$KC_CACHE/kubernetes-$version" "kubernetes $version"
kubeadm_image_versions "$KC_CACHE/kubernetes-$version/bin/kubeadm" "$version" ||
  die "kubeadm $version names no etcd, CoreDNS or pause image"
FLANNEL_IMAGE=kubeadm-cluster/flannel:$FLANNEL_VERSION
UPSTREAM_FLANNEL_IMAGE=ghcr.io/flannel-io/flannel:$FLANNEL_VERSION
FLANNEL_CNI_PLUGIN_IMAGE=ghcr.io/flannel-io/flannel-cni-plugin:$FLANNEL_CNI_PLUGIN_TAG
LOCAL_PATH_PROVISIONER_IMAGE=kubeadm-cluster/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION
NGINX_TAGS=(1.0 1.1)
# components/config.py DEFAULT_LOAD_BALANCER_IMAGE (a test checks that they agree).
LOAD_BALANCER_IMAGE=public.ecr.aws/docker/library/haproxy:3.2

here=$(cd "$(dirname "$0")" && pwd)
files=$here/images
build=$KC_CACHE/images/build
k8s=$KC_CACHE/kubernetes-$version
etcd=$KC_CACHE/etcd-$ETCD_VERSION
coredns=$KC_CACHE/coredns-$COREDNS_VERSION
flannel=$KC_CACHE/flannel-$FLANNEL_VERSION
flannel_cni=$KC_CACHE/flannel-cni-$FLANNEL_CNI_SOURCE_VERSION
pause=$KC_CACHE/pause
local_path=$KC_CACHE/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION
# What every image's key includes: a change to these scripts rebuilds.
scripts=("$here/lib.sh" "$here/image-lib.sh" "$0")

# static_image IMAGE BINARY PATH_IN_IMAGE USER: an image holding one static binary (plus
# passwd, group, CA certificates and /tmp), made with tar | docker import.
static_image() {
  local image=$1 binary=$2 path=$3 user=$4 key rootfs
  key=$(inputs_key "${scripts[@]}" "$binary" "$image" "$path" "$user")
  image_current "$image" "$key" && return 0
  if ldd "$binary" >/dev/null 2>&1; then
    die "building $image failed: $binary is dynamically linked (build it with CGO_ENABLED=0)"
  fi
  rootfs=$build/${image//[\/:]/_}
  rm -rf "$rootfs"
  mkdir -p "$rootfs"/{etc/ssl/certs,tmp,"$(dirname "${path#/}")"}
  chmod 1777 "$rootfs/tmp"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$rootfs/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$rootfs/etc/group"
  echo 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
  fi
  cp "$binary" "$rootfs$path"
  chmod 0755 "$rootfs$path"
  run images bash -o pipefail -c "tar --numeric-owner --owner=0 --group=0 -C '$rootfs' -c . |
    docker import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
      --change 'ENTRYPOINT [\"$path\"]' --change 'USER $user' - '$image'"
  rm -rf "$rootfs"
  image_done "$image" "$key"
}

# debian_image IMAGE BASE DIR [FILE...]: docker build of DIR's Dockerfile FROM the local image
# BASE (build argument BASE), with the FILEs copied into the build context.
debian_image() {
  local image=$1 base=$2 dir=$3 key context base_id
  shift 3
  base_id=$(docker image inspect -f '{{.Id}}' "$base") || die "building $image failed: no image $base"
  key=$(inputs_key "${scripts[@]}" "$dir" "$@" "$image" "$base_id")
  image_current "$image" "$key" && return 0
  context=$build/${image//[\/:]/_}
  rm -rf "$context"
  mkdir -p "$context"
  cp -r "$dir"/. "$context"/
  if [[ $# -gt 0 ]]; then cp "$@" "$context"/; fi
  docker_build images "$image" "$context" --build-arg "BASE=$base"
  rm -rf "$context"
  image_done "$image" "$key"
}

# alias_image IMAGE ALIAS CHECK: tag IMAGE also as ALIAS (the name an upstream manifest uses),
# once the shell command CHECK, run in IMAGE, showed that what the manifest runs is there.
alias_image() {
  local image=$1 alias=$2 check=$3 id key
  id=$(docker image inspect -f '{{.Id}}' "$image") || die "tagging $alias failed: no image $image"
  key=$(inputs_key "${scripts[@]}" "$image" "$id" "$check")
  image_current "$alias" "$key" && return 0
  run images docker run --rm --network none --entrypoint /bin/sh "$image" -c "$check"
  run images docker tag "$image" "$alias"
  image_done "$alias" "$key"
}

require_engine
mkdir -p "$build"

# Debian-based images first: they need no binary from the other builds.
debian_base
nettools=kubeadm-cluster/nettools:$DEBIAN_SUITE
debian_image "$nettools" "$BASE_IMAGE" "$files/nettools"
debian_image "kubeadm-cluster/haproxy:$DEBIAN_SUITE" "$BASE_IMAGE" "$files/haproxy"
alias_image "kubeadm-cluster/haproxy:$DEBIAN_SUITE" "$LOAD_BALANCER_IMAGE" 'haproxy -v'
nginx=()
for tag in "${NGINX_TAGS[@]}"; do
  page=$build/index-$tag/index.html
  mkdir -p "$(dirname "$page")"
  sed "s/@VERSION@/$tag/" "$files/nginx/index.html.in" >"$page"
  debian_image "kubeadm-cluster/nginx:$tag" "$BASE_IMAGE" "$files/nginx" "$page"
  nginx+=("kubeadm-cluster/nginx:$tag")
done

# The tags this kubeadm expects (its binaries were waited for above).
mapfile -t wanted < <("$k8s/bin/kubeadm" config images list --kubernetes-version "$version" 2>/dev/null)
[[ ${#wanted[@]} -gt 0 ]] || die "'kubeadm config images list --kubernetes-version $version' listed nothing"
tag_of() {
  local name=$1 candidate
  for candidate in "${wanted[@]}"; do
    if [[ ${candidate%:*} == */"$name" ]]; then printf '%s' "$candidate"; return 0; fi
  done
  die "kubeadm $version lists no $name image"
}

preload=()
for name in kube-apiserver kube-controller-manager kube-scheduler; do
  image=$(tag_of "$name")
  static_image "$image" "$k8s/bin/$name" "/usr/local/bin/$name" 0
  preload+=("$image")
done
image=$(tag_of kube-proxy)
debian_image "$image" "$nettools" "$files/kube-proxy" "$k8s/bin/kube-proxy"
preload+=("$image")
wait_done "$etcd" "etcd $ETCD_VERSION"
image=$(tag_of etcd)
static_image "$image" "$etcd/bin/etcd" /usr/local/bin/etcd 0
preload+=("$image")
wait_done "$coredns" "CoreDNS $COREDNS_VERSION"
image=$(tag_of coredns)
static_image "$image" "$coredns/bin/coredns" /coredns 0
preload+=("$image")
wait_done "$pause" "pause"
image=$(tag_of pause)
static_image "$image" "$pause/bin/pause" /pause 65535
preload+=("$image")
wait_done "$flannel" "flannel $FLANNEL_VERSION"
debian_image "$FLANNEL_IMAGE" "$nettools" "$files/flannel" "$flannel/bin/flanneld"
preload+=("$FLANNEL_IMAGE" "${nginx[@]}")
wait_done "$local_path" "local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION"
static_image "$LOCAL_PATH_PROVISIONER_IMAGE" "$local_path/bin/local-path-provisioner" \
  /usr/local/bin/local-path-provisioner 0
preload+=("$LOCAL_PATH_PROVISIONER_IMAGE" "$BASE_IMAGE")
# kube-flannel.yml runs /opt/bin/flanneld, and `cp -f /etc/kube-flannel/cni-conf.json ...` in
# its install-cni init container.
alias_image "$FLANNEL_IMAGE" "$UPSTREAM_FLANNEL_IMAGE" \
  'test -x /opt/bin/flanneld && /opt/bin/flanneld --version && command -v cp'
wait_done "$flannel_cni" "the flannel CNI plugin $FLANNEL_CNI_SOURCE_VERSION"
debian_image "$FLANNEL_CNI_PLUGIN_IMAGE" "$BASE_IMAGE" "$files/flannel-cni-plugin" "$flannel_cni/bin/flannel"

printf '%s\n' "${preload[@]}" >"$KC_CACHE/images/preload-$version.txt"
echo "images ready: ${preload[*]}"
