# shellcheck shell=bash
# Shared by images.sh and node-image.sh: building container images locally, with no registry.
# Source toolchain/lib.sh first.
#
# An image is rebuilt only when its inputs changed: each finished image leaves
# $KC_CACHE/images/<name>/.done holding a key of its inputs (content of small files, size and
# mtime of big binaries, plus any extra words) and the image ID it produced. A rebuild with the
# same key and the image still in the engine does nothing.

export DOCKER_BUILDKIT=0
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
# The Debian base every Debian-based image starts from (debootstrap, then docker import).
BASE_IMAGE=kubeadm-cluster/debian:$DEBIAN_SUITE

# inputs_key WORD|PATH...: a hash of the words, and of each path's files (a file under 1 MiB by
# content, a bigger one by size and mtime, so a warm check never reads a 100 MB binary).
inputs_key() {
  local item file
  for item in "$@"; do
    if [[ -e $item ]]; then
      while IFS= read -r -d '' file; do
        if [[ $(stat -L -c %s "$file") -lt 1048576 ]]; then
          printf '%s %s\n' "${file#"$item"}" "$(sha256sum <"$file" | cut -d' ' -f1)"
        else
          printf '%s %s\n' "${file#"$item"}" "$(stat -L -c '%s %Y' "$file")"
        fi
      done < <(find -L "$item" -type f -print0 | sort -z)
    else
      printf 'word %s\n' "$item"
    fi
  done | sha256sum | cut -d' ' -f1
}

_stamp_file() { printf '%s/images/%s/.done' "$KC_CACHE" "${1//[\/:]/_}"; }

# image_current IMAGE KEY: true when IMAGE was built from KEY and is still in the engine.
image_current() {
  local stamp id
  stamp=$(_stamp_file "$1")
  [[ -f $stamp ]] || return 1
  id=$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null) || return 1
  [[ $(<"$stamp") == "$2 $id" ]]
}

# image_done IMAGE KEY: record that IMAGE is built from KEY.
image_done() {
  local stamp id
  stamp=$(_stamp_file "$1")
  id=$(docker image inspect -f '{{.Id}}' "$1") || die "image $1 is missing after its build"
  mkdir -p "$(dirname "$stamp")"
  printf '%s %s\n' "$2" "$id" >"$stamp"
  echo "built $1"
}

require_engine() {
  docker info >/dev/null 2>&1 ||
    die "the Docker engine does not answer: run toolchain/docker-runtime.sh first"
}

# wait_done DIR WHAT: wait (bounded by KC_WAIT_SECONDS, default 0) for another build's .done.
wait_done() {
  local dir=$1 what=$2 deadline=$((SECONDS + ${KC_WAIT_SECONDS:-0}))
  until is_built "$dir"; do
    [[ $SECONDS -lt $deadline ]] ||
      die "$what is not built yet: no $dir/.done (build it first, or set KC_WAIT_SECONDS to wait)"
    sleep 10
  done
}

# debian_base: the Debian minbase root filesystem, imported as $BASE_IMAGE.
debian_base() {
  local dir=$KC_CACHE/debian-$DEBIAN_SUITE key
  if ! is_built "$dir"; then
    command -v debootstrap >/dev/null 2>&1 ||
      run debian-base env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y -q debootstrap
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "debootstrap $DEBIAN_SUITE (minbase)"
    run debian-base debootstrap --variant=minbase "$DEBIAN_SUITE" "$dir/rootfs"
    # Keep images small and apt quiet in them.
    run debian-base chroot "$dir/rootfs" apt-get clean
    rm -rf "$dir/rootfs/var/lib/apt/lists/"*
    touch "$dir/.done"
  fi
  key=$(inputs_key "$DEBIAN_SUITE" "$(stat -c %Y "$dir/.done")" base-1)
  image_current "$BASE_IMAGE" "$key" && return 0
  # Package scripts must never start a daemon while an image is built (invoke-rc.d asks this).
  printf '#!/bin/sh\n# No daemon starts while an image is built.\nexit 101\n' >"$dir/rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$dir/rootfs/usr/sbin/policy-rc.d"
  run debian-base bash -o pipefail -c \
    "tar --numeric-owner --xattrs -C '$dir/rootfs' -c . | docker import --change 'CMD [\"/bin/bash\"]' - '$BASE_IMAGE'"
  image_done "$BASE_IMAGE" "$key"
}

# docker_build PIECE IMAGE CONTEXT [ARGS...]: docker build of CONTEXT (its Dockerfile), tagged
# IMAGE. The context must never contain the engine's data root.
docker_build() {
  local piece=$1 image=$2 context=$3
  shift 3
  run "$piece" docker build -t "$image" "$@" "$context"
}
