#!/usr/bin/env bash
# Puts several minors' apt repositories (toolchain/kubernetes-apt-repo.sh) under one root, as
# the community repository's host serves them, so one stand-in host can offer an upgrade's two
# minors: ROOT/core:/stable:/v1.MINOR is a relative symlink to
# apt-repo-VERSION/core:/stable:/v1.MINOR for each VERSION given.
#
# Usage: toolchain/kubernetes-apt-root.sh VERSION...   (for example v1.36.5 v1.37.2)
# Output: $KC_CACHE/apt-repos-V1+V2+... (the VERSIONs in the order given): serve that directory
# as the repository host's root. Each VERSION's repository must be built first; the links follow
# its rebuilds, so this only changes when the list of versions does. Two VERSIONs of one minor
# are refused (one URL path cannot hold both).
set -euo pipefail
# shellcheck source=toolchain/lib.sh
source "$(dirname "$0")/lib.sh"

[[ $# -gt 0 ]] || die "usage: kubernetes-apt-root.sh VERSION..."
declare -A seen=()
for version in "$@"; do
  [[ $version =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "kubernetes version '$version': expected v1.MINOR.PATCH, like v1.37.2"
  minor=1.${BASH_REMATCH[1]}
  [[ -z ${seen[$minor]:-} ]] || die "versions ${seen[$minor]} and $version are both of minor $minor"
  seen[$minor]=$version
  [[ -f $KC_CACHE/apt-repo-$version/.done && -d $KC_CACHE/apt-repo-$version/core:/stable:/v$minor/deb ]] ||
    die "the apt repository of $version is not built: run toolchain/kubernetes-apt-repo.sh $version"
done

name=apt-repos-$(IFS=+ && echo "$*")
out=$KC_CACHE/$name
lock_piece "$name"
is_built "$out" "$*" && exit 0

new=$out.new
rm -rf "$new"
mkdir -p "$new/core:/stable:"
for version in "$@"; do
  [[ $version =~ ^v1\.([0-9]+)\. ]]
  minor=1.${BASH_REMATCH[1]}
  # From ROOT/core:/stable:/ back up to $KC_CACHE.
  ln -s "../../../apt-repo-$version/core:/stable:/v$minor" "$new/core:/stable:/v$minor"
  [[ -f $new/core:/stable:/v$minor/deb/InRelease ]] || die "$new/core:/stable:/v$minor/deb/InRelease does not resolve"
done
rm -rf "$out"
mv "$new" "$out"
mark_built "$out" "$*"
echo "apt repositories ready under $out/core:/stable:/ ($*)"
