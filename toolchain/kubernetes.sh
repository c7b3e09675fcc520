#!/usr/bin/env bash
# Builds Kubernetes' binaries (kubeadm, kubelet, kubectl, kube-apiserver,
# kube-controller-manager, kube-scheduler, kube-proxy) from the k8s.io/kubernetes module.
#
# Usage: toolchain/kubernetes.sh VERSION   (for example v1.37.2)
# Output: $KC_CACHE/kubernetes-VERSION/bin/. The root go.mod replaces every staging module
# (k8s.io/api, client-go, ...) with a local folder; the wrapper replaces each with its
# published v0.MINOR.PATCH release instead, generated from that go.mod.
set -euo pipefail
# shellcheck source=toolchain/lib.sh
source "$(dirname "$0")/lib.sh"

version=${1:?usage: kubernetes.sh VERSION}
[[ $version =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "kubernetes version '$version': expected v 1.MINOR.PATCH, like v1.37.2"
staging="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
out="$KC_CACHE/kubernetes-$version"
lock_piece "$(basename "$out")"
is_built "$out" && exit 0

src="$KC_CACHE/src/kubernetes-$version"
go_wrapper "$src" kc.local/kubernetes
cd "$src"
run kubernetes go mod download k8s.io/kubernetes@"$version"
gomod=$(go mod download -json k8s.io/kubernetes@"$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
[[ -f $gomod ]] || die "building kubernetes failed: no go.mod for k8s.io/kubernetes@$version"
{
  echo "require k8s.io/kubernetes $version"
  sed -n 's|^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*$|replace \1 => \1 '"$staging"'|p' "$gomod"
} >>go.mod
cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
run kubernetes go mod tidy

commit=$(go mod download -json k8s.io/kubernetes@"$version" | sed -n 's/^\t"Time": "\(.*\)",$/\1/p')
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=${BASH_REMATCH[1]}"
ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$commit -X $pkg.gitCommit=module-$version"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$version"
mkdir -p "$out/bin"
for cmd in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  run kubernetes env CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/bin/$cmd" "k8s.io/kubernetes/cmd/$cmd"
done
mark_built "$out"
