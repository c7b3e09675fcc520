#!/usr/bin/env bash
# Builds one of the stand-in provider plugins made in this repository: pulumi-resource-command
# or pulumi-resource-docker.
#
# Usage: toolchain/provider-standin.sh NAME VERSION   (NAME command|docker; VERSION the
#        requirements.txt pin of pulumi-NAME: command 1.2.1, docker 5.2.0)
# Output: $KC_CACHE/provider-NAME-VERSION/bin/pulumi-resource-NAME.
#
# Why stand-ins: the Go module proxy this project builds from refuses every version of
# upstream's plugins (403): github.com/pulumi/pulumi-command/provider, and
# github.com/pulumi/pulumi-docker/provider/v5 together with the Terraform provider it bridges
# (github.com/kreuzwerker/terraform-provider-docker). Each stand-in lives in
# toolchain/pulumi-resource-NAME; its package comment says what it implements and where each
# behaviour comes from. It reports the version the Python SDK asks for, fixed in its source: a
# VERSION other than that one is refused rather than built. Its own go.mod and go.sum pin every
# dependency (-mod=readonly), and `.done` holds a hash of the sources, so a change rebuilds it.
set -euo pipefail
# shellcheck source=toolchain/lib.sh
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

name=${1:?usage: provider-standin.sh NAME VERSION}
version=${2:?usage: provider-standin.sh NAME VERSION}
case $name in command | docker) ;; *) die "no stand-in plugin '$name': expected command or docker" ;; esac
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "pulumi-$name version '$version': expected MAJOR.MINOR.PATCH"
piece=provider-$name
src="$here/pulumi-resource-$name"
implemented=$(sed -n 's/^\tpackageVersion = "\(.*\)"$/\1/p' "$src/main.go")
[[ -n $implemented ]] || die "building $piece failed: no packageVersion in $src/main.go"
[[ $version == "$implemented" ]] ||
  die "the stand-in pulumi-resource-$name implements pulumi-$name $implemented, not $version (see $src/main.go)"
out="$KC_CACHE/$piece-$version"
lock_piece "$(basename "$out")"
stamp=$(cd "$src" && source_stamp go.mod go.sum ./*.go)
is_built "$out" "$stamp" && exit 0

rm -f "$out/.done"
mkdir -p "$out/bin"
cd "$src"
run "$piece" env GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
  go build -trimpath -ldflags "-s -w" -o "$out/bin/pulumi-resource-$name" .
mark_built "$out" "$stamp"
