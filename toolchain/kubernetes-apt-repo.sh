#!/usr/bin/env bash
# Builds a signed apt repository that looks, to apt and to components/scripts/install-kubeadm.sh,
# like one minor's Kubernetes community repository, with real packages made here from the
# binaries the other toolchain scripts built.
#
# Usage: toolchain/kubernetes-apt-repo.sh KUBERNETES_VERSION [CRI_TOOLS_VERSION [CNI_PLUGINS_VERSION]]
#   KUBERNETES_VERSION  v1.MINOR.PATCH, e.g. v1.37.2 (built by toolchain/kubernetes.sh)
#   CRI_TOOLS_VERSION   default v1.MINOR.0 (the community repository ships crictl of the same minor)
#   CNI_PLUGINS_VERSION default CNI_PLUGINS_VERSION from versions.sh
#   (both built by toolchain/node-binaries.sh cri-tools|cni-plugins VERSION)
# Output: $KC_CACHE/apt-repo-KUBERNETES_VERSION/core:/stable:/v1.MINOR/deb/, the directory to serve
# as the URL path of the same name on the repository's host: a flat repository (`deb [signed-by=
# KEYRING] BASE_URL /`) holding Packages, Packages.gz, Release, InRelease, Release.gpg,
# Release.key (the ASCII-armored public key) and the packages in <arch>/, e.g.
# amd64/kubelet_1.37.2-1.1_amd64.deb (Packages' Filename paths are relative to that base).
# Only this minor's subtree is written, so serving several minors is a matter of putting their
# core:/stable:/v1.N/ folders under one root.
#
# Packages, versions and dependencies follow the community repository's packaging for 1.32 and
# later: kubelet, kubeadm, kubectl VERSION-1.1; cri-tools and kubernetes-cni at their own
# versions, -1.1. kubelet needs iptables, kubernetes-cni, mount and util-linux; kubeadm (since
# 1.32), kubectl, cri-tools and kubernetes-cni need nothing. The package scripts only reload
# systemd: nothing is enabled or started (install-kubeadm.sh enables kubelet itself).
# The signing key is a throwaway ed25519 key made on the first build and kept in
# $KC_CACHE/apt-repo-keys/shared/ (never inside the served tree); every minor's repository is
# signed with it, as the community repository signs every minor with one key (a machine moving
# to the next minor keeps its keyring), and later rebuilds re-sign with it, so Release.key stays
# the same. Nothing is rebuilt when no input changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=toolchain/lib.sh
source "$here/lib.sh"
# shellcheck source=toolchain/versions.sh
source "$here/versions.sh"

usage="usage: kubernetes-apt-repo.sh KUBERNETES_VERSION [CRI_TOOLS_VERSION [CNI_PLUGINS_VERSION]]"
version=${1:?$usage}
[[ $version =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "kubernetes version '$version': expected v1.MINOR.PATCH, like v1.37.2"
minor=1.${BASH_REMATCH[1]}
cri_tools=${2:-v$minor.0}
cni=${3:-$CNI_PLUGINS_VERSION}
for v in "$cri_tools" "$cni"; do
  [[ $v =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "version '$v': expected vMAJOR.MINOR.PATCH"
done

REVISION=1.1 # the community repository's Debian revision: 1.37.2-1.1
MAINTAINER="kubeadm-cluster toolchain <toolchain@kubeadm-cluster.invalid>"
KEY_UID="kubeadm-cluster apt repository (throwaway) <apt-repo@kubeadm-cluster.invalid>"

out=$KC_CACHE/apt-repo-$version
keys=$KC_CACHE/apt-repo-keys/shared
base="core:/stable:/v$minor/deb"
k8s=$KC_CACHE/kubernetes-$version
crictl=$KC_CACHE/cri-tools-$cri_tools
plugins=$KC_CACHE/cni-plugins-$cni

lock_piece "apt-repo-$version"
is_built "$k8s" || die "kubernetes $version is not built: no $k8s/.done (run toolchain/kubernetes.sh $version)"
is_built "$crictl" || die "crictl $cri_tools is not built: no $crictl/.done (run toolchain/node-binaries.sh cri-tools $cri_tools)"
is_built "$plugins" || die "CNI plugins $cni are not built: no $plugins/.done (run toolchain/node-binaries.sh cni-plugins $cni)"
for f in "$k8s"/bin/{kubelet,kubeadm,kubectl} "$crictl/bin/crictl" "$plugins"/bin/{bridge,host-local,loopback,portmap}; do
  [[ -x $f ]] || die "$f is missing: rebuild its piece"
done

command -v dpkg >/dev/null 2>&1 || die "building the apt repository needs a Debian host (no dpkg)"
arch=$(dpkg --print-architecture)

# The inputs' stamp: this script's text (it holds the unit files), lib.sh's, the versions, and
# the binaries (by size and mtime, so a warm check reads no 90 MB file).
stamp=$(
  {
    printf '%s\n' "$version" "$cri_tools" "$cni" "$arch" "$REVISION"
    cat "$0" "$here/lib.sh" | sha256sum
    stat -L -c '%n %s %Y' "$k8s"/bin/{kubelet,kubeadm,kubectl} "$crictl/bin/crictl" "$plugins"/bin/*
  } | sha256sum | cut -d' ' -f1
)
is_built "$out" "$stamp" && exit 0
mkdir -p "$KC_CACHE/logs"
umask 022

# Debian's tools: dpkg-deb and dpkg-scanpackages (dpkg-dev), apt-ftparchive (apt-utils), gpg.
missing=()
command -v dpkg-scanpackages >/dev/null 2>&1 || missing+=(dpkg-dev)
command -v apt-ftparchive >/dev/null 2>&1 || missing+=(apt-utils)
command -v gpg >/dev/null 2>&1 || missing+=(gpg)
if [[ ${#missing[@]} -gt 0 ]]; then
  [[ $(id -u) -eq 0 ]] || die "building the apt repository needs ${missing[*]}: install them (apt-get install ${missing[*]})"
  run apt-repo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}"
fi

work=$KC_CACHE/src/apt-repo-$version
new=$out.new
rm -rf "$work" "$new"
mkdir -p "$work" "$new/$base/$arch"
repo=$new/$base

# --- what the packages hold besides binaries (written here, from kubeadm's documentation of
# how it drives the kubelet through systemd) ---

kubelet_unit() {
  cat <<'EOF'
# The kubelet, the Kubernetes node agent. Until kubeadm init/join writes its configuration it
# exits at once and systemd starts it again every 10 seconds, without ever giving up.
[Unit]
Description=kubelet: the Kubernetes node agent
Documentation=https://kubernetes.io/docs/reference/command-line-tools-reference/kubelet/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
EOF
}

kubeadm_dropin() {
  cat <<'EOF'
# How kubeadm runs the kubelet: with the kubeconfig files and the configuration file kubeadm
# writes, the flags kubeadm records for this node at init/join time (KUBELET_KUBEADM_ARGS, in
# kubeadm-flags.env), and the administrator's own flags (KUBELET_EXTRA_ARGS, /etc/default/kubelet).
# The bootstrap kubeconfig is used only while the node joins; kubelet.conf afterwards.
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
EOF
}

kubelet_defaults() {
  cat <<'EOF'
# Extra kubelet flags for this machine, read by kubeadm's kubelet drop-in
# (/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf). Prefer the kubelet
# configuration file (/var/lib/kubelet/config.yaml) where a setting exists there.
KUBELET_EXTRA_ARGS=
EOF
}

# A maintainer script that makes systemd see a changed unit or drop-in (nothing is enabled,
# started or stopped except the kubelet being stopped when its package is removed).
reload_script() {
  printf '#!/bin/sh\nset -e\n%sif [ -d /run/systemd/system ]; then\n  systemctl daemon-reload >/dev/null 2>&1 || true\nfi\n' "${1:-}"
}

# --- the packages ---

# stage NAME: an empty staging root for package NAME; prints its path.
stage() {
  local root=$work/$1
  mkdir -p "$root/DEBIAN"
  printf '%s' "$root"
}

# put ROOT PATH MODE < CONTENT: write a file into a staging root.
put() {
  mkdir -p "$(dirname "$1$2")"
  cat >"$1$2"
  chmod "$3" "$1$2"
}

# package ROOT NAME VERSION SECTION DEPENDS SUMMARY DETAIL: write ROOT's control files and build
# the .deb into the repository's <arch>/ folder.
package() {
  local root=$1 name=$2 pkg_version=$3 section=$4 depends=$5 summary=$6 detail=$7 size
  put "$root" "/usr/share/doc/$name/copyright" 0644 <<EOF
$name $pkg_version for kubeadm-cluster's test repository, built from source by toolchain/
(kubernetes-apt-repo.sh and the scripts it names) with the upstream projects' Go modules.
The programs are licensed under the Apache License, Version 2.0 by their authors; on Debian
its text is /usr/share/common-licenses/Apache-2.0.
EOF
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  {
    printf 'Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: %s\n' \
      "$name" "$pkg_version" "$arch" "$MAINTAINER"
    printf 'Installed-Size: %s\nSection: %s\nPriority: optional\nHomepage: https://kubernetes.io\n' \
      "$size" "$section"
    if [[ -n $depends ]]; then printf 'Depends: %s\n' "$depends"; fi
    printf 'Description: %s\n' "$summary"
    fold -s -w 76 <<<"$detail" | sed 's/ *$//; s/^/ /'
  } >"$root/DEBIAN/control"
  if [[ -d $root/etc ]]; then
    (cd "$root" && find etc -type f -printf '/%p\n' | sort) >"$root/DEBIAN/conffiles"
    [[ -s $root/DEBIAN/conffiles ]] || rm "$root/DEBIAN/conffiles"
  fi
  chmod 0755 "$root/DEBIAN"
  chmod 0644 "$root/DEBIAN/control"
  run apt-repo dpkg-deb --root-owner-group -Zgzip -z6 --build "$root" \
    "$repo/$arch/${name}_${pkg_version}_$arch.deb"
}

k8s_version=${version#v}-$REVISION
built_note="Built from source at upstream version"

root=$(stage kubelet)
install -D -m 0755 "$k8s/bin/kubelet" "$root/usr/bin/kubelet"
kubelet_unit | put "$root" /usr/lib/systemd/system/kubelet.service 0644
kubelet_defaults | put "$root" /etc/default/kubelet 0644
mkdir -p "$root/var/lib/kubelet" "$root/etc/kubernetes/manifests"
reload_script | put "$root" /DEBIAN/postinst 0755
# shellcheck disable=SC2016 # $1 is the package script's argument
reload_script 'if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop kubelet.service >/dev/null 2>&1 || true
fi
' | put "$root" /DEBIAN/prerm 0755
reload_script | put "$root" /DEBIAN/postrm 0755
package "$root" kubelet "$k8s_version" net \
  "iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), mount, util-linux" \
  "Kubernetes node agent (kubelet)" \
  "Runs the pods a Kubernetes control plane assigns to this machine through the container runtime, and reports the node's status. $built_note $version."

root=$(stage kubeadm)
install -D -m 0755 "$k8s/bin/kubeadm" "$root/usr/bin/kubeadm"
kubeadm_dropin | put "$root" /usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf 0644
reload_script | put "$root" /DEBIAN/postinst 0755
reload_script | put "$root" /DEBIAN/postrm 0755
package "$root" kubeadm "$k8s_version" admin "" \
  "Kubernetes cluster bootstrapping tool (kubeadm)" \
  "Creates a Kubernetes control plane (kubeadm init), joins machines to it (kubeadm join) and upgrades clusters. Ships the systemd drop-in through which kubeadm configures the kubelet. $built_note $version."

root=$(stage kubectl)
install -D -m 0755 "$k8s/bin/kubectl" "$root/usr/bin/kubectl"
package "$root" kubectl "$k8s_version" admin "" \
  "Kubernetes command-line client (kubectl)" \
  "Runs commands against Kubernetes clusters through their API server. $built_note $version."

root=$(stage cri-tools)
install -D -m 0755 "$crictl/bin/crictl" "$root/usr/bin/crictl"
package "$root" cri-tools "${cri_tools#v}-$REVISION" admin "" \
  "Command-line client for CRI container runtimes (crictl)" \
  "Inspects and debugs the containers, pods and images of a container runtime that implements the Kubernetes Container Runtime Interface. $built_note $cri_tools."

root=$(stage kubernetes-cni)
mkdir -p "$root/opt/cni/bin" "$root/etc/cni/net.d"
for plugin in "$plugins"/bin/*; do
  install -m 0755 "$plugin" "$root/opt/cni/bin/"
done
package "$root" kubernetes-cni "${cni#v}-$REVISION" net "" \
  "Container Network Interface plugins for Kubernetes" \
  "The reference CNI plugins (bridge, host-local, loopback, portmap and the rest) in /opt/cni/bin, which container runtimes call to set up pod networking. $built_note $cni."

# --- the indexes, and their signatures ---

(cd "$repo" && dpkg-scanpackages --multiversion "$arch" /dev/null) >"$work/Packages" 2>>"$KC_CACHE/logs/apt-repo.log" ||
  die "building apt-repo failed: 'dpkg-scanpackages --multiversion $arch' (log: $KC_CACHE/logs/apt-repo.log)"
[[ $(grep -c '^Package: ' "$work/Packages") -eq 5 ]] || die "building apt-repo failed: Packages does not list the 5 packages"
cp "$work/Packages" "$repo/Packages"
gzip -9n <"$repo/Packages" >"$repo/Packages.gz"
(cd "$repo" && apt-ftparchive \
  -o APT::FTPArchive::Release::Origin="kubeadm-cluster" \
  -o APT::FTPArchive::Release::Label="kubeadm-cluster test repository: Kubernetes v$minor" \
  -o APT::FTPArchive::Release::Description="Kubernetes $version packages built from source, laid out like core:/stable:/v$minor/deb" \
  release .) >"$work/Release" 2>>"$KC_CACHE/logs/apt-repo.log" ||
  die "building apt-repo failed: 'apt-ftparchive release' (log: $KC_CACHE/logs/apt-repo.log)"
grep -q ' Packages.gz$' "$work/Release" || die "building apt-repo failed: Release lists no Packages.gz"
cp "$work/Release" "$repo/Release"

# One key for every minor: made once, under its own lock (taken after this version's).
lock_piece apt-repo-keys
mkdir -p "$keys"
chmod 0700 "$keys"
export GNUPGHOME=$keys
trap 'gpgconf --kill gpg-agent >/dev/null 2>&1 || true' EXIT
gpg=(gpg --batch --yes --pinentry-mode loopback --passphrase '')
if ! gpg --batch --list-secret-keys "$KEY_UID" >/dev/null 2>&1; then
  run apt-repo "${gpg[@]}" --quick-gen-key "$KEY_UID" ed25519 sign never
fi
run apt-repo "${gpg[@]}" --armor --output "$repo/Release.key" --export "$KEY_UID"
run apt-repo "${gpg[@]}" --local-user "$KEY_UID" --digest-algo SHA512 --clearsign \
  --output "$repo/InRelease" "$repo/Release"
run apt-repo "${gpg[@]}" --local-user "$KEY_UID" --digest-algo SHA512 --armor --detach-sign \
  --output "$repo/Release.gpg" "$repo/Release"
# The signatures must verify against Release.key alone (what a client installs).
run apt-repo bash -c "gpg --dearmor <'$repo/Release.key' >'$work/keyring.gpg' &&
  gpgv --keyring '$work/keyring.gpg' '$repo/InRelease' &&
  gpgv --keyring '$work/keyring.gpg' '$repo/Release.gpg' '$repo/Release'"

rm -rf "$out" "$work"
mv "$new" "$out"
mark_built "$out" "$stamp"
echo "apt repository ready: $out/$base/ (kubelet kubeadm kubectl $k8s_version, cri-tools ${cri_tools#v}-$REVISION, kubernetes-cni ${cni#v}-$REVISION)"
