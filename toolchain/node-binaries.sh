#!/usr/bin/env bash
# Builds the node image's other programs from Go modules: etcd, CoreDNS, flanneld, the kind
# CLI (for the side-by-side benchmark), toolchain/pause, and what the Kubernetes apt packages
# ship besides Kubernetes itself: crictl, the CNI plugins and the flannel CNI plugin; and
# local-path-provisioner, the node image's default StorageClass provisioner.
#
# Usage: toolchain/node-binaries.sh PIECE VERSION
#   etcd v3.7.0 | coredns v1.14.6 | flannel v0.27.0 | kind v0.33.0 | pause - |
#   cri-tools v1.37.0 | cni-plugins v1.7.1 | flannel-cni v0.9.1 | local-path-provisioner v0.0.30
# Output: $KC_CACHE/PIECE-VERSION/bin/ (pause: $KC_CACHE/pause/bin/pause).
#   cri-tools: bin/crictl. cni-plugins: bin/<plugin> for every main package under the module's
#   plugins/{main,ipam,meta}/ (its Windows-only folder aside), as its release tarball ships them.
#   flannel-cni: bin/flannel, from github.com/containernetworking/plugins' plugins/meta/flannel
#   at VERSION (the folder flannel-io/cni-plugin grew from; v0.9.1 is the last release with it).
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
  cri-tools)
    go_wrapper "$src" kc.local/cri-tools
    cd "$src"
    echo "require sigs.k8s.io/cri-tools $version" >>go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "sigs.k8s.io/cri-tools/cmd/crictl"\n' >tools.go
    run cri-tools go mod tidy
    # `crictl --version` prints pkg/version.Version (upstream's release script sets the tag).
    build sigs.k8s.io/cri-tools/cmd/crictl crictl "-X sigs.k8s.io/cri-tools/pkg/version.Version=$version"
    ;;
  local-path-provisioner)
    go_wrapper "$src" kc.local/local-path-provisioner
    cd "$src"
    echo "require github.com/rancher/local-path-provisioner $version" >>go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/rancher/local-path-provisioner"\n' >tools.go
    run local-path-provisioner go mod tidy
    build github.com/rancher/local-path-provisioner local-path-provisioner ""
    ;;
  cni-plugins | flannel-cni)
    module=github.com/containernetworking/plugins
    go_wrapper "$src" "kc.local/$piece"
    cd "$src"
    echo "require $module $version" >>go.mod
    run "$piece" go mod download "$module"
    dir=$(go list -m -f '{{.Dir}}' "$module" 2>>"$KC_CACHE/logs/$piece.log") ||
      die "building $piece failed: 'go list -m $module' (log: $KC_CACHE/logs/$piece.log)"
    packages=()
    if [[ $piece == flannel-cni ]]; then
      [[ -d $dir/plugins/meta/flannel ]] ||
        die "building $piece failed: $module $version has no plugins/meta/flannel (v0.9.1 is the last release that has it)"
      packages=("$module/plugins/meta/flannel")
    else
      for plugin in "$dir"/plugins/{main,ipam,meta}/*/; do
        plugin=${plugin%/}
        [[ $(basename "$plugin") == windows ]] && continue
        packages+=("$module/${plugin#"$dir"/}")
      done
    fi
    {
      printf '//go:build tools\n\npackage tools\n\nimport (\n'
      printf '\t_ "%s"\n' "${packages[@]}"
      printf ')\n'
    } >tools.go
    run "$piece" go mod tidy
    # Only main packages become plugins (a library folder there would be a mistake upstream).
    for package in "${packages[@]}"; do
      [[ $(go list -f '{{.Name}}' "$package" 2>>"$KC_CACHE/logs/$piece.log") == main ]] ||
        die "building $piece failed: $package is not a main package"
    done
    # Static, with the version the plugins print (`CNI <plugin> plugin <version>`), as upstream's
    # release builds them. One `go build` for all of them compiles the shared packages once.
    ldflags="-s -w -X $module/pkg/utils/buildversion.BuildVersion=$version"
    mkdir -p "$out/bin"
    run "$piece" env CGO_ENABLED=0 go build "${flags[@]}" -ldflags "$ldflags" -o "$out/bin/" "${packages[@]}"
    for package in "${packages[@]}"; do
      [[ -x $out/bin/$(basename "$package") ]] || die "building $piece failed: no $out/bin/$(basename "$package")"
    done
    ;;
  *) die "unknown piece '$piece': expected etcd, coredns, flannel, kind, pause, cri-tools, cni-plugins, flannel-cni or local-path-provisioner" ;;
esac
mark_built "$out"
