#!/usr/bin/env bash
# Initialises the control plane with kubeadm (once) and applies the pod network.
# "Once" is recorded by a marker written only after `kubeadm init` succeeded: admin.conf alone is
# no proof (kubeadm writes it early, in its kubeconfig phase), so admin.conf without the marker
# stops with one error asking for `kubeadm reset -f` on the node. A control plane initialised
# before the marker existed counts as complete when its API answers and kube-system has the
# kubeadm-config ConfigMap (kubeadm's upload-config phase); the marker is written then.
# Environment:
#   NODE_NAME, ADVERTISE_ADDRESS, POD_CIDR, SERVICE_CIDR   required
#   KUBERNETES_VERSION      optional: 1.31 (the installed kubeadm's patch of it) or 1.31.4; default: the
#                           installed kubeadm's own version (the program's: the node's packages decide)
#   CERT_SANS               comma-separated extra API server certificate names (may be empty)
#   CONTROL_PLANE_ENDPOINT  optional host[:port] for the API (stable address/DNS name)
#   CRI_SOCKET              default unix:///run/containerd/containerd.sock
#   NODE_PROFILE            host (default) | kind (kind node container: kind's kubelet settings,
#                           kind's kube-proxy settings (leave nf_conntrack_max alone), no preflight);
#                           a host that cannot write nf_conntrack_max (a system container) also
#                           gets kube-proxy's conntrack maxPerCore: 0
#   CNI                     flannel (default) | kind (the node image's /kind/manifests/default-cni.yaml,
#                           its DaemonSet given CONTROL_PLANE_ENDPOINT, as kind does, so kindnet
#                           reaches the API server without kube-proxy: CONTROL_PLANE_ENDPOINT, else
#                           ADVERTISE_ADDRESS:6443)
#   DEFAULT_STORAGE         none (default) | kind (the node image's /kind/manifests/default-storage.yaml,
#                           applied as kind applies it: the cluster's default StorageClass)
#   ALLOW_CGROUP_V1         true: on a cgroup v1 host, kubelet gets failCgroupV1: false and kubeadm
#                           skips its SystemVerification check (the stack's allowCgroupV1)
#   FLANNEL_VERSION         default v0.27.4
#   FLANNEL_MANIFEST_URL    default: that release's kube-flannel.yml
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
# shellcheck source-path=SCRIPTDIR source=reset.sh
if ! declare -F clear_pod_network >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/reset.sh"; fi
SCRIPT_NAME=kubeadm-init.sh

KUBEADM_CONFIG=/etc/kubernetes/kubeadm-config.yaml
INIT_MARKER=/etc/kubernetes/.kubeadm-init-complete
APISERVER_CERT=/etc/kubernetes/pki/apiserver.crt
KIND_CNI_MANIFEST=/kind/manifests/default-cni.yaml
KIND_STORAGE_MANIFEST=/kind/manifests/default-storage.yaml
CNI_DIR=/etc/kubernetes/cni

validate() {
    require_env NODE_NAME ADVERTISE_ADDRESS POD_CIDR SERVICE_CIDR
    local cidr name
    for name in POD_CIDR SERVICE_CIDR; do
        cidr=${!name}
        [[ $cidr =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ ]] ||
            die "${name} must be an IPv4 CIDR like 10.244.0.0/16, not '${cidr}'"
    done
    [[ $ADVERTISE_ADDRESS =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] ||
        die "ADVERTISE_ADDRESS must be an IPv4 address, not '${ADVERTISE_ADDRESS}'"
    [[ -z ${KUBERNETES_VERSION:-} || ${KUBERNETES_VERSION#v} =~ ^1\.[0-9]+(\.[0-9]+)?$ ]] ||
        die "KUBERNETES_VERSION must look like 1.31 or 1.31.4, not '${KUBERNETES_VERSION}'"
    check_node_name_and_profile
    case $CNI in flannel | kind) ;; *) die "CNI must be 'flannel' or 'kind', not '${CNI}'" ;; esac
    case $DEFAULT_STORAGE in none | kind) ;; *) die "DEFAULT_STORAGE must be 'none' or 'kind', not '${DEFAULT_STORAGE}'" ;; esac
    local san
    IFS=, read -r -a SANS <<<"${CERT_SANS:-}"
    for san in "${SANS[@]}"; do
        [[ $san =~ ^[A-Za-z0-9.:*-]+$ ]] || die "CERT_SANS entry '${san}' is not a DNS name or IP address"
    done
    if [[ -n ${CONTROL_PLANE_ENDPOINT:-} ]]; then
        [[ $CONTROL_PLANE_ENDPOINT =~ ^[A-Za-z0-9.-]+(:[0-9]+)?$ ]] ||
            die "CONTROL_PLANE_ENDPOINT must be host or host:port, not '${CONTROL_PLANE_ENDPOINT}'"
    fi
}

# The kubernetesVersion for the config: the given patch, or the installed kubeadm's own.
resolve_versions() {
    require_cmd kubeadm kubectl
    KUBEADM_VERSION=$(kubeadm version -o short) || die "'kubeadm version -o short' failed"
    [[ $KUBEADM_VERSION =~ ^v1\.([0-9]+)\.[0-9]+ ]] ||
        die "cannot parse kubeadm's version '${KUBEADM_VERSION}'"
    KUBEADM_MINOR=${BASH_REMATCH[1]}
    local wanted=${KUBERNETES_VERSION:-}
    wanted=${wanted#v}
    if [[ -z $wanted ]]; then
        CLUSTER_VERSION=${KUBEADM_VERSION%%[-+]*}
    elif [[ $wanted =~ ^1\.[0-9]+$ ]]; then
        [[ ${KUBEADM_VERSION#v} == "${wanted}."* ]] ||
            die "KUBERNETES_VERSION ${wanted} does not match the installed kubeadm ${KUBEADM_VERSION}"
        CLUSTER_VERSION=${KUBEADM_VERSION%%[-+]*}
    else
        CLUSTER_VERSION=v${wanted}
    fi
    if [[ $KUBEADM_MINOR -ge 31 ]]; then KUBEADM_API=kubeadm.k8s.io/v1beta4; else KUBEADM_API=kubeadm.k8s.io/v1beta3; fi
}

render_config() {
    local san
    cat <<EOF
# Written by kubeadm-init.sh; kubeadm init reads it once.
apiVersion: ${KUBEADM_API}
kind: InitConfiguration
bootstrapTokens:
  - groups: ["system:bootstrappers:kubeadm:default-node-token"]
    ttl: 15m0s
    usages: ["signing", "authentication"]
    description: "made by kubeadm init; expires after 15 minutes"
localAPIEndpoint:
  advertiseAddress: ${ADVERTISE_ADDRESS}
  bindPort: 6443
nodeRegistration:
  name: "${NODE_NAME}"
  criSocket: "${CRI_SOCKET}"
EOF
    if [[ $NODE_PROFILE == kind ]]; then
        printf 'skipPhases:\n  - preflight\n'
    elif cgroup_v1_allowed_here; then
        printf '  ignorePreflightErrors:\n    - SystemVerification\n'
    fi
    cat <<EOF
---
apiVersion: ${KUBEADM_API}
kind: ClusterConfiguration
kubernetesVersion: ${CLUSTER_VERSION}
EOF
    if [[ -n ${CONTROL_PLANE_ENDPOINT:-} ]]; then
        printf 'controlPlaneEndpoint: "%s"\n' "$CONTROL_PLANE_ENDPOINT"
    fi
    cat <<EOF
networking:
  podSubnet: ${POD_CIDR}
  serviceSubnet: ${SERVICE_CIDR}
apiServer:
  certSANs:
EOF
    local all_sans=("$ADVERTISE_ADDRESS")
    for san in "${SANS[@]}"; do
        [[ -n $san ]] && all_sans+=("$san")
    done
    printf '%s\n' "${all_sans[@]}" | awk '!seen[$0]++ { printf "    - \"%s\"\n", $0 }'
    cat <<EOF
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
EOF
    if [[ $NODE_PROFILE == host ]] && cgroup_v1_allowed_here && [[ $KUBEADM_MINOR -ge 31 ]]; then
        printf 'failCgroupV1: false\n'
    fi
    if [[ $NODE_PROFILE == kind ]]; then
        cat <<EOF
cgroupRoot: /kubelet
failSwapOn: false
imageGCHighThresholdPercent: 100
evictionHard:
  imagefs.available: "0%"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
EOF
        # A node container runs on whatever cgroup version its host has; kubelet refuses cgroup
        # v1 from 1.35 on unless told otherwise (failCgroupV1, a field since 1.31).
        if [[ ! -f /sys/fs/cgroup/cgroup.controllers && $KUBEADM_MINOR -ge 31 ]]; then
            printf 'failCgroupV1: false\n'
        fi
        cat <<EOF
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
iptables:
  minSyncPeriod: 1s
conntrack:
  # Leave net.netfilter.nf_conntrack_max alone: it is global to the host, and kube-proxy in a
  # node container cannot raise it (on kernels >= 5.12 it crash-loops trying).
  maxPerCore: 0
EOF
    elif ! conntrack_max_writable; then
        # A system container (LXD, or the e2e's machines): nf_conntrack_max belongs to the host.
        # kube-proxy before 1.37 writes it whatever its value and crash-loops on the refusal
        # (1.37 writes it only when it is lower); leave it to the host, as kind does.
        log_info "nf_conntrack_max is not writable on this node (a container?): kube-proxy leaves it alone"
        cat <<EOF
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
conntrack:
  maxPerCore: 0
EOF
    fi
}

# False on a node that cannot set net.netfilter.nf_conntrack_max: only the host's initial
# network namespace can, so a system container sees it read-only.
conntrack_max_writable() {
    local path=/proc/sys/net/netfilter/nf_conntrack_max
    [[ ! -e $path || -w $path ]]
}

# A control plane initialised before this script wrote markers: its API answers and kubeadm
# got through its last phases: upload-config (kubeadm-config), bootstrap-token (cluster-info,
# which joins need) and addon (the CoreDNS and kube-proxy ConfigMaps). A failed init that is
# merely retried stops short of some of these and must be reset instead.
initialised_before_markers() {
    retry "API server answers" kubectl_admin get --raw=/readyz >/dev/null || return 1
    local object
    for object in kube-system/kubeadm-config kube-public/cluster-info kube-system/coredns \
        kube-system/kube-proxy; do
        kubectl_admin -n "${object%%/*}" get configmap "${object#*/}" -o name >/dev/null 2>&1 ||
            return 1
    done
}

write_init_marker() {
    write_file_if_changed "$INIT_MARKER" 0644 <<<"kubeadm init completed (Kubernetes ${1})"
}

init_control_plane() {
    local content
    content=$(render_config)
    write_file_if_changed "$KUBEADM_CONFIG" 0600 <<<"$content"
    local config_changed=$FILE_CHANGED
    if [[ -f $INIT_MARKER && ! -f $ADMIN_CONF ]]; then
        log_info "${INIT_MARKER} is left from a control plane that is gone (${ADMIN_CONF} is missing, e.g. after 'kubeadm reset'); clearing the pod network reset leaves, then initialising anew"
        clear_pod_network
        rm -f "$INIT_MARKER"
    fi
    if [[ ! -f $INIT_MARKER && -f $ADMIN_CONF ]]; then
        initialised_before_markers ||
            die "${ADMIN_CONF} exists but kubeadm init never finished here (no ${INIT_MARKER}; the API server does not answer or kubeadm's last phases left no trace): run 'kubeadm reset -f' on ${NODE_NAME}, then 'pulumi up' again"
        log_info "control plane was initialised before init markers were kept; recording it in ${INIT_MARKER}"
        write_init_marker "$CLUSTER_VERSION"
    fi
    if [[ -f $INIT_MARKER ]]; then
        log_skip "control plane already initialised (${INIT_MARKER} exists); not running kubeadm init"
        if [[ $config_changed == 1 ]]; then
            log_info "${KUBEADM_CONFIG} changed: an initialised cluster is not re-initialised; the API server certificate is checked against its names below"
        fi
        return 0
    fi
    log_step "kubeadm init (Kubernetes ${CLUSTER_VERSION}, config ${KUBEADM_API})"
    kubeadm init --config "$KUBEADM_CONFIG" --skip-token-print >&2 ||
        die "kubeadm init failed (see its output above): run 'kubeadm reset -f' on ${NODE_NAME} to clear the partial init, then 'pulumi up' again"
    write_init_marker "$CLUSTER_VERSION"
}

# The names the API server certificate must carry: the advertise address, CERT_SANS and the
# host of CONTROL_PLANE_ENDPOINT, one a line, each once.
wanted_certificate_names() {
    local san
    {
        printf '%s\n' "$ADVERTISE_ADDRESS"
        for san in "${SANS[@]}"; do
            [[ -n $san ]] && printf '%s\n' "$san"
        done
        if [[ -n ${CONTROL_PLANE_ENDPOINT:-} ]]; then printf '%s\n' "${CONTROL_PLANE_ENDPOINT%:*}"; fi
    } | awk '!seen[$0]++'
}

# The DNS names and IP addresses a PEM certificate on stdin names, one a line.
names_in_certificate() {
    openssl x509 -noout -ext subjectAltName 2>/dev/null |
        tail -n +2 | tr ',' '\n' | sed -E 's/^[[:space:]]*(DNS|IP Address)://; s/[[:space:]]+$//'
}

# The names in the certificate the API server serves now (it reloads its certificate files
# when they change: kube-apiserver's dynamic serving certificate, a file watch plus a check
# every minute).
served_certificate_names() {
    openssl s_client -connect "${ADVERTISE_ADDRESS}:6443" </dev/null 2>/dev/null | names_in_certificate
}

# True once the served certificate names every NAME given.
serves_names() {
    local served name
    served=$(served_certificate_names)
    for name in "$@"; do
        grep -qxF "$name" <<<"$served" || return 1
    done
}

# An initialised control plane whose API server certificate lacks a name the stack now gives
# (a new endpoint address or DNS name) gets a new certificate with every current name, the
# cluster's kubeadm-config learns them (so `kubeadm upgrade`, which renews certificates from it,
# keeps them), and the API server serves it without a restart (it reloads the files). kubeadm's
# documented way to add certSANs:
# https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-reconfigure/
reconcile_certificate_names() {
    [[ -f $APISERVER_CERT ]] || return 0
    require_cmd openssl
    local current name missing=()
    current=$(names_in_certificate <"$APISERVER_CERT")
    [[ -n $current ]] || die "cannot read the names in ${APISERVER_CERT}"
    while IFS= read -r name; do
        grep -qxF "$name" <<<"$current" || missing+=("$name")
    done < <(wanted_certificate_names)
    if [[ ${#missing[@]} -eq 0 ]]; then
        log_skip "the API server certificate names every address and name of the endpoint"
        return 0
    fi
    log_step "the API server certificate does not name ${missing[*]}: issuing one that names every current address"
    local old
    old="${APISERVER_CERT%/*}/replaced-$(date +%Y%m%dT%H%M%S)"
    mkdir -p "$old"
    mv "$APISERVER_CERT" "${APISERVER_CERT%.crt}.key" "$old/"
    if ! kubeadm init phase certs apiserver --config "$KUBEADM_CONFIG" >&2; then
        mv "$old/apiserver.crt" "$old/apiserver.key" "${APISERVER_CERT%/*}/"
        die "kubeadm could not issue the API server certificate (see its output above); the old one is back in place"
    fi
    kubeadm init phase upload-config kubeadm --config "$KUBEADM_CONFIG" >&2 ||
        die "kubeadm could not record the new certificate names in kube-system/kubeadm-config (see its output above); run pulumi up again"
    local deadline=$((SECONDS + 90))
    until serves_names "${missing[@]}"; do
        [[ $SECONDS -lt $deadline ]] ||
            die "the API server still serves its old certificate 90s after the new one was written to ${APISERVER_CERT}: restart it (crictl stop its container) and run pulumi up again"
        sleep 2
    done
    log_step "the API server now serves a certificate naming ${missing[*]} (the old one is in ${old})"
}

wait_for_api() {
    retry "API server answers" kubectl_admin get --raw=/readyz >/dev/null ||
        die "the API server does not answer at the address in ${ADMIN_CONF}"
}

flannel_manifest() {
    local version=${FLANNEL_VERSION:-v0.27.4}
    [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "FLANNEL_VERSION must look like v0.26.1, not '${version}'"
    local url=${FLANNEL_MANIFEST_URL:-https://github.com/flannel-io/flannel/releases/download/${version}/kube-flannel.yml}
    local raw="${CNI_DIR}/kube-flannel-${version}.upstream.yml" out="${CNI_DIR}/kube-flannel.yml"
    install -d -m 0755 "$CNI_DIR"
    if [[ ! -s $raw ]]; then
        log_step "downloading the flannel ${version} manifest"
        download "$url" "$raw"
    fi
    grep -q '"Network": "[^"]*"' "$raw" || die "the flannel manifest has no net-conf.json \"Network\" to set"
    local content
    content=$(sed -E "s#\"Network\": \"[^\"]*\"#\"Network\": \"${POD_CIDR}\"#" "$raw")
    write_file_if_changed "$out" 0644 <<<"$content"
    CNI_MANIFEST=$out
}

# The API endpoint kindnet is given: CONTROL_PLANE_ENDPOINT (default port 6443), else the
# advertise address.
kindnet_endpoint() {
    local endpoint=${CONTROL_PLANE_ENDPOINT:-${ADVERTISE_ADDRESS}:6443}
    [[ $endpoint == *:* ]] || endpoint+=:6443
    printf '%s' "$endpoint"
}

# What kind's installcni action does when the manifest asks for it ("would you kindly patch this
# file"): add CONTROL_PLANE_ENDPOINT to the env of the DaemonSet's first container, so kindnet
# reaches the API server directly instead of waiting for kube-proxy's service address.
# Reads the manifest on stdin, writes it patched on stdout; exits 3 when there is no env list.
add_kindnet_endpoint() {
    awk -v endpoint="$1" '
        function indent_of(line) { match(line, /^ */); return RLENGTH }
        function flush(    i, ds, containers, patched, pad) {
            ds = 0; containers = 0; patched = 0
            for (i = 1; i <= n; i++) if (doc[i] ~ /^kind: *DaemonSet *$/) ds = 1
            for (i = 1; i <= n; i++) {
                print doc[i]
                if (!ds || done || patched) continue
                if (doc[i] ~ /^ *containers: *$/) containers = 1
                if (containers && doc[i] ~ /^ *(- )?env: *$/ && i < n && doc[i + 1] ~ /^ *- /) {
                    pad = sprintf("%" indent_of(doc[i + 1]) "s", "")
                    print pad "- name: CONTROL_PLANE_ENDPOINT"
                    print pad "  value: \"" endpoint "\""
                    patched = 1
                    done = 1
                }
            }
            n = 0
        }
        /^---/ { flush(); print; next }
        { doc[++n] = $0 }
        END { flush(); if (!done) exit 3 }
    '
}

kind_manifest() {
    [[ -r $KIND_CNI_MANIFEST ]] || die "CNI=kind needs ${KIND_CNI_MANIFEST} (a kind node image)"
    install -d -m 0755 "$CNI_DIR"
    local out="${CNI_DIR}/kindnet.yml"
    local content endpoint rc=0
    content=$(sed -E "s#\\{\\{ *\\.PodSubnet *\\}\\}#${POD_CIDR}#g" "$KIND_CNI_MANIFEST")
    if [[ $content == *"would you kindly patch this file"* ]] &&
        ! grep -Eq '^[[:space:]]*(-[[:space:]]*)?name:[[:space:]]*"?CONTROL_PLANE_ENDPOINT"?[[:space:]]*$' <<<"$content"; then
        endpoint=$(kindnet_endpoint)
        content=$(add_kindnet_endpoint "$endpoint" <<<"$content") || rc=$?
        [[ $rc -eq 0 ]] ||
            die "cannot give kindnet CONTROL_PLANE_ENDPOINT: ${KIND_CNI_MANIFEST} has no DaemonSet whose first container has an env list"
        log_info "kindnet reaches the API server at ${endpoint} (CONTROL_PLANE_ENDPOINT)"
    fi
    write_file_if_changed "$out" 0644 <<<"$content"
    CNI_MANIFEST=$out
}

apply_cni() {
    if [[ $CNI == flannel ]]; then
        flannel_manifest
        log_step "applying the flannel pod network (${CNI_MANIFEST})"
    else
        kind_manifest
        log_step "applying the node image's own pod network (${KIND_CNI_MANIFEST}, written as ${CNI_MANIFEST})"
    fi
    retry "kubectl apply ${CNI}" kubectl_admin apply -f "$CNI_MANIFEST" >&2 ||
        die "applying the ${CNI} pod network manifest failed"
}

apply_default_storage() {
    [[ $DEFAULT_STORAGE == kind ]] || return 0
    [[ -r $KIND_STORAGE_MANIFEST ]] || die "DEFAULT_STORAGE=kind needs ${KIND_STORAGE_MANIFEST} (a kind node image)"
    log_step "applying the node image's default storage (${KIND_STORAGE_MANIFEST})"
    retry "kubectl apply default storage" kubectl_admin apply -f "$KIND_STORAGE_MANIFEST" >&2 ||
        die "applying ${KIND_STORAGE_MANIFEST} failed"
}

main() {
    require_root
    CRI_SOCKET=${CRI_SOCKET:-$DEFAULT_CRI_SOCKET}
    NODE_PROFILE=${NODE_PROFILE:-host}
    CNI=${CNI:-flannel}
    DEFAULT_STORAGE=${DEFAULT_STORAGE:-none}
    validate
    resolve_versions
    init_control_plane
    wait_for_api
    reconcile_certificate_names
    apply_cni
    apply_default_storage
    log_step "done"
}

main "$@" </dev/null
