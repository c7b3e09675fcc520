#!/usr/bin/env bash
# Builds the stand-in Docker provider plugin, pulumi-resource-docker, from this repository.
#
# Usage: toolchain/provider-docker.sh VERSION   (the requirements.txt `pulumi-docker==` version, 5.2.0)
# Output: $KC_CACHE/provider-docker-VERSION/bin/pulumi-resource-docker.
#
# Upstream's plugin (module github.com/pulumi/pulumi-docker/provider/v5, which bridges
# github.com/kreuzwerker/terraform-provider-docker) is refused by the Go module proxy this project
# builds from (403 for every version of both), so the plugin is our own stand-in in
# toolchain/pulumi-resource-docker (see its package comment for what it implements and what it
# does not). It reports the version the Python SDK asks for, which is fixed in its source: a
# VERSION other than that one is refused rather than built. Its own go.mod and go.sum pin every
# dependency (-mod=readonly). The `.done` file holds a hash of the sources, so a changed stand-in
# is rebuilt.
set -euo pipefail
# shellcheck source=toolchain/lib.sh
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

version=${1:?usage: provider-docker.sh VERSION}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "pulumi-docker version '$version': expected MAJOR.MINOR.PATCH"
src="$here/pulumi-resource-docker"
implemented=$(sed -n 's/^\tpackageVersion = "\(.*\)"$/\1/p' "$src/main.go")
[[ -n $implemented ]] || die "building provider-docker failed: no packageVersion in $src/main.go"
[[ $version == "$implemented" ]] ||
  die "the stand-in pulumi-resource-docker implements pulumi-docker $implemented, not $version (see $src/main.go)"
out="$KC_CACHE/provider-docker-$version"
lock_piece "$(basename "$out")"
stamp=$(cd "$src" && source_stamp go.mod go.sum ./*.go)
is_built "$out" "$stamp" && exit 0

rm -f "$out/.done"
mkdir -p "$out/bin"
cd "$src"
run provider-docker env GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
  go build -trimpath -ldflags "-s -w" -o "$out/bin/pulumi-resource-docker" .
mark_built "$out" "$stamp"
