#!/usr/bin/env bash
# Builds the Pulumi Kubernetes provider plugin, pulumi-resource-kubernetes, from Go modules.
#
# Usage: toolchain/provider-kubernetes.sh VERSION   (a pulumi-kubernetes release, like 4.25.0)
# Output: $KC_CACHE/provider-kubernetes-VERSION/bin/pulumi-resource-kubernetes.
#
# The provider is the module github.com/pulumi/pulumi-kubernetes/provider/v4. Its tagged
# versions are not served by the Go module proxy this project builds from (403), so the
# table below names, per release, a pseudo-version of that release's commit that is served;
# a release missing from the table is asked for by its tag. Only 4.25.0 is known to work:
# the pseudo-versions of the 4.26.0 to 4.32.0 release commits are refused as well.
#
# Upstream's main package embeds schema-embed.json and terraform-mapping-embed.json, which
# `go generate` makes from the module's schema.json and terraform-mapping.json (setting the
# schema's version) before a release build; the wrapper copies that folder from the module
# and runs the same go generate. The provider's go.mod replaces sdk/v4 with a local folder:
# the wrapper replaces it with the sdk/v4 release of the same VERSION (tag sdk/vVERSION).
# The version is set as upstream's release build sets it (-X pkg/version.Version=vVERSION).
set -euo pipefail
# shellcheck source=toolchain/lib.sh
source "$(dirname "$0")/lib.sh"

version=${1:?usage: provider-kubernetes.sh VERSION}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "pulumi-kubernetes version '$version': expected MAJOR.MINOR.PATCH"
case $version in
  4.25.0) module_version=v4.0.0-20260115033456-f47bc2d6f199 ;; # release commit f47bc2d6f199
  *) module_version=v$version ;;
esac
out="$KC_CACHE/provider-kubernetes-$version"
lock_piece "$(basename "$out")"
is_built "$out" && exit 0

module=github.com/pulumi/pulumi-kubernetes/provider/v4
sdk=github.com/pulumi/pulumi-kubernetes/sdk/v4
src="$KC_CACHE/src/provider-kubernetes-$version"
go_wrapper "$src" kc.local/provider-kubernetes
cd "$src"
run provider-kubernetes go mod download "$module@$module_version"
info=$(go mod download -json "$module@$module_version")
gomod=$(sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p' <<<"$info")
dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$info")
[[ -f $gomod && -d $dir ]] || die "building provider-kubernetes failed: no go.mod for $module@$module_version"
{
  echo "require $module $module_version"
  echo "replace $sdk => $sdk v$version"
  # Any replace line of the provider's go.mod that points at another module version
  # (the one pointing at a local folder is sdk/v4, replaced above).
  grep -E '^replace [^ ]+ => [^ .][^ ]* v[0-9]' "$gomod" | sort -u || true
} >>go.mod
cmd=cmd/pulumi-resource-kubernetes
mkdir -p "$cmd"
for file in main.go generate.go schema.json terraform-mapping.json; do
  install -m 0644 "$dir/$cmd/$file" "$cmd/"
done
run provider-kubernetes go mod tidy
run provider-kubernetes env VERSION="$version" go generate "./$cmd"

ldflags="-s -w -X $module/pkg/version.Version=v$version"
mkdir -p "$out/bin"
run provider-kubernetes env CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/bin/pulumi-resource-kubernetes" "./$cmd"
mark_built "$out"
