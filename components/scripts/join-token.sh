#!/usr/bin/env bash
# Prints a fresh, short-lived worker join command on stdout: exactly one line, the output of
# `kubeadm token create --print-join-command`, and nothing else (the caller keeps it secret).
# Environment:
#   TOKEN_TTL   token lifetime, a duration like 15m or 1h (default 15m; 0 = forever is refused)
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
    require_cmd kubeadm
    local line
    line=$(kubeadm token create --print-join-command --ttl "$ttl") ||
        die "kubeadm token create failed (is the API server up?)"
    line=$(printf '%s' "$line" | sed -e 's/[[:space:]]*$//' | grep -v '^[[:space:]]*$' || true)
    [[ $(wc -l <<<"$line") -eq 1 && $line == "kubeadm join "* && $line == *"--discovery-token-ca-cert-hash sha256:"* ]] ||
        die "kubeadm token create did not print a join command with a CA certificate hash"
    printf '%s\n' "$line"
    log_step "printed a join command valid for ${ttl}"
}

main "$@" </dev/null
