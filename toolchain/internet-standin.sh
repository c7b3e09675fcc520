#!/usr/bin/env bash
# Builds the e2e's internet stand-in (test harness only, see toolchain/internet-standin/main.go)
# and the files it serves for github.com.
#
# Usage: toolchain/internet-standin.sh
# Output: $KC_CACHE/internet-standin/bin/internet-standin, and under
#   $KC_CACHE/internet-standin/sites/github.com/ the one file the node scripts download there:
#   flannel-io/flannel/releases/download/FLANNEL_VERSION/kube-flannel.yml (versions.sh), which
#   is flannel's own manifest from its Go module at that version (Documentation/kube-flannel.yml,
#   the file its release attaches).
# The program uses the standard library only (its go.mod requires nothing); its tests run before
# it is built. `.done` holds a hash of its sources and the flannel version, so a change rebuilds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=toolchain/lib.sh
source "$here/lib.sh"
# shellcheck source=toolchain/versions.sh
source "$here/versions.sh"

piece=internet-standin
src="$here/internet-standin"
out="$KC_CACHE/internet-standin"
lock_piece "$piece"
stamp="$(cd "$src" && source_stamp go.mod ./*.go) flannel-$FLANNEL_VERSION"
is_built "$out" "$stamp" && exit 0
rm -f "$out/.done"

# The flannel manifest, from the module cache (go mod download fetches it when missing).
module=github.com/flannel-io/flannel@$FLANNEL_VERSION
if ! info=$(go mod download -json "$module" 2>/dev/null); then
  die "building $piece failed: 'go mod download -json $module': $(sed -n 's/^\t"Error": "\(.*\)",*$/\1/p' <<<"$info")"
fi
dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$info")
manifest=$dir/Documentation/kube-flannel.yml
[[ -f $manifest ]] || die "building $piece failed: $module has no Documentation/kube-flannel.yml"
site=$out/sites/github.com
rm -rf "$site"
mkdir -p "$site/flannel-io/flannel/releases/download/$FLANNEL_VERSION"
install -m 0644 "$manifest" "$site/flannel-io/flannel/releases/download/$FLANNEL_VERSION/kube-flannel.yml"

cd "$src"
run "$piece" env GOFLAGS="-mod=readonly -buildvcs=false" go vet ./...
run "$piece" env GOFLAGS="-mod=readonly -buildvcs=false" go test -count=1 ./...
mkdir -p "$out/bin"
run "$piece" env GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
  go build -trimpath -ldflags "-s -w" -o "$out/bin/internet-standin" .
mark_built "$out" "$stamp"
