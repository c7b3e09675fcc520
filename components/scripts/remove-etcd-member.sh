#!/usr/bin/env bash
# Removes a control-plane node's member from the stacked etcd cluster, run on another
# control-plane node (the master) before the departing node's machine goes. Without it etcd
# keeps counting the gone member: a 3-member cluster scaled to 1 would have lost quorum.
# kubeadm's own `kubeadm reset` does this from the departing node; this works when that node
# is already dead too. It talks to the local etcd member's JSON gateway
# (https://127.0.0.1:2379/v3/cluster/member/*, etcd's documented gRPC gateway) with the API
# server's etcd client certificate, so it needs only curl. A member that is not there is fine.
# Environment:
#   MEMBER_NAME   required: the etcd member name (kubeadm names it after the node)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
SCRIPT_NAME=remove-etcd-member.sh

PKI=/etc/kubernetes/pki
ETCD_URL=https://127.0.0.1:2379

etcd_call() {
    curl -fsS --max-time 15 --cacert "$PKI/etcd/ca.crt" --cert "$PKI/apiserver-etcd-client.crt" \
        --key "$PKI/apiserver-etcd-client.key" -X POST -d "$2" "${ETCD_URL}/v3/cluster/member/$1"
}

# The member ID of MEMBER_NAME in member/list's JSON on stdin, or nothing. The gateway writes
# each member as {"ID":"<uint64>","name":"<name>",...} (uint64 as a JSON string).
member_id() {
    tr -d '\n' | grep -o '{"ID":"[0-9]*","name":"[^"]*"' |
        sed -n "s/^{\"ID\":\"\\([0-9]*\\)\",\"name\":\"${MEMBER_NAME//./\\.}\"\$/\\1/p"
}

main() {
    require_root
    require_env MEMBER_NAME
    [[ $MEMBER_NAME =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] ||
        die "MEMBER_NAME must be a node name (a lowercase DNS name), not '${MEMBER_NAME}'"
    require_cmd curl
    [[ -r $PKI/apiserver-etcd-client.key ]] ||
        die "no etcd client certificate in ${PKI}: run this on a control-plane node"
    local members id
    members=$(retry "etcd member list" etcd_call list '{}') ||
        die "etcd at ${ETCD_URL} did not list its members (is this node's etcd running?)"
    [[ $members == *'"members"'* ]] || die "etcd's member list has no members field"
    id=$(member_id <<<"$members")
    if [[ -z $id ]]; then
        log_skip "etcd has no member named ${MEMBER_NAME}"
        return 0
    fi
    log_step "removing etcd member ${MEMBER_NAME} (${id})"
    retry "etcd member remove" etcd_call remove "{\"ID\":\"${id}\"}" >/dev/null ||
        die "etcd refused to remove member ${MEMBER_NAME} (${id}); the cluster keeps counting it"
    # Removing the leader starts an election; return once the members answer again, so the
    # next change (another node leaving) meets a cluster with a leader.
    retry "etcd answers after the removal" etcd_call list '{}' >/dev/null ||
        die "etcd did not answer after removing ${MEMBER_NAME}: check the control-plane nodes"
    log_step "done: etcd has $(($(grep -o '"ID":' <<<"$members" | wc -l) - 1)) members"
}

main "$@" </dev/null
