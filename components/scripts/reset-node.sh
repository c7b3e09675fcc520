#!/usr/bin/env bash
# Returns a machine to how it was before it joined: `kubeadm reset -f`, then what reset leaves
# (reset.sh). Run when a machine leaves the cluster (scale-in, destroy) after its node was
# drained. Installed packages stay.
# Environment:
#   CRI_SOCKET   default unix:///run/containerd/containerd.sock
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
# shellcheck source-path=SCRIPTDIR source=reset.sh
if ! declare -F reset_node >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/reset.sh"; fi
SCRIPT_NAME=reset-node.sh

main() {
    require_root
    log_step "resetting $(hostname): kubeadm state, CNI config, pod network links and cluster chains"
    reset_node "${CRI_SOCKET:-$DEFAULT_CRI_SOCKET}"
    log_step "done (installed packages stay)"
}

main "$@" </dev/null
