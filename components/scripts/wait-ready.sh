#!/usr/bin/env bash
# Waits until every expected node is registered and Ready.
# Environment:
#   EXPECTED_NODES          required: space-separated node names
#   READY_TIMEOUT_SECONDS   default 600
#   READY_POLL_SECONDS      default 5
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
SCRIPT_NAME=wait-ready.sh

# One line per node: NAME READY-CONDITION-STATUS (True / False / Unknown).
NODE_READY_JSONPATH='{range .items[*]}{.metadata.name}{" "}{range .status.conditions[?(@.type=="Ready")]}{.status}{end}{"\n"}{end}'

# Prints the expected nodes that are not Ready as "name (state)", comma-separated.
not_ready() {
    local listing=$1 node state out=()
    for node in "${NODES[@]}"; do
        state=$(awk -v n="$node" '$1 == n { print ($2 == "True") ? "Ready" : "NotReady"; found = 1 }
                                   END { if (!found) print "missing" }' <<<"$listing")
        [[ $state == Ready ]] || out+=("${node} (${state})")
    done
    local IFS=,
    printf '%s' "${out[*]:-}" | sed 's/,/, /g'
}

main() {
    require_root
    require_env EXPECTED_NODES
    local timeout=${READY_TIMEOUT_SECONDS:-600} poll=${READY_POLL_SECONDS:-5}
    [[ $timeout =~ ^[0-9]+$ ]] || die "READY_TIMEOUT_SECONDS must be a whole number, not '${timeout}'"
    [[ $poll =~ ^[0-9]+$ && $poll -gt 0 ]] || die "READY_POLL_SECONDS must be a positive whole number, not '${poll}'"
    read -r -a NODES <<<"$EXPECTED_NODES"
    [[ ${#NODES[@]} -gt 0 ]] || die "EXPECTED_NODES is empty"
    require_control_plane
    require_cmd kubectl

    log_step "waiting up to ${timeout}s for nodes to be Ready: ${NODES[*]}"
    local deadline=$(($(now_ms) + timeout * 1000)) listing pending
    while true; do
        listing=$(kubectl_admin get nodes -o jsonpath="$NODE_READY_JSONPATH" 2>/dev/null) ||
            listing=
        pending=$(not_ready "$listing")
        if [[ -z $pending ]]; then
            log_step "all ${#NODES[@]} nodes are Ready"
            return 0
        fi
        if [[ $(now_ms) -ge $deadline ]]; then
            [[ -n $listing ]] || pending="${pending} (the API server did not answer)"
            die "nodes not Ready after ${timeout}s: ${pending}"
        fi
        log_info "not Ready yet: ${pending}"
        sleep "$poll"
    done
}

main "$@" </dev/null
