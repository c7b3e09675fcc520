# shellcheck shell=bash
# Shared by the toolchain build scripts: where builds are cached, and one way to fail.
#
# Everything built lands in $KC_CACHE/<piece>-<version>/ (outside the repository) and is
# marked complete by a `.done` file, so a machine that built a piece once rebuilds nothing.
# Go's own build and module caches (GOCACHE, GOMODCACHE) are left where Go keeps them.

KC_CACHE=${KC_CACHE:-/var/cache/kubeadm-cluster}
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

die() {
  echo "error: $*" >&2
  exit 1
}

# run PIECE CMD...: run a build command, and on failure stop with one line naming the piece
# and the command (the command's own output goes to $KC_CACHE/logs/PIECE.log).
run() {
  local piece=$1
  shift
  mkdir -p "$KC_CACHE/logs"
  if ! "$@" >>"$KC_CACHE/logs/$piece.log" 2>&1; then
    die "building $piece failed: '$*' (log: $KC_CACHE/logs/$piece.log)"
  fi
}

# lock_piece NAME: hold an exclusive lock on NAME until this script exits, so two builds of the
# same piece (two checkouts, or CI next to a developer) never share a wrapper folder.
lock_piece() {
  mkdir -p "$KC_CACHE/locks"
  exec {KC_LOCK_FD}>"$KC_CACHE/locks/$1.lock"
  flock "$KC_LOCK_FD"
}

# is_built DIR [STAMP]: true when DIR holds a finished build (of inputs whose hash is STAMP).
is_built() {
  [[ -f "$1/.done" && $(<"$1/.done") == "${2:-}" ]]
}

# mark_built DIR [STAMP]: record a finished build (see is_built).
mark_built() {
  printf '%s' "${2:-}" >"$1/.done"
}

# source_stamp FILE...: a hash of the files' contents, for builds of this repository's sources.
source_stamp() {
  cat "$@" | sha256sum | cut -d' ' -f1
}

# go_wrapper DIR MODULE: start a throwaway module in DIR that will require MODULE.
go_wrapper() {
  local dir=$1 module=$2
  rm -rf "$dir"
  mkdir -p "$dir"
  printf 'module %s\n\ngo %s\n' "$module" "$(go env GOVERSION | sed 's/^go//')" >"$dir/go.mod"
}
