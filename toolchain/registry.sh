#!/usr/bin/env bash
# Builds the container registry the e2e's internet stand-in serves images from: cmd/registry of
# github.com/distribution/distribution/v3 (the reference implementation of the OCI
# distribution API), from its Go module.
#
# Usage: toolchain/registry.sh [VERSION]   (default v3.0.0, the version the stand-in is tested with)
# Output: $KC_CACHE/registry/bin/registry; its .done holds VERSION, so another VERSION rebuilds it
# in place and the harness (tests/e2e/internet.py) finds it at one path.
# The module's go.mod has no replace lines, so a wrapper module that requires it is enough; its
# vendor folder is not used (a dependency's vendor folder never is). The version string is set
# as upstream's Makefile sets it (-X .../version.version), and the binary is static.
set -euo pipefail
# shellcheck source=toolchain/lib.sh
source "$(dirname "$0")/lib.sh"

version=${1:-v3.0.0}
[[ $version =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "registry version '$version': expected v3.MINOR.PATCH"
module=github.com/distribution/distribution/v3
out="$KC_CACHE/registry"
lock_piece registry
is_built "$out" "$version" && exit 0
rm -f "$out/.done"

src="$KC_CACHE/src/registry-$version"
go_wrapper "$src" kc.local/registry
cd "$src"
echo "require $module $version" >>go.mod
printf '//go:build tools\n\npackage tools\n\nimport _ "%s/cmd/registry"\n' "$module" >tools.go
run registry go mod tidy
mkdir -p "$out/bin"
run registry env CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X $module/version.version=$version -X $module/version.mainpkg=$module" \
  -o "$out/bin/registry" "$module/cmd/registry"
mark_built "$out" "$version"
