#!/usr/bin/env bash
# Joins this node to the cluster as a worker, once. The join command is parsed, never evaluated,
# and the token is never printed.
# Environment:
#   JOIN_COMMAND   required (secret): the line join-token.sh printed:
#                  kubeadm join HOST:PORT --token T --discovery-token-ca-cert-hash sha256:HEX
#   NODE_NAME      required
#   CRI_SOCKET     default unix:///run/containerd/containerd.sock
#   NODE_PROFILE   host (default) | kind (kind node container: skip the preflight phase)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
SCRIPT_NAME=kubeadm-join.sh

KUBELET_CONF=/etc/kubernetes/kubelet.conf

# Sets ENDPOINT, TOKEN, CA_HASH from JOIN_COMMAND or dies naming the problem (not the token).
parse_join_command() {
    local words=()
    read -r -a words <<<"$JOIN_COMMAND"
    [[ ${#words[@]} -ge 3 && ${words[0]} == kubeadm && ${words[1]} == join ]] ||
        die "JOIN_COMMAND does not start with 'kubeadm join <host:port>'"
    ENDPOINT=${words[2]}
    [[ $ENDPOINT =~ ^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):[0-9]{1,5}$ ]] ||
        die "JOIN_COMMAND's API endpoint '${ENDPOINT}' is not host:port"
    TOKEN=
    CA_HASH=
    local i=3
    while [[ $i -lt ${#words[@]} ]]; do
        case ${words[i]} in
            --token) TOKEN=${words[i + 1]:-} ;;
            --discovery-token-ca-cert-hash) CA_HASH=${words[i + 1]:-} ;;
            --control-plane | --certificate-key)
                die "JOIN_COMMAND is a control-plane join; this script joins workers only" ;;
            *) die "JOIN_COMMAND has an unexpected argument at position $((i + 1)); expected only --token and --discovery-token-ca-cert-hash" ;;
        esac
        i=$((i + 2))
    done
    [[ -n $TOKEN ]] || die "JOIN_COMMAND has no --token"
    [[ $TOKEN =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] ||
        die "JOIN_COMMAND's --token is not a bootstrap token of the form [a-z0-9]{6}.[a-z0-9]{16} (value not shown)"
    [[ -n $CA_HASH ]] ||
        die "JOIN_COMMAND has no --discovery-token-ca-cert-hash: refusing to join without verifying the cluster CA"
    [[ $CA_HASH =~ ^sha256:[0-9a-f]{64}$ ]] ||
        die "JOIN_COMMAND's --discovery-token-ca-cert-hash is not sha256:<64 hex digits>: refusing to join"
}

main() {
    require_root
    require_env JOIN_COMMAND NODE_NAME
    local cri_socket=${CRI_SOCKET:-unix:///run/containerd/containerd.sock}
    local profile=${NODE_PROFILE:-host}
    case $profile in host | kind) ;; *) die "NODE_PROFILE must be 'host' or 'kind', not '${profile}'" ;; esac
    [[ $NODE_NAME =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] ||
        die "NODE_NAME must be a lowercase DNS name, not '${NODE_NAME}'"
    parse_join_command
    if [[ -f $KUBELET_CONF ]]; then
        log_skip "node already joined (${KUBELET_CONF} exists); not running kubeadm join"
        return 0
    fi
    require_cmd kubeadm
    local args=(join "$ENDPOINT" --token "$TOKEN" --discovery-token-ca-cert-hash "$CA_HASH"
        --node-name "$NODE_NAME" --cri-socket "$cri_socket")
    if [[ $profile == kind ]]; then
        args+=(--skip-phases=preflight)
    fi
    log_step "kubeadm join ${ENDPOINT} as ${NODE_NAME} (CA pinned to ${CA_HASH:0:19}...)"
    kubeadm "${args[@]}" >&2 ||
        die "kubeadm join ${ENDPOINT} failed (see its output above; 'kubeadm reset -f' clears a partial join)"
    log_step "done"
}

main "$@" </dev/null
