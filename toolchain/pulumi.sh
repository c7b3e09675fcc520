#!/usr/bin/env bash
# Builds the Pulumi CLI and a Python language host from Go modules.
#
# Usage: toolchain/pulumi.sh VERSION   (the requirements.txt `pulumi==` version, like 3.260.0)
# Output: $KC_CACHE/pulumi-VERSION/bin/{pulumi,pulumi-language-python,pulumi-language-python-exec}.
# The CLI is github.com/pulumi/pulumi/pkg/v3/cmd/pulumi; its go.mod replaces sdk/v3 with a
# local folder and github.com/atotto/clipboard with a fork, and sdk/v3's replaces
# golang.org/x/text: the wrapper requires pkg/v3 and sdk/v3 at VERSION and repeats the rest.
# The language host is toolchain/pulumi-language-python (see its doc comment for why); the
# Python runner next to it is sdk/v3's own python/cmd/pulumi-language-python-exec.
set -euo pipefail
# shellcheck source=toolchain/lib.sh
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

version=${1:?usage: pulumi.sh VERSION}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "pulumi version '$version': expected MAJOR.MINOR.PATCH"
out="$KC_CACHE/pulumi-$version"
lock_piece "$(basename "$out")"
stamp=$(source_stamp "$here/pulumi-language-python/main.go")
is_built "$out" "$stamp" && exit 0

src="$KC_CACHE/src/pulumi-$version"
go_wrapper "$src" kc.local/pulumi
cd "$src"
for module in pkg sdk; do
  run pulumi go mod download "github.com/pulumi/pulumi/$module/v3@v$version"
done
pkg_mod=$(go mod download -json "github.com/pulumi/pulumi/pkg/v3@v$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
sdk_mod=$(go mod download -json "github.com/pulumi/pulumi/sdk/v3@v$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
sdk_dir=$(go mod download -json "github.com/pulumi/pulumi/sdk/v3@v$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
{
  echo "require github.com/pulumi/pulumi/pkg/v3 v$version"
  echo "require github.com/pulumi/pulumi/sdk/v3 v$version"
  # Every replace line of both go.mod files that points at another module version
  # (the ones pointing at local folders are the two modules themselves).
  cat "$pkg_mod" "$sdk_mod" | grep -E '^replace [^ ]+ => [^ .][^ ]* v[0-9]' | sort -u
} >>go.mod
mkdir -p cmd/pulumi-language-python
cp "$here/pulumi-language-python/main.go" cmd/pulumi-language-python/
cat >tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
GO
run pulumi go mod tidy

ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$version"
mkdir -p "$out/bin"
run pulumi env CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
run pulumi env CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/bin/pulumi-language-python" ./cmd/pulumi-language-python
install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$out/bin/"
mark_built "$out" "$stamp"
