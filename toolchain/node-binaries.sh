#!/usr/bin/env bash
# Builds the node image's other programs from Go modules: etcd, CoreDNS, flanneld, the kind
# CLI (for the side-by-side benchmark), and toolchain/pause.
#
# Usage: toolchain/node-binaries.sh PIECE VERSION
#   etcd v3.7.0 | coredns v1.14.6 | flannel v0.27.0 | kind v0.33.0 | pause -
# Output: $KC_CACHE/PIECE-VERSION/bin/ (pause: $KC_CACHE/pause/bin/pause).
# etcd's server module (go.etcd.io/etcd/server/v3, a main package) replaces its sibling
# modules (api, client/pkg, client/v3, pkg) with local folders: the wrapper pins each to the
# same release instead. CoreDNS, flannel and kind have no replace lines. flannel is built
# with cgo, as upstream builds it; the others are static.
set -euo pipefail
# shellcheck source=toolchain/lib.sh
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

piece=${1:?usage: node-binaries.sh PIECE VERSION}
version=${2:?usage: node-binaries.sh PIECE VERSION}
if [[ $piece == pause ]]; then
  out="$KC_CACHE/pause"
else
  [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$piece version '$version': expected vMAJOR.MINOR.PATCH"
  out="$KC_CACHE/$piece-$version"
fi
lock_piece "$(basename "$out")"
is_built "$out" && exit 0
src="$KC_CACHE/src/$piece-$version"
flags=(-trimpath)
cgo=0
build() { # build MAIN_PACKAGE OUTPUT_NAME LDFLAGS
  run "$piece" env CGO_ENABLED=$cgo go build "${flags[@]}" -ldflags "-s -w $3" -o "$out/bin/$2" "$1"
}

case $piece in
  etcd)
    go_wrapper "$src" kc.local/etcd
    cd "$src"
    {
      echo "require go.etcd.io/etcd/server/v3 $version"
      for sibling in api/v3 client/pkg/v3 client/v3 pkg/v3; do
        echo "replace go.etcd.io/etcd/$sibling => go.etcd.io/etcd/$sibling $version"
      done
    } >>go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
    run etcd go mod tidy
    build go.etcd.io/etcd/server/v3 etcd ""
    ;;
  coredns)
    go_wrapper "$src" kc.local/coredns
    cd "$src"
    echo "require github.com/coredns/coredns $version" >>go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/coredns/coredns"\n' >tools.go
    run coredns go mod tidy
    build github.com/coredns/coredns coredns "-X github.com/coredns/coredns/coremain.GitCommit=module-$version"
    ;;
  flannel)
    go_wrapper "$src" kc.local/flannel
    cd "$src"
    echo "require github.com/flannel-io/flannel $version" >>go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/flannel-io/flannel"\n' >tools.go
    run flannel go mod tidy
    # flannel's udp backend is cgo; its image is Debian's, whose glibc the binary links to.
    cgo=1
    build github.com/flannel-io/flannel flanneld "-X github.com/flannel-io/flannel/pkg/version.Version=$version"
    ;;
  kind)
    go_wrapper "$src" kc.local/kind
    cd "$src"
    echo "require sigs.k8s.io/kind $version" >>go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "sigs.k8s.io/kind"\n' >tools.go
    run kind go mod tidy
    build sigs.k8s.io/kind kind ""
    ;;
  pause)
    go_wrapper "$src" kc.local/pause
    cp "$here/pause/main.go" "$src/"
    cd "$src"
    build . pause ""
    ;;
  *) die "unknown piece '$piece': expected etcd, coredns, flannel, kind or pause" ;;
esac
mark_built "$out"
