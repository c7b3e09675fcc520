#!/usr/bin/env bash
# Joins this node to the cluster as a worker, or as a control-plane node (CONTROL_PLANE=true),
# once. The join command is parsed, never evaluated, and the token and certificate key are never
# printed. A control-plane node runs its own API server and a stacked etcd member; once it has
# joined it deletes kube-system/kubeadm-certs (the certificates join-token.sh uploaded for it).
# A node that is already joined (kubelet.conf exists) is left alone when its cluster CA is the
# one JOIN_COMMAND pins; a different CA means the control plane was rebuilt, so the node is reset
# (`kubeadm reset -f`, then the pod network reset leaves: reset.sh) and joins the new one. Needs
# openssl for that comparison.
# Environment:
#   JOIN_COMMAND   required (secret): the line join-token.sh printed:
#                  kubeadm join HOST:PORT --token T --discovery-token-ca-cert-hash sha256:HEX
#   NODE_NAME      required
#   CONTROL_PLANE  true: join as a control-plane node (needs the next two)
#   CERTIFICATE_KEY   (secret) the key join-token.sh printed with CONTROL_PLANE=true
#   ADVERTISE_ADDRESS this node's address for its API server and etcd member
#   CRI_SOCKET     default unix:///run/containerd/containerd.sock
#   NODE_PROFILE   host (default) | kind (kind node container: skip the preflight phase)
#   ALLOW_CGROUP_V1  true: on a cgroup v1 host, skip kubeadm's SystemVerification check
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
# shellcheck source-path=SCRIPTDIR source=reset.sh
if ! declare -F reset_node >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/reset.sh"; fi
SCRIPT_NAME=kubeadm-join.sh

NODE_CA=/etc/kubernetes/pki/ca.crt
# What kubeadm join prints when the bootstrap token has expired or was never in this cluster.
EXPIRED_TOKEN_PATTERN='is invalid for this cluster or it has expired|could not find a JWS signature in the cluster-info ConfigMap for token ID'

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
                die "JOIN_COMMAND must not carry --control-plane or --certificate-key (CONTROL_PLANE and CERTIFICATE_KEY say so)" ;;
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

# kubeadm's CA pin of a certificate: sha256 of its DER SubjectPublicKeyInfo.
ca_cert_hash() {
    local der_hash
    der_hash=$(openssl x509 -pubkey -noout -in "$1" | openssl pkey -pubin -outform der | sha256sum) ||
        return 1
    der_hash=${der_hash%% *}
    [[ $der_hash =~ ^[0-9a-f]{64}$ ]] || return 1
    printf 'sha256:%s' "$der_hash"
}

# True when this node is already joined to the cluster JOIN_COMMAND is for. When it is joined to
# another cluster (the control plane was rebuilt), resets it so that it can join the new one.
already_joined() {
    [[ -f $KUBELET_CONF ]] || return 1
    [[ -r $NODE_CA ]] ||
        die "${KUBELET_CONF} exists but ${NODE_CA} does not, so this node's cluster cannot be told: run 'kubeadm reset -f' on ${NODE_NAME}, then 'pulumi up' again"
    require_cmd openssl
    local current
    current=$(ca_cert_hash "$NODE_CA") || die "cannot read the CA certificate ${NODE_CA} with openssl"
    if [[ $current == "$CA_HASH" ]]; then
        return 0
    fi
    log_step "this node is joined to another cluster (CA ${current:0:19}..., the join command pins ${CA_HASH:0:19}...): rejoining a new control plane, kubeadm reset -f and the old pod network cleared first"
    require_cmd kubeadm
    reset_node "$CRI_SOCKET"
    return 1
}

main() {
    require_root
    require_env JOIN_COMMAND NODE_NAME
    CRI_SOCKET=${CRI_SOCKET:-$DEFAULT_CRI_SOCKET}
    NODE_PROFILE=${NODE_PROFILE:-host}
    check_node_name_and_profile
    parse_join_command
    local control_plane=${CONTROL_PLANE:-false}
    if [[ $control_plane == true ]]; then
        require_env CERTIFICATE_KEY ADVERTISE_ADDRESS
        [[ $CERTIFICATE_KEY =~ ^[0-9a-f]{64}$ ]] ||
            die "CERTIFICATE_KEY is not 64 hex digits (value not shown)"
        [[ $ADVERTISE_ADDRESS =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] ||
            die "ADVERTISE_ADDRESS must be an IPv4 address, not '${ADVERTISE_ADDRESS}'"
    fi
    if already_joined; then
        log_skip "node already joined (${KUBELET_CONF} exists, same cluster CA); not running kubeadm join"
        return 0
    fi
    require_cmd kubeadm
    local args=(join "$ENDPOINT" --token "$TOKEN" --discovery-token-ca-cert-hash "$CA_HASH"
        --node-name "$NODE_NAME" --cri-socket "$CRI_SOCKET")
    if [[ $control_plane == true ]]; then
        args+=(--control-plane --certificate-key "$CERTIFICATE_KEY"
            --apiserver-advertise-address "$ADVERTISE_ADDRESS")
    fi
    if [[ $NODE_PROFILE == kind ]]; then
        args+=(--skip-phases=preflight)
    elif cgroup_v1_allowed_here; then
        args+=(--ignore-preflight-errors=SystemVerification)
    fi
    log_step "kubeadm join ${ENDPOINT} as ${NODE_NAME} (CA pinned to ${CA_HASH:0:19}...)"
    local output rc=0
    output=$(mktemp)
    kubeadm "${args[@]}" 2>&1 | tee "$output" >&2 || rc=$?
    if [[ $rc -ne 0 ]] && grep -Eq "$EXPIRED_TOKEN_PATTERN" "$output"; then
        rm -f "$output"
        die "kubeadm join ${ENDPOINT} was refused: the join command has expired (or its token is unknown to this control plane); get a fresh one by replacing the step that makes it: pulumi up --replace <URN of ${NODE_NAME}-join-token> (pulumi stack --show-urns lists it)"
    fi
    rm -f "$output"
    [[ $rc -eq 0 ]] ||
        die "kubeadm join ${ENDPOINT} failed (see its output above; 'kubeadm reset -f' clears a partial join)"
    if [[ $control_plane == true ]]; then
        retry "delete kube-system/kubeadm-certs" kubectl_admin -n kube-system delete secret \
            kubeadm-certs --ignore-not-found >/dev/null ||
            log_warn "could not delete kube-system/kubeadm-certs; kubeadm deletes it within two hours"
    fi
    log_step "done"
}

main "$@" </dev/null
