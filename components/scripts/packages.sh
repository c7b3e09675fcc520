#!/usr/bin/env bash
# Functions for the Kubernetes packages (kubelet, kubeadm, kubectl) from the community apt
# repository, one minor version per repository, shared by install-kubeadm.sh and upgrade-node.sh.
# Defines functions only: sent on stdin after common.sh and before the scripts that use it.
# Environment (read by parse_wanted_version and use_repository):
#   KUBERNETES_VERSION  a minor (1.31) or a patch release (1.31.4); a leading v is allowed.
#   KUBERNETES_APT_URL  optional: the repository base to use instead of
#                       https://pkgs.k8s.io/core:/stable:/v1.NN/deb/ (a mirror, or a test repository);
#                       its signing key is <base>/Release.key, like the community repository's.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi

COMMUNITY_REPO=https://pkgs.k8s.io/core:/stable:
KEYRING=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
SOURCES=/etc/apt/sources.list.d/kubernetes.list
# shellcheck disable=SC2034 # used by install-kubeadm.sh
PACKAGES=(kubelet kubeadm kubectl)

# Sets MINOR (1.31) and PATCH (1.31.4, or empty for "the newest of the minor") from
# KUBERNETES_VERSION, and REPO, the repository base for that minor.
parse_wanted_version() {
    require_env KUBERNETES_VERSION
    local wanted=${KUBERNETES_VERSION#v}
    if [[ $wanted =~ ^1\.([0-9]+)$ ]]; then
        MINOR=$wanted
        PATCH=
    elif [[ $wanted =~ ^1\.([0-9]+)\.[0-9]+$ ]]; then
        MINOR=${wanted%.*}
        PATCH=$wanted
    else
        die "KUBERNETES_VERSION must look like 1.31 or 1.31.4, not '${KUBERNETES_VERSION}'"
    fi
    if [[ ${BASH_REMATCH[1]} -lt 24 ]]; then
        die "KUBERNETES_VERSION ${wanted} is older than 1.24, the oldest release in the package repository"
    fi
    REPO=${KUBERNETES_APT_URL:-${COMMUNITY_REPO}/v${MINOR}/deb/}
    if [[ ! $REPO =~ ^https?://[^[:space:]]+$ ]]; then
        die "KUBERNETES_APT_URL must be an http:// or https:// URL, not '${REPO}'"
    fi
    REPO=${REPO%/}/
}

installed_version() {
    dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true
}

source_line() {
    printf 'deb [signed-by=%s] %s /' "$KEYRING" "$REPO"
}

# The versions of one package the configured sources offer (after apt-get update), one a line,
# newest first.
available_versions() {
    { apt-cache madison "$1" 2>/dev/null || true; } | awk -F'|' '{ gsub(/ /, "", $2); print $2 }'
}

# True when the wanted release (patch, or any of the minor) is among VERSIONS (one a line).
has_wanted_version() {
    local version
    while IFS= read -r version; do
        if [[ -n $PATCH ]]; then
            [[ $version == "${PATCH}-"* ]] && return 0
        else
            [[ $version == "${MINOR}."* ]] && return 0
        fi
    done <<<"$1"
    return 1
}

# True when the apt source for REPO is configured and its key is in place.
repository_configured() {
    [[ -s $KEYRING && -f $SOURCES && $(<"$SOURCES") == "$(source_line)" ]]
}

# Points apt at REPO (its signing key and source line), then updates the package lists.
use_repository() {
    wait_for_cloud_init
    local prereq
    prereq=$(missing_packages apt-transport-https ca-certificates curl gpg)
    if [[ -n $prereq ]]; then
        apt_update
        # shellcheck disable=SC2086
        apt_install $prereq
    fi
    install -d -m 0755 /etc/apt/keyrings
    local key_tmp
    key_tmp=$(mktemp)
    log_step "fetching the Kubernetes apt signing key from ${REPO}"
    download "${REPO}Release.key" "$key_tmp"
    gpg --batch --yes --dearmor -o "${key_tmp}.gpg" "$key_tmp" || die "the Kubernetes apt key from ${REPO} is not a valid key"
    write_file_if_changed "$KEYRING" 0644 <"${key_tmp}.gpg"
    rm -f "$key_tmp" "${key_tmp}.gpg"
    write_file_if_changed "$SOURCES" 0644 <<<"$(source_line)"
    apt_update
}

# Sets RELEASE to the newest offered release of the wanted version ("1.31.4"), or stops naming
# what the repository has. (A variable, not stdout: a stop inside $(...) would be reported twice.)
resolve_release() {
    local offered version
    offered=$(available_versions kubeadm)
    if ! has_wanted_version "${offered:-}"; then
        offered=${offered:-no version}
        die "kubeadm ${PATCH:-${MINOR}.x} is not in the package repository ${REPO} (it has: ${offered//$'\n'/, })"
    fi
    while IFS= read -r version; do
        if [[ -n $PATCH && $version == "${PATCH}-"* ]] || [[ -z $PATCH && $version == "${MINOR}."* ]]; then
            # shellcheck disable=SC2034 # read by install-kubeadm.sh and upgrade-node.sh
            RELEASE=${version%%-*}
            return 0
        fi
    done <<<"$offered"
}

# install_held RELEASE PKG...: install PKG at RELEASE (1.31.4) and hold it.
install_held() {
    local release=$1 pkg specs=()
    shift
    for pkg in "$@"; do
        has_wanted_version "$(available_versions "$pkg")" ||
            die "${pkg} ${release} is not in the package repository ${REPO}"
        specs+=("${pkg}=${release}-*")
    done
    apt-mark unhold "$@" >/dev/null 2>&1 || true
    apt_install --allow-change-held-packages "${specs[@]}"
    apt-mark hold "$@" >/dev/null
}

# Points containerd's sandbox (pause) image at the one the installed kubeadm uses, restarting
# containerd when that changed it (running containers keep running: containerd-shim owns them).
follow_kubeadm_pause_image() {
    local pause content
    pause=$(kubeadm_pause_image)
    [[ -n $pause ]] || die "cannot read the pause image of kubeadm $(kubeadm version -o short 2>/dev/null || echo '(not installed)')"
    [[ -f $CONTAINERD_CONFIG ]] || die "${CONTAINERD_CONFIG} is missing: run install-runtime.sh first"
    content=$(set_sandbox_image "$pause" <"$CONTAINERD_CONFIG")
    grep -qF "$pause" <<<"$content" ||
        die "${CONTAINERD_CONFIG} has no sandbox image setting to point at ${pause}"
    write_file_if_changed "$CONTAINERD_CONFIG" 0644 <<<"$content"
    if [[ $FILE_CHANGED == 1 ]]; then
        log_step "containerd's sandbox (pause) image is now ${pause}; restarting containerd"
        systemctl restart containerd || die "containerd failed to restart with sandbox image ${pause}"
    else
        log_skip "containerd's sandbox (pause) image is ${pause}"
    fi
}
