#!/usr/bin/env bash
# Installs kubelet, kubeadm and kubectl from the Kubernetes community apt repository for one
# version, holds them, enables kubelet, and points containerd's sandbox (pause) image at the one
# that kubeadm uses. Only on a node that is not in a cluster yet: on a node that is
# (/etc/kubernetes/kubelet.conf exists), the packages change only through upgrade-node.sh, which
# drains and upgrades in kubeadm's order, so this script leaves them alone.
# Environment:
#   KUBERNETES_VERSION  required: a minor (1.31) or a patch release (1.31.4); a leading v is allowed.
#   KUBERNETES_APT_URL  optional: see packages.sh.
#   ALLOW_CGROUP_V1     true: accept a cgroup v1 host for 1.35 and newer (the stack's allowCgroupV1)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
# shellcheck source-path=SCRIPTDIR source=packages.sh
if ! declare -F use_repository >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/packages.sh"; fi
SCRIPT_NAME=install-kubeadm.sh

# True when every package is installed, held, and at the wanted minor (and patch, if given),
# from the configured repository.
already_done() {
    local pkg held
    repository_configured || return 1
    held=$(apt-mark showhold 2>/dev/null || true)
    for pkg in "${PACKAGES[@]}"; do
        pkg_installed "$pkg" || return 1
        has_wanted_version "$(installed_version "$pkg")" || return 1
        grep -qx "$pkg" <<<"$held" || return 1
    done
}

main() {
    require_root
    parse_wanted_version
    if [[ -f $KUBELET_CONF ]] && pkg_installed kubeadm; then
        log_skip "this node is in a cluster (${KUBELET_CONF} exists) with kubeadm $(installed_version kubeadm): its packages change only through an upgrade (upgrade-node.sh)"
        return 0
    fi
    check_cgroups
    if already_done; then
        log_skip "kubelet kubeadm kubectl ${PATCH:-${MINOR}.x} are installed and held"
    else
        use_repository
        resolve_release
        install_held "$RELEASE" "${PACKAGES[@]}"
        log_step "installed kubelet kubeadm kubectl $(installed_version kubeadm) (held)"
    fi
    systemctl is-enabled --quiet kubelet || systemctl enable kubelet >/dev/null 2>&1 ||
        die "could not enable kubelet"
    follow_kubeadm_pause_image
    log_step "done"
}

main "$@" </dev/null
