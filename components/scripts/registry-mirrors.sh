#!/usr/bin/env bash
# Points this node's containerd at registry mirrors (the stack's registryMirrors): one
# hosts.toml per registry under containerd's registry config_path (containerd's
# docs/hosts.md), each mirror tried in order for pulls, then the registry itself. Makes sure
# the CRI plugin reads that directory (config_path), restarting containerd only when it had to
# add it. Directories this script wrote for registries no longer listed are removed; others
# are never touched. hosts.toml is read at each pull: changing mirrors restarts nothing.
# Environment:
#   REGISTRY_MIRRORS  one line per registry, "REGISTRY URL [URL...]" (docker.io, ghcr.io,
#                     host:port or _default), as the program renders the config; empty: remove
#                     every hosts.toml this script wrote (the step's delete)
#   CONTAINERD_CONFIG default /etc/containerd/config.toml
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
SCRIPT_NAME="registry-mirrors.sh"

MANAGED_MARK="# Written by kubeadm-cluster from the stack's registryMirrors; replaced on pulumi up."
REGISTRY_LINE='^(_default|[a-z0-9.-]+(:[0-9]{1,5})?)( https?://[A-Za-z0-9._~:/-]+)+$'

# The registry's own endpoint, the `server` of its hosts.toml (none for _default). Docker Hub's
# images are named docker.io but served from registry-1.docker.io.
registry_server() {
    case $1 in
    _default) ;;
    docker.io) printf 'https://registry-1.docker.io' ;;
    *) printf 'https://%s' "$1" ;;
    esac
}

hosts_toml() {
    local registry=$1 url server
    shift
    server=$(registry_server "$registry")
    printf '%s\n' "$MANAGED_MARK"
    [[ -z $server ]] || printf 'server = "%s"\n' "$server"
    for url in "$@"; do
        printf '\n[host."%s"]\n  capabilities = ["pull", "resolve"]\n' "$url"
    done
}

# Makes the CRI plugin read CERTS_DIR in CONTAINERD_CONFIG (which sets no config_path yet):
# fills an empty config_path, or adds the registry table for the file's config version. Sets
# CONFIG_CHANGED=1 when the file was written.
ensure_config_path() {
    local content
    if grep -Eq "^[[:space:]]*config_path[[:space:]]*=[[:space:]]*(\"\"|'')" "$CONTAINERD_CONFIG"; then
        content=$(set_registry_config_path "$CERTS_DIR" <"$CONTAINERD_CONFIG")
    elif grep -Eq '^[[:space:]]*\[plugins\.("io\.containerd\.grpc\.v1\.cri"|'"'io\.containerd\.cri\.v1\.images'"')\.registry' "$CONTAINERD_CONFIG"; then
        die "${CONTAINERD_CONFIG} configures the CRI registry without config_path (mirrors or configs tables): containerd allows only one of the two; move those settings to ${CERTS_DIR}/<registry>/hosts.toml"
    elif grep -Eq '^[[:space:]]*version[[:space:]]*=[[:space:]]*3' "$CONTAINERD_CONFIG"; then
        content=$(printf '%s\n\n[plugins.%s.registry]\n  config_path = "%s"\n' \
            "$(cat "$CONTAINERD_CONFIG")" "'io.containerd.cri.v1.images'" "$CERTS_DIR")
    else
        content=$(printf '%s\n\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "%s"\n' \
            "$(cat "$CONTAINERD_CONFIG")" "$CERTS_DIR")
    fi
    write_file_if_changed "$CONTAINERD_CONFIG" 0644 <<<"$content"
    CONFIG_CHANGED=$FILE_CHANGED
}

restart_containerd() {
    log_step "containerd now reads ${CERTS_DIR}; restarting containerd"
    systemctl restart containerd || die "containerd failed to restart with config_path ${CERTS_DIR} (see: journalctl -u containerd)"
    local _
    for _ in $(seq 60); do
        ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "containerd did not answer within 30 s of its restart (see: journalctl -u containerd)"
}

# CERTS_DIR: the config_path containerd already reads, else where ensure_config_path puts it.
current_certs_dir() {
    local current
    current=$(sed -nE "s/^[[:space:]]*config_path[[:space:]]*=[[:space:]]*[\"']([^\"']+)[\"'].*/\1/p" \
        "$CONTAINERD_CONFIG" | head -n1)
    CERTS_DIR=${current:-/etc/containerd/certs.d}
    [[ -n $current ]]
}

# Removes the directories this script wrote for registries not in "$@".
remove_unlisted() {
    local dir registry
    for dir in "$CERTS_DIR"/*/; do
        if [[ ! -f ${dir}hosts.toml ]] || ! head -n1 "${dir}hosts.toml" | grep -qxF "$MANAGED_MARK"; then
            continue
        fi
        registry=$(basename "$dir")
        if [[ " $* " != *" ${registry} "* ]]; then
            rm -rf "$dir"
            log_info "${registry}: no longer mirrored (${dir} removed)"
        fi
    done
}

main() {
    require_root
    CONTAINERD_CONFIG=${CONTAINERD_CONFIG:-/etc/containerd/config.toml}
    [[ -f $CONTAINERD_CONFIG ]] || die "${CONTAINERD_CONFIG} does not exist: containerd is not installed or configured yet"
    local line registry urls wanted=()
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        [[ $line =~ $REGISTRY_LINE ]] || die "REGISTRY_MIRRORS line '${line}' is not 'REGISTRY URL [URL...]'"
        wanted+=("${line%% *}")
    done <<<"${REGISTRY_MIRRORS:-}"
    CONFIG_CHANGED=0
    if ((${#wanted[@]})); then
        current_certs_dir || ensure_config_path
    else
        current_certs_dir || true
    fi
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        read -r registry urls <<<"$line"
        # shellcheck disable=SC2086 # the URLs are words
        write_file_if_changed "${CERTS_DIR}/${registry}/hosts.toml" 0644 < <(hosts_toml "$registry" $urls)
        if [[ $FILE_CHANGED == 1 ]]; then
            log_info "${registry}: mirrors ${urls}"
        else
            log_skip "${registry}: mirrors ${urls}"
        fi
    done <<<"${REGISTRY_MIRRORS:-}"
    remove_unlisted "${wanted[@]}"
    if [[ $CONFIG_CHANGED == 1 ]]; then
        restart_containerd
    fi
    log_step "done: ${#wanted[@]} mirrored registries in ${CERTS_DIR}"
}

main "$@" </dev/null
