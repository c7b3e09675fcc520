#!/usr/bin/env bash
# Moves one node of a running cluster to KUBERNETES_VERSION, in kubeadm's order
# (https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/):
#   control plane: kubeadm package, `kubeadm upgrade plan` then `apply`, drain (when another node
#                  can take its pods), kubelet and kubectl packages, containerd's pause image, kubelet restart,
#                  Ready at the new version, uncordon;
#   worker:        drain, kubeadm package, `kubeadm upgrade node`, kubelet and kubectl packages,
#                  pause image, kubelet restart, Ready at the new version, uncordon.
# The version the cluster runs is read from the cluster: kubeadm-config's ClusterConfiguration
# kubernetesVersion, and each node's kubelet version. Before anything on the node changes it
# refuses a downgrade and a skipped minor (kubeadm upgrades one minor at a time). A worker runs
# only once the control plane is at the wanted version (the program orders the steps so).
# Rerunning resumes: a node already at the version is left alone, a node this script cordoned
# is uncordoned once it is. A node that is not in a cluster yet is left to install-kubeadm.sh.
# Environment:
#   ROLE                  control-plane (the first: `kubeadm upgrade apply`) |
#                         additional-control-plane (another: `kubeadm upgrade node`, after the
#                         first, as kubeadm's upgrade guide orders them) | worker
#   NODE_NAME             this node's Kubernetes name
#   KUBERNETES_VERSION    a minor (1.32: any patch of it; the newest when moving to it) or a patch
#   ADMIN_KUBECONFIG      worker: the cluster's admin kubeconfig (its content; kept in a file only
#                         while the script runs); the control plane uses /etc/kubernetes/admin.conf
#   DRAIN_TIMEOUT         how long a drain may take, like 300s or 5m (default 300s)
#   READY_TIMEOUT_SECONDS how long the node may take to be Ready at the new version (default 300)
#   ALLOW_CGROUP_V1       true: kubeadm skips its SystemVerification check on a cgroup v1 host
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
# shellcheck source-path=SCRIPTDIR source=packages.sh
if ! declare -F use_repository >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/packages.sh"; fi
SCRIPT_NAME=upgrade-node.sh

# On a node this script cordoned: the version it is moving to. A node cordoned by someone else
# carries no such annotation and stays cordoned.
CORDON_ANNOTATION=kubeadm-cluster/upgrade-cordoned

k() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }

validate() {
    require_env ROLE NODE_NAME
    case $ROLE in control-plane | additional-control-plane | worker) ;; *) die "ROLE must be 'control-plane', 'additional-control-plane' or 'worker', not '${ROLE}'" ;; esac
    NODE_PROFILE=host check_node_name_and_profile
    DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-300s}
    [[ $DRAIN_TIMEOUT =~ ^[0-9]+(s|m|h)$ ]] || die "DRAIN_TIMEOUT must be a duration like 300s or 5m, not '${DRAIN_TIMEOUT}'"
    READY_TIMEOUT_SECONDS=${READY_TIMEOUT_SECONDS:-300}
    [[ $READY_TIMEOUT_SECONDS =~ ^[1-9][0-9]*$ ]] || die "READY_TIMEOUT_SECONDS must be a positive number, not '${READY_TIMEOUT_SECONDS}'"
}

use_kubeconfig() {
    if [[ $ROLE != worker ]]; then
        [[ -f $ADMIN_CONF ]] || die "${ADMIN_CONF} is missing: this is not an initialised control-plane node"
        KUBECONFIG_FILE=$ADMIN_CONF
        return 0
    fi
    require_env ADMIN_KUBECONFIG
    KUBECONFIG_FILE=$(mktemp)
    trap 'rm -f "$KUBECONFIG_FILE"' EXIT
    printf '%s\n' "$ADMIN_KUBECONFIG" >"$KUBECONFIG_FILE"
}

cluster_version() {
    local config version
    config=$(k -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}') ||
        die "cannot read kube-system/kubeadm-config from the API server (is it up?)"
    version=$(awk '$1 == "kubernetesVersion:" { print $2 }' <<<"$config")
    [[ $version =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "kubeadm-config names no kubernetesVersion like v1.31.4 (found '${version}')"
    printf '%s' "${version#v}"
}

node_field() { k get node "$NODE_NAME" -o jsonpath="$1"; }

# The node's CORDON_ANNOTATION value, or nothing (a Go template: a key with a slash).
cordon_mark() {
    # shellcheck disable=SC2016 # a Go template, not shell
    k get node "$NODE_NAME" -o go-template --template \
        '{{range $k, $v := .metadata.annotations}}{{if eq $k "'"$CORDON_ANNOTATION"'"}}{{$v}}{{end}}{{end}}' \
        2>/dev/null || true
}

minor_of() { local v=${1#v}; v=${v#1.}; printf '%s' "${v%%.*}"; }

# Sets TARGET, the release the node moves to, or stops before anything changes.
choose_target() {
    local cluster=$1 cluster_minor wanted_minor
    cluster_minor=$(minor_of "$cluster")
    wanted_minor=$(minor_of "$MINOR")
    local steps="set kubernetesVersion to 1.$((cluster_minor + 1)), run pulumi up, and repeat one minor at a time"
    if [[ $wanted_minor -lt $cluster_minor ]] || { [[ -n $PATCH ]] && ! version_ge "$PATCH" "$cluster"; }; then
        die "the cluster runs Kubernetes ${cluster}; ${PATCH:-${MINOR}} would be a downgrade, which kubeadm does not do: set kubernetesVersion back to ${cluster} (or rebuild the cluster at the older version)"
    fi
    if [[ $wanted_minor -gt $((cluster_minor + 1)) ]]; then
        die "the cluster runs Kubernetes ${cluster}; ${PATCH:-${MINOR}} skips a minor version, and kubeadm upgrades one minor at a time: ${steps}"
    fi
    if [[ $wanted_minor -eq $cluster_minor && (-z $PATCH || $PATCH == "$cluster") ]]; then
        TARGET=$cluster
        return 0
    fi
    if [[ $ROLE != control-plane ]]; then
        die "the control plane runs Kubernetes ${cluster}, not ${PATCH:-${MINOR}}: it is upgraded first, by its own step; run pulumi up again"
    fi
    use_repository
    resolve_release
    TARGET=$RELEASE
}

# Evicts the node's pods within DRAIN_TIMEOUT, or stops naming each pod left and the
# PodDisruptionBudget that holds it. The node stays cordoned either way.
drain() {
    local unschedulable mark
    unschedulable=$(node_field '{.spec.unschedulable}')
    mark=$(cordon_mark)
    if [[ $unschedulable == true && -z $mark ]]; then
        log_info "${NODE_NAME} was cordoned before the upgrade: it stays cordoned afterwards"
    else
        k annotate node "$NODE_NAME" --overwrite "${CORDON_ANNOTATION}=v${TARGET}" >/dev/null
    fi
    log_step "draining ${NODE_NAME} (at most ${DRAIN_TIMEOUT})"
    if k drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --timeout="$DRAIN_TIMEOUT" >&2; then
        return 0
    fi
    die "draining ${NODE_NAME} did not finish within ${DRAIN_TIMEOUT}: $(blocked_pods). ${NODE_NAME} stays cordoned and the other nodes keep serving; let the budget allow a disruption (more ready replicas, or a looser budget) and run pulumi up again to resume"
}

# "pod NS/NAME held by PodDisruptionBudget NS/PDB (0 disruptions allowed), ..." for the pods a
# drain evicts (not DaemonSet or static pods) that are still on the node and not terminating.
blocked_pods() {
    local pods ns pod owner budgets name allowed selector found out=()
    # shellcheck disable=SC2016 # a Go template, not shell
    pods=$(k get pods -A --field-selector "spec.nodeName=${NODE_NAME}" -o go-template \
        --template '{{range .items}}{{.metadata.namespace}} {{.metadata.name}} {{if .metadata.deletionTimestamp}}terminating{{else}}{{range .metadata.ownerReferences}}{{.kind}}{{end}}{{end}}{{"\n"}}{{end}}' 2>/dev/null || true)
    while read -r ns pod owner; do
        [[ -n $pod && $owner != DaemonSet && $owner != Node && $owner != terminating ]] || continue
        found=
        # shellcheck disable=SC2016 # a Go template, not shell
        budgets=$(k -n "$ns" get poddisruptionbudgets -o go-template \
            --template '{{range .items}}{{.metadata.name}} {{.status.disruptionsAllowed}} {{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}},{{end}}{{"\n"}}{{end}}' 2>/dev/null || true)
        while read -r name allowed selector; do
            [[ -n $name && -n $selector && $allowed == 0 ]] || continue
            if k -n "$ns" get pods -l "${selector%,}" -o name 2>/dev/null | grep -qx "pod/${pod}"; then
                out+=("pod ${ns}/${pod} held by PodDisruptionBudget ${ns}/${name} (0 disruptions allowed)")
                found=1
            fi
        done <<<"$budgets"
        [[ -n $found ]] || out+=("pod ${ns}/${pod} still on the node (see kubectl drain's messages above)")
    done <<<"$pods"
    if [[ ${#out[@]} -eq 0 ]]; then
        printf 'kubectl drain failed (see its messages above)'
    else
        local IFS=';'
        printf '%s' "${out[*]}" | sed 's/;/; /g'
    fi
}

# True when another node can take this one's pods (a lone control plane is not drained: its
# pods keep running through the kubelet restart).
other_schedulable_node() {
    k get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.unschedulable}{"\n"}{end}' |
        awk -v me="$NODE_NAME" '$1 != me && $2 != "true" { found = 1 } END { exit !found }'
}

wait_ready_at_target() {
    local deadline=$((SECONDS + READY_TIMEOUT_SECONDS)) state=
    while [[ $SECONDS -lt $deadline ]]; do
        state=$(node_field '{.status.nodeInfo.kubeletVersion} {.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
        [[ $state == "v${TARGET} True" ]] && return 0
        sleep 3
    done
    die "${NODE_NAME} was not Ready with kubelet v${TARGET} within ${READY_TIMEOUT_SECONDS}s (last seen: '${state}'; see journalctl -u kubelet on the node)"
}

uncordon_if_ours() {
    [[ -n $(cordon_mark) ]] || return 0
    k uncordon "$NODE_NAME" >&2
    k annotate node "$NODE_NAME" "${CORDON_ANNOTATION}-" >/dev/null
}

preflight_flags() {
    if cgroup_v1_allowed_here; then printf '%s' --ignore-preflight-errors=SystemVerification; fi
}

upgrade_control_plane() {
    local cluster=$1
    [[ $cluster == "$TARGET" ]] && return 0
    repository_configured || use_repository
    install_held "$TARGET" kubeadm
    # Given the version, plan asks nothing online (kubeadm's OfflineVersionGetter); it checks the
    # cluster's health and that this step is one kubeadm supports, before apply changes anything.
    log_step "kubeadm upgrade plan v${TARGET}"
    # shellcheck disable=SC2046 # no flag, or one without spaces
    kubeadm upgrade plan "v${TARGET}" $(preflight_flags) >&2 ||
        die "kubeadm upgrade plan v${TARGET} refused the upgrade (see its output above); nothing was changed"
    log_step "kubeadm upgrade apply v${TARGET} (the cluster runs ${cluster})"
    # shellcheck disable=SC2046 # no flag, or one without spaces
    kubeadm upgrade apply "v${TARGET}" --yes $(preflight_flags) >&2 ||
        die "kubeadm upgrade apply v${TARGET} failed (see its output above); the control plane keeps running ${cluster} or the parts already upgraded; run pulumi up again to retry"
}

upgrade_kubelet() {
    local drained=
    if [[ $ROLE == worker ]] || other_schedulable_node; then
        drain
        drained=1
    else
        log_info "${NODE_NAME} is the only node that can run pods: not drained"
    fi
    repository_configured || use_repository
    if [[ $ROLE != control-plane ]]; then
        install_held "$TARGET" kubeadm
        log_step "kubeadm upgrade node"
        # shellcheck disable=SC2046 # no flag, or one without spaces
        kubeadm upgrade node $(preflight_flags) >&2 || die "kubeadm upgrade node failed (see its output above); run pulumi up again to retry"
    fi
    install_held "$TARGET" kubelet kubectl
    follow_kubeadm_pause_image
    systemctl daemon-reload
    systemctl restart kubelet || die "kubelet failed to restart at v${TARGET} (see journalctl -u kubelet)"
    wait_ready_at_target
    [[ -z $drained ]] || uncordon_if_ours
}

main() {
    require_root
    validate
    parse_wanted_version
    if [[ ! -f $KUBELET_CONF ]]; then
        log_skip "${NODE_NAME} is not in a cluster yet: it is installed at ${PATCH:-${MINOR}} when it joins"
        return 0
    fi
    require_cmd kubeadm kubectl
    use_kubeconfig
    local cluster node
    cluster=$(cluster_version)
    choose_target "$cluster"
    node=$(node_field '{.status.nodeInfo.kubeletVersion}') || die "cannot read node ${NODE_NAME} from the API server"
    if [[ $ROLE == control-plane ]]; then
        upgrade_control_plane "$cluster"
    fi
    if [[ $node == "v${TARGET}" ]]; then
        uncordon_if_ours
        log_skip "${NODE_NAME} runs kubelet v${TARGET}"
        return 0
    fi
    log_step "moving ${NODE_NAME} from kubelet ${node} to v${TARGET}"
    upgrade_kubelet
    log_step "done: ${NODE_NAME} runs v${TARGET}"
}

main "$@" </dev/null
