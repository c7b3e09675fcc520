#!/usr/bin/env bash
# Functions that return a node to how it was before it joined a cluster, shared by every path
# that resets one: kubeadm-join.sh (a node joined to a control plane that was rebuilt),
# kubeadm-init.sh (a control plane initialised anew after a reset) and reset-node.sh (a machine
# leaving the cluster). Defines functions only: sent on stdin after common.sh.
#
# `kubeadm reset` removes the node's certificates, kubeconfigs, static pods, etcd data and kubelet
# state, and stops kubelet. Its documentation says what it leaves: the CNI configuration, the pod
# network's links, the iptables (and nftables) rules, IPVS tables. A node that rejoins with those
# turns Ready while its pods cannot talk (the old bridge keeps the old pod subnet, the old
# KUBE- rules point at the old cluster's endpoints). clear_pod_network removes them by name only:
# the machine's own firewall rules and links stay.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi

# The pod network's state: CNI configuration, IP allocations (host-local IPAM) and flannel's
# subnet lease.
POD_NETWORK_PATHS=(/etc/cni/net.d /var/lib/cni /run/flannel)
# The bridge flannel's CNI config names, flannel's VXLAN devices, kube-proxy's IPVS dummy.
POD_NETWORK_LINKS=(cni0 flannel.1 flannel-v6.1 kube-ipvs0)
# Chain name prefixes of kube-proxy, flannel and the CNI plugins (portmap, firewall).
CLUSTER_CHAIN_PATTERN='KUBE-|FLANNEL|CNI-'
# nftables tables of kube-proxy's nftables mode and flannel's.
CLUSTER_NFT_TABLES=(kube-proxy flannel)

# Removes every rule and chain whose line names a cluster chain from each iptables variant
# present (legacy and nft back ends both, as kube-proxy may have used either), keeping the rest.
clear_cluster_iptables() {
    local save restore rules
    for save in iptables-save ip6tables-save iptables-legacy-save ip6tables-legacy-save \
        iptables-nft-save ip6tables-nft-save; do
        command -v "$save" >/dev/null 2>&1 || continue
        restore=${save/-save/-restore}
        command -v "$restore" >/dev/null 2>&1 || continue
        rules=$("$save" 2>/dev/null) || continue
        grep -Eq "$CLUSTER_CHAIN_PATTERN" <<<"$rules" || continue
        grep -Ev "$CLUSTER_CHAIN_PATTERN" <<<"$rules" | "$restore" ||
            die "${restore} failed while removing the cluster's chains (${CLUSTER_CHAIN_PATTERN})"
    done
}

clear_cluster_nftables() {
    command -v nft >/dev/null 2>&1 || return 0
    local family table
    for family in ip ip6 inet; do
        for table in "${CLUSTER_NFT_TABLES[@]}"; do
            if nft list table "$family" "$table" >/dev/null 2>&1; then
                nft delete table "$family" "$table"
            fi
        done
    done
}

# What kubeadm reset leaves of the pod network: config, allocations, links, rules.
clear_pod_network() {
    local path link
    for path in "${POD_NETWORK_PATHS[@]}"; do
        if [[ -d $path ]]; then
            find "$path" -mindepth 1 -delete
        fi
    done
    for link in "${POD_NETWORK_LINKS[@]}"; do
        if ip link show "$link" >/dev/null 2>&1; then
            ip link delete "$link"
        fi
    done
    clear_cluster_iptables
    clear_cluster_nftables
    log_info "pod network cleared: ${POD_NETWORK_PATHS[*]}, links ${POD_NETWORK_LINKS[*]}, chains ${CLUSTER_CHAIN_PATTERN}"
}

# kubeadm reset -f on socket $1 (when kubeadm is installed), the files this program's steps
# keep next to kubeadm's, then clear_pod_network.
reset_node() {
    local cri_socket=$1
    if command -v kubeadm >/dev/null 2>&1; then
        kubeadm reset -f --cri-socket "$cri_socket" >&2 ||
            die "kubeadm reset -f failed (see its output above); the node is not reset"
    fi
    rm -f /etc/kubernetes/kubeadm-config.yaml /etc/kubernetes/.kubeadm-init-complete
    rm -rf /etc/kubernetes/cni
    clear_pod_network
}
