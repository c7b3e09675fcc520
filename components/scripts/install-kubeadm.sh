#!/usr/bin/env bash
# Installs kubelet, kubeadm and kubectl from the Kubernetes community apt repository for one
# minor version, holds them, and enables kubelet.
# Environment:
#   KUBERNETES_VERSION  required: a minor (1.31) or a patch release (1.31.4); a leading v is allowed.
#   KUBERNETES_APT_URL  optional: the repository base to use instead of
#                       https://pkgs.k8s.io/core:/stable:/v1.NN/deb/ (a mirror, or a test repository);
#                       its signing key is <base>/Release.key, like the community repository's.
# On a node that is already in a cluster (/etc/kubernetes/kubelet.conf exists) it refuses to change
# the installed minor version: that is an upgrade, which needs `kubeadm upgrade`.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
SCRIPT_NAME=install-kubeadm.sh

COMMUNITY_REPO=https://pkgs.k8s.io/core:/stable:
KEYRING=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
SOURCES=/etc/apt/sources.list.d/kubernetes.list
PACKAGES=(kubelet kubeadm kubectl)

installed_version() {
    dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true
}

source_line() {
    printf 'deb [signed-by=%s] %s /' "$KEYRING" "$REPO"
}

# The versions of one package the configured sources offer (after apt-get update), one a line.
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

# A node in a cluster keeps its minor version: installing another one under a running kubelet and
# control plane is an upgrade, which needs `kubeadm upgrade` (this program does not run it yet).
refuse_minor_change_in_a_cluster() {
    [[ -f $KUBELET_CONF ]] || return 0
    pkg_installed kubeadm || return 0
    local installed installed_minor
    installed=$(installed_version kubeadm)
    [[ $installed =~ ^(1\.[0-9]+)\.[0-9]+ ]] || return 0
    installed_minor=${BASH_REMATCH[1]}
    [[ $installed_minor == "$MINOR" ]] && return 0
    die "this node is already in a cluster (${KUBELET_CONF} exists) with kubeadm ${installed}: changing to KUBERNETES_VERSION ${PATCH:-${MINOR}} upgrades a running cluster, which needs 'kubeadm upgrade' and is not supported by this program yet; set kubernetesVersion back to ${installed_minor} (installed: ${installed%%-*})"
}

# True when every package is installed, held, and at the wanted minor (and patch, if given),
# from the configured repository.
already_done() {
    local pkg version held
    [[ -s $KEYRING && -f $SOURCES && $(<"$SOURCES") == "$(source_line)" ]] || return 1
    held=$(apt-mark showhold 2>/dev/null || true)
    for pkg in "${PACKAGES[@]}"; do
        pkg_installed "$pkg" || return 1
        version=$(installed_version "$pkg")
        has_wanted_version "$version" || return 1
        grep -qx "$pkg" <<<"$held" || return 1
    done
}

main() {
    require_root
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
    refuse_minor_change_in_a_cluster

    if already_done; then
        log_skip "kubelet kubeadm kubectl ${PATCH:-${MINOR}.x} are installed and held"
        systemctl is-enabled --quiet kubelet || systemctl enable kubelet >/dev/null 2>&1 ||
            die "could not enable kubelet"
        log_step "done"
        return 0
    fi

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

    local specs=() pkg offered
    for pkg in "${PACKAGES[@]}"; do
        offered=$(available_versions "$pkg")
        offered=${offered:-no version}
        if ! has_wanted_version "$offered"; then
            die "${pkg} ${PATCH:-${MINOR}.x} is not in the package repository ${REPO} (it has: ${offered//$'\n'/, })"
        fi
    done
    for pkg in "${PACKAGES[@]}"; do
        if [[ -n $PATCH ]]; then specs+=("${pkg}=${PATCH}-*"); else specs+=("$pkg"); fi
    done
    apt-mark unhold "${PACKAGES[@]}" >/dev/null 2>&1 || true
    apt_install --allow-change-held-packages "${specs[@]}"
    apt-mark hold "${PACKAGES[@]}" >/dev/null
    systemctl enable kubelet >/dev/null 2>&1 || die "could not enable kubelet"
    local got
    got=$(installed_version kubeadm)
    log_step "installed kubelet kubeadm kubectl ${got} (held), kubelet enabled"
}

main "$@" </dev/null
