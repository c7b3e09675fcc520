#!/usr/bin/env bash
# Prints on stdout exactly two lines and nothing else (the caller keeps them secret): a fresh,
# short-lived worker join command (`kubeadm token create --print-join-command`), then the
# Kubernetes release the cluster runs (kubeadm-config's kubernetesVersion, like 1.31.4), the one
# a joining worker installs.
# With CONTROL_PLANE=true a third line follows: a fresh certificate key, with which kubeadm has
# just uploaded the cluster's CA and service-account keys, encrypted, to the kube-system/
# kubeadm-certs Secret (`kubeadm init phase upload-certs`); a joining control-plane node fetches
# them with it. kubeadm deletes that Secret after two hours, and the joining node deletes it as
# soon as it has joined (kubeadm-join.sh), so the key opens nothing for long.
# Environment:
#   TOKEN_TTL      token lifetime, a duration like 15m or 1h (default 15m; 0 = forever is refused)
#   CONTROL_PLANE  true: also upload the certificates with a new key and print the key
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
SCRIPT_NAME=join-token.sh

main() {
    require_root
    local ttl=${TOKEN_TTL:-15m}
    [[ $ttl =~ ^([0-9]+(h|m|s))+$ ]] || die "TOKEN_TTL must be a duration like 15m or 1h, not '${ttl}'"
    [[ $ttl =~ [1-9] ]] || die "TOKEN_TTL must be more than zero (a zero TTL never expires)"
    require_control_plane
    require_cmd kubeadm kubectl
    local line
    line=$(kubeadm token create --print-join-command --ttl "$ttl") ||
        die "kubeadm token create failed (is the API server up?)"
    line=$(printf '%s' "$line" | sed -e 's/[[:space:]]*$//' | grep -v '^[[:space:]]*$' || true)
    [[ $(wc -l <<<"$line") -eq 1 && $line == "kubeadm join "* && $line == *"--discovery-token-ca-cert-hash sha256:"* ]] ||
        die "kubeadm token create did not print a join command with a CA certificate hash"
    local config version
    config=$(kubectl_admin -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}') ||
        die "cannot read kube-system/kubeadm-config (is the API server up?)"
    version=$(awk '$1 == "kubernetesVersion:" { print $2 }' <<<"$config")
    [[ $version =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "kubeadm-config names no kubernetesVersion like v1.31.4 (found '${version}')"
    if [[ ${CONTROL_PLANE:-false} == true ]]; then
        grep -Eq '^controlPlaneEndpoint: *[^ ]' <<<"$config" ||
            die "this cluster was initialised without a controlPlaneEndpoint, so kubeadm cannot add a control-plane node to it: every kubeconfig names the first node. Rebuild it with the endpoint (README, High availability)"
        local key
        key=$(kubeadm certs certificate-key) || die "kubeadm certs certificate-key failed"
        [[ $key =~ ^[0-9a-f]{64}$ ]] || die "kubeadm certs certificate-key did not print 64 hex digits"
        # Its stdout repeats the key: never logged.
        kubeadm init phase upload-certs --upload-certs --certificate-key "$key" >/dev/null ||
            die "kubeadm init phase upload-certs failed (is the API server up?)"
        printf '%s\n%s\n%s\n' "$line" "${version#v}" "$key"
        log_step "printed a control-plane join command valid for ${ttl}; the certificates are uploaded for 2h at most"
        return 0
    fi
    printf '%s\n%s\n' "$line" "${version#v}"
    log_step "printed a join command valid for ${ttl}"
}

main "$@" </dev/null
