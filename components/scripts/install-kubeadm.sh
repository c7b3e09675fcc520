#!/usr/bin/env bash
# Installs kubelet, kubeadm and kubectl from the Kubernetes community apt repository for one
# minor version, holds them, and enables kubelet.
# Environment:
#   KUBERNETES_VERSION  required: a minor (1.31) or a patch release (1.31.4); a leading v is allowed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
SCRIPT_NAME=install-kubeadm.sh

REPO_BASE=https://pkgs.k8s.io/core:/stable
KEYRING=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
SOURCES=/etc/apt/sources.list.d/kubernetes.list
PACKAGES=(kubelet kubeadm kubectl)

installed_version() {
    dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true
}

# True when every package is installed, held, and at the wanted minor (and patch, if given).
already_done() {
    local pkg version held
    held=$(apt-mark showhold 2>/dev/null || true)
    for pkg in "${PACKAGES[@]}"; do
        pkg_installed "$pkg" || return 1
        version=$(installed_version "$pkg")
        if [[ -n $PATCH ]]; then
            [[ $version == "${PATCH}-"* ]] || return 1
        else
            [[ $version == "${MINOR}."* ]] || return 1
        fi
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

    local repo="${REPO_BASE}/v${MINOR}/deb/"
    install -d -m 0755 /etc/apt/keyrings
    local key_tmp
    key_tmp=$(mktemp)
    log_step "fetching the Kubernetes v${MINOR} apt signing key"
    download "${repo}Release.key" "$key_tmp"
    gpg --batch --yes --dearmor -o "${key_tmp}.gpg" "$key_tmp" || die "the Kubernetes apt key from ${repo} is not a valid key"
    write_file_if_changed "$KEYRING" 0644 <"${key_tmp}.gpg"
    rm -f "$key_tmp" "${key_tmp}.gpg"
    write_file_if_changed "$SOURCES" 0644 <<<"deb [signed-by=${KEYRING}] ${repo} /"
    apt_update

    local specs=() pkg
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
